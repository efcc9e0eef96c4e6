// Passkeys that stay in sync (issue 22), in a real Chromium with virtual authenticators, through
// the served SDK on the relying party's own origin:
// - the Signal API calls the SDK makes, observed on the page (every accepted credential after a
//   ceremony, a revoked one left out; the user's new names once; "unknown credential" only for a
//   credential the tenant never had; none with `signals: false`);
// - conditional create (automatic passkey upgrades) with the capability present and absent;
// - device binding: a bound browser reported `known`, a fresh one `new`, a revoked device `new`
//   again, with the validation's report fields.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { startServer } from '../support/server.mjs';
import { serveExample } from '../support/example.mjs';
import { launchBrowser, newPage } from '../support/browser.mjs';
import { addVirtualAuthenticator, withoutConditionalUi } from '../support/webauthn.mjs';

/** Records the page's Signal API calls (then makes them) in `window.__signals`. */
async function recordSignals(page) {
  await page.addInitScript(() => {
    window.__signals = [];
    for (const name of ['signalAllAcceptedCredentials', 'signalCurrentUserDetails', 'signalUnknownCredential']) {
      const original = window.PublicKeyCredential?.[name];
      if (typeof original !== 'function') continue;
      window.PublicKeyCredential[name] = function (options) {
        window.__signals.push({ name, options: JSON.parse(JSON.stringify(options)) });
        return original.call(this, options);
      };
    }
  });
}

const b64url = (base64) => base64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

