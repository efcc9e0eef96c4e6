// The portal's bridge to the browser's WebAuthn API, imported by the wasm bundle.
//
// Options arrive as WebAuthn Level 3 JSON (base64url for binary members) and credentials leave
// as `PublicKeyCredential.toJSON()` output. Browsers that lack the L3 JSON helpers (older Safari
// and Firefox) get the same conversion done here.

// One WebAuthn request may be pending at a time: a conditional (autofill) request waits in the
// background until the user picks a passkey or clicks the button, which must cancel it first.
let pending = null;

function cancelPending() {
  if (pending) {
    pending.abort();
    pending = null;
  }
}

function fromB64url(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

function toB64url(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function withIds(list) {
  return (list || []).map((c) => ({ ...c, id: fromB64url(c.id) }));
}

function creationOptions(json) {
  if (PublicKeyCredential.parseCreationOptionsFromJSON) {
    return PublicKeyCredential.parseCreationOptionsFromJSON(json);
  }
  return {
    ...json,
    challenge: fromB64url(json.challenge),
    user: { ...json.user, id: fromB64url(json.user.id) },
    excludeCredentials: withIds(json.excludeCredentials),
  };
}

function requestOptions(json) {
  if (PublicKeyCredential.parseRequestOptionsFromJSON) {
    return PublicKeyCredential.parseRequestOptionsFromJSON(json);
  }
  return {
    ...json,
    challenge: fromB64url(json.challenge),
    allowCredentials: withIds(json.allowCredentials),
  };
}

function credentialJson(credential) {
  if (typeof credential.toJSON === "function") {
    return credential.toJSON();
  }
  const r = credential.response;
  const response = { clientDataJSON: toB64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toB64url(r.attestationObject);
    if (r.getTransports) response.transports = r.getTransports();
  } else {
    response.authenticatorData = toB64url(r.authenticatorData);
    response.signature = toB64url(r.signature);
    if (r.userHandle) response.userHandle = toB64url(r.userHandle);
  }
  return {
    id: credential.id,
    rawId: toB64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
    response,
  };
}

// A message a person can act on, for the DOMException names WebAuthn uses.
function explain(error) {
  switch (error && error.name) {
    case "NotAllowedError":
      return "The passkey request was cancelled or timed out. Try again.";
    case "InvalidStateError":
      return "This authenticator already holds a passkey for this account.";
    case "NotSupportedError":
      return "This browser or authenticator does not support the requested passkey type.";
    case "SecurityError":
      return "The browser refused the request for this site (check the portal's public URL).";
    case "AbortError":
      return "aborted";
    default:
      return (error && error.message) || "The passkey request failed.";
  }
}

export function passkeysSupported() {
  return typeof window !== "undefined" && !!window.PublicKeyCredential;
}

export async function conditionalMediationAvailable() {
  return (
    passkeysSupported() &&
    typeof PublicKeyCredential.isConditionalMediationAvailable === "function" &&
    (await PublicKeyCredential.isConditionalMediationAvailable())
  );
}

// Resolves to the RegistrationResponseJSON as text; rejects with a readable message.
export async function createPasskey(optionsJson) {
  cancelPending();
  try {
    const publicKey = creationOptions(JSON.parse(optionsJson));
    const credential = await navigator.credentials.create({ publicKey });
    return JSON.stringify(credentialJson(credential));
  } catch (error) {
    throw explain(error);
  }
}

// Resolves to the AuthenticationResponseJSON as text. `conditional` waits for the user to pick
// a passkey from autofill; it rejects with "aborted" when a modal request replaces it.
export async function getPasskey(optionsJson, conditional) {
  cancelPending();
  const controller = new AbortController();
  pending = controller;
  try {
    const publicKey = requestOptions(JSON.parse(optionsJson));
    const request = { publicKey, signal: controller.signal };
    if (conditional) request.mediation = "conditional";
    const credential = await navigator.credentials.get(request);
    return JSON.stringify(credentialJson(credential));
  } catch (error) {
    throw explain(error);
  } finally {
    if (pending === controller) pending = null;
  }
}

// A full navigation, so that the next page is rendered for the new session.
export function navigateTo(path) {
  window.location.assign(path);
}

// A full navigation to `next` (a `?next=` value, chosen by whoever made the link) when it stays
// on this origin, else to the home page. Resolved with the browser's own URL parser, exactly as
// the navigation would be: it drops tabs and newlines, so `/\t/evil.example` is
// `//evil.example`, another site, and a string check on the raw value would let it through.
// The path it resolves to must stay on this origin too when navigated to: dot segments are
// resolved away, so `/.//evil.example` (or `/a/..//evil.example`) resolves on this origin to
// the path `//evil.example`, which as a link is another site again.
export function navigateWithinOrigin(next) {
  const origin = window.location.origin;
  let target = '/';
  try {
    const url = new URL(next, origin);
    const path = url.pathname + url.search + url.hash;
    if (url.origin === origin && new URL(path, origin).origin === origin) target = path;
  } catch {
    // Not a URL at all: home.
  }
  window.location.assign(target);
}

// Copies text to the clipboard; resolves to whether it worked (permissions vary by browser).
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch (_) {
    return false;
  }
}

export function focusLater(id) {
  requestAnimationFrame(() => document.getElementById(id)?.focus());
}

// Keeps Tab and Shift+Tab inside the dialog a keydown event happened in: from its last
// focusable element Tab goes to the first, and back. Answers whether it moved the focus.
export function trapTab(event) {
  if (event.key !== 'Tab') return false;
  const dialog = event.target?.closest?.('[role="dialog"]');
  if (!dialog) return false;
  const focusable = [...dialog.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')]
    .filter((el) => !el.disabled && el.tabIndex >= 0 && el.offsetParent !== null);
  if (focusable.length === 0) return false;
  const first = focusable[0];
  const last = focusable[focusable.length - 1];
  const leaving = event.shiftKey ? document.activeElement === first : document.activeElement === last;
  if (!leaving) return false;
  event.preventDefault();
  (event.shiftKey ? last : first).focus();
  return true;
}

// Submits again the form holding the element an event came from (after a step-up, the action
// the server refused). Answers whether there was such a form.
export function resubmitFormOf(event) {
  const form = event.target?.closest?.('form');
  if (!form) return false;
  form.requestSubmit();
  return true;
}
