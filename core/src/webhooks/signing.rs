//! Standard Webhooks signatures (<https://www.standardwebhooks.com>), so receivers can verify
//! with any of its libraries: `webhook-signature: v1,<base64 HMAC-SHA256(key, id.timestamp.body)>`
//! where the key is the base64 after `whsec_`. During a rotation's overlap both secrets sign,
//! space-separated, so a receiver holding either verifies.
//!
//! Written here rather than taken from a crate: it is one HMAC over a documented string, and
//! the crates that offer it bring an HTTP stack of their own.

use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};

use crate::{Error, Result};

const PREFIX: &str = "whsec_";
const SECRET_BYTES: usize = 32;

/// A fresh signing secret, `whsec_` and 32 random bytes in base64.
pub(crate) fn new_secret() -> Result<String> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
    Ok(format!("{PREFIX}{}", STANDARD.encode(bytes)))
}

/// `v1,<signature>` of one message under `secret`; `None` for a secret that is not one of ours.
pub(crate) fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD.decode(secret.strip_prefix(PREFIX)?).ok()?;
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).ok()?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signs_as_the_reference_libraries_do() {
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signature.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
        assert!(sign("not-ours", "id", 1, b"").is_none());
    }
}
