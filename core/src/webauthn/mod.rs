//! Glue between webauthn-rs and the domain: the portal's relying party, the JSON sent to
//! browsers, verification off the async runtime, and WebAuthn failures mapped to spec codes.

pub(crate) mod ceremonies;
#[cfg(test)]
mod config_properties;
pub mod relying_parties;
pub(crate) mod sealed;

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
pub(crate) const MAX_CREDENTIAL_JSON: usize = 64 * 1024;

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
