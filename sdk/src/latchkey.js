// The Latchkey browser SDK: passkey sign-up (with an enrollment token from your backend, also as
// an automatic upgrade by conditional create) and sign-in (a known user, a passkey picker, or
// autofill) against a tenant's Client API. After each ceremony it passes on what Latchkey says
// the password manager should know (the WebAuthn Signal API). The WebAuthn JSON conversions and
// browser quirks are @simplewebauthn/browser's; this file only talks to Latchkey, feature-detects
// and turns failures into readable errors with stable codes.
import {
  WebAuthnAbortService,
  base64URLStringToBuffer,
  browserSupportsWebAuthn,
  browserSupportsWebAuthnAutofill,
  bufferToBase64URLString,
  sendSignal,
  startAuthentication,
  startRegistration,
} from '@simplewebauthn/browser';
import { deviceKey, deviceKeysSupported, deviceProof } from './device.js';

/** Messages for the browser's own refusals (by @simplewebauthn's error codes and DOM names). */
const BROWSER_ERRORS = {
  ERROR_CEREMONY_ABORTED: ['cancelled', 'The passkey prompt was cancelled.'],
  ERROR_AUTHENTICATOR_PREVIOUSLY_REGISTERED: [
    'credential_exists',
    'This device already has a passkey for this account.',
  ],
  ERROR_INVALID_DOMAIN: ['origin_mismatch', 'This page may not use passkeys for this site.'],
  ERROR_INVALID_RP_ID: ['rp_id_mismatch', 'This page may not use passkeys for this site.'],
  ERROR_AUTHENTICATOR_NO_SUPPORTED_PUBKEYCREDPARAMS_ALG: [
    'not_supported',
    'This authenticator supports none of the allowed algorithms.',
  ],
  ERROR_AUTHENTICATOR_MISSING_USER_VERIFICATION_SUPPORT: [
    'user_verification_required',
    'This authenticator cannot verify you (PIN or biometrics).',
  ],
  ERROR_AUTHENTICATOR_MISSING_DISCOVERABLE_CREDENTIAL_SUPPORT: [
    'not_supported',
    'This authenticator cannot store passkeys.',
  ],
  NotAllowedError: ['cancelled', 'The passkey prompt was cancelled or timed out.'],
  AbortError: ['cancelled', 'The passkey prompt was cancelled.'],
  InvalidStateError: ['credential_exists', 'This device already has a passkey for this account.'],
  SecurityError: ['origin_mismatch', 'This page may not use passkeys for this site.'],
  NotSupportedError: ['not_supported', 'This browser or device does not support passkeys.'],
};

/** Messages for Latchkey's problem codes, for people (the `code` stays for programs). */
const PROBLEM_MESSAGES = {
  token_invalid: 'This sign-up link is not valid. Ask for a new one.',
  token_expired: 'This sign-up link has expired. Ask for a new one.',
  token_used: 'This sign-up link has already been used.',
  scope_required: 'You already have a passkey. Adding another needs a new link.',
  passkeys_disabled: 'Passkeys are not available here right now.',
  ceremony_expired: 'That took too long. Try again.',
  ceremony_invalid: 'Something went wrong. Try again.',
  credential_unknown: 'This passkey is not registered here.',
  credential_revoked: 'This passkey has been revoked. Use another one or ask for help.',
  credential_exists: 'This passkey is already registered.',
  user_verification_required: 'Your device did not verify you (PIN or biometrics). Try again.',
  counter_regressed: 'This passkey could not be trusted. Contact support.',
  rate_limited: 'Too many attempts. Wait a moment and try again.',
};

/** A failed sign-up or sign-in: `code` is Latchkey's problem code or a browser-side one. */
export class LatchkeyError extends Error {
  constructor(code, message, { status, cause, problem } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = 'LatchkeyError';
    this.code = code;
    this.status = status;
    // Latchkey's problem document, when it refused (its `request_id` is worth quoting).
    this.problem = problem;
  }
}

