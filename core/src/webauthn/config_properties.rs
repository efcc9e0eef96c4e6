//! Property tests: whatever an operator (or the CLI, or the JSON API) types into a field, the
//! rules answer a value or a refusal naming that field — never a panic, never an internal
//! error — and what they accept stays valid when read back from the database.
//! (Here, above the configuration rules, because they build the tenant's relying party.)

use std::sync::Arc;

use proptest::prelude::*;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::{
    ErrorCode,
    testing::fuzz::{fingerprint_input, origin_input, passkey_config_input, rp_id_input},
    webauthn::relying_parties::TenantRelyingParty,
};
use crate::{Result, tenants::config::*};

/// A refusal of `field`'s value: a field error, never anything else.
fn refused_as<T: std::fmt::Debug>(
    result: &Result<T>,
    field: &str,
) -> std::result::Result<(), TestCaseError> {
    if let Err(e) = result {
        prop_assert_eq!(e.code(), ErrorCode::InvalidRequest, "{:?}", e);
        prop_assert_eq!(e.field(), Some(field), "{:?}", e);
        prop_assert!(!e.to_string().is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// An accepted RP ID is the trimmed input, a lowercase ASCII host name that is neither
    /// an IP address nor a public suffix, accepted again as it is, and usable as the host
    /// of an origin (so that at least `https://<rp_id>` can be configured with it).
    #[test]
    fn rp_ids_are_accepted_as_host_names_or_refused_with_the_field(value in rp_id_input()) {
        let result = rp_id("f", &value);
        refused_as(&result, "f")?;
        if let Ok(accepted) = result {
            prop_assert_eq!(accepted.as_str(), value.trim());
            prop_assert!(accepted.is_ascii() && accepted == accepted.to_ascii_lowercase());
            prop_assert!(!accepted.is_empty() && accepted.len() <= 253);
            prop_assert!(accepted.parse::<std::net::IpAddr>().is_err());
            prop_assert!(accepted == "localhost" || psl::suffix_str(&accepted) != Some(accepted.as_str()));
            prop_assert_eq!(rp_id("f", &accepted).ok(), Some(accepted.clone()));
            let own = format!("https://{accepted}");
            prop_assert_eq!(
                origin("f", &own, Some(accepted.as_str())).ok(),
                Some(Origin::Web(own.clone())),
                "the RP ID's own origin"
            );
        }
    }

    /// An accepted origin is stored as `as_client_origin()`; read back (without an RP ID, as
    /// the stored configuration is read, and with the one it was checked against) it is
    /// the same origin, and it parses as the URL the relying party is built with.
    #[test]
    fn origins_are_accepted_stably_or_refused_with_the_field(
        value in origin_input(),
        rp in proptest::option::of(rp_id_input()),
    ) {
        let rp = rp.and_then(|r| rp_id("rp_id", &r).ok());
        let result = origin("f", &value, rp.as_deref());
        refused_as(&result, "f")?;
        if let Ok(accepted) = result {
            let stored = accepted.as_client_origin();
            let read_back = origin("f", &stored, None).ok();
            prop_assert_eq!(read_back.as_ref(), Some(&accepted), "read back: {}", stored);
            let checked_again = origin("f", &stored, rp.as_deref()).ok();
            prop_assert_eq!(checked_again.as_ref(), Some(&accepted));
            prop_assert!(url::Url::parse(&stored).is_ok(), "{}", stored);
            match &accepted {
                Origin::Web(web) => {
                    prop_assert!(
                        web.starts_with("https://") || web.starts_with("http://localhost"),
                        "{}", web
                    );
                    if let Some(rp) = &rp {
                        let host = url::Url::parse(web).ok().and_then(|u| u.host_str().map(str::to_owned));
                        prop_assert!(
                            host.as_deref().is_some_and(|h| h == rp || h.ends_with(&format!(".{rp}"))),
                            "{} under {}", web, rp
                        );
                    }
                }
                Origin::Android(hash) => {
                    prop_assert_eq!(stored.len(), ANDROID_ORIGIN_PREFIX.len() + 43);
                    prop_assert_eq!(fingerprint("g", &fingerprint_of(hash)).ok(), Some(*hash));
                }
            }
        }
    }

    /// A whole origins field (one per line): the first bad line is refused with the field,
    /// or every line is kept once, in order.
    #[test]
    fn origin_lists_are_accepted_stably_or_refused_with_the_field(
        lines in proptest::collection::vec(origin_input(), 0..5),
        separator in proptest::sample::select(vec!["\n", "\r\n", "\n\n", " \n\t", "\u{2028}"]),
    ) {
        let text = lines.join(separator);
        let result = origins("origins", &text, None);
        refused_as(&result, "origins")?;
        if let Ok(list) = result {
            for (i, a) in list.iter().enumerate() {
                prop_assert!(!list[i + 1..].contains(a), "duplicate {:?}", a);
            }
            let stored = list.iter().map(Origin::as_client_origin).collect::<Vec<_>>().join("\n");
            prop_assert_eq!(origins("origins", &stored, None).ok(), Some(list));
        }
    }

    /// A signing-certificate fingerprint: 32 bytes that print back the same, or a field
    /// error.
    #[test]
    fn fingerprints_are_32_bytes_or_refused_with_the_field(value in fingerprint_input()) {
        let result = fingerprint("f", &value);
        refused_as(&result, "f")?;
        if let Ok(bytes) = result {
            prop_assert_eq!(fingerprint("f", &fingerprint_of(&bytes)).ok(), Some(bytes));
            let android = format!("{ANDROID_ORIGIN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
            prop_assert_eq!(origin("f", &android, None).ok(), Some(Origin::Android(bytes)));
        }
    }

    /// The select fields' wire names.
    #[test]
    fn enum_names_are_known_or_refused_with_the_field(name in prop_oneof![
        proptest::sample::select(vec![
            "none", "indirect", "direct", "required", "preferred", "discouraged", "any",
            "platform", "cross_platform", "cross-platform", "ES256", "es256", "RS256", "",
        ]).prop_map(str::to_owned),
        any::<String>(),
    ]) {
        let attestation = enum_from::<Attestation>("attestation", &name);
        refused_as(&attestation, "attestation")?;
        if let Ok(value) = attestation {
            prop_assert_eq!(enum_name(&value), name.clone());
        }
        let requirement = enum_from::<Requirement>("user_verification", &name);
        refused_as(&requirement, "user_verification")?;
        let attachment = enum_from::<Attachment>("attachment", &name);
        refused_as(&attachment, "attachment")?;
        let algorithm = enum_from::<Algorithm>("algorithms", &name);
        refused_as(&algorithm, "algorithms")?;
        if let Ok(value) = algorithm {
            prop_assert_eq!(value.label(), name.as_str());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    /// A whole form: the first refusal names one of its fields; an accepted configuration
    /// shows in the form as itself, and (passkeys on) builds the tenant's relying party.
    #[test]
    fn configurations_are_accepted_stably_or_refused_with_a_field(
        input in passkey_config_input(),
        version in any::<i64>(),
    ) {
        match input.validate(version) {
            Err(e) => {
                prop_assert_eq!(e.code(), ErrorCode::InvalidRequest, "{:?}", e);
                let fields = ["rp_id", "rp_name", "origins", "algorithms", "timeout_seconds", "enabled"];
                prop_assert!(e.field().is_some_and(|f| fields.contains(&f)), "{:?}", e);
            }
            Ok(config) => {
                prop_assert_eq!(config.version, version);
                prop_assert!(TIMEOUT_RANGE.contains(&config.timeout_seconds));
                prop_assert!(!config.algorithms.is_empty());
                let again = PasskeyConfigInput::from(&config).validate(version).ok();
                prop_assert_eq!(again.as_ref(), Some(&config), "the form of a saved configuration");
                if config.enabled {
                    let rp = TenantRelyingParty::build(Arc::new(config.clone()));
                    prop_assert!(rp.is_ok(), "{:?}", rp.err());
                    let rp = rp.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(rp.core.get_allowed_origins().len(), config.origins.len());
                }
            }
        }
    }
}
