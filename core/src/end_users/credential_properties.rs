//! Property tests of the credential parser and the verification behind it: whatever a browser
//! (or anyone) posts as a credential is refused with a client code, never an internal error,
//! never a panic — arbitrary text, arbitrary JSON, and real credentials with changes.
//! (Here, with the end users, because they exercise `check_assertion`: the webauthn glue stays
//! below the end-user rules, test code included.)

use std::sync::Arc;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use proptest::{prelude::*, test_runner::TestRunner};
use serde_json::Value;
use webauthn_rs_core::proto::{
    AuthenticationState, Credential, PublicKeyCredential, RegisterPublicKeyCredential,
    RegistrationState, UserVerificationPolicy,
};

use crate::{ErrorCode, Result, webauthn::*};
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
    let signed_in = parse_credential::<PublicKeyCredential>(&assertion.to_string()).and_then(|a| {
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
    let member = proptest::sample::select(vec!["clientDataJSON", "authenticatorData", "signature"]);
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
