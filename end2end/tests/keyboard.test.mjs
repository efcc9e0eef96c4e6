// The portal with the keyboard alone: an operator signs in, creates a tenant and revokes a
// user's passkey with a reason, using Tab, Shift+Tab, Enter, Escape and typing only. Every
// element that takes the focus on the way shows it; the confirm dialog takes the focus when it
// opens, keeps it inside while open, and gives it back when it closes. (SQLite only: the path
// is the same on PostgreSQL.)

import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../support/server.mjs';
import { serveExample } from '../support/example.mjs';
import { launchBrowser, newPage, screenshot, waitForHydration } from '../support/browser.mjs';
import { addVirtualAuthenticator, enroll, withoutConditionalUi } from '../support/webauthn.mjs';

/** What has the focus: its accessible name (label, aria-label or text), id, and whether the
 * focus is drawn (an outline or a shadow). */
async function focused(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const style = getComputedStyle(el);
    const name = (el.getAttribute('aria-label') || el.labels?.[0]?.innerText || el.innerText || el.value || '').trim();
    return {
      name,
      id: el.id,
      inDialog: !!el.closest('[role="dialog"]'),
      visible: (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0) || style.boxShadow !== 'none',
    };
  });
}

for (const backend of ['sqlite']) {
  describe(`the portal by keyboard alone on ${backend}`, () => {
    let server;
    let rp;
    let browser;
    let page;
    let shopId;
    const unseen = [];

    /** Presses Tab (or Shift+Tab) until the focus is on `name`; notes any focus not drawn. */
    const tabTo = async (name, { back = false, max = 80 } = {}) => {
      for (let i = 0; i < max; i++) {
        await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
        const now = await focused(page);
        if (now && !now.visible) unseen.push(`${new URL(page.url()).pathname}: ${now.name || now.id}`);
        if (now && (typeof name === 'string' ? now.name === name : name.test(now.name))) return now;
      }
      assert.fail(`no focusable "${name}" on ${page.url()}: ${(await page.locator("main").innerText()).replace(/\s+/g, " ").slice(0, 900)}`);
    };

    before(async () => {
      server = await startServer(backend);
      rp = await serveExample();
      const origin = `http://localhost:${rp.port}`;
      browser = await launchBrowser();
      page = await newPage(browser);
      await withoutConditionalUi(page);
      await addVirtualAuthenticator(page);
      await enroll(page, await server.setupUrl(), { email: 'kim@example.com', displayName: 'Kim' });
      // A tenant with a user who has a passkey (registered on the tenant's own site).
      shopId = JSON.parse(
        server.cli([
          'tenant', 'create', '--name', 'Shop', '--rp-id', 'localhost', '--origin', origin,
          '--enable-passkeys', '--owner', 'kim@example.com',
        ]),
      ).tenant_id;
      const apiKey = JSON.parse(server.cli(['api-key', 'create', '--tenant', shopId, '--name', 'backend'])).api_key;
      const issued = await fetch(`${server.baseUrl}/api/v1/users/kb-user/enrollment-tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: '{}',
      }).then((r) => r.json());
      const user = await newPage(browser);
      await withoutConditionalUi(user);
      await addVirtualAuthenticator(user);
      await user.goto(`${origin}/?${new URLSearchParams({ latchkey: server.baseUrl, tenant: shopId, token: issued.token })}`);
      await user.getByLabel('Passkey name (optional)').fill('Work laptop');
      await user.getByRole('button', { name: 'Create a passkey' }).click();
      await user.getByRole('status').getByText('Passkey "Work laptop" created.').waitFor();
      await user.context().close();
      // Signed out, on the sign-in page.
      await page.context().clearCookies();
      await page.goto(server.baseUrl + '/login');
      await waitForHydration(page);
    });

    after(async () => {
      await browser?.close();
      await new Promise((resolve) => rp?.site.close(resolve));
      await server?.stop();
    });

    test('sign in', async () => {
      await tabTo('Sign in with a passkey');
      await page.keyboard.press('Enter');
      await page.waitForURL((url) => url.pathname === '/', { timeout: 20_000 });
      await waitForHydration(page);
    });

    test('create a tenant', async () => {
      await tabTo('Tenants');
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: 'Tenants' }).waitFor();
      await waitForHydration(page);
      await tabTo('New tenant');
      await page.keyboard.press('Enter');
      await page.waitForURL(/\/tenants\/new$/);
      await waitForHydration(page);
      await tabTo('Tenant name');
      await page.keyboard.type('Keyboard Shop');
      await tabTo('Create tenant');
      await page.keyboard.press('Enter');
      await page.waitForURL(/\/tenants\/[0-9a-f-]{36}\/passkeys$/);
      await page.getByRole('heading', { name: 'Passkeys' }).waitFor();
    });

    test('revoke a passkey with a reason: the dialog holds the focus and gives it back', async () => {
      await page.goto(`${server.baseUrl}/tenants/${shopId}/users?q=kb-user`);
      await waitForHydration(page);
      await tabTo('kb-user');
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: 'Passkeys (1)' }).waitFor();
      await waitForHydration(page);
      const opener = await tabTo('Revoke Work laptop');
      await page.keyboard.press('Enter');
      const dialog = page.getByRole('dialog', { name: 'Revoke “Work laptop”?' });
      await dialog.waitFor();
      // The focus moves into the dialog, to the reason …
      await page.waitForFunction(() => document.activeElement?.id === 'revoke-reason');
      // … and Tab and Shift+Tab cycle inside it.
      const cycle = [];
      for (let i = 0; i < 4; i++) {
        await page.keyboard.press('Tab');
        cycle.push(await focused(page));
      }
      assert.ok(cycle.every((f) => f?.inDialog), JSON.stringify(cycle));
      assert.deepEqual(cycle.map((f) => f.name), ['Confirm revoke', 'Cancel', 'Reason', 'Confirm revoke']);
      await page.keyboard.press('Shift+Tab');
      await page.keyboard.press('Shift+Tab');
      assert.equal((await focused(page)).name, 'Cancel');
      assert.ok(cycle.every((f) => f.visible));
      // Escape closes it and the focus returns to the button that opened it.
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'detached' });
      assert.match(opener.id, /^revoke-[0-9a-f-]{36}$/);
      await page.waitForFunction((id) => document.activeElement?.id === id, opener.id);

      // Again, now with a reason: Enter confirms.
      await page.keyboard.press('Enter');
      await dialog.waitFor();
      await page.waitForFunction(() => document.activeElement?.id === 'revoke-reason');
      await page.keyboard.type('Lost laptop, ticket 99');
      await screenshot(page, `keyboard-revoke-dialog-${backend}`);
      await page.keyboard.press('Enter');
      await page.getByRole('status').getByText('Revoked “Work laptop”.').waitFor();
      await dialog.waitFor({ state: 'detached' });
      // The button went with the passkey: the focus is on the list it was in.
      await page.waitForFunction(() => document.activeElement?.id === 'active-heading');
      await page.getByText('Lost laptop, ticket 99').waitFor();
      assert.deepEqual(unseen, [], 'every focused element shows its focus');
    });
  });
}
