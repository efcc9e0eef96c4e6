//! Decoy credentials: sign-in options for a user ID the tenant does not know (or whose passkeys
//! are all revoked) list credentials that look like a real user's, so that the options do not
//! tell anyone which users exist.
//!
//! Each decoy is derived from the instance's decoy key ([`crate::instance_keys`]: 32 random
//! bytes created on first use and shared by every instance through the database), the tenant and the
//! user ID, with HMAC-SHA-256: the same request always gets the same answer, on every instance,
//! and nobody without the key can tell a decoy from a credential ID. The count (one, sometimes
//! two) and the ID lengths (16, 20, 32 or 64 bytes, as platform and roaming authenticators make
//! them) follow what real passkeys show; the fields are those of a real descriptor. No passkey matches a decoy, so a
//! browser offers nothing, as it would on a device without the user's passkey, and the ceremony's
//! state holds no credential: verification answers `credential_unknown`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

/// HMAC-SHA-256 of the parts under `key`, each part length-prefixed (no two inputs collide).
fn mac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // A 32-byte key is always valid for HMAC.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Credential ID lengths real authenticators produce (platform passkeys 16–32, keys 64).
const ID_LENGTHS: [usize; 4] = [16, 20, 32, 64];
/// The `allowCredentials` entries of `external_id` in `tenant_id` when it has no passkey.
pub(crate) fn descriptors(key: &[u8; 32], tenant_id: Uuid, external_id: &str) -> Vec<Value> {
    let user = [
        b"decoy/v1".as_slice(),
        tenant_id.as_bytes(),
        external_id.as_bytes(),
    ];
    let shape = mac(key, &user);
    let count = if shape[0].is_multiple_of(5) { 2 } else { 1 };
    (0..count)
        .map(|i| {
            let length = ID_LENGTHS[usize::from(shape[1 + i] % 4)];
            let mut id = Vec::with_capacity(length);
            let mut block = 0u8;
            while id.len() < length {
                id.extend_from_slice(&mac(key, &[&user.concat(), &[i as u8, block]]));
                block += 1;
            }
            id.truncate(length);
            // The fields webauthn-rs gives a stored credential's descriptor (it keeps no
            // transports), in the same form.
            json!({
                "type": "public-key",
                "id": URL_SAFE_NO_PAD.encode(id),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoys_are_stable_per_user_and_differ_between_users_tenants_and_keys() {
        let (key, other_key) = ([7u8; 32], [8u8; 32]);
        let tenant = Uuid::from_u128(1);
        let a = descriptors(&key, tenant, "alice");
        assert_eq!(a, descriptors(&key, tenant, "alice"), "stable");
        assert_ne!(a, descriptors(&key, tenant, "bob"));
        assert_ne!(a, descriptors(&key, Uuid::from_u128(2), "alice"));
        assert_ne!(a, descriptors(&other_key, tenant, "alice"));
        let mut counts = [0usize; 3];
        for n in 0..1000 {
            let list = descriptors(&key, tenant, &format!("user-{n}"));
            counts[list.len()] += 1;
            for d in &list {
                assert_eq!(d["type"], "public-key");
                let id = URL_SAFE_NO_PAD
                    .decode(d["id"].as_str().unwrap_or_default())
                    .unwrap_or_default();
                assert!(ID_LENGTHS.contains(&id.len()), "{d}");
            }
        }
        assert_eq!(counts[0], 0, "never empty");
        assert!(
            counts[2] > 100 && counts[2] < 300,
            "about one in five has two: {counts:?}"
        );
    }
}
