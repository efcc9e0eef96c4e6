//! A device key as the SDK's `bindDevice` keeps one: a P-256 key that signs the response's
//! `clientDataJSON` (see `end_users::devices`).

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use p256::ecdsa::{Signature, SigningKey, signature::Signer};
use p256::pkcs8::EncodePublicKey;
use serde_json::Value;

use crate::end_users::DeviceProof;

pub struct DeviceKey {
    key: SigningKey,
}

impl DeviceKey {
    pub fn new() -> Result<Self, String> {
        loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
            // Zero or not below the group order: draw again (vanishingly rare).
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                return Ok(Self { key });
            }
        }
    }

    /// The public key as the Client API takes it (SPKI DER, base64url).
    pub fn public_key(&self) -> Result<String, String> {
        let der = self
            .key
            .verifying_key()
            .to_public_key_der()
            .map_err(|e| e.to_string())?;
        Ok(URL_SAFE_NO_PAD.encode(der.as_bytes()))
    }

    /// The proof for `credential` (a browser response's JSON): the 64-byte `r‖s` form, as
    /// WebCrypto signs, or DER as Android and iOS do.
    pub fn proof(&self, credential: &Value, der: bool) -> Result<DeviceProof, String> {
        let client_data = credential["response"]["clientDataJSON"]
            .as_str()
            .ok_or("no clientDataJSON")?;
        let client_data = URL_SAFE_NO_PAD
            .decode(client_data)
            .map_err(|e| e.to_string())?;
        self.proof_over(&client_data, der)
    }

    /// A proof signed over other bytes (one that must not verify).
    pub fn proof_over(&self, bytes: &[u8], der: bool) -> Result<DeviceProof, String> {
        let signature: Signature = self.key.sign(bytes);
        let signature = if der {
            signature.to_der().as_bytes().to_vec()
        } else {
            signature.to_bytes().to_vec()
        };
        Ok(DeviceProof {
            public_key: self.public_key()?,
            signature: URL_SAFE_NO_PAD.encode(signature),
        })
    }
}
