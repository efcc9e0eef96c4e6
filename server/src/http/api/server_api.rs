//! The Server API (tenant backends, `Authorization: Bearer lk_sk_…`): enrollment tokens, token
//! validation, users and their authenticators. Handlers parse, authenticate and call the
//! end-user service; the service owns the rules.

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use latchkey_core::{
    Services,
    end_users::{
        AuthenticatorView, DeviceStatus, DeviceView, EnrollmentRequest, InvalidReason,
        ReportedDevice, RiskSignal, Scope, UserView, ValidationKind, ValidationOutcome,
    },
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::BackendKey,
    extract::{ApiJson, ApiPath, Meta},
};
use crate::http::problem::{ApiError, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Services: axum::extract::FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(issue_enrollment_token))
        .routes(routes!(validate_token))
        .routes(routes!(get_user))
        .routes(routes!(list_authenticators))
        .routes(routes!(revoke_authenticator))
        .routes(routes!(list_devices))
        .routes(routes!(revoke_device))
}

/// What an enrollment token allows beyond a user's first passkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum ScopeName {
    /// Register another passkey for a user who already has one.
    #[serde(rename = "add:authenticators")]
    AddAuthenticators,
}

impl From<ScopeName> for Scope {
    fn from(scope: ScopeName) -> Self {
        match scope {
            ScopeName::AddAuthenticators => Scope::AddAuthenticators,
        }
    }
}

impl From<Scope> for ScopeName {
    fn from(scope: Scope) -> Self {
        match scope {
            Scope::AddAuthenticators => ScopeName::AddAuthenticators,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"username": "ada@example.com", "display_name": "Ada Lovelace", "scopes": ["add:authenticators"], "ttl_seconds": 600}))]
