// The portal shell in a real browser, once per database, signed in as the first operator:
// server-side render, hydration, interactivity, the 404 page, and a phone-width layout.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, postgresAvailable } from '../support/server.mjs';
import { launchBrowser, newPage, screenshot, waitForHydration } from '../support/browser.mjs';
import { addVirtualAuthenticator, enroll } from '../support/webauthn.mjs';

const backends = [
  ['sqlite', 'SQLite', true],
  ['postgres', 'PostgreSQL', postgresAvailable()],
];

for (const [backend, label, available] of backends) {
  describe(`portal shell on ${label}`, { skip: !available && 'PostgreSQL not reachable' }, () => {
    let server;
    let browser;
    let page; // signed in

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

    test('home page hydrates and the status refreshes on click', async () => {
      const response = await page.goto(server.baseUrl + '/');
      assert.equal(response.status(), 200);
      assert.equal(await page.title(), 'Latchkey');

      // Rendered by the server before any script runs.
      const database = page.getByTestId('status-database');
      assert.equal(await database.textContent(), label);

      await waitForHydration(page);
      const checkedAt = page.getByTestId('status-checked-at');
      const before = await checkedAt.textContent();
      assert.match(before, /^\d\d:\d\d:\d\d\.\d{3} UTC$/);

      // Only a hydrated page reacts: the click calls the server function again.
      await page.getByRole('button', { name: 'Refresh status' }).click();
      await page.waitForFunction(
        (previous) => document.querySelector('[data-testid="status-checked-at"]')?.textContent !== previous,
        before,
        { timeout: 10_000 },
      );
      assert.notEqual(await checkedAt.textContent(), before);
      assert.equal(await database.textContent(), label);

      await screenshot(page, `home-${backend}`);
      assert.deepEqual(page.problems, [], 'no console errors or exceptions');
    });

    test('navigation collapses behind a Menu button at phone width', async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(server.baseUrl + '/');
      await waitForHydration(page);
      const menu = page.getByRole('button', { name: 'Menu' });
      const nav = page.getByRole('navigation', { name: 'Primary' });
      assert.equal(await menu.getAttribute('aria-expanded'), 'false');
      assert.equal(await nav.isVisible(), false);
      await menu.click();
      assert.equal(await menu.getAttribute('aria-expanded'), 'true');
      await nav.waitFor({ state: 'visible' });
      await screenshot(page, `home-phone-${backend}`);
      assert.deepEqual(page.problems, []);
      await page.setViewportSize({ width: 1280, height: 800 });
    });

    test('unknown pages answer 404 with a way back', async () => {
      const response = await page.goto(server.baseUrl + '/no/such/page');
      assert.equal(response.status(), 404);
      await page.getByRole('heading', { name: 'Page not found' }).waitFor();
      await waitForHydration(page);
      await page.getByRole('link', { name: 'Back to the portal home' }).click();
      await page.getByRole('heading', { name: 'Instance status' }).waitFor();
      assert.equal(new URL(page.url()).pathname, '/');
      await screenshot(page, `not-found-${backend}`);
    });
  });
}
