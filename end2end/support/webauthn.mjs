// A Chromium virtual authenticator (Chrome DevTools Protocol `WebAuthn` domain): a platform
// authenticator with resident keys and user verification, like a phone or laptop passkey.

import { waitForHydration } from './browser.mjs';

export async function addVirtualAuthenticator(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('WebAuthn.enable', { enableUI: false });
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return {
    async credentials() {
      const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
      return credentials;
    },
    /** Puts a copy of a credential (from `credentials()`) on this authenticator. */
    async add(credential) {
      await cdp.send('WebAuthn.addCredential', { authenticatorId, credential });
    },
  };
}

/** Makes the page's browser report no passkey autofill, so only the button signs in. */
export async function withoutConditionalUi(page) {
  await page.addInitScript(() => {
    if (window.PublicKeyCredential) {
      window.PublicKeyCredential.isConditionalMediationAvailable = async () => false;
    }
  });
}

/** Opens a setup or invitation link and creates the operator's passkey; ends on the home page. */
export async function enroll(page, link, { email, displayName }) {
  await page.goto(link);
  await waitForHydration(page);
  const emailField = page.getByLabel('Email', { exact: true });
  if (email !== undefined) await emailField.fill(email);
  await page.getByLabel('Display name').fill(displayName);
  await page.getByRole('button', { name: 'Create passkey' }).click();
  await page.waitForURL((url) => url.pathname === '/', { timeout: 20_000 });
  await page.getByRole('heading', { name: 'Instance status' }).waitFor();
  await waitForHydration(page);
}

/** Signs in from /login with the page's virtual authenticator; ends on `expectedPath`. */
export async function signIn(page, baseUrl, expectedPath = '/') {
  if (new URL(page.url()).pathname !== '/login') {
    await page.goto(baseUrl + '/login');
  }
  await waitForHydration(page);
  const button = page.getByRole('button', { name: 'Sign in with a passkey' });
  // Where the browser offers passkeys in autofill, the page has already started a conditional
  // request; the button replaces it with a modal one.
  await button.click();
  await page.waitForURL((url) => url.pathname === expectedPath, { timeout: 20_000 });
  await waitForHydration(page);
}