pub struct EnrollmentTokenRequest {
    /// Shown by the authenticator; stored with the user (at most 256 characters).
    #[schema(nullable = false)]
    pub username: Option<String>,
    #[schema(nullable = false)]
    pub display_name: Option<String>,
    /// `add:authenticators` lets a user who already has a passkey add another.
    #[serde(default)]
    pub scopes: Vec<ScopeName>,
    /// Lifetime in seconds, 60..=3600 (default 600).
    #[schema(nullable = false, minimum = 60, maximum = 3600)]
    pub ttl_seconds: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentTokenResponse {
    /// `lk_enr_…`, for the user's browser (`Latchkey.signUp({ token })`). Single-use.
    pub token: String,
    pub user_id: String,
    pub scopes: Vec<ScopeName>,
    pub expires_at: DateTime<Utc>,
    /// The user already has an active passkey: only a token with `add:authenticators` can
    /// register another.
    pub has_authenticators: bool,
}

/// Issue an enrollment token
///
/// Creates the user on first use. A user who already has an active authenticator can only
/// enroll another with the `add:authenticators` scope; without it the registration is refused
/// with `scope_required`.
#[utoipa::path(
    post,
    path = "/api/v1/users/{user_id}/enrollment-tokens",
    tag = "Server API",
    params(("user_id" = String, Path, description = "Your identifier for the user (1–128 printable characters)")),
    request_body(content = EnrollmentTokenRequest, content_type = "application/json"),
    responses(
        (status = 201, body = EnrollmentTokenResponse, example = json!({
            "token": "lk_enr_Jx2…", "user_id": "user-42", "scopes": ["add:authenticators"],
            "expires_at": "2026-11-24T10:10:00Z", "has_authenticators": true})),
        (status = 400, description = "`invalid_request` (the field is named)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`passkeys_disabled`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn issue_enrollment_token(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
    ApiPath(user_id): ApiPath<String>,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<EnrollmentTokenRequest>,
) -> Result<(StatusCode, Json<EnrollmentTokenResponse>), ApiError> {
    let request = EnrollmentRequest {
        username: body.username,
        display_name: body.display_name,
        scopes: body.scopes.into_iter().map(Scope::from).collect(),
        ttl_seconds: body.ttl_seconds,
    };
    let issued = services
        .end_users()
        .issue_enrollment_token(&key.access(), &user_id, request, meta)
        .await?;
    metrics::counter!("latchkey_enrollment_tokens_issued_total").increment(1);
    Ok((
        StatusCode::CREATED,
        Json(EnrollmentTokenResponse {
            token: issued.token,
            user_id: issued.user_id,
            scopes: issued.scopes.into_iter().map(ScopeName::from).collect(),
            expires_at: issued.expires_at,
            has_authenticators: issued.has_authenticators,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "lk_val_Qm9…"}))]
pub struct ValidateRequest {
    /// The `lk_val_…` token your frontend received from `signUp` / `signIn`.
    pub token: String,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CeremonyKindName {
    SignUp,
    SignIn,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvalidReasonName {
    Unknown,
    Expired,
    AlreadyUsed,
    AuthenticatorRevoked,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ValidateResponse {
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<CeremonyKindName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The user's username, `null` when none was given (present when `valid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authenticator_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<DateTime<Utc>>,
    /// The passkey as it was at the ceremony.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub authenticator: Option<ReportedAuthenticatorResponse>,
    /// The device the ceremony came from, as far as a device key says (see the Client API's
    /// `device`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub device: Option<ReportedDeviceResponse>,
    /// Sign-ins: whether this was the passkey's first sign-in.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub first_sign_in: Option<bool>,
    /// Sign-ins: the passkey's successful sign-ins, this one included.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sign_in_count: Option<i64>,
    /// Sign-ins: when the passkey was last used before this sign-in (absent at its first).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// What in this ceremony a backend may want to act on (step-up, a notice to the user):
    /// `new_device`, `device_key_failed`, `backup_state_changed`, `counter_anomaly`,
    /// `user_not_verified`, `outside_policy`. Empty when nothing was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub risk_signals: Option<Vec<RiskSignalName>>,
    /// Why the token is not valid: `unknown` (also a token of another tenant), `expired`,
    /// `already_used`, `authenticator_revoked` (the passkey that signed in or registered was
    /// revoked before the token was validated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<InvalidReasonName>,
}

/// The passkey of a validated ceremony.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportedAuthenticatorResponse {
    pub id: Uuid,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub provider_name: Option<String>,
    /// A synced (backed-up) passkey rather than one bound to a single authenticator.
    pub synced: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatusName {
    Known,
    New,
    None,
}

/// `known`: a bound device of this user; `new`: a device key seen for the first time (bound
/// from now on); `none`: no device key, or one whose signature did not verify.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportedDeviceResponse {
    pub status: DeviceStatusName,
    /// `known` and `new`: the device (`GET /api/v1/users/{user_id}/devices`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub id: Option<Uuid>,
    /// `known` and `new`: when the user first used it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub first_seen_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RiskSignalName {
    NewDevice,
    DeviceKeyFailed,
    BackupStateChanged,
    CounterAnomaly,
    UserNotVerified,
    OutsidePolicy,
}

impl From<RiskSignal> for RiskSignalName {
    fn from(r: RiskSignal) -> Self {
        match r {
            RiskSignal::NewDevice => Self::NewDevice,
            RiskSignal::DeviceKeyFailed => Self::DeviceKeyFailed,
            RiskSignal::BackupStateChanged => Self::BackupStateChanged,
            RiskSignal::CounterAnomaly => Self::CounterAnomaly,
            RiskSignal::UserNotVerified => Self::UserNotVerified,
            RiskSignal::OutsidePolicy => Self::OutsidePolicy,
        }
    }
}

impl From<ReportedDevice> for ReportedDeviceResponse {
    fn from(d: ReportedDevice) -> Self {
        Self {
            status: match d.status {
                DeviceStatus::Known => DeviceStatusName::Known,
                DeviceStatus::New => DeviceStatusName::New,
                DeviceStatus::None => DeviceStatusName::None,
            },
            id: d.id,
            first_seen_at: d.first_seen_at,
        }
    }
}

/// Validate a sign-up or sign-in token
///
/// Single-use: the first validation answers `valid: true`, any later one
/// `valid: false, reason: "already_used"`. Tokens live 5 minutes. A token whose passkey was
/// revoked after the ceremony answers `valid: false, reason: "authenticator_revoked"`.
///
/// A valid token also says what the ceremony saw: the passkey, the device (`known`, `new` or
/// `none`), for sign-ins the passkey's first sign-in, count and previous use, and risk signals.
#[utoipa::path(
    post,
    path = "/api/v1/tokens/validate",
    tag = "Server API",
    request_body(content = ValidateRequest, content_type = "application/json"),
    responses(
        (status = 200, body = ValidateResponse, examples(
            ("valid" = (value = json!({"valid": true, "kind": "sign_in", "user_id": "user-42",
                "username": "ada@example.com", "authenticator_id": "0193a2b4-7c1d-7e2f-8a3b-4c5d6e7f8091",
                "verified_at": "2026-11-24T10:00:00Z",
                "authenticator": {"id": "0193a2b4-7c1d-7e2f-8a3b-4c5d6e7f8091", "name": "Google Password Manager",
                    "provider_name": "Google Password Manager", "synced": true, "created_at": "2026-11-20T09:00:00Z"},
                "device": {"status": "known", "id": "5b1f3c2e-9a4d-4e8f-8c7b-2d6e1f0a9b3c", "first_seen_at": "2026-11-20T09:00:00Z"},
                "first_sign_in": false, "sign_in_count": 12, "last_used_at": "2026-11-23T18:30:00Z",
                "risk_signals": []}))),
            ("new device" = (value = json!({"valid": true, "kind": "sign_in", "user_id": "user-42",
                "username": "ada@example.com", "authenticator_id": "0193a2b4-7c1d-7e2f-8a3b-4c5d6e7f8091",
                "verified_at": "2026-11-24T10:00:00Z",
                "authenticator": {"id": "0193a2b4-7c1d-7e2f-8a3b-4c5d6e7f8091", "name": "iCloud Keychain",
                    "provider_name": "iCloud Keychain", "synced": true, "created_at": "2026-11-20T09:00:00Z"},
                "device": {"status": "new", "id": "8c2a7d1e-3b5f-4a9c-9e6d-1f0b2c3d4e5f", "first_seen_at": "2026-11-24T10:00:00Z"},
                "first_sign_in": false, "sign_in_count": 3, "last_used_at": "2026-11-22T08:00:00Z",
                "risk_signals": ["new_device"]}))),
            ("used" = (value = json!({"valid": false, "reason": "already_used"}))),
        )),
        (status = 400, description = "`invalid_request`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn validate_token(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<ValidateRequest>,
) -> Result<Json<ValidateResponse>, ApiError> {
    let outcome = services
        .end_users()
        .validate_token(&key.access(), &body.token, meta)
        .await?;
    let counted = match &outcome {
        ValidationOutcome::Valid(v) => match v.kind {
            ValidationKind::SignUp => "valid_sign_up",
            ValidationKind::SignIn => "valid_sign_in",
        },
        ValidationOutcome::Invalid(InvalidReason::Unknown) => "unknown",
        ValidationOutcome::Invalid(InvalidReason::Expired) => "expired",
        ValidationOutcome::Invalid(InvalidReason::AlreadyUsed) => "already_used",
        ValidationOutcome::Invalid(InvalidReason::AuthenticatorRevoked) => "authenticator_revoked",
    };
    metrics::counter!("latchkey_token_validations_total", "outcome" => counted).increment(1);
    Ok(Json(match outcome {
        ValidationOutcome::Valid(v) => ValidateResponse {
            valid: true,
            kind: Some(match v.kind {
                ValidationKind::SignUp => CeremonyKindName::SignUp,
                ValidationKind::SignIn => CeremonyKindName::SignIn,
            }),
            user_id: Some(v.user_id),
            username: Some(v.username),
            authenticator_id: Some(v.authenticator_id),
            verified_at: Some(v.verified_at),
            authenticator: v.report.as_ref().map(|r| ReportedAuthenticatorResponse {
                id: r.authenticator.id,
                name: r.authenticator.name.clone(),
                provider_name: r.authenticator.provider_name.clone(),
                synced: r.authenticator.synced,
                created_at: r.authenticator.created_at,
            }),
            first_sign_in: v.report.as_ref().and_then(|r| r.first_sign_in),
            sign_in_count: v.report.as_ref().and_then(|r| r.sign_in_count),
            last_used_at: v.report.as_ref().and_then(|r| r.last_used_at),
            risk_signals: v
                .report
                .as_ref()
                .map(|r| r.risk_signals.iter().copied().map(Into::into).collect()),
            device: v.report.map(|r| r.device.into()),
            reason: None,
        },
        ValidationOutcome::Invalid(reason) => ValidateResponse {
            valid: false,
            kind: None,
            user_id: None,
            username: None,
            authenticator_id: None,
            verified_at: None,
            authenticator: None,
            device: None,
            first_sign_in: None,
            sign_in_count: None,
            last_used_at: None,
            risk_signals: None,
            reason: Some(match reason {
                InvalidReason::Unknown => InvalidReasonName::Unknown,
                InvalidReason::Expired => InvalidReasonName::Expired,
                InvalidReason::AlreadyUsed => InvalidReasonName::AlreadyUsed,
                InvalidReason::AuthenticatorRevoked => InvalidReasonName::AuthenticatorRevoked,
            }),
        },
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub user_id: String,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Active (unrevoked) authenticators.
    pub authenticator_count: u64,
}

impl From<UserView> for UserResponse {
    fn from(user: UserView) -> Self {
        Self {
            user_id: user.user_id,
            username: user.username,
            display_name: user.display_name,
            created_at: user.created_at,
            authenticator_count: user.authenticator_count,
        }
    }
}

/// Get a user
#[utoipa::path(
    get,
    path = "/api/v1/users/{user_id}",
    tag = "Server API",
    params(("user_id" = String, Path, description = "Your identifier for the user")),
    responses(
        (status = 200, body = UserResponse, example = json!({"user_id": "user-42",
            "username": "ada@example.com", "display_name": "Ada Lovelace",
            "created_at": "2026-11-24T10:00:00Z", "authenticator_count": 2})),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user in your tenant", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many requests (or failed authentications, or unfinished ceremonies) from this address; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn get_user(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<UserResponse>, ApiError> {
    let user = services.end_users().user(&key.access(), &user_id).await?;
    Ok(Json(user.into()))
}

/// One passkey of a user.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthenticatorResponse {
    pub id: Uuid,
    pub name: String,
    /// The authenticator model's AAGUID (all zeros when it does not say).
    pub aaguid: Uuid,
    /// The passkey provider, when its AAGUID is known ("Google Password Manager", …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
    /// May be synced to other devices.
    pub backup_eligible: bool,
    /// Is currently backed up (synced).
    pub backup_state: bool,
    pub transports: Vec<String>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// What the attestation proved at registration: `none`, `self`, or `certified` (it chained
    /// to the model's roots in the instance's FIDO metadata).
    #[schema(example = "none")]
    pub attestation_trust: String,
    /// A certified passkey's FIDO certification level (`FIDO_CERTIFIED_L1`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub certification_level: Option<String>,
    /// The status FIDO metadata reports for the model when it reports it revoked or
    /// compromised (`REVOKED`, `USER_VERIFICATION_BYPASS`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub metadata_status: Option<String>,
}

impl From<AuthenticatorView> for AuthenticatorResponse {
    fn from(a: AuthenticatorView) -> Self {
        Self {
            id: a.id,
            name: a.name,
            aaguid: a.aaguid,
            provider_name: a.provider_name,
            backup_eligible: a.backup_eligible,
            backup_state: a.backup_state,
            transports: a.transports,
            created_at: a.created_at,
            last_used_at: a.last_used_at,
            revoked_at: a.revoked_at,
            attestation_trust: a.attestation_trust,
            certification_level: a.certification_level,
            metadata_status: a.metadata_status,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuthenticatorsResponse {
    pub authenticators: Vec<AuthenticatorResponse>,
}

/// List a user's authenticators
///
/// Revoked ones included (with `revoked_at`), oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/users/{user_id}/authenticators",
    tag = "Server API",
    params(("user_id" = String, Path, description = "Your identifier for the user")),
    responses(
        (status = 200, body = AuthenticatorsResponse, example = json!({"authenticators": [{
            "id": "0193a2b4-7c1d-7e2f-8a3b-4c5d6e7f8091", "name": "Google Password Manager",
            "aaguid": "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4", "provider_name": "Google Password Manager",
            "backup_eligible": true, "backup_state": true, "transports": ["hybrid", "internal"],
            "created_at": "2026-11-24T10:00:00Z", "last_used_at": "2026-11-24T11:00:00Z",
            "attestation_trust": "none"}]})),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many requests (or failed authentications, or unfinished ceremonies) from this address; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn list_authenticators(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<AuthenticatorsResponse>, ApiError> {
    let list = services
        .end_users()
        .authenticators(&key.access(), &user_id)
        .await?;
    Ok(Json(AuthenticatorsResponse {
        authenticators: list.into_iter().map(Into::into).collect(),
    }))
}

/// Revoke an authenticator
///
/// Kept for the audit trail, never usable again: the next sign-in with it is refused with
/// `credential_revoked`, on every instance. Revoking a revoked authenticator is a no-op.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{user_id}/authenticators/{authenticator_id}",
    tag = "Server API",
    params(
        ("user_id" = String, Path, description = "Your identifier for the user"),
        ("authenticator_id" = Uuid, Path, description = "The authenticator's `id`"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many requests (or failed authentications, or unfinished ceremonies) from this address; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn revoke_authenticator(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
    ApiPath((user_id, authenticator_id)): ApiPath<(String, Uuid)>,
    Meta(meta): Meta,
) -> Result<StatusCode, ApiError> {
    services
        .end_users()
        .revoke_authenticator(
            &key.access(),
            &user_id,
            authenticator_id,
            "Revoked through the Server API",
            meta,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's bound device: a device key sent with their ceremonies (the SDK's `bindDevice`).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceResponse {
    pub id: Uuid,
    /// The user agent of its most recent ceremony.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub user_agent: Option<String>,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// Sign-ins from this device.
    pub sign_in_count: i64,
}

impl From<DeviceView> for DeviceResponse {
    fn from(d: DeviceView) -> Self {
        Self {
            id: d.id,
            user_agent: d.user_agent,
            first_seen_at: d.first_seen_at,
            last_seen_at: d.last_seen_at,
            sign_in_count: d.sign_in_count,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DevicesResponse {
    pub devices: Vec<DeviceResponse>,
}

/// List a user's bound devices
///
/// Most recently seen first.
#[utoipa::path(
    get,
    path = "/api/v1/users/{user_id}/devices",
    tag = "Server API",
    params(("user_id" = String, Path, description = "Your identifier for the user")),
    responses(
        (status = 200, body = DevicesResponse, example = json!({"devices": [{
            "id": "5b1f3c2e-9a4d-4e8f-8c7b-2d6e1f0a9b3c",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36",
            "first_seen_at": "2026-11-20T09:00:00Z", "last_seen_at": "2026-11-24T10:00:00Z",
            "sign_in_count": 12}]})),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many requests (or failed authentications, or unfinished ceremonies) from this address; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn list_devices(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<DevicesResponse>, ApiError> {
    let list = services
        .end_users()
        .devices(&key.access(), &user_id)
        .await?;
    Ok(Json(DevicesResponse {
        devices: list.into_iter().map(Into::into).collect(),
    }))
}

/// Revoke a bound device
///
/// The device is forgotten (the audit log keeps `device.revoked`): its next sign-in reports it
/// as `new`, with the risk signal `new_device`.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{user_id}/devices/{device_id}",
    tag = "Server API",
    params(
        ("user_id" = String, Path, description = "Your identifier for the user"),
        ("device_id" = Uuid, Path, description = "The device's `id`"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such user or device (also a device revoked already)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many requests (or failed authentications, or unfinished ceremonies) from this address; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn revoke_device(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
    ApiPath((user_id, device_id)): ApiPath<(String, Uuid)>,
    Meta(meta): Meta,
) -> Result<StatusCode, ApiError> {
    services
        .end_users()
        .revoke_device(&key.access(), &user_id, device_id, meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