describe('passkeys in sync: Signal API, conditional create, device binding', () => {
  let server;
  let browser;
  let rp;
  let origin;
  let tenantId;
  let apiKey;

  const api = async (method, path, body) => {
    const res = await fetch(server.baseUrl + path, {
      method,
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: res.status === 204 ? null : await res.json() };
  };
  const enrollment = async (user, body = {}) => {
    const issued = await api('POST', `/api/v1/users/${user}/enrollment-tokens`, body);
    assert.equal(issued.status, 201, JSON.stringify(issued.body));
    return issued.body.token;
  };
  const validate = async (token) => (await api('POST', '/api/v1/tokens/validate', { token })).body;

  /** A page on the relying party's origin with a virtual authenticator and the signal recorder. */
  const rpPage = async ({ capabilities } = {}) => {
    const page = await newPage(browser);
    await withoutConditionalUi(page);
    await recordSignals(page);
    if (capabilities !== undefined) {
      await page.addInitScript((caps) => {
        if (caps === null) delete window.PublicKeyCredential.getClientCapabilities;
        else window.PublicKeyCredential.getClientCapabilities = async () => caps;
      }, capabilities);
    }
    const authenticator = await addVirtualAuthenticator(page);
    await page.goto(`${origin}/`);
    return { page, authenticator };
  };

  /** Runs `method(options)` of a fresh SDK client on the page; `{ ok, value }` or `{ code }`. */
  const sdk = (page, method, options, clientOptions = {}) =>
    page.evaluate(
      async ({ base, tenant, method, options, clientOptions }) => {
        const { Latchkey } = await import(`${base}/sdk/latchkey.js`);
        const latchkey = new Latchkey({ baseUrl: base, tenantId: tenant, ...clientOptions });
        try {
          return { ok: true, value: await latchkey[method](options) };
        } catch (err) {
          return { ok: false, code: err.code, message: err.message };
        }
      },
      { base: server.baseUrl, tenant: tenantId, method, options, clientOptions },
    );
  const signals = async (page) => {
    // Signals are fire-and-forget: give the calls the SDK started a moment.
    await page.waitForTimeout(100);
    return page.evaluate(() => window.__signals.splice(0));
  };

  before(async () => {
    server = await startServer('sqlite');
    rp = await serveExample();
    origin = `http://localhost:${rp.port}`;
    const created = JSON.parse(
      server.cli(['tenant', 'create', '--name', 'Shop', '--rp-id', 'localhost', '--origin', origin, '--enable-passkeys']),
    );
    tenantId = created.tenant_id;
    apiKey = JSON.parse(server.cli(['api-key', 'create', '--tenant', tenantId, '--name', 'backend'])).api_key;
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await new Promise((resolve) => rp?.site.close(resolve));
    await server?.stop();
  });

  test('this Chromium has the Signal API and client capabilities', async () => {
    const { page } = await rpPage();
    const has = await page.evaluate(() => ({
      all: typeof PublicKeyCredential.signalAllAcceptedCredentials,
      details: typeof PublicKeyCredential.signalCurrentUserDetails,
      unknown: typeof PublicKeyCredential.signalUnknownCredential,
      capabilities: typeof PublicKeyCredential.getClientCapabilities,
    }));
    assert.deepEqual(has, { all: 'function', details: 'function', unknown: 'function', capabilities: 'function' });
    await page.context().close();
  });

  test('signals: accepted credentials without the revoked one, new names once, unknown credentials only', async () => {
    const laptop = await rpPage();
    const up = await sdk(laptop.page, 'signUp', { token: await enrollment('sig-ada', { username: 'ada@example.com' }) });
    assert.equal(up.ok, true, up.message);
    const [laptopCredential] = await laptop.authenticator.credentials();
    const laptopId = b64url(laptopCredential.credentialId);
    const userHandle = b64url(laptopCredential.userHandle);
    assert.deepEqual(await signals(laptop.page), [
      {
        name: 'signalAllAcceptedCredentials',
        options: { rpId: 'localhost', userId: userHandle, allAcceptedCredentialIds: [laptopId] },
      },
    ]);

    // A second passkey on a phone; both are accepted.
    const phone = await rpPage();
    const added = await sdk(phone.page, 'signUp', {
      token: await enrollment('sig-ada', { scopes: ['add:authenticators'] }),
    });
    assert.equal(added.ok, true, added.message);
    const phoneId = b64url((await phone.authenticator.credentials())[0].credentialId);
    const [afterPhone] = await signals(phone.page);
    assert.deepEqual([...afterPhone.options.allAcceptedCredentialIds].sort(), [laptopId, phoneId].sort());

    // Support revokes the phone: the laptop's next sign-in tells the password manager.
    const revoked = await api('DELETE', `/api/v1/users/sig-ada/authenticators/${added.value.authenticator.id}`);
    assert.equal(revoked.status, 204);
    const signedIn = await sdk(laptop.page, 'signIn', {});
    assert.equal(signedIn.ok, true, signedIn.message);
    assert.deepEqual(await signals(laptop.page), [
      {
        name: 'signalAllAcceptedCredentials',
        options: { rpId: 'localhost', userId: userHandle, allAcceptedCredentialIds: [laptopId] },
      },
    ]);

    // The phone's revoked passkey: refused, and never "unknown" (the user exists).
    const refused = await sdk(phone.page, 'signIn', {});
    assert.equal(refused.code, 'credential_revoked');
    assert.deepEqual(await signals(phone.page), []);

    // The backend renames the user: the next sign-in carries the new names, the one after not.
    await enrollment('sig-ada', { username: 'ada.lovelace@example.com', display_name: 'Ada Lovelace' });
    assert.equal((await sdk(laptop.page, 'signIn', {})).ok, true);
    const renamed = await signals(laptop.page);
    assert.deepEqual(renamed.map((s) => s.name), ['signalAllAcceptedCredentials', 'signalCurrentUserDetails']);
    assert.deepEqual(renamed[1].options, {
      rpId: 'localhost',
      userId: userHandle,
      name: 'ada.lovelace@example.com',
      displayName: 'Ada Lovelace',
    });
    assert.equal((await sdk(laptop.page, 'signIn', {})).ok, true);
    assert.deepEqual((await signals(laptop.page)).map((s) => s.name), ['signalAllAcceptedCredentials']);

    // `signals: false`: nothing is passed on.
    assert.equal((await sdk(laptop.page, 'signIn', {}, { signals: false })).ok, true);
    assert.deepEqual(await signals(laptop.page), []);

    // A passkey this tenant never had (left in the password manager): unknown, and said so.
    const stale = await rpPage();
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const staleId = randomBytes(16);
    await stale.authenticator.add({
      credentialId: staleId.toString('base64'),
      isResidentCredential: true,
      rpId: 'localhost',
      privateKey: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
      userHandle: randomBytes(16).toString('base64'),
      signCount: 0,
    });
    const unknown = await sdk(stale.page, 'signIn', {});
    assert.equal(unknown.code, 'credential_unknown');
    assert.deepEqual(await signals(stale.page), [
      {
        name: 'signalUnknownCredential',
        options: { rpId: 'localhost', credentialId: b64url(staleId.toString('base64')) },
      },
    ]);
    for (const p of [laptop, phone, stale]) await p.page.context().close();
  });

  test('conditional create: null where the browser does not offer it, a passkey where it does', async () => {
    for (const [n, capabilities] of [{ conditionalCreate: false }, null].entries()) {
      const { page, authenticator } = await rpPage({ capabilities });
      const token = await enrollment(`upgrade-absent-${n}`);
      const result = await sdk(page, 'signUp', { token, conditional: true });
      assert.deepEqual(result, { ok: true, value: null });
      assert.equal((await authenticator.credentials()).length, 0);
      // No ceremony was started with the token: it still registers normally.
      const normal = await sdk(page, 'signUp', { token });
      assert.equal(normal.ok, true, normal.message);
      await page.context().close();
    }

    // Present: a password manager that creates the passkey at once (this Chromium has none that
    // offers conditional create, so the page stands one in: it records the call and lets the
    // virtual authenticator answer it without a prompt).
    const { page, authenticator } = await rpPage({ capabilities: { conditionalCreate: true } });
    await page.evaluate(() => {
      const create = navigator.credentials.create.bind(navigator.credentials);
      window.__mediation = [];
      navigator.credentials.create = (options) => {
        window.__mediation.push(options.mediation ?? 'optional');
        const { mediation, ...rest } = options;
        return create(rest);
      };
    });
    const token = await enrollment('upgrade-present', { username: 'grace@example.com' });
    const upgraded = await sdk(page, 'signUp', { token, conditional: true });
    assert.equal(upgraded.ok, true, upgraded.message);
    assert.notEqual(upgraded.value, null, 'the passkey was created without a prompt');
    assert.deepEqual(await page.evaluate(() => window.__mediation), ['conditional']);
    assert.equal((await authenticator.credentials()).length, 1);
    const validated = await validate(upgraded.value.token);
    assert.equal(validated.valid, true);
    assert.equal(validated.kind, 'sign_up');
    assert.equal(validated.user_id, 'upgrade-present');
    await page.context().close();
  });

  test('device binding: a bound browser is known, a fresh one new, a revoked device new again', async () => {
    const home = await rpPage();
    const up = await sdk(home.page, 'signUp', { token: await enrollment('dev-ada'), bindDevice: true });
    assert.equal(up.ok, true, up.message);
    const signUp = await validate(up.value.token);
    assert.equal(signUp.device.status, 'new');
    const deviceId = signUp.device.id;
    assert.equal(signUp.authenticator.id, up.value.authenticator.id);

    const first = await validate((await sdk(home.page, 'signIn', {})).value.token);
    assert.equal(first.kind, 'sign_in');
    assert.deepEqual(first.device, { status: 'known', id: deviceId, first_seen_at: signUp.device.first_seen_at });
    assert.equal(first.first_sign_in, true);
    assert.equal(first.sign_in_count, 1);
    assert.equal(first.last_used_at, undefined);
    assert.deepEqual(first.risk_signals, []);
    assert.equal(first.authenticator.name, up.value.authenticator.name);
    assert.equal(typeof first.authenticator.synced, 'boolean');

    const second = await validate((await sdk(home.page, 'signIn', {})).value.token);
    assert.equal(second.device.status, 'known');
    assert.equal(second.first_sign_in, false);
    assert.equal(second.sign_in_count, 2);
    assert.ok(second.last_used_at, 'the previous use');

    // The same passkey in a fresh browser: no device key unless the app binds one.
    const [credential] = await home.authenticator.credentials();
    const fresh = await rpPage();
    await fresh.authenticator.add(credential);
    const unboundSignIn = await sdk(fresh.page, 'signIn', {});
    assert.equal(unboundSignIn.ok, true, unboundSignIn.message);
    const unbound = await validate(unboundSignIn.value.token);
    assert.equal(unbound.device.status, 'none');
    const bound = await validate((await sdk(fresh.page, 'signIn', { bindDevice: true })).value.token);
    assert.equal(bound.device.status, 'new');
    assert.deepEqual(bound.risk_signals, ['new_device']);
    assert.notEqual(bound.device.id, deviceId);
    const again = await validate((await sdk(fresh.page, 'signIn', {})).value.token);
    assert.equal(again.device.status, 'known');

    // The backend lists and revokes a device: its next sign-in is new again.
    const listed = await api('GET', '/api/v1/users/dev-ada/devices');
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body.devices.map((d) => d.id).sort(), [deviceId, bound.device.id].sort());
    assert.match(listed.body.devices[0].user_agent, /Chrome/);
    // (The fresh browser's copy of the passkey is now ahead of the home one's counter, so the
    // fresh browser is the one to sign in again.)
    assert.equal((await api('DELETE', `/api/v1/users/dev-ada/devices/${bound.device.id}`)).status, 204);
    assert.equal((await api('DELETE', `/api/v1/users/dev-ada/devices/${bound.device.id}`)).status, 404);
    const afterRevoke = await validate((await sdk(fresh.page, 'signIn', {})).value.token);
    assert.equal(afterRevoke.device.status, 'new');
    assert.deepEqual(afterRevoke.risk_signals, ['new_device']);
    for (const p of [home, fresh]) await p.page.context().close();
  });
});
