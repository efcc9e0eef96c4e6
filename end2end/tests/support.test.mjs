// The support console in a real browser, once per database. A user signs up on the tenant's
// site (the example relying party, through the SDK and the Client API); a support operator,
// invited with the role `support`, searches for them, sees the provider of their passkey, revokes
// it with a reason in the confirm dialog, and the user's next sign-in fails. The audit log shows
// the revocation (and exports it); the dashboard counts the activity. Screenshots of the users,
// user and dashboard pages are saved as artifacts, on a desktop and a phone width.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, postgresAvailable } from '../support/server.mjs';
import { serveExample } from '../support/example.mjs';
import { launchBrowser, newPage, screenshot, waitForHydration } from '../support/browser.mjs';
import { addVirtualAuthenticator, enroll, withoutConditionalUi } from '../support/webauthn.mjs';
import { seriousViolations, scrollsSideways } from '../support/axe.mjs';


const backends = [
  ['sqlite', 'SQLite', true],
  ['postgres', 'PostgreSQL', postgresAvailable()],
];

for (const [backend, label, available] of backends) {
  describe(`support console on ${label}`, { skip: !available && 'PostgreSQL not reachable' }, () => {
    let server;
    let browser;
    let rp;
    let origin;
    let tenantId;
    let apiKey;
    let owner;
    let support;
    let user;

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
    const tenantTab = (page, name) => page.getByRole('navigation', { name: 'Tenant' }).getByRole('link', { name });

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

    test('the owner invites a support operator, who signs up with a passkey', async () => {
      await owner.goto(`${server.baseUrl}/tenants/${tenantId}/members`);
      await waitForHydration(owner);
      await owner.getByLabel('Email').fill('sam@example.com');
      await owner.getByLabel('Role', { exact: true }).selectOption('support');
      await owner.getByRole('button', { name: 'Invite' }).click();
      const link = await owner.getByLabel('Invitation link').inputValue();
      support = await newPage(browser);
      await addVirtualAuthenticator(support);
      await enroll(support, link, { displayName: 'Sam Support' });
    });

    test('a user signs up on the tenant site through the Client API and signs in', async () => {
      const issued = await api('POST', '/api/v1/users/customer-7781/enrollment-tokens', {
        username: 'Grace.Hopper@example.com',
        display_name: 'Grace Hopper',
      });
      assert.equal(issued.status, 201);
      user = await newPage(browser);
      await withoutConditionalUi(user);
      await addVirtualAuthenticator(user);
      await user.goto(exampleUrl({ token: issued.body.token }));
      await user.getByLabel('Passkey name (optional)').fill('Work laptop');
      await user.getByRole('button', { name: 'Create a passkey' }).click();
      await user.getByRole('status').getByText('Passkey "Work laptop" created.').waitFor();
      await user.getByRole('button', { name: 'Sign in with a passkey' }).click();
      await user.getByRole('status').getByText(/^Signed in\./).waitFor();
      // Someone with the same prefix, to find the right one among several.
      await api('POST', '/api/v1/users/customer-7782/enrollment-tokens', { username: 'grace.kelly@example.com' });
    });

    test('support finds the user by username, in any case, and sees the passkey and its provider', async () => {
      await support.goto(`${server.baseUrl}/tenants/${tenantId}/dashboard`);
      await waitForHydration(support);
      await tenantTab(support, 'Users').click();
      await support.getByRole('heading', { name: 'Users' }).waitFor();
      await waitForHydration(support);
      await support.getByLabel('Search users').fill('GRACE.H');
      await support.getByRole('button', { name: 'Search', exact: true }).click();
      await support.waitForURL(/\?q=GRACE\.H$/);
      const users = support.getByTestId('users');
      await users.getByRole('link', { name: 'customer-7781' }).waitFor();
      assert.equal(await users.getByRole('row').count(), 2, 'a header row and one match');
      assert.match(await support.getByTestId('user-count').textContent(), /^1 of 2 users match/);
      await screenshot(support, `support-users-${backend}`);

      await users.getByRole('link', { name: 'customer-7781' }).click();
      await support.getByRole('heading', { name: 'Grace Hopper' }).waitFor();
      await waitForHydration(support);
      const active = support.getByTestId('active-authenticators');
      const card = active.getByRole('listitem');
      assert.equal(await card.count(), 1);
      await card.getByRole('heading', { name: 'Work laptop' }).waitFor();
      const provider = (await card.locator('.provider').textContent()).trim();
      // Chromium's virtual authenticator reports no AAGUID the community list knows.
      assert.ok(provider.length > 0, 'a provider line');
      const facts = await card.textContent();
      assert.match(facts, /Device-bound/);
      assert.match(facts, /Attachment\s*platform/);
      assert.match(facts, /User verified\s*yes/);
      assert.match(facts, /AAGUID\s*[0-9a-f-]{36}/);
      assert.doesNotMatch(facts, /Last used\s*never/, 'the sign-in is recorded');
      // Support may revoke, rename and issue recovery tokens — without add:authenticators, so
      // the token registers only once the lost passkey is revoked (the hint says so).
      await support.getByRole('button', { name: 'Issue recovery token' }).waitFor();
      assert.match(
        await support.locator('#recovery-heading + .hint').textContent(),
        /revoke the lost one first/,
      );
      await screenshot(support, `support-user-${backend}`);
    });

    test('bound devices: listed on the user page, revoked by support, new again at the next sign-in', async () => {
      // The user's browser binds a device key at sign-in (the SDK's bindDevice).
      const signIn = () =>
        user.evaluate(
          async ({ base, tenant }) => {
            const { Latchkey } = await import(`${base}/sdk/latchkey.js`);
            return (await new Latchkey({ baseUrl: base, tenantId: tenant }).signIn({ bindDevice: true })).token;
          },
          { base: server.baseUrl, tenant: tenantId },
        );
      const validate = async (token) => (await api('POST', '/api/v1/tokens/validate', { token })).body;
      const bound = await validate(await signIn());
      assert.equal(bound.device.status, 'new');
      assert.equal((await validate(await signIn())).device.status, 'known');

      await support.reload();
      await waitForHydration(support);
      const devices = support.getByTestId('devices');
      const row = devices.locator(`tr[data-device="${bound.device.id}"]`);
      await row.waitFor();
      // Headless Chromium says so in its user agent.
      assert.match(await row.locator('td').first().textContent(), /^(Headless)?Chrome \d+ on Linux/);
      assert.equal((await row.locator('td').nth(3).textContent()).trim(), '2', 'two sign-ins from it');
      await support.getByRole('button', { name: /^Revoke (Headless)?Chrome \d+ on Linux$/ }).click();
      await support.getByRole('button', { name: /^Confirm revoking (Headless)?Chrome/ }).click();
      await support.getByRole('status').getByText(/^Revoked the device “(Headless)?Chrome \d+ on Linux”/).waitFor();
      await support.getByText('No bound devices.').waitFor();

      const again = await validate(await signIn());
      assert.equal(again.device.status, 'new');
      assert.deepEqual(again.risk_signals, ['new_device']);
      // Listed again, as the new device it now is.
      const listed = await api('GET', `/api/v1/users/customer-7781/devices`);
      assert.equal(listed.body.devices.length, 1);
      assert.equal(listed.body.devices[0].sign_in_count, 1);
    });

    test('revocation: Revoke, a reason, Confirm revoke — and the next sign-in fails', async () => {
      // Click 1: Revoke. The dialog opens with the focus in its Reason field.
      await support.getByRole('button', { name: 'Revoke Work laptop' }).click();
      const dialog = support.getByRole('dialog', { name: 'Revoke “Work laptop”?' });
      await dialog.waitFor();
      await support.waitForFunction(() => document.activeElement?.id === 'revoke-reason');
      // A reason is required: refused in place, nothing revoked.
      await dialog.getByRole('button', { name: 'Confirm revoke' }).click();
      await dialog.getByText('Enter a reason.').waitFor();
      await dialog.getByLabel('Reason').fill('Lost laptop, ticket 4711');
      // Click 2: Confirm revoke. The page updates in place.
      const navigations = [];
      support.on('framenavigated', (frame) => navigations.push(frame.url()));
      await dialog.getByRole('button', { name: 'Confirm revoke' }).click();
      await support.getByRole('status').getByText('Revoked “Work laptop”.').waitFor();
      assert.deepEqual(navigations, [], 'no full reload');
      assert.equal(await dialog.count(), 0);
      const revoked = support.getByTestId('revoked-authenticators');
      await revoked.getByText('Lost laptop, ticket 4711').waitFor();
      assert.match(await revoked.textContent(), /sam@example\.com/);
      await support.getByText('No active passkeys').waitFor();

      await user.getByRole('button', { name: 'Sign in with a passkey' }).click();
      await user
        .getByRole('status')
        .getByText('This passkey has been revoked. Use another one or ask for help. (credential_revoked)')
        .waitFor();
      // The refused empty reason is the only error the console saw.
      assert.deepEqual(support.problems.filter((p) => !p.includes('400')), []);
    });

    test('the audit log shows the revocation, filters by action and user, and exports', async () => {
      await tenantTab(support, 'Audit log').click();
      await support.getByRole('heading', { name: 'Audit log' }).waitFor();
      await waitForHydration(support);
      await support.getByLabel('Action').fill('authenticator.revoked');
      await support.getByLabel('Target user ID').fill('customer-7781');
      await support.getByRole('button', { name: 'Filter' }).click();
      await support.waitForURL(/action=authenticator\.revoked/);
      const log = support.getByTestId('audit-log');
      const revokedEvent = log.locator('li[data-action="authenticator.revoked"]');
      await revokedEvent.first().waitFor();
      // The URL changes at once; the list when the filtered page has arrived.
      await support.waitForFunction(() => document.querySelectorAll('li.event').length === 1);
      // One sentence: who did what to whom, and why.
      const sentence = (await revokedEvent.locator('.sentence').textContent()).replace(/\s+/g, ' ');
      assert.match(sentence, /^sam@example\.com revoked customer-7781’s passkey “[^”]+” — reason: Lost laptop, ticket 4711$/);
      // The details are fields, not a JSON blob, and the browser is named in a few words.
      await revokedEvent.getByText('Details').click();
      const details = revokedEvent.locator('dl');
      await details.getByText('reason', { exact: true }).waitFor();
      assert.match(await revokedEvent.locator('summary').textContent(), /(Chrome|Chromium)[^·]* on Linux · 127\.0\.0\.1/);
      assert.match(await details.textContent(), /Mozilla\/5\.0/);

      // The refused sign-in with the revoked passkey reads as a sentence too.
      await support.goto(`${server.baseUrl}/tenants/${tenantId}/audit?action=user.signed_in&code=credential_revoked`);
      const refused = log.locator('li[data-action="user.signed_in"].failed').first();
      await refused.waitFor();
      assert.match(
        (await refused.locator('.sentence').textContent()).replace(/\s+/g, ' '),
        /^Sign-in refused for customer-7781: this passkey has been revoked$/,
      );
      assert.equal(await refused.locator('.badge').textContent(), 'Refused');

      // The passkey in a sentence filters by it; each event has a link of its own.
      await support.goto(`${server.baseUrl}/tenants/${tenantId}/audit?user=customer-7781`);
      await log.locator('li[data-action="authenticator.revoked"] a.passkey').click();
      await support.waitForURL(/passkey=[0-9a-f-]{36}/);
      // The URL changes at once; the list when the filtered page has arrived.
      const about = ['authenticator.revoked', 'authenticator.registered', 'user.signed_in', 'validation_token.validated'];
      await support.waitForFunction(
        (allowed) => [...document.querySelectorAll('li.event')].every((li) => allowed.includes(li.dataset.action)),
        about,
      );
      const actions = await log.locator('li.event').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-action')));
      assert.ok(actions.includes('authenticator.revoked') && actions.includes('authenticator.registered'), `${actions}`);
      assert.ok(actions.every((a) => about.includes(a)), `${actions}`);
      // The form follows the link: Filter keeps the passkey (and the user) it set.
      const passkeyId = new URL(support.url()).searchParams.get('passkey');
      assert.equal(await support.locator('form.filters input[name="passkey"]').inputValue(), passkeyId);
      assert.equal(await support.getByLabel('Target user ID').inputValue(), 'customer-7781');
      await log.locator('li[data-action="authenticator.revoked"] a.when').click();
      await support.waitForURL(/event=\d+/);
      await support.waitForFunction(() => document.querySelectorAll('li.event').length === 1);
      await screenshot(support, `support-audit-${backend}`);

      const csv = await support.request.get(
        `${server.baseUrl}/portal/export/audit.csv?tenant=${tenantId}&action=authenticator.revoked`,
      );
      assert.equal(csv.status(), 200);
      assert.match(csv.headers()['content-disposition'], /attachment/);
      const lines = (await csv.text()).trim().split('\r\n');
      assert.equal(lines.length, 2, 'header and one event');
      assert.match(lines[0], /^id,occurred_at,tenant_id,actor_kind/);
      assert.match(lines[1], /authenticator\.revoked/);
      const jsonl = await support.request.get(`${server.baseUrl}/portal/export/audit.jsonl?tenant=${tenantId}`);
      const events = (await jsonl.text()).trim().split('\n').map((l) => JSON.parse(l));
      assert.ok(events.some((e) => e.action === 'user.signed_in' && e.outcome === 'failure' && e.error_code === 'credential_revoked'));
      // Without a session, nothing.
      const anonymous = await fetch(`${server.baseUrl}/portal/export/audit.csv?tenant=${tenantId}`);
      assert.equal(anonymous.status, 401);
    });

    test('the dashboard counts the activity, on a desktop and on a phone', async () => {
      await tenantTab(support, 'Dashboard').click();
      await support.getByRole('heading', { name: 'Dashboard' }).waitFor();
      const chart = support.getByTestId('activity-chart');
      await chart.waitFor();
      assert.match(await chart.getAttribute('aria-label'), /per day/);
      const outcomes = await support.getByTestId('outcomes').textContent();
      assert.match(outcomes, /credential_revoked/);
      await screenshot(support, `support-dashboard-${backend}`);
      await support.setViewportSize({ width: 390, height: 844 });
      await tenantTab(support, 'Users').click();
      await support.getByLabel('Search users').waitFor();
      await screenshot(support, `support-users-phone-${backend}`);
      await support.setViewportSize({ width: 1280, height: 800 });
    });

    test('the owner revokes all and issues a recovery token from the user page', async () => {
      // Two new passkeys for the user (two devices: one authenticator registers a user once),
      // then both revoked with one confirmation.
      const second = await newPage(browser);
      await withoutConditionalUi(second);
      await addVirtualAuthenticator(second);
      for (const [i, device] of [user, second].entries()) {
        const issued = await api('POST', '/api/v1/users/customer-7781/enrollment-tokens', { scopes: ['add:authenticators'] });
        await device.goto(exampleUrl({ token: issued.body.token }));
        await device.getByLabel('Passkey name (optional)').fill(`Phone ${i}`);
        await device.getByRole('button', { name: 'Create a passkey' }).click();
        await device.getByRole('status').getByText(`Passkey "Phone ${i}" created.`).waitFor();
      }
      await owner.goto(`${server.baseUrl}/tenants/${tenantId}/users?q=customer-7781`);
      await owner.getByTestId('users').getByRole('link', { name: 'customer-7781' }).click();
      await owner.getByRole('heading', { name: 'Grace Hopper' }).waitFor();
      await waitForHydration(owner);
      await owner.getByRole('button', { name: 'Rename Phone 0' }).click();
      await owner.getByLabel('New name').fill('Grace’s phone');
      await owner.getByRole('button', { name: 'Save name' }).click();
      await owner.getByRole('status').getByText('Renamed “Phone 0” to “Grace’s phone”.').waitFor();
      // The list re-renders with the new name: click Revoke all on the settled page (a click
      // during the re-render can land on a button that is being replaced).
      await owner.getByRole('button', { name: 'Rename Grace’s phone' }).waitFor();
      await owner.getByRole('button', { name: 'Revoke all' }).click();
      const dialog = owner.getByRole('dialog', { name: 'Revoke all 2 passkeys?' });
      await dialog.getByLabel('Reason').fill('Account takeover suspected');
      await dialog.getByRole('button', { name: 'Confirm revoke' }).click();
      await owner.getByRole('status').getByText('Revoked 2 passkeys.').waitFor();
      const listed = await api('GET', '/api/v1/users/customer-7781/authenticators');
      assert.equal(listed.body.authenticators.filter((a) => !a.revoked_at).length, 0);

      await owner.getByRole('button', { name: 'Issue recovery token' }).click();
      const token = await owner.getByLabel('Recovery token').inputValue();
      assert.match(token, /^lk_enr_[A-Za-z0-9_-]{43}$/);
      await owner.getByText(/^Valid until /).waitFor();
      // The user registers a new passkey with it (on a new device).
      const fresh = await newPage(browser);
      await withoutConditionalUi(fresh);
      await addVirtualAuthenticator(fresh);
      await fresh.goto(exampleUrl({ token }));
      await fresh.getByLabel('Passkey name (optional)').fill('New phone');
      await fresh.getByRole('button', { name: 'Create a passkey' }).click();
      await fresh.getByRole('status').getByText('Passkey "New phone" created.').waitFor();
      assert.deepEqual(owner.problems, []);
    });

    test('the dashboard shows adoption: one of the two users has a passkey again, one passkey', async () => {
      await owner.goto(`${server.baseUrl}/tenants/${tenantId}/dashboard`);
      const adoption = owner.getByTestId('adoption');
      await adoption.waitFor();
      assert.match(await adoption.locator('[data-figure="adoption"]').textContent(), /^50 % of users have a passkey \(1 of 2\)$/);
      assert.match(await adoption.locator('[data-figure="passkeys-per-user"]').textContent(), /^1\.0 passkeys per user/);
      assert.match(await adoption.locator('[data-figure="sign-in-success"]').textContent(), /^\d+(\.\d)? % of sign-ins succeeded/);
      // A refusal reason links to its events.
      await owner.getByTestId('outcomes').getByRole('link', { name: 'this passkey has been revoked' }).click();
      await owner.waitForURL(/action=user\.signed_in&code=credential_revoked/);
      await owner.locator('li[data-action="user.signed_in"].failed').first().waitFor();
      // With a passkey registered, the home page's checklist is done and folded away.
      await owner.goto(server.baseUrl + '/');
      const checklist = owner.getByTestId('checklist');
      await checklist.getByText('5 of 5 done').waitFor();
      assert.equal(await checklist.locator('details').getAttribute('open'), null);
    });

    test('every portal page: no serious accessibility violation, and none scrolls sideways on a phone', async () => {
      const pages = [
        '/', '/tenants', '/tenants/new', '/audit', '/operators', '/security', '/metadata', '/no-such-page',
        ...['passkeys', 'members', 'api-keys', 'webhooks', 'enrollment-tokens', 'dashboard', 'users',
          'users/customer-7781', 'health', 'audit', 'passkeys/affected'].map((p) => `/tenants/${tenantId}/${p}`),
      ];
      const found = [];
      for (const width of [1280, 375]) {
        await owner.setViewportSize({ width, height: 800 });
        for (const path of pages) {
          await owner.goto(server.baseUrl + path);
          await waitForHydration(owner);
          for (const v of await seriousViolations(owner)) found.push(`${path} at ${width} px: ${v}`);
          if (width === 375) {
            if (await scrollsSideways(owner)) found.push(`${path} scrolls sideways at 375 px`);
            await screenshot(owner, `phone${path.replaceAll('/', '-').replace(tenantId, 'tenant')}-${backend}`);
          }
        }
      }
      // Signed out: the sign-in page.
      const visitor = await newPage(browser, { width: 375, height: 800 });
      await visitor.goto(server.baseUrl + '/login');
      await waitForHydration(visitor);
      for (const v of await seriousViolations(visitor)) found.push(`/login: ${v}`);
      if (await scrollsSideways(visitor)) found.push('/login scrolls sideways at 375 px');
      await owner.setViewportSize({ width: 1280, height: 800 });
      assert.deepEqual(found, []);
    });
  });
}
