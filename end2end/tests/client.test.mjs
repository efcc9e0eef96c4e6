// End users of a tenant, in a real browser, once per database: the example relying party (a
// static page on the tenant's own origin) loads the SDK from Latchkey, signs up with an
// enrollment token from the "backend" (fetch with an API key here), signs in with the button
// and through autofill, and the backend validates every token. A revoked passkey is refused
// with a readable message, and a page on an origin the tenant does not list is refused by CORS.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, postgresAvailable } from '../support/server.mjs';
import { serveExample } from '../support/example.mjs';
import { launchBrowser, newPage, screenshot } from '../support/browser.mjs';
import { addVirtualAuthenticator, withoutConditionalUi } from '../support/webauthn.mjs';

const VALIDATION_TOKEN = /lk_val_[A-Za-z0-9_-]{43}/;

const backends = [
  ['sqlite', 'SQLite', true],
  ['postgres', 'PostgreSQL', postgresAvailable()],
];

for (const [backend, label, available] of backends) {
  describe(`end users through the SDK on ${label}`, { skip: !available && 'PostgreSQL not reachable' }, () => {
    let server;
    let browser;
    let rp;
    let tenantId;
    let apiKey;
    let page;
    let authenticator;
    let origin;

    const api = async (method, path, body) => {
      const res = await fetch(server.baseUrl + path, {
        method,
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: res.status === 204 ? null : await res.json() };
    };
    const validate = async (text) => {
      const token = text.match(VALIDATION_TOKEN)?.[0];
      assert.ok(token, `no validation token in: ${text}`);
      const { body } = await api('POST', '/api/v1/tokens/validate', { token });
      return body;
    };
    const exampleUrl = (params) =>
      `${origin}/?${new URLSearchParams({ latchkey: server.baseUrl, tenant: tenantId, ...params })}`;

    before(async () => {
      server = await startServer(backend);
      rp = await serveExample();
      origin = `http://localhost:${rp.port}`;
      const created = JSON.parse(
        server.cli(['tenant', 'create', '--name', 'Shop', '--rp-id', 'localhost', '--origin', origin, '--enable-passkeys']),
      );
      tenantId = created.tenant_id;
      apiKey = JSON.parse(server.cli(['api-key', 'create', '--tenant', tenantId, '--name', 'backend'])).api_key;
      browser = await launchBrowser();
      page = await newPage(browser);
      await withoutConditionalUi(page);
      authenticator = await addVirtualAuthenticator(page);
    });

    after(async () => {
      await browser?.close();
      await new Promise((resolve) => rp?.site.close(resolve));
      await server?.stop();
    });

    test('the SDK is a module any site may load, with its types', async () => {
      const res = await fetch(`${server.baseUrl}/sdk/latchkey.js`, { headers: { origin } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
      assert.match(res.headers.get('content-type'), /javascript/);
      assert.match(await res.text(), /export\s*\{/);
      const types = await fetch(`${server.baseUrl}/sdk/latchkey.d.ts`);
      assert.match(await types.text(), /signUp\(options: SignUpOptions & \{ conditional\?: false \}\): Promise<SignUpResult>/);
    });

    test("the options parse with the browser's own WebAuthn JSON parsers, as they are", async () => {
      const issued = await api('POST', '/api/v1/users/parser-check/enrollment-tokens', {});
      await page.goto(exampleUrl({}));
      const parsed = await page.evaluate(
        async ({ base, tenant, token }) => {
          if (!PublicKeyCredential.parseCreationOptionsFromJSON) return null;
          const post = async (path, body, bearer) => {
            const res = await fetch(base + path, {
              method: 'POST',
              headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
              body: JSON.stringify(body),
            });
            return res.json();
          };
          const creation = await post('/api/client/v1/registration/options', {}, token);
          const request = await post(`/api/client/v1/tenants/${tenant}/authentication/options`, {});
          const c = PublicKeyCredential.parseCreationOptionsFromJSON(creation.publicKey);
          const r = PublicKeyCredential.parseRequestOptionsFromJSON(request.publicKey);
          return { rp: c.rp.id, challenge: c.challenge.byteLength, rpId: r.rpId, requestChallenge: r.challenge.byteLength };
        },
        { base: server.baseUrl, tenant: tenantId, token: issued.body.token },
      );
      assert.notEqual(parsed, null, 'this Chromium has the WebAuthn L3 JSON parsers (since 129)');
      assert.deepEqual(parsed, { rp: 'localhost', challenge: 32, rpId: 'localhost', requestChallenge: 32 });
    });

    test('sign up with an enrollment token, then sign in with and without a user ID', async () => {
      const issued = await api('POST', '/api/v1/users/user-42/enrollment-tokens', { username: 'ada@example.com' });
      assert.equal(issued.status, 201);
      await page.goto(exampleUrl({ token: issued.body.token }));
      await page.getByLabel('Passkey name (optional)').fill('My laptop');
      await page.getByRole('button', { name: 'Create a passkey' }).click();
      const output = page.getByRole('status');
      await output.getByText('Passkey "My laptop" created.').waitFor();
      const signUp = await validate(await output.textContent());
      assert.equal(signUp.valid, true);
      assert.equal(signUp.kind, 'sign_up');
      assert.equal(signUp.user_id, 'user-42');
      assert.equal((await authenticator.credentials()).length, 1);

      for (const userId of ['', 'user-42']) {
        await page.getByLabel(/^User ID/).fill(userId);
        await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
        await output.getByText(/^Signed in\./).waitFor();
        const signIn = await validate(await output.textContent());
        assert.equal(signIn.valid, true, JSON.stringify(signIn));
        assert.equal(signIn.kind, 'sign_in');
        assert.equal(signIn.user_id, 'user-42');
        assert.equal(signIn.username, 'ada@example.com');
        assert.equal(signIn.authenticator_id, signUp.authenticator_id);
        await page.evaluate(() => { document.getElementById('result').textContent = ''; });
      }
      // The token was used: a second sign-up with it is refused, readably.
      await page.getByRole('button', { name: 'Create a passkey' }).click();
      await output.getByText('This sign-up link has already been used. (token_used)').waitFor();
      assert.deepEqual(page.problems.filter((p) => !p.includes('401')), []);
      await screenshot(page, `client-example-${backend}`);
    });

    test("the example's backend validates and shows the passkey, the device and the risk signals", async () => {
      rp.settings.latchkeyUrl = server.baseUrl;
      rp.settings.apiKey = apiKey;
      try {
        // The page asks its backend only when served by one that can validate.
        await page.goto(exampleUrl({}));
        await page.getByLabel(/^User ID/).fill('');
        await page.getByLabel('Remember this device (device binding)').check();
        const output = page.getByRole('status');
        for (const device of ['new', 'known']) {
          await page.evaluate(() => { document.getElementById('result').textContent = ''; });
          await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
          await output.getByText(/Your backend validated it: sign_in of user-42\./).waitFor();
          const shown = await output.textContent();
          assert.match(shown, /Passkey: My laptop \((synced|device-bound)\), sign-in #\d+/);
          assert.match(shown, new RegExp(`Device: ${device} \\(first seen `));
          assert.match(shown, device === 'new' ? /Risk signals: new_device\./ : /Risk signals: none\./);
        }
      } finally {
        rp.settings.apiKey = undefined;
        await page.goto(exampleUrl({}));
      }
    });

    test('passkey autofill signs in without a click', async (t) => {
      const laptop = await newPage(browser);
      const other = await addVirtualAuthenticator(laptop);
      const [credential] = await authenticator.credentials();
      await other.add(credential);
      await laptop.goto(exampleUrl({}));
      const available = await laptop.evaluate(
        () => window.PublicKeyCredential?.isConditionalMediationAvailable?.() ?? false,
      );
      if (!available) {
        await laptop.context().close();
        t.skip('this Chromium offers no conditional mediation; the button test covers sign-in');
        return;
      }
      const output = laptop.getByRole('status');
      await output.getByText('Signed in from autofill.').waitFor({ timeout: 20_000 });
      const signIn = await validate(await output.textContent());
      assert.equal(signIn.valid, true);
      assert.equal(signIn.user_id, 'user-42');
      await laptop.context().close();
    });

    test('a revoked passkey is refused with a readable message', async () => {
      const { body } = await api('GET', '/api/v1/users/user-42/authenticators');
      const [passkey] = body.authenticators;
      assert.equal(passkey.name, 'My laptop');
      const revoked = await api('DELETE', `/api/v1/users/user-42/authenticators/${passkey.id}`);
      assert.equal(revoked.status, 204);
      await page.getByLabel(/^User ID/).fill('');
      await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
      await page
        .getByRole('status')
        .getByText('This passkey has been revoked. Use another one or ask for help. (credential_revoked)')
        .waitFor();
    });

    test('a page on an origin the tenant does not list is refused by CORS', async () => {
      const stranger = `http://127.0.0.1:${rp.port}`;
      const preflight = await fetch(`${server.baseUrl}/api/client/v1/tenants/${tenantId}/authentication/options`, {
        method: 'OPTIONS',
        headers: { origin: stranger, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
      assert.equal(preflight.status, 403);
      assert.equal(preflight.headers.get('access-control-allow-origin'), null);
      const allowed = await fetch(`${server.baseUrl}/api/client/v1/tenants/${tenantId}/authentication/options`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
      assert.equal(allowed.status, 204);
      assert.equal(allowed.headers.get('access-control-allow-origin'), origin);

      const elsewhere = await newPage(browser);
      await withoutConditionalUi(elsewhere);
      await addVirtualAuthenticator(elsewhere);
      await elsewhere.goto(`${stranger}/?${new URLSearchParams({ latchkey: server.baseUrl, tenant: tenantId })}`);
      await elsewhere.getByRole('button', { name: 'Sign in with a passkey' }).click();
      await elsewhere.getByRole('status').getByText('Latchkey could not be reached. (network_error)').waitFor();
      await elsewhere.context().close();
    });
  });
}
