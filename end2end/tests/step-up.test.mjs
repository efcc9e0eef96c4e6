// Step-up in a real browser, once per database: a session whose passkey verification is older
// than the window (a short one here, LATCHKEY_STEP_UP_SECONDS=3) is asked to confirm with its
// passkey before inviting an operator; confirming runs the passkey prompt and submits the form
// again, and the invitation is made.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, postgresAvailable } from '../support/server.mjs';
import { launchBrowser, newPage, screenshot } from '../support/browser.mjs';
import { addVirtualAuthenticator, enroll } from '../support/webauthn.mjs';

const WINDOW_SECONDS = 3;

const backends = [
  ['sqlite', 'SQLite', true],
  ['postgres', 'PostgreSQL', postgresAvailable()],
];

for (const [backend, label, available] of backends) {
  describe(`step-up on ${label}`, { skip: !available && 'PostgreSQL not reachable' }, () => {
    let server;
    let browser;

    before(async () => {
      server = await startServer(backend, {
        env: { LATCHKEY_STEP_UP_SECONDS: String(WINDOW_SECONDS) },
      });
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await server?.stop();
    });

    test('an old session confirms with its passkey, then the invitation goes through', async () => {
      const page = await newPage(browser);
      const authenticator = await addVirtualAuthenticator(page);
      await enroll(page, await server.setupUrl(), { email: 'ada@example.com', displayName: 'Ada' });
      await page.getByRole('button', { name: 'Sign out' }).waitFor();
      await page.goto(server.baseUrl + '/operators');
      await page.getByLabel('Email', { exact: true }).fill('grace@example.com');
      const [before] = await authenticator.credentials();

      // The enrollment verified the passkey; once the window has passed, it no longer counts.
      await page.waitForTimeout((WINDOW_SECONDS + 1) * 1000);
      await page.getByRole('button', { name: 'Invite operator' }).click();
      const alert = page.getByRole('alert').filter({ hasText: 'Confirm it is you with your passkey' });
      await alert.waitFor();
      assert.equal(await page.getByLabel('Invitation link').count(), 0, 'nothing issued');
      await screenshot(page, `step-up-${backend}`);

      await alert.getByRole('button', { name: 'Confirm with your passkey' }).click();
      const link = await page.getByLabel('Invitation link').inputValue();
      assert.match(link, /\/invite\?token=lk_inv_/);
      assert.equal(await alert.count(), 0, 'the prompt is gone');
      const [after] = await authenticator.credentials();
      assert.ok(after.signCount > before.signCount, 'the passkey signed the step-up');
      assert.deepEqual(page.problems.filter((p) => !p.includes('403')), []);
    });
  });
}
