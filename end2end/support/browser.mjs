// Debian's Chromium, driven by playwright-core (no browser download: none is reachable here).

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const ARTIFACTS = resolve(here, '..', 'artifacts');

/** How long a portal page may take to hydrate after its `load` event. */
const HYDRATION_TIMEOUT_MS = 20_000;

/**
 * Debian's Chromium. Its `close()` fails the calling hook when any page opened with `newPage`
 * threw an uncaught exception, or loaded a portal page that never marked itself hydrated: a
 * portal whose wasm does not run must fail the suite even where a test did not look.
 */
export async function launchBrowser({ hydrationTimeoutMs = HYDRATION_TIMEOUT_MS } = {}) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  browser.latchkeyPages = [];
  browser.hydrationTimeoutMs = hydrationTimeoutMs;
  const close = browser.close.bind(browser);
  browser.close = async () => {
    const pages = browser.latchkeyPages;
    await Promise.all(pages.flatMap((page) => page.hydrationChecks));
    await close();
    const failures = pages.flatMap((page) => page.uncaught);
    if (failures.length > 0) {
      throw new Error(`pages failed in the browser:\n${failures.join('\n')}`);
    }
  };
  return browser;
}

/**
 * A page that records console errors and uncaught exceptions (`problems`, which tests check
 * where they expect refusals), and separately what always fails the suite (`uncaught`): uncaught
 * exceptions, and portal documents that did not hydrate within 20 s of loading.
 */
export async function newPage(browser, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.problems = [];
  page.uncaught = [];
  page.hydrationChecks = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') page.problems.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => {
    page.problems.push(`pageerror: ${err.message}`);
    page.uncaught.push(`uncaught exception on ${page.url()}: ${err.message}`);
  });
  page.on('load', () => {
    const url = page.url();
    const check = page
      .evaluate(async (timeout) => {
        // Portal pages carry `<main id="main" data-hydrated=…>`; other sites (the example
        // relying party) are not judged.
        const main = document.getElementById('main');
        if (!main || !main.hasAttribute('data-hydrated')) return 'not the portal';
        const deadline = Date.now() + timeout;
        while (main.dataset.hydrated !== 'true') {
          if (Date.now() > deadline) return 'not hydrated';
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        return 'hydrated';
      }, browser.hydrationTimeoutMs)
      .then(
        (outcome) => {
          if (outcome === 'not hydrated') {
            page.uncaught.push(`never hydrated within ${browser.hydrationTimeoutMs} ms: ${url}`);
          }
        },
        // The test left the document (or closed the page) before the check finished.
        () => {},
      );
    page.hydrationChecks.push(check);
  });
  browser.latchkeyPages.push(page);
  return page;
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Resolves once the app has hydrated (an effect, which only runs in the browser, flips it). */
export async function waitForHydration(page) {
  await page.locator('main[data-hydrated="true"]').waitFor({ timeout: 20_000 });
}