/**
 * Passes a signal on (@simplewebauthn's `sendSignal`, which feature-detects). A signal is advice
 * to the password manager: a browser without the method skips it, and one that refuses it (say,
 * for an RP ID this page may not use) must not fail the ceremony that already succeeded.
 */
function signal(options) {
  sendSignal(options).catch(() => {});
}

function isNotAllowed(err) {
  return err?.name === 'NotAllowedError' || err?.cause?.name === 'NotAllowedError';
}

function browserError(err) {
  const known = BROWSER_ERRORS[err?.code] ?? BROWSER_ERRORS[err?.cause?.name] ?? BROWSER_ERRORS[err?.name];
  if (known) return new LatchkeyError(known[0], known[1], { cause: err });
  return new LatchkeyError('browser_error', err?.message || 'The passkey prompt failed.', { cause: err });
}

export class Latchkey {
  /**
   * @param {{ baseUrl: string, tenantId?: string, signals?: boolean }} options
   */
  constructor({ baseUrl, tenantId, signals = true } = {}) {
    if (!baseUrl) throw new TypeError('Latchkey: baseUrl is required');
    this.baseUrl = String(baseUrl).replace(/\/+$/, '');
    this.tenantId = tenantId;
    this.signals = signals !== false;
  }

  /** Whether this browser can use passkeys at all. */
  static supported() {
    return browserSupportsWebAuthn();
  }

  /** Whether this browser offers passkeys in autofill (conditional UI). */
  static autofillSupported() {
    return browserSupportsWebAuthnAutofill();
  }

  /** Whether this browser may create a passkey silently (conditional create). */
  static async conditionalCreateSupported() {
    const get = globalThis.PublicKeyCredential?.getClientCapabilities;
    if (typeof get !== 'function') return false;
    try {
      const capabilities = await get.call(globalThis.PublicKeyCredential);
      return capabilities?.conditionalCreate === true;
    } catch {
      return false;
    }
  }

  /**
   * The `device` member for a response: this browser's device key for the tenant (created when
   * `create`) and its signature. `undefined` where there is none or the browser cannot keep one:
   * the ceremony then reports the device as `none`, which is the truth.
   */
  async #device(credential, { create }) {
    if (!this.tenantId || !deviceKeysSupported()) return undefined;
    try {
      const key = await deviceKey(`${this.baseUrl}|${this.tenantId}`, { create });
      return key ? await deviceProof(key, credential) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Tells the password manager what Latchkey knows after a successful ceremony. */
  #passOn(signals) {
    if (!this.signals || !signals) return;
    const { rp_id: rpID, user_id: userID } = signals;
    if (Array.isArray(signals.all_accepted_credential_ids)) {
      signal({
        signalName: 'allAcceptedCredentials',
        rpID,
        userID,
        allAcceptedCredentialIDs: signals.all_accepted_credential_ids,
      });
    }
    if (signals.current_user_details) {
      signal({
        signalName: 'currentUserDetails',
        rpID,
        userID,
        userName: signals.current_user_details.name,
        userDisplayName: signals.current_user_details.display_name,
      });
    }
  }

