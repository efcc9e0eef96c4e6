//! Glue between webauthn-rs and the domain: the portal's relying party, the JSON sent to
//! browsers, verification off the async runtime, and WebAuthn failures mapped to spec codes.

pub(crate) mod ceremonies;
pub mod relying_parties;

use std::time::Duration;

use url::Url;
use webauthn_rs::prelude::{Webauthn, WebauthnBuilder, WebauthnError};

use crate::{Error, ErrorCode, Result};

/// How long a browser has to complete a portal ceremony.
pub const PORTAL_CEREMONY_TIMEOUT: Duration = Duration::from_secs(300);

/// The portal's own relying party: RP ID is the public URL's host, the only accepted origin is
/// the public URL's origin.
pub struct PortalRelyingParty {
    webauthn: Webauthn,
    origin: Url,
}

impl std::fmt::Debug for PortalRelyingParty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalRelyingParty")
            .field("origin", &self.origin.as_str())
            .finish_non_exhaustive()
    }
}

impl PortalRelyingParty {
    pub fn new(public_url: &Url) -> Result<Self> {
        let rp_id = public_url
            .host_str()
            .ok_or_else(|| Error::invalid("public_url", "the public URL has no host"))?;
        let webauthn = WebauthnBuilder::new(rp_id, public_url)
            .and_then(|b| {
                b.rp_name("Latchkey")
                    .timeout(PORTAL_CEREMONY_TIMEOUT)
                    .build()
            })
            .map_err(|e| {
                Error::invalid(
                    "public_url",
                    format!("the public URL cannot be a WebAuthn relying party: {e}"),
                )
            })?;
        Ok(Self {
            webauthn,
            origin: public_url.clone(),
        })
    }

    pub fn webauthn(&self) -> &Webauthn {
        &self.webauthn
    }

    pub fn origin(&self) -> &Url {
        &self.origin
    }
}

/// Serialises options for the browser. `null` members are dropped: WebIDL dictionaries reject
/// `null` for enum members, and `parse…OptionsFromJSON` would throw on them.
pub(crate) fn client_json(value: &impl serde::Serialize) -> Result<serde_json::Value> {
    let mut json = serde_json::to_value(value)
        .map_err(|e| Error::Internal(format!("serialising WebAuthn options: {e}")))?;
    strip_nulls(&mut json);
    Ok(json)
}

fn strip_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// The most a browser's credential JSON may weigh; real ones are a few kilobytes.
const MAX_CREDENTIAL_JSON: usize = 64 * 1024;

/// Parses a browser's `PublicKeyCredential.toJSON()` output.
pub(crate) fn parse_credential<T: serde::de::DeserializeOwned>(json: &str) -> Result<T> {
    if json.len() > MAX_CREDENTIAL_JSON {
        return Err(Error::refused(
            ErrorCode::PayloadTooLarge,
            "The credential is too large.",
        ));
    }
    serde_json::from_str(json).map_err(|_| {
        Error::invalid(
            "credential",
            "The credential is not a valid WebAuthn response.",
        )
    })
}

/// Runs signature verification (CPU-bound) on the blocking pool.
pub(crate) async fn off_runtime<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("verification task failed: {e}")))?
}

/// A failed WebAuthn verification as a spec error. The message is safe to show.
pub(crate) fn verification_error(err: WebauthnError) -> Error {
    use WebauthnError as W;
    let (code, message) = match err {
        W::InvalidRPOrigin | W::CredentialCrossOrigin => (
            ErrorCode::OriginMismatch,
            "The response came from an origin this service does not expect.",
        ),
        W::InvalidRPIDHash => (
            ErrorCode::RpIdMismatch,
            "The response was made for another relying party.",
        ),
        W::MismatchedChallenge | W::ChallengeNotFound => (
            ErrorCode::ChallengeMismatch,
            "The response does not answer this challenge.",
        ),
        W::UserNotVerified => (
            ErrorCode::UserVerificationRequired,
            "The authenticator did not verify the user (PIN or biometrics).",
        ),
        W::CredentialPossibleCompromise | W::CredentialCounterUpdateFailure => (
            ErrorCode::CounterRegressed,
            "The authenticator's signature counter went backwards; the passkey may be cloned.",
        ),
        W::CredentialNotFound => (
            ErrorCode::CredentialUnknown,
            "This passkey is not registered here.",
        ),
        W::CredentialAlreadyExists | W::CredentialExcludedFromRequest => (
            ErrorCode::CredentialExists,
            "This passkey is already registered.",
        ),
        W::InvalidClientDataType => (
            ErrorCode::CeremonyInvalid,
            "The response belongs to another kind of ceremony.",
        ),
        W::UserNotPresent => (
            ErrorCode::InvalidRequest,
            "The authenticator did not confirm that a person was present.",
        ),
        W::CredentialAlteredAlgFromRequest | W::COSEKeyInvalidAlgorithm => (
            ErrorCode::InvalidRequest,
            "The passkey uses a signature algorithm this service does not accept.",
        ),
        other => {
            tracing::info!(error = %other, "WebAuthn verification refused");
            (
                ErrorCode::InvalidRequest,
                "The passkey response could not be verified.",
            )
        }
    };
    Error::refused(code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_are_dropped_at_every_depth() {
        let mut v = serde_json::json!({"a": null, "b": {"c": null, "d": 1}, "e": [{"f": null}]});
        strip_nulls(&mut v);
        assert_eq!(v, serde_json::json!({"b": {"d": 1}, "e": [{}]}));
    }

    #[test]
    fn the_portal_relying_party_follows_the_public_url() {
        let url = Url::parse("https://auth.example.com").unwrap_or_else(|e| panic!("{e}"));
        let rp = PortalRelyingParty::new(&url).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rp.origin().as_str(), "https://auth.example.com/");
    }
}

