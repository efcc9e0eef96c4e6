//! The domain error. Every variant maps to exactly one of the spec's stable problem codes; the
//! edges translate it (HTTP problem+json, server-function error, CLI exit) and never invent codes.

use serde::{Deserialize, Serialize};

/// The spec's stable error codes (`code` of every problem+json answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    PasskeysDisabled,
    TokenInvalid,
    TokenExpired,
    TokenUsed,
    ScopeRequired,
    CeremonyInvalid,
    CeremonyExpired,
    OriginMismatch,
    RpIdMismatch,
    ChallengeMismatch,
    UserVerificationRequired,
    CredentialUnknown,
    CredentialRevoked,
    CredentialExists,
    CounterRegressed,
    AuthenticatorNotAllowed,
    PayloadTooLarge,
    RateLimited,
    StepUpRequired,
    Internal,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 24] = [
        Self::InvalidRequest,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::PasskeysDisabled,
        Self::TokenInvalid,
        Self::TokenExpired,
        Self::TokenUsed,
        Self::ScopeRequired,
        Self::CeremonyInvalid,
        Self::CeremonyExpired,
        Self::OriginMismatch,
        Self::RpIdMismatch,
        Self::ChallengeMismatch,
        Self::UserVerificationRequired,
        Self::CredentialUnknown,
        Self::CredentialRevoked,
        Self::CredentialExists,
        Self::CounterRegressed,
        Self::AuthenticatorNotAllowed,
        Self::PayloadTooLarge,
        Self::RateLimited,
        Self::StepUpRequired,
        Self::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::PasskeysDisabled => "passkeys_disabled",
            Self::TokenInvalid => "token_invalid",
            Self::TokenExpired => "token_expired",
            Self::TokenUsed => "token_used",
            Self::ScopeRequired => "scope_required",
            Self::CeremonyInvalid => "ceremony_invalid",
            Self::CeremonyExpired => "ceremony_expired",
            Self::OriginMismatch => "origin_mismatch",
            Self::RpIdMismatch => "rp_id_mismatch",
            Self::ChallengeMismatch => "challenge_mismatch",
            Self::UserVerificationRequired => "user_verification_required",
            Self::CredentialUnknown => "credential_unknown",
            Self::CredentialRevoked => "credential_revoked",
            Self::CredentialExists => "credential_exists",
            Self::CounterRegressed => "counter_regressed",
            Self::AuthenticatorNotAllowed => "authenticator_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RateLimited => "rate_limited",
            Self::StepUpRequired => "step_up_required",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status every edge answers with for this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidRequest
            | Self::CeremonyInvalid
            | Self::CeremonyExpired
            | Self::OriginMismatch
            | Self::RpIdMismatch
            | Self::ChallengeMismatch
            | Self::UserVerificationRequired
            | Self::CounterRegressed => 400,
            Self::Unauthorized
            | Self::TokenInvalid
            | Self::TokenExpired
            | Self::TokenUsed
            | Self::CredentialUnknown
            | Self::CredentialRevoked => 401,
            Self::Forbidden
            | Self::PasskeysDisabled
            | Self::ScopeRequired
            | Self::AuthenticatorNotAllowed
            | Self::StepUpRequired => 403,
            Self::NotFound => 404,
            Self::CredentialExists => 409,
            Self::PayloadTooLarge => 413,
            Self::RateLimited => 429,
            Self::Internal => 500,
        }
    }

    /// A short human title (the problem's `title`).
    pub fn title(self) -> &'static str {
        match self {
            Self::InvalidRequest => "The request is not valid",
            Self::Unauthorized => "Authentication is required",
            Self::Forbidden => "Not allowed",
            Self::NotFound => "Not found",
            Self::PasskeysDisabled => "Passkeys are not enabled for this tenant",
            Self::TokenInvalid => "The token is not valid",
            Self::TokenExpired => "The token has expired",
            Self::TokenUsed => "The token has already been used",
            Self::ScopeRequired => "The token lacks a required scope",
            Self::CeremonyInvalid => "The ceremony is not valid",
            Self::CeremonyExpired => "The ceremony has expired",
            Self::OriginMismatch => "The origin is not expected",
            Self::RpIdMismatch => "The relying party ID does not match",
            Self::ChallengeMismatch => "The challenge does not match",
            Self::UserVerificationRequired => "User verification is required",
            Self::CredentialUnknown => "The credential is not known",
            Self::CredentialRevoked => "The credential has been revoked",
            Self::CredentialExists => "The credential is already registered",
            Self::CounterRegressed => "The signature counter went backwards",
            Self::AuthenticatorNotAllowed => {
                "The tenant's policy does not allow this authenticator"
            }
            Self::PayloadTooLarge => "The request body is too large",
            Self::RateLimited => "Too many requests",
            Self::StepUpRequired => "Confirm with a passkey first",
            Self::Internal => "Internal error",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal or failure of a domain operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input; `field` names the offending field when there is one.
    #[error("{message}")]
    InvalidRequest {
        field: Option<String>,
        message: String,
    },
    #[error("authentication is required")]
    Unauthorized,
    #[error("not allowed")]
    Forbidden,
    /// Unknown, or belonging to another tenant: the two are indistinguishable on purpose.
    #[error("not found")]
    NotFound,
    /// Any other spec-defined refusal, with a message safe to show the caller.
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
    /// `credential_unknown` at sign-in. `to_tenant`: the tenant has never stored this credential
    /// ID, so the browser may be told to forget it (see `end_users::signals` for why only then).
    #[error("This passkey is not registered here.")]
    UnknownCredential { to_tenant: bool },
    /// Too much from one source (`rate_limited`): it may try again in `retry_after_seconds`.
    #[error("{message}")]
    Throttled {
        message: String,
        retry_after_seconds: u64,
    },
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub fn refused(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Refused {
            code,
            message: message.into(),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidRequest { .. } => ErrorCode::InvalidRequest,
            Self::Unauthorized => ErrorCode::Unauthorized,
            Self::Forbidden => ErrorCode::Forbidden,
            Self::NotFound => ErrorCode::NotFound,
            Self::Refused { code, .. } => *code,
            Self::UnknownCredential { .. } => ErrorCode::CredentialUnknown,
            Self::Throttled { .. } => ErrorCode::RateLimited,
            Self::Database(_) | Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// What may be shown to the caller. Internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            Self::Database(_) | Self::Internal(_) => ErrorCode::Internal.title().to_owned(),
            other => other.to_string(),
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            Self::InvalidRequest { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// Whether the browser may be told the presented credential is unknown (Signal API).
    pub fn signals_unknown_credential(&self) -> bool {
        matches!(self, Self::UnknownCredential { to_tenant: true })
    }

    /// Seconds until a throttled caller may try again (`Retry-After`).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Throttled {
                retry_after_seconds,
                ..
            } => Some(*retry_after_seconds),
            _ => None,
        }
    }

    pub fn is_internal(&self) -> bool {
        self.code() == ErrorCode::Internal
    }
}

/// Whether a database error is a unique-constraint violation (a duplicate the caller may
/// answer, not a failure).
pub(crate) fn is_unique_violation(err: &sea_orm::DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// For `map_err` on an insert: a unique-constraint violation becomes `refusal` (what the caller
/// is told: the duplicate is theirs), any other database error stays the internal error it is.
pub(crate) fn on_unique(refusal: impl FnOnce() -> Error) -> impl FnOnce(sea_orm::DbErr) -> Error {
    move |err| {
        if is_unique_violation(&err) {
            refusal()
        } else {
            Error::from(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialise_as_their_spec_names() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap_or_default();
            assert_eq!(json, serde_json::Value::String(code.as_str().into()));
            assert!((400..600).contains(&code.http_status()), "{code}");
        }
    }

    #[test]
    fn internal_errors_do_not_leak_details() {
        let err = Error::Database(sea_orm::DbErr::Custom("password=hunter2".into()));
        assert_eq!(err.code(), ErrorCode::Internal);
        assert!(!err.public_message().contains("hunter2"));
    }
}
