// Operators and the portal's own passkeys in a real browser with a virtual authenticator, once
// per database: the logged setup link → passkey → sign out → sign in again; an invitation made
// with the CLI; the audit log showing all of it; anonymous visits sent to /login.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, postgresAvailable } from '../support/server.mjs';
import { launchBrowser, newPage, screenshot, waitForHydration } from '../support/browser.mjs';
import {
  addVirtualAuthenticator,
  enroll,
  signIn,
  withoutConditionalUi,
} from '../support/webauthn.mjs';

const backends = [
  ['sqlite', 'SQLite', true],
  ['postgres', 'PostgreSQL', postgresAvailable()],
];

for (const [backend, label, available] of backends) {
  describe(`operator sign-in on ${label}`, { skip: !available && 'PostgreSQL not reachable' }, () => {
    let server;
    let browser;
    let admin; // the first operator's page, signed in
    let adminAuthenticator;

    before(async () => {
      server = await startServer(backend);
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    test('an anonymous visit to a portal page redirects to /login', async () => {
      const page = await newPage(browser);
      await page.goto(server.baseUrl + '/security');
      assert.equal(new URL(page.url()).pathname, '/login');
      assert.equal(new URL(page.url()).searchParams.get('next'), '/security');
      await page.getByRole('button', { name: 'Sign in with a passkey' }).waitFor();
      assert.equal(await page.getByRole('button', { name: 'Sign out' }).count(), 0);
      await screenshot(page, `login-${backend}`);
      await page.context().close();
    });

    test('first run: the logged setup link creates an instance admin with a passkey', async () => {
      const link = await server.setupUrl();
      assert.ok(link.startsWith(server.baseUrl + '/setup?token=lk_setup_'), link);
      admin = await newPage(browser);
      const authenticator = await addVirtualAuthenticator(admin);
      adminAuthenticator = authenticator;
      await admin.goto(link);
      await admin.getByLabel('Display name').waitFor();
      await screenshot(admin, `setup-${backend}`);
      await enroll(admin, link, { email: 'ada@example.com', displayName: 'Ada Lovelace' });

      const credentials = await authenticator.credentials();
      assert.equal(credentials.length, 1);
      assert.equal(credentials[0].isResidentCredential, true, 'a discoverable passkey');
      assert.equal(credentials[0].rpId, 'localhost');
      await admin.getByRole('button', { name: 'Sign out' }).waitFor();
      assert.equal(await admin.getByText('Ada Lovelace').count(), 1);
      assert.deepEqual(admin.problems, []);

      // The link is spent.
      const other = await newPage(browser);
      await other.goto(link);
      await other.getByText('This setup link has already been used').waitFor();
      await other.context().close();
    });

    test('sign out, then sign in again with the passkey button', async () => {
      // Autofill would sign in on its own as soon as /login loads (next test); here the button.
      await withoutConditionalUi(admin);
      await admin.getByRole('button', { name: 'Sign out' }).click();
      await admin.waitForURL((url) => url.pathname === '/login');
      await admin.goto(server.baseUrl + '/');
      assert.equal(new URL(admin.url()).pathname, '/login', 'signed out for real');

      await signIn(admin, server.baseUrl);
      await admin.getByRole('heading', { name: 'Instance status' }).waitFor();
      await admin.getByRole('button', { name: 'Sign out' }).waitFor();
      assert.deepEqual(admin.problems, []);
    });

    test('after sign-in, `next` only ever leads to a page of the portal', async () => {
      // Browsers drop tabs and newlines from URLs: `/%09/evil.example` becomes `//evil.example`,
      // another site; dot segments are resolved away, so `/.//evil.example` is the path
      // `//evil.example` of the portal, which as a link is that other site again. Each of these
      // must land on the portal's home page instead.
      for (const next of ['/%09/evil.example', '/%0A/evil.example', '//evil.example', '/\\evil.example',
        '/.//evil.example', '/a/..//evil.example', 'https://evil.example/', 'javascript:alert(1)']) {
        await admin.getByRole('button', { name: 'Sign out' }).click();
        await admin.waitForURL((url) => url.pathname === '/login');
        await admin.goto(`${server.baseUrl}/login?next=${next}`);
        await signIn(admin, server.baseUrl, '/');
        assert.equal(new URL(admin.url()).origin, server.baseUrl, `next=${next}`);
        await admin.getByRole('heading', { name: 'Instance status' }).waitFor();
      }
      // A page of the portal is where `next` leads.
      await admin.getByRole('button', { name: 'Sign out' }).click();
      await admin.waitForURL((url) => url.pathname === '/login');
      await admin.goto(`${server.baseUrl}/login?next=${encodeURIComponent('/security?x=1')}`);
      await signIn(admin, server.baseUrl, '/security');
      assert.equal(new URL(admin.url()).search, '?x=1');
      assert.deepEqual(admin.problems, []);
    });

    test('passkey autofill (conditional UI) signs in without a click', async (t) => {
      const laptop = await newPage(browser);
      // The same passkey, synced to another device.
      const authenticator = await addVirtualAuthenticator(laptop);
      const [credential] = await adminAuthenticator.credentials();
      await authenticator.add(credential);
      const landed = await laptop.goto(server.baseUrl + '/audit');
      assert.equal(new URL(landed.url()).pathname, '/login', 'anonymous: redirected to sign in');
      const available = await laptop.evaluate(
        () => window.PublicKeyCredential?.isConditionalMediationAvailable?.() ?? false,
      );
      if (!available) {
        await laptop.context().close();
        t.skip('this Chromium offers no conditional mediation; the button test covers sign-in');
        return;
      }
      // No click: the autofill request started by the page completes with the passkey, and the
      // page goes where the visitor was headed.
      await laptop.waitForURL((url) => url.pathname === '/audit', { timeout: 20_000 });
      await laptop.getByRole('heading', { name: 'Audit log' }).waitFor();
      assert.deepEqual(laptop.problems, []);
      await laptop.context().close();
    });

    test('an invitation from the CLI lets a second operator in', async () => {
      const out = server.cli(['operator', 'invite', '--email', 'grace@example.com']).trim();
      assert.match(out, /^http:\/\/localhost:\d+\/invite\?token=lk_inv_[A-Za-z0-9_-]{43}$/);

      const grace = await newPage(browser);
      await addVirtualAuthenticator(grace);
      await grace.goto(out);
      await waitForHydration(grace);
      assert.equal(await grace.getByLabel('Email', { exact: true }).inputValue(), 'grace@example.com');
      await enroll(grace, out, { displayName: 'Grace Hopper' });
      // Not an instance admin: no audit log in the navigation, and the page itself refuses.
      assert.equal(await grace.getByRole('link', { name: 'Audit log' }).count(), 0);
      await grace.goto(server.baseUrl + '/audit');
      await grace.getByText('Not allowed').waitFor();
      await grace.context().close();
    });

    test('the audit log shows all of it', async () => {
      await admin.getByRole('link', { name: 'Audit log' }).click();
      await admin.getByRole('heading', { name: 'Audit log' }).waitFor();
      const table = admin.getByTestId('audit-log');
      await table.waitFor();
      const actions = await table.locator('li.event').evaluateAll((rows) =>
        rows.map((r) => r.getAttribute('data-action')),
      );
      for (const expected of [
        'setup.token_issued',
        'setup.completed',
        'passkey.added',
        'operator.signed_out',
        'operator.signed_in',
        'operator.invited',
        'invitation.accepted',
      ]) {
        assert.ok(actions.includes(expected), `${expected} in ${actions}`);
      }
      const invited = table.locator('li[data-action="operator.invited"]');
      assert.match(await invited.textContent(), /cli/);
      const signedIn = table.locator('li[data-action="operator.signed_in"]').first();
      assert.match(await signedIn.textContent(), /ada@example\.com/);
      assert.match(await signedIn.textContent(), /127\.0\.0\.1/);
      await screenshot(admin, `audit-${backend}`);
      assert.deepEqual(admin.problems, []);
    });

    test('the security page lists the passkey and keeps the last one', async () => {
      await admin.getByRole('link', { name: 'Security' }).click();
      const list = admin.getByTestId('passkeys');
      await list.waitFor();
      assert.equal(await list.locator('tbody tr').count(), 1);
      const remove = admin.getByRole('button', { name: 'Remove First passkey' });
      assert.equal(await remove.isDisabled(), true, 'the only passkey cannot be removed');
      await screenshot(admin, `security-${backend}`);
      assert.deepEqual(admin.problems, []);
    });
  });
}
