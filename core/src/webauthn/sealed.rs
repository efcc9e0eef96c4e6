//! Sealed ceremonies: a tenant sign-in's state travels in its ceremony ID instead of a row, so
//! starting a sign-in writes nothing — an anonymous caller can make options cost CPU, never
//! storage.
//!
//! The ceremony ID is `base64url(salt ‖ nonce ‖ AES-256-GCM(k, state))`: `k` is derived for this
//! ceremony alone, `HMAC-SHA-256(master, salt)` with a random 128-bit salt, from the instances'
//! shared `ceremony_sealing` key ([`crate::instance_keys`]), so any instance can open what
//! another sealed (design invariant 4). A key per ceremony keeps GCM's random 96-bit nonces safe
//! however many ceremonies one master key seals (a repeated nonce under one key would let an
//! attacker forge sealed states; salts repeat only after ~2^64 ceremonies). The associated data binds the
//! sealed state to its tenant and kind: an ID presented to another tenant's endpoint does not
//! open. Nothing in it is secret from the browser that holds it (the challenge is in the options
//! anyway), but it cannot be forged or altered, and expiry is inside.
//!
//! Single use is recorded at verification, by the same write step that records the outcome: an
//! insert into `ceremony_uses` whose primary key (the sealed id) decides, so of concurrent
//! verifications one wins on every instance and both databases. Used rows are purged only after
//! the ceremony has expired, when the ID is refused for its age.

use aes_gcm::{
    Aes256Gcm, Nonce,
    aead::{Aead, KeyInit, Payload},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::{Error, Result};

const SALT_BYTES: usize = 16;
const NONCE_BYTES: usize = 12;
/// The longest ceremony ID worth opening: a sealed state is a few hundred bytes (the subject is
/// at most 128 characters); anything longer is not one of ours.
pub(crate) const MAX_ID_CHARS: usize = 4096;

/// What a sealed ceremony holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Sealed<S> {
    /// Its single-use key in `ceremony_uses`.
    pub id: Uuid,
    pub subject: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub state: S,
}

/// The key of one ceremony: `HMAC-SHA-256(master, "latchkey/ceremony-key/v1" ‖ salt)`.
fn ceremony_key(master: &[u8; 32], salt: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // A 32-byte key is always valid for HMAC.
    let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(master) else {
        return [0; 32];
    };
    mac.update(b"latchkey/ceremony-key/v1");
    mac.update(salt);
    mac.finalize().into_bytes().into()
}

fn associated_data(tenant_id: Uuid, kind: &str) -> Vec<u8> {
    let mut aad = b"latchkey/ceremony/v1/".to_vec();
    aad.extend_from_slice(kind.as_bytes());
    aad.push(b'/');
    aad.extend_from_slice(tenant_id.as_bytes());
    aad
}

/// Seals `contents` for `tenant_id` and `kind`; answers the ceremony ID.
pub(crate) fn seal<S: Serialize>(
    key: &[u8; 32],
    tenant_id: Uuid,
    kind: &str,
    contents: &Sealed<S>,
) -> Result<String> {
    let plaintext = serde_json::to_vec(contents)
        .map_err(|e| Error::Internal(format!("sealing a ceremony: {e}")))?;
    let mut salt = [0u8; SALT_BYTES];
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut salt).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
    getrandom::fill(&mut nonce).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
    let cipher = Aes256Gcm::new(&ceremony_key(key, &salt).into());
    let aad = associated_data(tenant_id, kind);
    let sealed = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| Error::Internal("sealing a ceremony failed".into()))?;
    let mut out = salt.to_vec();
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(URL_SAFE_NO_PAD.encode(out))
}

/// Opens a ceremony ID sealed for `tenant_id` and `kind`; `None` for anything else (malformed,
/// forged, altered, another tenant's or kind's, sealed under another key).
pub(crate) fn open<S: DeserializeOwned>(
    key: &[u8; 32],
    tenant_id: Uuid,
    kind: &str,
    ceremony_id: &str,
) -> Option<Sealed<S>> {
    if ceremony_id.len() > MAX_ID_CHARS {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(ceremony_id).ok()?;
    if bytes.len() <= SALT_BYTES + NONCE_BYTES {
        return None;
    }
    let (salt, rest) = bytes.split_at(SALT_BYTES);
    let (nonce, sealed) = rest.split_at(NONCE_BYTES);
    let nonce: [u8; NONCE_BYTES] = nonce.try_into().ok()?;
    let aad = associated_data(tenant_id, kind);
    let plaintext = Aes256Gcm::new(&ceremony_key(key, salt).into())
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .ok()?;
    serde_json::from_slice(&plaintext).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents() -> Sealed<serde_json::Value> {
        Sealed {
            id: Uuid::new_v4(),
            subject: Some("user-1".into()),
            expires_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
            state: serde_json::json!({ "challenge": "abc" }),
        }
    }

    #[test]
    fn a_sealed_ceremony_opens_only_with_its_key_tenant_and_kind_and_unaltered() {
        let key = [7u8; 32];
        let tenant = Uuid::new_v4();
        let sealed = contents();
        let id = seal(&key, tenant, "tenant_authentication", &sealed).unwrap();
        let opened: Sealed<serde_json::Value> =
            open(&key, tenant, "tenant_authentication", &id).unwrap();
        assert_eq!(opened.id, sealed.id);
        assert_eq!(opened.subject, sealed.subject);
        assert_eq!(opened.expires_at, sealed.expires_at);
        assert_eq!(opened.state, sealed.state);
        // Two seals of the same contents differ (fresh nonce).
        assert_ne!(
            id,
            seal(&key, tenant, "tenant_authentication", &sealed).unwrap()
        );

        let fails = |key: &[u8; 32], tenant: Uuid, kind: &str, id: &str| {
            open::<serde_json::Value>(key, tenant, kind, id).is_none()
        };
        assert!(fails(&[8u8; 32], tenant, "tenant_authentication", &id));
        assert!(fails(&key, Uuid::new_v4(), "tenant_authentication", &id));
        assert!(fails(&key, tenant, "tenant_registration", &id));
        // Every single-character alteration is refused.
        for i in 0..id.len() {
            let mut altered = id.clone().into_bytes();
            altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(altered).unwrap();
            if altered != id {
                assert!(
                    fails(&key, tenant, "tenant_authentication", &altered),
                    "{i}"
                );
            }
        }
        for junk in ["", "x", "not base64 !", &"A".repeat(MAX_ID_CHARS + 1)] {
            assert!(fails(&key, tenant, "tenant_authentication", junk));
        }
        assert!(fails(
            &key,
            tenant,
            "tenant_authentication",
            &Uuid::new_v4().to_string()
        ));
    }
}
