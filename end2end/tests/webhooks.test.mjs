// Webhooks in a real browser against the release build (issue 23): an owner adds an endpoint on
// the Webhooks page (a bad URL is explained beside its field; the signing secret is shown once),
// sends a test event that a local receiver gets signed the Standard Webhooks way (checked here
// with Node's own HMAC), sees it in the delivery log with its attempt, redelivers it (same
// webhook-id), and disables and enables the endpoint. The instance may deliver to loopback here
// (LATCHKEY_OUTBOUND_ALLOW_PRIVATE), as a development instance would.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHmac } from 'node:crypto';
import { startServer } from '../support/server.mjs';
import { launchBrowser, newPage, screenshot, waitForHydration } from '../support/browser.mjs';
import { addVirtualAuthenticator, enroll } from '../support/webauthn.mjs';

/** Standard Webhooks: base64 HMAC-SHA256 of `id.timestamp.body` under the secret after `whsec_`. */
function verifies(secret, headers, body) {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = createHmac('sha256', key)
    .update(`${headers['webhook-id']}.${headers['webhook-timestamp']}.${body}`)
    .digest('base64');
  return headers['webhook-signature'].split(' ').includes(`v1,${expected}`);
}

describe('webhooks', () => {
  let server;
  let browser;
  let page;
  let receiver;
  let received;
  let tenantId;
  let hookUrl;

  before(async () => {
    received = [];
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => (body += chunk));
      req.on('end', () => {
        received.push({ headers: req.headers, body });
        res.writeHead(200, { 'content-type': 'text/plain' }).end('thanks');
      });
    });
    await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    hookUrl = `http://127.0.0.1:${receiver.address().port}/hook`;
    server = await startServer('sqlite', { env: { LATCHKEY_OUTBOUND_ALLOW_PRIVATE: 'true' } });
    browser = await launchBrowser();
    page = await newPage(browser);
    await addVirtualAuthenticator(page);
    await enroll(page, await server.setupUrl(), { email: 'owner@example.com', displayName: 'Olive Owner' });
    tenantId = JSON.parse(
      server.cli([
        'tenant', 'create', '--name', 'Shop', '--rp-id', 'localhost', '--origin', 'http://localhost:8080',
        '--enable-passkeys', '--owner', 'owner@example.com',
      ]),
    ).tenant_id;
  });

  after(async () => {
    await browser?.close();
    await new Promise((resolve) => receiver?.close(resolve));
    await server?.stop();
  });

  const waitFor = async (what, check, timeoutMs = 15_000) => {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      const found = check();
      if (found) return found;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.fail(`timed out waiting for ${what}`);
  };

  test('an endpoint is added, tested, redelivered to, disabled and enabled', async () => {
    await page.goto(`${server.baseUrl}/tenants/${tenantId}/webhooks`);
    await waitForHydration(page);
    await page.getByText('No endpoints yet.').waitFor();

    await page.getByLabel('URL', { exact: true }).fill('ftp://example.com/hook');
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    await page.locator('#webhook-url-error').getByText('https://').waitFor();

    await page.getByLabel('URL', { exact: true }).fill(hookUrl);
    await page.getByLabel('Description (optional)').fill('ends sessions');
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    const secret = await page.getByLabel('Signing secret').inputValue();
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
    const card = page.getByTestId('webhook-endpoint');
    await card.waitFor();
    assert.match(await card.textContent(), /passkey\.registered, passkey\.revoked, passkey\.renamed, passkey\.flagged/);
    assert.equal(await page.getByTestId('webhook-status').textContent(), 'active');

    await card.getByRole('button', { name: 'Send test event' }).click();
    const test = await waitFor('the test event', () => received[0]);
    assert.ok(verifies(secret, test.headers, test.body), 'signed with the secret shown');
    const event = JSON.parse(test.body);
    assert.equal(event.type, 'webhook.test');
    assert.equal(event.tenant_id, tenantId);
    assert.equal(test.headers['webhook-id'], event.id);

    // The delivery log: delivered, one attempt with the receiver's answer. The receiver has
    // the POST before the worker records its answer (a round is recorded once all its sends
    // are back), so a refresh may still show the delivery on its way: refresh until it is
    // recorded, not only until the log shows.
    const log = card.getByTestId('webhook-deliveries');
    const row = log.locator('tr', { hasText: 'webhook.test' });
    for (let i = 0; i < 50 && !(await row.getByText('delivered').count()); i++) {
      await card.getByRole('button', { name: 'Refresh' }).click();
      await page.waitForTimeout(200);
    }
    await row.getByText('delivered').waitFor();
    await row.getByText('1 attempt(s)').click();
    await row.getByText('HTTP 200').waitFor();
    await row.getByText('thanks').waitFor();
    await screenshot(page, 'webhooks-delivered');

    await row.getByRole('button', { name: `Redeliver ${event.id}` }).click();
    const again = await waitFor('the redelivery', () => received[1]);
    assert.equal(again.headers['webhook-id'], event.id, 'the same event id');
    assert.equal(again.body, test.body, 'the same body');

    await card.getByRole('button', { name: 'Disable' }).click();
    await page.getByTestId('webhook-status').getByText('disabled').waitFor();
    await page.getByTestId('webhook-endpoint').getByRole('button', { name: 'Enable' }).click();
    await page.getByTestId('webhook-status').getByText('active').waitFor();
  });
});