/// Property tests of the credential parser and the verification behind it: whatever a browser
/// (or anyone) posts as a credential is refused with a client code, never an internal error,
/// never a panic — arbitrary text, arbitrary JSON, and real credentials with changes.
#[cfg(test)]
mod properties {
    use std::sync::Arc;

    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    use proptest::{prelude::*, test_runner::TestRunner};
    use serde_json::Value;
    use webauthn_rs_core::proto::{
        AuthenticationState, Credential, PublicKeyCredential, RegisterPublicKeyCredential,
        RegistrationState, UserVerificationPolicy,
    };

    use super::*;
    use crate::{
        end_users::authentication::check_assertion,
        tenants::config::{Origin, PasskeyConfig},
        testing::{fuzz, soft_passkey::SoftPasskeys},
        webauthn::relying_parties::TenantRelyingParty,
    };

    const ORIGIN: &str = "https://shop.example.com";

    /// Both parsers on `json`: each answers a value or a client error about the credential.
    fn parse_both(json: &str) -> std::result::Result<(), TestCaseError> {
        for result in [
            parse_credential::<PublicKeyCredential>(json).map(drop),
            parse_credential::<RegisterPublicKeyCredential>(json).map(drop),
        ] {
            if let Err(e) = result {
                prop_assert!(!e.is_internal(), "{:?}", e);
                prop_assert!(
                    matches!(
                        e.code(),
                        ErrorCode::InvalidRequest | ErrorCode::PayloadTooLarge
                    ),
                    "{:?}",
                    e
                );
                if e.code() == ErrorCode::InvalidRequest {
                    prop_assert_eq!(e.field(), Some("credential"));
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn any_text_parses_or_is_refused_as_a_client_error(json in prop_oneof![
            any::<String>(),
            "[\\[\\]{}\",:0-9a-z ]{0,40}",
            fuzz::json_value().prop_map(|v| {
                // Cut short somewhere: truncated JSON is the commonest garbage.
                let text = v.to_string();
                let cut = text.char_indices().map(|(i, _)| i).nth(text.chars().count() / 2).unwrap_or(0);
                text[..cut].to_owned()
            }),
        ]) {
            parse_both(&json)?;
        }

        #[test]
        fn any_json_parses_or_is_refused_as_a_client_error(
            value in prop_oneof![fuzz::json_value(), fuzz::credential_shaped()],
        ) {
            parse_both(&value.to_string())?;
        }
    }

    #[test]
    fn oversized_credentials_are_payload_too_large() {
        let json = format!("{{\"id\":\"{}\"}}", "A".repeat(MAX_CREDENTIAL_JSON));
        let err = parse_credential::<PublicKeyCredential>(&json).err();
        assert_eq!(err.map(|e| e.code()), Some(ErrorCode::PayloadTooLarge));
    }

    /// A tenant's relying party, a registered passkey, and one real answer to each ceremony.
    struct Baseline {
        rp: Arc<TenantRelyingParty>,
        registration_state: RegistrationState,
        registration: Value,
        authentication_state: AuthenticationState,
        stored: Credential,
        assertion: Value,
    }

    fn baseline() -> Baseline {
        let config = PasskeyConfig {
            enabled: true,
            rp_id: Some("shop.example.com".into()),
            origins: vec![Origin::Web(ORIGIN.into()), Origin::Android([0x5a; 32])],
            ..PasskeyConfig::default()
        };
        let rp =
            Arc::new(TenantRelyingParty::build(Arc::new(config)).unwrap_or_else(|e| panic!("{e}")));
        let mut passkeys = SoftPasskeys::new();
        let user = uuid::Uuid::new_v4();
        let builder = rp
            .core
            .new_challenge_register_builder(user.as_bytes(), "ada", "Ada")
            .map(|b| b.credential_algorithms(rp.algorithms()))
            .unwrap_or_else(|e| panic!("{e}"));
        let (options, registration_state) = rp
            .core
            .generate_challenge_register(builder)
            .unwrap_or_else(|e| panic!("{e}"));
        let public_key = client_json(&options.public_key).unwrap_or_else(|e| panic!("{e}"));
        let registration = passkeys
            .register(ORIGIN, &public_key)
            .unwrap_or_else(|e| panic!("{e}"));
        let parsed: RegisterPublicKeyCredential =
            parse_credential(&registration.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let stored = rp
            .core
            .register_credential(&parsed, &registration_state, None)
            .unwrap_or_else(|e| panic!("{e}"));
        let builder = rp
            .core
            .new_challenge_authenticate_builder(
                vec![stored.clone()],
                Some(UserVerificationPolicy::Preferred),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let (options, authentication_state) = rp
            .core
            .generate_challenge_authenticate(builder)
            .unwrap_or_else(|e| panic!("{e}"));
        let public_key = client_json(&options.public_key).unwrap_or_else(|e| panic!("{e}"));
        let assertion = passkeys
            .authenticate(ORIGIN, &public_key)
            .unwrap_or_else(|e| panic!("{e}"));
        Baseline {
            rp,
            registration_state,
            registration,
            authentication_state,
            stored,
            assertion,
        }
    }

    /// What the service does with a posted credential, up to the verdict: parse, verify, map a
    /// failure to its spec code.
    fn verdicts(b: &Baseline, registration: &Value, assertion: &Value) -> [Result<()>; 2] {
        let registered = parse_credential::<RegisterPublicKeyCredential>(&registration.to_string())
            .and_then(|r| {
                b.rp.core
                    .register_credential(&r, &b.registration_state, None)
                    .map(drop)
                    .map_err(verification_error)
            });
        let signed_in =
            parse_credential::<PublicKeyCredential>(&assertion.to_string()).and_then(|a| {
                check_assertion(&b.rp, &a, &b.authentication_state, &b.stored)
                    .map(drop)
                    .map_err(verification_error)
            });
        [registered, signed_in]
    }

    /// Real answers to a registration and a sign-in, changed: each is accepted (a change the
    /// verifier rightly ignores) or refused with a client code. Unchanged, both verify.
    #[test]
    fn changed_credentials_are_verified_or_refused_as_client_errors() {
        let b = baseline();
        for verdict in verdicts(&b, &b.registration, &b.assertion) {
            assert!(verdict.is_ok(), "the real credentials verify: {verdict:?}");
        }
        let mut runner = TestRunner::new(ProptestConfig {
            cases: 384,
            ..ProptestConfig::default()
        });
        let outcome = runner.run(
            &(fuzz::credential_input(), fuzz::credential_input()),
            |(registration, assertion)| {
                let registration = registration.render(&b.registration);
                let assertion = assertion.render(&b.assertion);
                for verdict in verdicts(&b, &registration, &assertion) {
                    if let Err(e) = verdict {
                        prop_assert!(!e.is_internal(), "{:?}", e);
                        prop_assert!((400..500).contains(&e.code().http_status()), "{:?}", e);
                    }
                }
                Ok(())
            },
        );
        if let Err(e) = outcome {
            panic!("{e}");
        }
    }

    /// A sign-in answer whose signed bytes changed is never accepted.
    #[test]
    fn a_changed_signed_byte_is_never_accepted() {
        let b = baseline();
        let mut runner = TestRunner::new(ProptestConfig {
            cases: 256,
            ..ProptestConfig::default()
        });
        let member =
            proptest::sample::select(vec!["clientDataJSON", "authenticatorData", "signature"]);
        let outcome = runner.run(
            &(member, any::<proptest::sample::Index>(), 1..=255u8),
            |(member, at, mask)| {
                let mut assertion = b.assertion.clone();
                let encoded = assertion["response"][member].as_str().unwrap_or_default();
                let mut bytes = URL_SAFE_NO_PAD.decode(encoded).unwrap_or_default();
                prop_assume!(!bytes.is_empty());
                let i = at.index(bytes.len());
                bytes[i] ^= mask;
                assertion["response"][member] = URL_SAFE_NO_PAD.encode(bytes).into();
                let [_, signed_in] = verdicts(&b, &b.registration, &assertion);
                prop_assert!(
                    signed_in.is_err(),
                    "{} byte {} ^ {:#x} accepted",
                    member,
                    i,
                    mask
                );
                Ok(())
            },
        );
        if let Err(e) = outcome {
            panic!("{e}");
        }
    }
}