  async #post(path, body, token) {
    let res;
    try {
      res = await fetch(this.baseUrl + path, {
        method: 'POST',
        mode: 'cors',
        credentials: 'omit',
        headers: {
          'content-type': 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify(body ?? {}),
      });
    } catch (cause) {
      throw new LatchkeyError('network_error', 'Latchkey could not be reached.', { cause });
    }
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      const code = data.code || 'internal';
      throw new LatchkeyError(code, PROBLEM_MESSAGES[code] || data.detail || 'Something went wrong.', {
        status: res.status,
        problem: data,
      });
    }
    return data;
  }

  #tenantPath(step) {
    if (!this.tenantId) throw new TypeError('Latchkey: tenantId is required to sign in');
    return `/api/client/v1/tenants/${encodeURIComponent(this.tenantId)}/authentication/${step}`;
  }

  /**
   * Registers a passkey with an enrollment token from your backend. With `conditional: true`
   * the browser creates it silently, if it offers that (an automatic upgrade right after the
   * user signed in another way); where it does not, or declines, this resolves `null`. With
   * `bindDevice: true` this browser's device key (created now if needed) is bound to the user,
   * so that later sign-ins from it are reported as a `known` device.
   * @param {{ token: string, name?: string, conditional?: boolean, bindDevice?: boolean }} options
   * @returns {Promise<{ token: string, authenticator: object } | null>} `token` is for your backend.
   */
  async signUp({ token, name, conditional = false, bindDevice = false } = {}) {
    if (!token) throw new TypeError('Latchkey.signUp: token is required');
    if (bindDevice && !this.tenantId) {
      throw new TypeError('Latchkey.signUp: tenantId is required to bind a device');
    }
    // Checked before asking Latchkey, so that a browser without it starts no ceremony.
    if (conditional && !(await Latchkey.conditionalCreateSupported())) return null;
    const options = await this.#post(
      '/api/client/v1/registration/options',
      conditional ? { conditional: true } : {},
      token,
    );
    let credential;
    try {
      credential = await startRegistration({
        optionsJSON: options.publicKey,
        useAutoRegister: conditional,
      });
    } catch (err) {
      // A conditional create the browser declines fails with NotAllowedError: not an error here.
      if (conditional && isNotAllowed(err)) return null;
      throw browserError(err);
    }
    const body = { ceremony_id: options.ceremony_id, credential };
    if (name) body.name = name;
    // After the prompt (IndexedDB work before it could cost the click's user activation).
    if (bindDevice) body.device = await this.#device(credential, { create: true });
    const result = await this.#post('/api/client/v1/registration/verify', body, token);
    this.#passOn(result.signals);
    return { token: result.token, authenticator: result.authenticator };
  }

  /**
   * Signs in: a known user (`userId`), any passkey of this site (a picker), or — with
   * `autofill: true` — through the browser's autofill on an input with
   * `autocomplete="username webauthn"` (resolves when the user picks a passkey there). A
   * browser with a device key for this tenant signs in with it too (the backend's validation
   * reports the device `known` or `new`); `bindDevice: true` creates one first where there is
   * none.
   * @param {{ userId?: string, autofill?: boolean, bindDevice?: boolean }} options
   * @returns {Promise<{ token: string }>} `token` is for your backend.
   */
  async signIn({ userId, autofill = false, bindDevice = false } = {}) {
    if (autofill && !(await browserSupportsWebAuthnAutofill())) {
      throw new LatchkeyError('not_supported', 'This browser does not offer passkeys in autofill.');
    }
    const options = await this.#post(this.#tenantPath('options'), userId ? { user_id: userId } : {});
    let credential;
    try {
      credential = await startAuthentication({
        optionsJSON: options.publicKey,
        useBrowserAutofill: autofill,
      });
    } catch (err) {
      throw browserError(err);
    }
    // A browser bound to this tenant signs in with its device key too.
    const device = await this.#device(credential, { create: bindDevice });
    let result;
    try {
      result = await this.#post(this.#tenantPath('verify'), {
        ceremony_id: options.ceremony_id,
        credential,
        device,
      });
    } catch (err) {
      // Latchkey says the tenant never had this passkey: the password manager may forget it.
      if (this.signals && err.problem?.signal_unknown_credential === true) {
        signal({ signalName: 'unknownCredential', rpID: options.publicKey.rpId, credentialID: credential.id });
      }
      throw err;
    }
    this.#passOn(result.signals);
    return { token: result.token };
  }

  /** Cancels a pending prompt (e.g. an autofill request before a modal sign-in). */
  static cancel() {
    WebAuthnAbortService.cancelCeremony();
  }
}

export default Latchkey;
