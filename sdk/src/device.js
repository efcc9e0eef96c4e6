// The browser's device key (`bindDevice`): a non-extractable ECDSA P-256 key from WebCrypto, kept
// in IndexedDB on the page's origin, one per Latchkey instance and tenant. It signs the exact
// `clientDataJSON` of each ceremony's response, which Latchkey checks in the same step as the
// passkey's signature. The private key never leaves the browser: IndexedDB stores the CryptoKey
// object itself, which WebCrypto will not export.

import { base64URLStringToBuffer, bufferToBase64URLString } from '@simplewebauthn/browser';

const DB = 'latchkey-device-keys';
const STORE = 'keys';

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function open() {
  const req = globalThis.indexedDB.open(DB, 1);
  req.onupgradeneeded = () => req.result.createObjectStore(STORE);
  return request(req);
}

async function stored(db, name) {
  return request(db.transaction(STORE, 'readonly').objectStore(STORE).get(name));
}

/** Whether this browser can keep a device key (WebCrypto and IndexedDB). */
export function deviceKeysSupported() {
  return Boolean(globalThis.crypto?.subtle && globalThis.indexedDB);
}

/**
 * The device key stored under `name`, created first when `create` (else `null` if none). Fails
 * only where the browser cannot keep one; callers decide whether that matters.
 */
export async function deviceKey(name, { create }) {
  const db = await open();
  try {
    const existing = await stored(db, name);
    if (existing || !create) return existing ?? null;
    const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
      'sign',
      'verify',
    ]);
    const spki = await crypto.subtle.exportKey('spki', pair.publicKey);
    const key = { privateKey: pair.privateKey, publicKey: bufferToBase64URLString(spki) };
    // `add`, not `put`: of two tabs creating at once, the first key stays and both use it.
    const tx = db.transaction(STORE, 'readwrite');
    const added = request(tx.objectStore(STORE).add(key, name)).then(
      () => true,
      () => false,
    );
    await new Promise((resolve) => {
      tx.oncomplete = resolve;
      tx.onerror = resolve;
      tx.onabort = resolve;
    });
    return (await added) ? key : await stored(db, name);
  } finally {
    db.close();
  }
}

/** The Client API's `device` member for a response: the key and its signature over the response's `clientDataJSON`. */
export async function deviceProof(key, credential) {
  const clientData = base64URLStringToBuffer(credential.response.clientDataJSON);
  const signature = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key.privateKey, clientData);
  return { public_key: key.publicKey, signature: bufferToBase64URLString(signature) };
}
