// Related origins and the origin doctor in a real browser (issue 22): an owner lists a related
// origin and an iOS app on the Passkeys page (a related origin on the RP ID's own site is
// explained next to its field), sees the /.well-known/webauthn document to serve, and checks a
// local site serving right, then wrong, well-known files; the Client API lets the related origin
// in (CORS) and keeps a non-listed one out. The instance may fetch from loopback here
// (LATCHKEY_OUTBOUND_ALLOW_PRIVATE), as a development instance would.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { startServer } from '../support/server.mjs';
import { launchBrowser, newPage, screenshot, waitForHydration } from '../support/browser.mjs';
import { addVirtualAuthenticator, enroll } from '../support/webauthn.mjs';

const FINGERPRINT = Array.from({ length: 32 }, (_, i) => (i * 5 + 3).toString(16).padStart(2, '0').toUpperCase()).join(':');
const OTHER = Array.from({ length: 32 }, (_, i) => (i * 3 + 1).toString(16).padStart(2, '0').toUpperCase()).join(':');
const RELATED = 'https://shop.example.de';
const IOS_APP = 'ABCDE12345.com.example.app';

const assetLinks = (fingerprint) =>
  JSON.stringify([
    {
      relation: ['delegate_permission/common.handle_all_urls', 'delegate_permission/common.get_login_creds'],
      target: { namespace: 'android_app', package_name: 'com.example.app', sha256_cert_fingerprints: [fingerprint] },
    },
  ]);

describe('related origins and the origin doctor', () => {
  let server;
  let browser;
  let page;
  let site;
  let files;
  let tenantId;
  let origin;

  before(async () => {
    // The tenant's site: serves whatever `files` holds, 404 otherwise.
    files = new Map();
    site = createServer((req, res) => {
      const file = files.get(req.url);
      if (!file) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': file.type }).end(file.body);
    });
    await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
    origin = `http://localhost:${site.address().port}`;
    server = await startServer('sqlite', { env: { LATCHKEY_OUTBOUND_ALLOW_PRIVATE: 'true' } });
    browser = await launchBrowser();
    page = await newPage(browser);
    await addVirtualAuthenticator(page);
    await enroll(page, await server.setupUrl(), { email: 'owner@example.com', displayName: 'Olive Owner' });
    tenantId = JSON.parse(
      server.cli([
        'tenant', 'create', '--name', 'Shop', '--rp-id', 'localhost', '--origin', origin,
        '--enable-passkeys', '--owner', 'owner@example.com',
      ]),
    ).tenant_id;
  });

  after(async () => {
    await browser?.close();
    await new Promise((resolve) => site?.close(resolve));
    await server?.stop();
  });

  test('the owner lists a related origin and an iOS app; the well-known document follows', async () => {
    await page.goto(`${server.baseUrl}/tenants/${tenantId}/passkeys`);
    await waitForHydration(page);
    // An origin of the RP ID's own site is not a related origin: explained, nothing saved.
    await page.getByLabel('Related origins').fill('http://localhost:9999');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.locator('#related-origins-error').getByText("is on the RP ID's own site").waitFor();

    await page.getByLabel('Related origins').fill(RELATED);
    await page.getByLabel('iOS app IDs').fill(IOS_APP);
    await page.getByLabel('Android signing certificate SHA-256').fill(FINGERPRINT);
    await page.getByRole('button', { name: 'Add Android origin' }).click();
    await page.getByTestId('android-origins').getByText(FINGERPRINT).waitFor();
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await page.getByText('Saved.').waitFor();
    await page.getByTestId('well-known-webauthn').getByText(RELATED).waitFor();
    assert.deepEqual(JSON.parse(await page.getByTestId('well-known-webauthn').textContent()), { origins: [RELATED] });

    await page.reload();
    await waitForHydration(page);
    assert.equal(await page.getByLabel('Related origins').inputValue(), RELATED);
    assert.equal(await page.getByLabel('iOS app IDs').inputValue(), IOS_APP);
  });

  test('the Client API lets the related origin in and keeps a non-listed one out', async () => {
    const preflight = (from) =>
      fetch(`${server.baseUrl}/api/client/v1/tenants/${tenantId}/authentication/options`, {
        method: 'OPTIONS',
        headers: { origin: from, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
    const allowed = await preflight(RELATED);
    assert.equal(allowed.status, 204);
    assert.equal(allowed.headers.get('access-control-allow-origin'), RELATED);
    const refused = await preflight('https://shop.example.org');
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get('access-control-allow-origin'), null);
  });

  test('the doctor: right files match, a wrong assetlinks.json is explained', async () => {
    files.set('/.well-known/assetlinks.json', { type: 'application/json', body: assetLinks(FINGERPRINT) });
    files.set('/.well-known/apple-app-site-association', {
      type: 'application/json',
      body: JSON.stringify({ webcredentials: { apps: [IOS_APP] } }),
    });
    files.set('/.well-known/webauthn', { type: 'application/json', body: JSON.stringify({ origins: [RELATED] }) });
    const report = page.getByTestId('doctor-report');
    await page.getByRole('button', { name: 'Check', exact: true }).click();
    await report.getByText('Everything matches.').waitFor();
    const right = await report.textContent();
    assert.match(right, /\/\.well-known\/assetlinks\.json — OK/);
    assert.match(right, new RegExp(`com\\.example\\.app signed with ${FINGERPRINT} may use the passkeys\\.`));
    assert.match(right, /ABCDE12345\.com\.example\.app is listed in webcredentials\.apps\./);
    assert.match(right, /https:\/\/shop\.example\.de is listed\./);
    await screenshot(page, 'origin-doctor-right');

    // The wrong certificate, served as text: both explained. (One check per 10 s per tenant.)
    files.set('/.well-known/assetlinks.json', { type: 'text/plain', body: assetLinks(OTHER) });
    await page.waitForTimeout(10_500);
    await page.getByRole('button', { name: 'Check', exact: true }).click();
    await report.getByText('Some things need fixing.').waitFor();
    const wrong = await report.textContent();
    assert.match(wrong, /\/\.well-known\/assetlinks\.json — needs fixing/);
    assert.match(wrong, /Wrong content type text\/plain/);
    assert.match(wrong, new RegExp(`No statement lists the fingerprint ${FINGERPRINT}`));
    assert.match(wrong, new RegExp(`com\\.example\\.app \\(${OTHER}\\)`));
    assert.match(wrong, /ABCDE12345\.com\.example\.app is listed/, 'the other files still match');
    await screenshot(page, 'origin-doctor-wrong');
    // The refused related origin is the only error the page saw.
    assert.deepEqual(page.problems.filter((p) => !p.includes('status of 400')), []);
  });
});
