// The README's run command itself, as a new user meets it: `scripts/run.sh` (setup, release
// build, `latchkey serve`) on a temporary SQLite file and port; the setup link it logs, opened in
// Chromium, creates the first operator's passkey, who then signs out and in again. Before the
// page has hydrated its form cannot be used (a click must not lose the link), and without
// JavaScript it says why.

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { freePort } from '../support/server.mjs';
import { launchBrowser, newPage, screenshot, waitForHydration } from '../support/browser.mjs';
import { addVirtualAuthenticator, enroll, signIn, withoutConditionalUi } from '../support/webauthn.mjs';

const workspace = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
// The test command builds the release binary before the browser suite, so run.sh only checks
// that everything is up to date; a cold build would take far longer.
const STARTUP_TIMEOUT_MS = 15 * 60_000;

describe('the README run command (scripts/run.sh)', () => {
  let run;
  let browser;
  let baseUrl;
  let setupLink;
  const logs = [];
  const dir = mkdtempSync(join(tmpdir(), 'latchkey-run-'));

  before(async () => {
    const port = await freePort();
    baseUrl = `http://localhost:${port}`;
    const env = { ...process.env, LATCHKEY_PUBLIC_URL: baseUrl, LATCHKEY_BIND: `127.0.0.1:${port}` };
    env.LATCHKEY_DATABASE_URL = `sqlite://${join(dir, 'latchkey.db')}?mode=rwc`;
    // Whatever the suite was pointed at, run.sh serves its own build.
    delete env.LATCHKEY_SITE_ROOT;
    delete env.LATCHKEY_BIN;
    // Its own process group, so that a failure while it still builds stops cargo too.
    run = spawn(join(workspace, 'scripts', 'run.sh'), [], {
      cwd: workspace,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    run.exited = new Promise((done) => run.on('exit', (code, signal) => done({ code, signal })));
    for (const stream of [run.stdout, run.stderr]) {
      createInterface({ input: stream }).on('line', (line) => logs.push(line));
    }
    setupLink = await new Promise((found, fail) => {
      const timer = setTimeout(() => fail(new Error(`no setup link logged:\n${logs.join('\n')}`)), STARTUP_TIMEOUT_MS);
      const poll = setInterval(() => {
        const match = logs.join('\n').match(/(http\S+\/setup\?token=[A-Za-z0-9_-]+)/);
        if (match) {
          clearTimeout(timer);
          clearInterval(poll);
          found(match[1]);
        }
      }, 100);
      run.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        clearInterval(poll);
        fail(new Error(`scripts/run.sh exited (${code ?? signal}):\n${logs.join('\n')}`));
      });
    });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    if (run && run.exitCode === null && run.signalCode === null) {
      process.kill(-run.pid, 'SIGTERM');
      const { code } = await run.exited;
      assert.equal(code, 0, `latchkey did not stop cleanly:\n${logs.join('\n')}`);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  test('logs the setup link and serves the portal with its wasm', async () => {
    assert.ok(setupLink.startsWith(`${baseUrl}/setup?token=lk_setup_`), setupLink);
    const wasm = await fetch(`${baseUrl}/pkg/latchkey.wasm`);
    assert.equal(wasm.status, 200);
    assert.equal(wasm.headers.get('content-type'), 'application/wasm');
    assert.ok(WebAssembly.validate(new Uint8Array(await wasm.arrayBuffer())));
  });

  test('without JavaScript the page says why and offers nothing that would lose the link', async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const page = await context.newPage();
    await page.goto(setupLink);
    await page.getByText('The Latchkey portal needs JavaScript').waitFor();
    // The link's check streams in through a script, so the form may not even show; where it
    // does, nothing in it can be used.
    assert.equal(await page.locator('form :is(input, button):not(:disabled)').count(), 0);
    assert.equal(new URL(page.url()).searchParams.get('token'), new URL(setupLink).searchParams.get('token'));
    await context.close();
  });

  test('before the wasm has loaded, clicking cannot lose the link', async () => {
    const page = await newPage(browser);
    let release;
    const held = new Promise((resolveHold) => {
      release = resolveHold;
    });
    await page.route('**/pkg/*.wasm', async (route) => {
      await held;
      await route.continue();
    });
    await page.goto(setupLink, { waitUntil: 'domcontentloaded' });
    const button = page.getByRole('button', { name: 'Create passkey' });
    await button.waitFor();
    assert.equal(await page.locator('main').getAttribute('data-hydrated'), 'false');
    assert.equal(await button.isDisabled(), true);
    assert.equal(await page.getByLabel('Display name').isDisabled(), true);
    // A person's click (Playwright would wait for the button to be enabled; force clicks anyway).
    await button.click({ force: true });
    await page.getByLabel('Display name').press('Enter').catch(() => {});
    await page.waitForTimeout(500);
    assert.equal(page.url(), setupLink, 'the link (with its token) is still the page');
    assert.equal(await page.getByText('not valid').count(), 0);
    assert.equal(await page.getByText('The Latchkey portal needs JavaScript').isVisible(), false);
    release();
    await waitForHydration(page);
    assert.equal(await button.isDisabled(), false);
    assert.equal(await page.getByLabel('Display name').isDisabled(), false);
    await page.context().close();
  });

  test('the logged setup link creates the first operator, who signs out and in again', async () => {
    const page = await newPage(browser);
    await withoutConditionalUi(page);
    await addVirtualAuthenticator(page);
    await enroll(page, setupLink, { email: 'first@example.com', displayName: 'First Operator' });
    await screenshot(page, 'run-command-home');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL((url) => url.pathname === '/login');
    await signIn(page, baseUrl, '/');
    await page.getByRole('heading', { name: 'Instance status' }).waitFor();
    assert.equal(await page.getByTestId('status-database').textContent(), 'SQLite');
    assert.deepEqual(page.problems, []);
  });
});
