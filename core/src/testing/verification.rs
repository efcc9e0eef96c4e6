//! A sign-in's verification step, set up once and run as often as a benchmark likes: a tenant's
//! relying party, a registered ES256 passkey (stored as the service stores it) and one signed
//! assertion answering a real challenge. [`VerificationStep::run`] does what the service does
//! between reading the ceremony and writing the result: parse the browser's JSON, read the
//! stored credential, verify.

use std::sync::Arc;

use webauthn_rs_core::proto::{
    AuthenticationState, Credential, PublicKeyCredential, RegisterPublicKeyCredential,
    UserVerificationPolicy,
};

use super::soft_passkey::SoftPasskeys;
use crate::{
    end_users::authentication::check_assertion,
    tenants::config::{Origin, PasskeyConfig},
    webauthn::relying_parties::TenantRelyingParty,
    webauthn::{client_json, parse_credential},
};

const RP_ID: &str = "bench.example.com";
const ORIGIN: &str = "https://bench.example.com";

pub struct VerificationStep {
    rp: Arc<TenantRelyingParty>,
    state: AuthenticationState,
    /// The authenticator row's `credential` column.
    stored: String,
    /// The browser's `AuthenticationResponseJSON`, as posted.
    response: String,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl VerificationStep {
    /// A tenant with the default configuration (ES256 first), one registered passkey and one
    /// assertion.
    pub fn es256() -> Result<Self, String> {
        let config = PasskeyConfig {
            enabled: true,
            rp_id: Some(RP_ID.into()),
            origins: vec![Origin::Web(ORIGIN.into())],
            ..PasskeyConfig::default()
        };
        let rp = Arc::new(TenantRelyingParty::build(Arc::new(config)).map_err(err)?);
        let mut passkeys = SoftPasskeys::new();

        let user = uuid::Uuid::new_v4();
        let builder = rp
            .core
            .new_challenge_register_builder(user.as_bytes(), "ada", "Ada")
            .map_err(err)?
            .credential_algorithms(rp.algorithms());
        let (options, state) = rp.core.generate_challenge_register(builder).map_err(err)?;
        let created = passkeys.register(ORIGIN, &client_json(&options.public_key).map_err(err)?)?;
        let created: RegisterPublicKeyCredential = serde_json::from_value(created).map_err(err)?;
        let credential = rp
            .core
            .register_credential(&created, &state, None)
            .map_err(err)?;
        let stored = serde_json::to_string(&credential).map_err(err)?;

        let builder = rp
            .core
            .new_challenge_authenticate_builder(
                vec![credential],
                Some(UserVerificationPolicy::Preferred),
            )
            .map_err(err)?;
        let (options, state) = rp
            .core
            .generate_challenge_authenticate(builder)
            .map_err(err)?;
        let asserted =
            passkeys.authenticate(ORIGIN, &client_json(&options.public_key).map_err(err)?)?;
        Ok(Self {
            rp,
            state,
            stored,
            response: asserted.to_string(),
        })
    }

    /// Parse the response, read the stored credential, verify; `Err` if it does not verify.
    pub fn run(&self) -> Result<(), String> {
        let response: PublicKeyCredential = parse_credential(&self.response).map_err(err)?;
        let credential: Credential = serde_json::from_str(&self.stored).map_err(err)?;
        check_assertion(&self.rp, &response, &self.state, &credential)
            .map(drop)
            .map_err(err)
    }

    /// The same assertion with one byte of its signature changed: must be refused.
    pub fn run_tampered(&self) -> Result<(), String> {
        let mut json: serde_json::Value = serde_json::from_str(&self.response).map_err(err)?;
        let signature = json["response"]["signature"]
            .as_str()
            .ok_or("no signature")?
            .to_owned();
        let flipped: String = signature
            .char_indices()
            .map(|(i, c)| {
                if i == 20 {
                    if c == 'A' { 'B' } else { 'A' }
                } else {
                    c
                }
            })
            .collect();
        json["response"]["signature"] = flipped.into();
        let response: PublicKeyCredential = parse_credential(&json.to_string()).map_err(err)?;
        let credential: Credential = serde_json::from_str(&self.stored).map_err(err)?;
        check_assertion(&self.rp, &response, &self.state, &credential)
            .map(drop)
            .map_err(err)
    }
}

/// The curve arithmetic alone, the bound of any ES256 verifier: RustCrypto `p256` (the backend
/// webauthn-rs verifies with), key and signature parsed once, `verify(message, signature)`.
pub struct RawEs256 {
    key: p256::ecdsa::VerifyingKey,
    /// authenticatorData (37 bytes) ‖ SHA-256(clientDataJSON): what an assertion signs.
    message: [u8; 69],
    signature: p256::ecdsa::Signature,
}

impl RawEs256 {
    pub fn new() -> Result<Self, String> {
        use p256::ecdsa::{SigningKey, signature::Signer};
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(err)?;
        seed[0] &= 0x7f; // below the group order
        let signer = SigningKey::from_slice(&seed).map_err(err)?;
        let message = [0x5a; 69];
        let signature = signer.sign(&message);
        Ok(Self {
            key: *signer.verifying_key(),
            message,
            signature,
        })
    }

    /// One verification; `false` would mean the reference signature is broken.
    pub fn verify(&self) -> bool {
        use p256::ecdsa::signature::Verifier;
        self.key
            .verify(std::hint::black_box(&self.message), &self.signature)
            .is_ok()
    }
}

/// `openssl speed ecdsap256` (one process, `seconds` per operation): ES256 verifies per second
/// of the machine's OpenSSL, its limit for the verify step; `None` without an `openssl` binary.
pub fn openssl_verify_rate(seconds: u32) -> Option<f64> {
    let out = std::process::Command::new("openssl")
        .args(["speed", "-seconds", &seconds.to_string(), "ecdsap256"])
        .output()
        .ok()?;
    parse_openssl_speed(&String::from_utf8_lossy(&out.stdout))
}

/// The `verify/s` column of the `nistp256` line.
fn parse_openssl_speed(out: &str) -> Option<f64> {
    out.lines()
        .find(|l| l.contains("ecdsa") && l.contains("nistp256"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_verifies_a_real_assertion_and_refuses_a_tampered_one() {
        let step = VerificationStep::es256().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(step.run(), Ok(()));
        assert_eq!(step.run(), Ok(()), "repeatable: nothing is consumed");
        assert!(step.run_tampered().is_err());
        let raw = RawEs256::new().unwrap_or_else(|e| panic!("{e}"));
        assert!(raw.verify());
    }

    #[test]
    fn openssl_speed_output_is_read() {
        let out = "version: 3.0.15\n                              sign    verify    sign/s verify/s\n 256 bits ecdsa (nistp256)   0.0000s   0.0001s  41234.5  19876.3\n";
        assert_eq!(parse_openssl_speed(out), Some(19876.3));
        assert_eq!(parse_openssl_speed("nothing here"), None);
    }
}
