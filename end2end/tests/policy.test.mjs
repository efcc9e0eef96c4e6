// The authenticator policy and the credential health queue in a real browser, once per database.
// A user signs up on the tenant's site with Chromium's virtual authenticator. The owner writes a
// policy blocking that authenticator's model (its AAGUID, read from the Server API) and existing
// passkeys with it: the dry run counts the passkey and the user left without one, lists the user,
// and the owner saves. The user's next sign-in is refused (authenticator_not_allowed, naming
// nothing it does not know), a new registration with the same model too; the Server API's dry run
// agrees; the Health page lists the passkey under "Refused by the current policy" and the owner
// dismisses it with a note. Last, the instance admin's FIDO metadata page refuses a forged BLOB
// and still says no metadata is imported (the release binary trusts only the FIDO root).

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, postgresAvailable } from '../support/server.mjs';
import { serveExample } from '../support/example.mjs';
import { launchBrowser, newPage, screenshot, waitForHydration } from '../support/browser.mjs';
import { addVirtualAuthenticator, enroll, withoutConditionalUi } from '../support/webauthn.mjs';

const backends = [
  ['sqlite', 'SQLite', true],
  ['postgres', 'PostgreSQL', postgresAvailable()],
];

for (const [backend, label, available] of backends) {
  describe(`authenticator policy on ${label}`, { skip: !available && 'PostgreSQL not reachable' }, () => {
    let server;
    let browser;
    let rp;
    let origin;
    let tenantId;
    let apiKey;
    let owner;
    let user;
    let aaguid;

    const api = async (method, path, body) => {
      const res = await fetch(server.baseUrl + path, {
        method,
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: res.status === 204 ? null : await res.json() };
    };
    const exampleUrl = (params) =>
      `${origin}/?${new URLSearchParams({ latchkey: server.baseUrl, tenant: tenantId, ...params })}`;

    before(async () => {
      server = await startServer(backend);
      rp = await serveExample();
      origin = `http://localhost:${rp.port}`;
      browser = await launchBrowser();
      owner = await newPage(browser);
      await addVirtualAuthenticator(owner);
      await enroll(owner, await server.setupUrl(), { email: 'owner@example.com', displayName: 'Olive Owner' });
      tenantId = JSON.parse(
        server.cli([
          'tenant', 'create', '--name', 'Shop', '--rp-id', 'localhost', '--origin', origin,
          '--enable-passkeys', '--owner', 'owner@example.com',
        ]),
      ).tenant_id;
      apiKey = JSON.parse(server.cli(['api-key', 'create', '--tenant', tenantId, '--name', 'backend'])).api_key;
    });

    after(async () => {
      await browser?.close();
      await new Promise((resolve) => rp?.site.close(resolve));
      await server?.stop();
    });

    test('a user signs up with the virtual authenticator; the Server API names its model', async () => {
      const issued = await api('POST', '/api/v1/users/customer-1/enrollment-tokens', { username: 'ada@example.com' });
      assert.equal(issued.status, 201);
      user = await newPage(browser);
      await withoutConditionalUi(user);
      await addVirtualAuthenticator(user);
      await user.goto(exampleUrl({ token: issued.body.token }));
      await user.getByRole('button', { name: 'Create a passkey' }).click();
      await user.getByRole('status').getByText(/^Passkey ".*" created\./).waitFor();
      const listed = await api('GET', '/api/v1/users/customer-1/authenticators');
      assert.equal(listed.body.authenticators.length, 1);
      aaguid = listed.body.authenticators[0].aaguid;
      assert.match(aaguid, /^[0-9a-f-]{36}$/);
      const policy = await api('GET', '/api/v1/authenticator-policy');
      assert.equal(policy.status, 200);
      assert.equal(policy.body.models, 'any');
    });

    test('the owner previews a policy blocking that model, sees its impact and saves it', async () => {
      await owner.goto(`${server.baseUrl}/tenants/${tenantId}/passkeys`);
      await owner.getByRole('heading', { name: 'Authenticator policy' }).waitFor();
      await waitForHydration(owner);
      await owner.getByLabel('Authenticator models').selectOption('block');
      await owner.getByLabel('Models (AAGUIDs)').fill(aaguid);
      await owner.getByLabel('Block existing passkeys that no longer comply').check();
      const save = owner.getByRole('button', { name: 'Save policy' });
      assert.equal(await save.isDisabled(), true, 'saving needs a preview first');
      // A malformed AAGUID is refused beside its field, and nothing is previewed.
      await owner.getByLabel('Models (AAGUIDs)').fill(`${aaguid}\nnot-a-uuid`);
      await owner.getByRole('button', { name: 'Preview impact' }).click();
      await owner.getByText('not-a-uuid: an AAGUID is a UUID').waitFor();
      await owner.getByLabel('Models (AAGUIDs)').fill(aaguid);
      await owner.getByRole('button', { name: 'Preview impact' }).click();
      const summary = owner.getByTestId('dry-run-summary');
      await summary.waitFor();
      assert.equal(
        await summary.textContent(),
        '1 of 1 active passkeys (1 user) would be refused at their next sign-in.',
      );
      assert.match(await owner.getByTestId('dry-run-lockout').textContent(), /^1 user would be left with no usable passkey/);
      assert.equal(await owner.getByTestId('dry-run-models').getByRole('row').count(), 2);
      await screenshot(owner, `policy-dry-run-${backend}`);
      // The list of affected users, then back.
      await owner.getByRole('link', { name: 'List the affected users' }).click();
      await owner.getByRole('heading', { name: 'Users the proposed policy affects' }).waitFor();
      await owner.getByTestId('affected-users').getByRole('link', { name: 'customer-1 (ada@example.com)' }).waitFor();
      await owner.goBack();
      await owner.getByRole('heading', { name: 'Authenticator policy' }).waitFor();
      await waitForHydration(owner);
      await owner.getByLabel('Authenticator models').selectOption('block');
      await owner.getByLabel('Models (AAGUIDs)').fill(aaguid);
      await owner.getByLabel('Block existing passkeys that no longer comply').check();
      await owner.getByRole('button', { name: 'Preview impact' }).click();
      await owner.getByTestId('dry-run-summary').waitFor();
      await save.click();
      await owner.getByRole('status').getByText('Policy saved.').waitFor();
      // Stored: a reload shows it.
      await owner.reload();
      await owner.getByRole('heading', { name: 'Authenticator policy' }).waitFor();
      await waitForHydration(owner);
      assert.equal(await owner.getByLabel('Authenticator models').inputValue(), 'block');
      assert.equal(await owner.getByLabel('Models (AAGUIDs)').inputValue(), aaguid);
    });

    test('the passkey is refused at sign-in, and the model at registration', async () => {
      await user.getByRole('button', { name: 'Sign in with a passkey' }).click();
      await user.getByRole('status').getByText(/\(authenticator_not_allowed\)$/).waitFor();
      const issued = await api('POST', '/api/v1/users/customer-2/enrollment-tokens', {});
      const other = await newPage(browser);
      await withoutConditionalUi(other);
      await addVirtualAuthenticator(other);
      await other.goto(exampleUrl({ token: issued.body.token }));
      await other.getByRole('button', { name: 'Create a passkey' }).click();
      await other.getByRole('status').getByText(/\(authenticator_not_allowed\)$/).waitFor();
      const listed = await api('GET', '/api/v1/users/customer-2/authenticators');
      assert.equal(listed.body.authenticators.length, 0, 'nothing stored');
      await other.close();
    });

    test('the Server API dry run agrees, and bad input is refused with its field', async () => {
      const run = await api('POST', '/api/v1/authenticator-policy/dry-run', {
        models: 'block', aaguids: [aaguid], existing: 'block',
      });
      assert.equal(run.status, 200);
      assert.equal(run.body.refused_passkeys, 1);
      assert.equal(run.body.users_left_without_passkey, 1);
      const bad = await api('POST', '/api/v1/authenticator-policy/dry-run', { models: 'allow', aaguids: [] });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.code, 'invalid_request');
      assert.equal(bad.body.field, 'aaguids');
      const queue = await api('GET', '/api/v1/credential-health?reason=breaks_policy');
      assert.equal(queue.status, 200);
      assert.equal(queue.body.items.length, 1);
      assert.equal(queue.body.items[0].user_id, 'customer-1');
    });

    test('the Health page lists the passkey, and the owner dismisses it with a note', async () => {
      await owner.goto(`${server.baseUrl}/tenants/${tenantId}/dashboard`);
      await owner.getByTestId('health-counts').getByRole('link', { name: /^Refused by the current policy: 1$/ }).click();
      await owner.getByRole('heading', { name: 'Credential health' }).waitFor();
      await waitForHydration(owner);
      const item = owner.getByTestId('health-item');
      assert.equal(await item.count(), 1);
      assert.equal(await item.getAttribute('data-reason'), 'breaks_policy');
      await screenshot(owner, `health-${backend}`);
      await item.getByText('Act', { exact: true }).click();
      await item.getByRole('button', { name: 'Dismiss' }).click();
      await item.getByText('Enter a note.').waitFor();
      await item.getByLabel('Note').fill('Known device, exempt until it is replaced');
      await item.getByRole('button', { name: 'Dismiss' }).click();
      await owner.getByTestId('health-empty').waitFor();
      const queue = await api('GET', '/api/v1/credential-health?reason=breaks_policy');
      assert.equal(queue.body.items.length, 0);
    });

    test('the FIDO metadata page refuses a BLOB that does not verify, and changes nothing', async () => {
      // The release binary trusts only the FIDO Alliance's root: a BLOB made here cannot verify.
      await owner.goto(`${server.baseUrl}/`);
      await owner.getByRole('navigation', { name: 'Primary' }).getByRole('link', { name: 'FIDO metadata' }).click();
      await owner.getByRole('heading', { name: 'FIDO metadata', exact: true }).waitFor();
      await owner.getByText('No metadata has been imported.').waitFor();
      const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const forged = `${b64({ alg: 'ES256', typ: 'JWT', x5c: ['bm90IGEgY2VydGlmaWNhdGU='] })}.${b64({ no: 99, nextUpdate: '2099-01-01', entries: [], legalHeader: '' })}.c2ln`;
      await owner.getByLabel('BLOB file').setInputFiles({
        name: 'blob.jwt',
        mimeType: 'application/octet-stream',
        buffer: Buffer.from(forged),
      });
      await owner.getByRole('button', { name: 'Import BLOB', exact: true }).click();
      await owner.waitForURL(/\/metadata\?error=/);
      const alert = owner.getByRole('alert');
      await alert.waitFor();
      assert.match(await alert.textContent(), /not a FIDO metadata BLOB.*Nothing was imported\./);
      await owner.getByText('No metadata has been imported.').waitFor();
    });
  });
}
