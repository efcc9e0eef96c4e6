// Tenants and their passkey configuration in a real browser, once per database: create a tenant,
// a refused origin explained next to its field with nothing saved, then passkeys enabled for
// localhost with a web origin and an Android origin added from a keytool fingerprint; reload and
// see the values.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, postgresAvailable } from '../support/server.mjs';
import { launchBrowser, newPage, screenshot, waitForHydration } from '../support/browser.mjs';
import { addVirtualAuthenticator, enroll } from '../support/webauthn.mjs';

const backends = [
  ['sqlite', 'SQLite', true],
  ['postgres', 'PostgreSQL', postgresAvailable()],
];

// A signing certificate fingerprint as keytool prints it.
const FINGERPRINT = Array.from({ length: 32 }, (_, i) => (i * 7).toString(16).padStart(2, '0').toUpperCase()).join(':');

for (const [backend, label, available] of backends) {
  describe(`tenant passkey settings on ${label}`, { skip: !available && 'PostgreSQL not reachable' }, () => {
    let server;
    let browser;
    let page;

    before(async () => {
      server = await startServer(backend);
      browser = await launchBrowser();
      page = await newPage(browser);
      await addVirtualAuthenticator(page);
      await enroll(page, await server.setupUrl(), { email: 'ada@example.com', displayName: 'Ada' });
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    // The home page's checklist, one `true`/`false` per step.
    const checklist = async () => {
      await page.goto(server.baseUrl + '/');
      const list = page.getByTestId('checklist');
      await list.waitFor();
      return list.locator('li').evaluateAll((items) => items.map((i) => i.getAttribute('data-done') === 'true'));
    };

    test('a new instance shows the getting-started checklist with nothing done', async () => {
      assert.deepEqual(await checklist(), [false, false, false, false, false]);
      await page.getByTestId('checklist').getByText('0 of 5 done').waitFor();
      await page.getByTestId('checklist').getByRole('link', { name: 'Create a tenant' }).click();
      await page.waitForURL(/\/tenants\/new$/);
    });

    test('an instance admin creates a tenant and becomes its owner', async () => {
      await page.getByRole('link', { name: 'Tenants' }).click();
      await page.getByRole('heading', { name: 'Tenants' }).waitFor();
      await waitForHydration(page);
      await page.getByRole('link', { name: 'New tenant' }).click();
      await waitForHydration(page);
      await page.getByRole('button', { name: 'Create tenant' }).click();
      await page.getByText('Enter a tenant name').waitFor();
      await page.getByLabel('Tenant name').fill('Example Shop');
      await page.getByRole('button', { name: 'Create tenant' }).click();
      await page.waitForURL(/\/tenants\/[0-9a-f-]{36}\/passkeys$/);
      await page.getByRole('heading', { name: 'Passkeys' }).waitFor();
      await waitForHydration(page);
      assert.equal(await page.getByLabel('Enable passkeys').isChecked(), false, 'off by default');
      assert.equal(await page.getByLabel('User verification').inputValue(), 'preferred');
      assert.equal(await page.getByLabel('Timeout (seconds)').inputValue(), '300');
    });

    test('an invalid origin is explained next to its field and nothing is saved', async () => {
      await page.getByLabel('Relying Party ID').fill('localhost');
      await page.getByLabel('Expected origins').fill('https://evil.example');
      await page.getByLabel('Enable passkeys').check();
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      const message = page.locator('#origins-error');
      await message.getByText('its host must be localhost or a subdomain').waitFor();
      assert.match(await message.textContent(), /^https:\/\/evil\.example: /);
      const fields = await page.getByLabel('Expected origins').getAttribute('aria-describedby');
      assert.ok(fields.includes('origins-error'), 'the message is tied to the field');

      await page.reload();
      await waitForHydration(page);
      assert.equal(await page.getByLabel('Relying Party ID').inputValue(), '');
      assert.equal(await page.getByLabel('Expected origins').inputValue(), '');
      assert.equal(await page.getByLabel('Enable passkeys').isChecked(), false);
    });

    test('passkeys enabled with a web origin and an Android origin survive a reload', async () => {
      await page.getByLabel('Enable passkeys').check();
      await page.getByLabel('Relying Party ID').fill('localhost');
      await page.getByLabel('Relying Party name').fill('Example Shop');
      await page.getByLabel('Expected origins').fill('http://localhost:5173');
      // A bad fingerprint first: explained, nothing added.
      await page.getByLabel('Android signing certificate SHA-256').fill('AB:CD');
      await page.getByRole('button', { name: 'Add Android origin' }).click();
      await page.locator('#fingerprint-error').getByText('32 pairs').waitFor();
      await page.getByLabel('Android signing certificate SHA-256').fill(FINGERPRINT);
      await page.getByRole('button', { name: 'Add Android origin' }).click();
      await page.getByTestId('android-origins').getByText(FINGERPRINT).waitFor();
      const origins = await page.getByLabel('Expected origins').inputValue();
      assert.match(origins, /^http:\/\/localhost:5173\nandroid:apk-key-hash:[A-Za-z0-9_-]{43}$/);
      await page.getByLabel('User verification').selectOption('required');
      await page.getByLabel('Timeout (seconds)').fill('120');
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.getByText('Saved.').waitFor();

      await page.reload();
      await waitForHydration(page);
      assert.equal(await page.getByLabel('Enable passkeys').isChecked(), true);
      assert.equal(await page.getByLabel('Relying Party ID').inputValue(), 'localhost');
      assert.equal(await page.getByLabel('Relying Party name').inputValue(), 'Example Shop');
      assert.equal(await page.getByLabel('Expected origins').inputValue(), origins);
      assert.equal(await page.getByLabel('User verification').inputValue(), 'required');
      assert.equal(await page.getByLabel('Timeout (seconds)').inputValue(), '120');
      await page.getByTestId('android-origins').getByText(FINGERPRINT).waitFor();
      assert.match(await page.getByTestId('ios-entitlement').textContent(), /^webcredentials:localhost$/);
      await page.getByTestId('assetlinks').getByText(FINGERPRINT).waitFor();
      assert.match(await page.getByTestId('assetlinks').textContent(), /"package_name": "com\.example\.app"/);
      await screenshot(page, `tenant-passkeys-${backend}`);
      // The browser logs each refused request: the empty name, the bad origin, the bad fingerprint.
      const refusals = page.problems.filter((p) => p.includes('status of 400'));
      assert.equal(refusals.length, 3, page.problems.join('\n'));
      assert.deepEqual(page.problems.filter((p) => !refusals.includes(p)), []);

      // The tenant list shows it on; the audit log recorded the change.
      await page.getByRole('link', { name: 'Tenants', exact: true }).first().click();
      const row = page.getByTestId('tenants').locator('tr', { hasText: 'Example Shop' });
      await row.waitFor();
      assert.match(await row.textContent(), /owner.*on.*localhost/);
      // The tenant's own audit log (the instance's `/audit` holds only events of no tenant).
      await row.getByRole('link').first().click();
      await page.getByRole('navigation', { name: 'Tenant' }).getByRole('link', { name: 'Audit log' }).click();
      await page.locator('li[data-action="tenant.passkey_config_changed"]').waitFor();
    });

    test('an owner invites someone new as a member by email and role', async () => {
      await page.getByRole('link', { name: 'Tenants', exact: true }).first().click();
      await page.getByTestId('tenants').getByRole('link', { name: 'Example Shop' }).click();
      await page.getByRole('link', { name: 'Members' }).click();
      await page.getByRole('heading', { name: 'Members' }).waitFor();
      await waitForHydration(page);
      const members = page.getByTestId('members');
      assert.match(await members.textContent(), /ada@example\.com/);
      await page.getByLabel('Email').fill('grace@example.com');
      await page.getByLabel('Role', { exact: true }).selectOption('support');
      await page.getByRole('button', { name: 'Invite' }).click();
      const link = await page.getByLabel('Invitation link').inputValue();
      assert.match(link, /\/invite\?token=lk_inv_[A-Za-z0-9_-]{43}$/);
      // The last owner cannot be removed.
      await page.getByRole('button', { name: 'Remove ada@example.com' }).click();
      await page.getByText('A tenant needs at least one owner').waitFor();
      await screenshot(page, `tenant-members-${backend}`);
    });

    test('from nothing to passkeys active for example.com with two web origins and an Android app', async () => {
      await page.goto(server.baseUrl + '/tenants/new');
      await waitForHydration(page);
      await page.getByLabel('Tenant name').fill('Example.com store');
      await page.getByRole('button', { name: 'Create tenant' }).click();
      await page.waitForURL(/\/passkeys$/);
      await waitForHydration(page);
      await page.getByLabel('Enable passkeys').check();
      await page.getByLabel('Relying Party ID').fill('example.com');
      await page.getByLabel('Expected origins').fill('https://example.com\nhttps://auth.example.com');
      await page.getByLabel('Android signing certificate SHA-256').fill(FINGERPRINT);
      await page.getByRole('button', { name: 'Add Android origin' }).click();
      await page.getByTestId('android-origins').getByText(FINGERPRINT).waitFor();
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.getByText('Saved.').waitFor();
      await page.reload();
      await waitForHydration(page);
      const origins = (await page.getByLabel('Expected origins').inputValue()).split('\n');
      assert.deepEqual(origins.slice(0, 2), ['https://example.com', 'https://auth.example.com']);
      assert.match(origins[2], /^android:apk-key-hash:[A-Za-z0-9_-]{43}$/);
      assert.equal(origins.length, 3);
      assert.equal(await page.getByLabel('Enable passkeys').isChecked(), true);
      assert.equal(await page.getByLabel('Relying Party ID').inputValue(), 'example.com');
    });

    test('changing a saved RP ID asks first; declining saves nothing', async () => {
      await page.getByLabel('Relying Party ID').fill('example.org');
      await page.getByLabel('Expected origins').fill('https://example.org');
      page.once('dialog', (dialog) => dialog.dismiss());
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.reload();
      await waitForHydration(page);
      assert.equal(await page.getByLabel('Relying Party ID').inputValue(), 'example.com');

      await page.getByLabel('Relying Party ID').fill('example.org');
      await page.getByLabel('Expected origins').fill('https://example.org');
      let asked = '';
      page.once('dialog', (dialog) => {
        asked = dialog.message();
        return dialog.accept();
      });
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.getByText('Saved.').waitFor();
      assert.match(asked, /orphans every passkey/);
      await page.reload();
      await waitForHydration(page);
      assert.equal(await page.getByLabel('Relying Party ID').inputValue(), 'example.org');
    });

    test('API keys: created with the secret shown once, listed by prefix, revoked', async () => {
      await page.getByRole('link', { name: 'API keys' }).click();
      await page.getByRole('heading', { name: 'API keys' }).waitFor();
      await waitForHydration(page);
      await page.getByRole('button', { name: 'Create API key' }).click();
      await page.locator('#key-name-error').getByText('Enter a key name').waitFor();
      await page.getByLabel('Key name').fill('Checkout backend');
      await page.getByRole('button', { name: 'Create API key' }).click();
      const secret = await page.getByLabel('New API key').inputValue();
      assert.match(secret, /^lk_sk_[A-Za-z0-9_-]{43}$/);
      const table = page.getByTestId('api-keys');
      const row = table.locator('tr', { hasText: 'Checkout backend' });
      await row.waitFor();
      assert.match(await row.textContent(), new RegExp(`${secret.slice(0, 12)}…`));
      assert.ok(!(await table.textContent()).includes(secret), 'the list never shows the secret');
      await page.reload();
      await waitForHydration(page);
      assert.ok(!(await page.content()).includes(secret), 'shown once: gone after a reload');
      await page.getByRole('button', { name: 'Revoke Checkout backend' }).click();
      await table.locator('tr', { hasText: 'Checkout backend' }).getByText(/^revoked /).waitFor();
      assert.equal(await page.getByRole('button', { name: 'Revoke Checkout backend' }).count(), 0);
      await screenshot(page, `tenant-api-keys-${backend}`);
    });

    test('Enrollment tokens: issued for support-assisted recovery, shown once, listed with the backend\'s, revoked', async () => {
      await page.getByRole('link', { name: 'Enrollment tokens' }).click();
      await page.getByRole('heading', { name: 'Enrollment tokens' }).waitFor();
      await waitForHydration(page);
      await page.getByRole('button', { name: 'Issue token' }).click();
      await page.locator('#enroll-user-error').getByText('The user ID must be 1 to 128 characters long').waitFor();
      await page.getByLabel('User ID').fill('user-42');
      await page.getByLabel('add:authenticators').check();
      await page.getByRole('button', { name: 'Issue token' }).click();
      const token = await page.getByLabel('New enrollment token').inputValue();
      assert.match(token, /^lk_enr_[A-Za-z0-9_-]{43}$/);
      const table = page.getByTestId('enrollment-tokens');
      const row = table.locator('tr', { hasText: 'user-42' });
      await row.getByText('add:authenticators').waitFor();
      assert.ok(!(await table.textContent()).includes(token), 'the list never shows the secret');

      // The tenant's backend issues one with an API key; it is listed too, with its issuer.
      const tenantId = new URL(page.url()).pathname.split('/')[2];
      const created = JSON.parse(await server.cli(['api-key', 'create', '--tenant', tenantId, '--name', 'e2e']));
      const issued = await fetch(`${server.baseUrl}/api/v1/users/user-7/enrollment-tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${created.api_key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ ttl_seconds: 300 }),
      });
      assert.equal(issued.status, 201);
      await page.reload();
      await waitForHydration(page);
      assert.ok(!(await page.content()).includes(token), 'shown once: gone after a reload');
      await table.locator('tr', { hasText: 'user-7' }).getByText(/by API key lk_sk_/).waitFor();

      await page.getByRole('button', { name: 'Revoke the token for user-42' }).click();
      await table.locator('tr', { hasText: 'user-42' }).waitFor({ state: 'detached' });
      const refused = await fetch(`${server.baseUrl}/api/client/v1/registration/options`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(refused.status, 401);
      assert.equal(refused.headers.get('content-type'), 'application/problem+json');
      assert.equal((await refused.json()).code, 'token_invalid');
      await screenshot(page, `tenant-enrollment-tokens-${backend}`);
    });

    test('the checklist has ticked through the first run, up to the first passkey', async () => {
      assert.deepEqual(await checklist(), [true, true, true, true, false]);
      await page.getByTestId('checklist').getByText('4 of 5 done').waitFor();
      await page.getByTestId('checklist').getByRole('link', { name: 'Register a first passkey' }).click();
      await page.waitForURL(/\/tenants\/[0-9a-f-]{36}\/users$/);
      await screenshot(page, `home-checklist-${backend}`);
    });
  });
}
