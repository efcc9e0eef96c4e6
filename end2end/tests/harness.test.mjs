// The suite's own safety net can fail: a portal page whose wasm never runs, or a page that throws,
// makes `browser.close()` reject even when no test looked at that page.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../support/server.mjs';
import { launchBrowser, newPage } from '../support/browser.mjs';

describe('the browser harness', () => {
  let server;

  before(async () => {
    server = await startServer('sqlite');
  });

  after(async () => {
    await server?.stop();
  });

  test('a portal page that never hydrates fails the suite', async () => {
    const browser = await launchBrowser({ hydrationTimeoutMs: 2_000 });
    const page = await newPage(browser);
    await page.route('**/pkg/*.wasm', (route) => route.abort());
    await page.goto(server.baseUrl + '/login');
    await assert.rejects(browser.close(), /never hydrated within 2000 ms: .*\/login/);
  });

  test('an uncaught exception fails the suite', async () => {
    const browser = await launchBrowser();
    const page = await newPage(browser);
    await page.goto(server.baseUrl + '/login');
    await page.evaluate(() => setTimeout(() => {
      throw new Error('boom');
    }));
    await page.waitForTimeout(200);
    await assert.rejects(browser.close(), /uncaught exception on .*: boom/);
  });

  test('a page that hydrates passes', async () => {
    const browser = await launchBrowser();
    const page = await newPage(browser);
    await page.goto(server.baseUrl + '/login');
    await browser.close();
  });
});
