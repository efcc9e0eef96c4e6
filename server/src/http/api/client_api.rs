//! The Client API (browsers and apps of a tenant's end users): passkey registration with an
//! enrollment token, and sign-in. Each finished ceremony answers a validation token for the
//! tenant's backend.

use axum::{Json, extract::State, http::request::Parts};
use latchkey_core::{
    Error, ErrorCode, Services,
    end_users::{ClientCeremony, DeviceProof, Signals},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    extract::{ApiJson, ApiPath, Meta, bearer},
    server_api::AuthenticatorResponse,
};
use crate::http::problem::{ApiError, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Services: axum::extract::FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(registration_options))
        .routes(routes!(registration_verify))
        .routes(routes!(authentication_options))
        .routes(routes!(authentication_verify))
}

/// The enrollment token a registration call carries.
pub struct EnrollmentBearer(String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for EnrollmentBearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        bearer(parts).map(|t| Self(t.to_owned())).ok_or_else(|| {
            ApiError(Error::refused(
                ErrorCode::TokenInvalid,
                "Send the enrollment token: Authorization: Bearer lk_enr_…",
            ))
        })
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RegistrationOptionsRequest {
    /// For conditional create (`mediation: "conditional"`, an automatic passkey upgrade): the
    /// response may then lack user presence, as password managers create such passkeys without
    /// asking. Default `false`.
    #[schema(nullable = false)]
    pub conditional: Option<bool>,
}

/// Options for `navigator.credentials.create()` / `get()`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CeremonyResponse {
    /// Send it back with the browser's response. Opaque: a UUID for a registration, a sealed
    /// ceremony (base64url, a few hundred characters) for a sign-in.
    pub ceremony_id: String,
    /// WebAuthn L3 JSON (`PublicKeyCredentialCreationOptionsJSON` or
    /// `PublicKeyCredentialRequestOptionsJSON`): pass it to
    /// `PublicKeyCredential.parseCreationOptionsFromJSON` / `parseRequestOptionsFromJSON`.
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
}

impl From<ClientCeremony> for CeremonyResponse {
    fn from(c: ClientCeremony) -> Self {
        Self {
            ceremony_id: c.ceremony_id,
            public_key: c.public_key,
        }
    }
}

/// Start a passkey registration
///
/// Built from the tenant's passkey configuration; `excludeCredentials` lists the user's active
/// passkeys. The enrollment token is checked (not yet used up).
#[utoipa::path(
    post,
    path = "/api/client/v1/registration/options",
    tag = "Client API",
    request_body(content = RegistrationOptionsRequest, content_type = "application/json", example = json!({})),
    responses(
        (status = 200, body = CeremonyResponse, example = json!({
            "ceremony_id": "0193a2b4-7c1d-7e2f-8a3b-4c5d6e7f8091",
            "publicKey": {"rp": {"name": "Example", "id": "example.com"},
                "user": {"id": "AZOitHwdfi-KO0xdbn-AkQ", "name": "ada@example.com", "displayName": "Ada"},
                "challenge": "q2Vb…", "pubKeyCredParams": [{"type": "public-key", "alg": -7}],
                "timeout": 300000, "attestation": "none",
                "authenticatorSelection": {"residentKey": "preferred", "requireResidentKey": false, "userVerification": "preferred"}}})),
        (status = 401, description = "`token_invalid`, `token_expired`, `token_used`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`scope_required`, `passkeys_disabled`", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "`invalid_request`: the body is not the documented JSON (the problem's `field` names the member at fault)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many requests (or failed authentications, or unfinished ceremonies) from this address; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("enrollment_token" = []))
)]
async fn registration_options(
    State(services): State<Services>,
    EnrollmentBearer(token): EnrollmentBearer,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<RegistrationOptionsRequest>,
) -> Result<Json<CeremonyResponse>, ApiError> {
    let ceremony = services
        .end_users()
        .begin_registration_as(&token, body.conditional.unwrap_or(false), meta)
        .await?;
    Ok(Json(ceremony.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RegistrationVerifyRequest {
    /// From the options call, as it came.
    pub ceremony_id: String,
    /// `RegistrationResponseJSON` (`PublicKeyCredential.toJSON()` of the new credential).
    #[schema(value_type = Object)]
    pub credential: Box<serde_json::value::RawValue>,
    /// A name for the passkey; by default the provider's ("Google Password Manager") or
    /// "Passkey".
    #[schema(nullable = false)]
    pub name: Option<String>,
    /// Binds a device key to the user (the SDK's `bindDevice`; an app may send its own).
    #[schema(nullable = false)]
    pub device: Option<DeviceProofRequest>,
}

/// A device key and its signature over this response's `clientDataJSON` bytes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceProofRequest {
    /// The device's P-256 public key: SubjectPublicKeyInfo DER, base64url.
    pub public_key: String,
    /// ECDSA with SHA-256 over the exact bytes of the credential's `response.clientDataJSON`,
    /// base64url: 64 bytes `r‖s` (WebCrypto) or ASN.1 DER (Android, iOS).
    pub signature: String,
}

impl From<DeviceProofRequest> for DeviceProof {
    fn from(d: DeviceProofRequest) -> Self {
        Self {
            public_key: d.public_key,
            signature: d.signature,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationVerifyResponse {
    /// `lk_val_…` for your backend (`POST /api/v1/tokens/validate`), valid 5 minutes.
    pub token: String,
    pub authenticator: AuthenticatorResponse,
    pub signals: SignalsResponse,
}

/// Finish a passkey registration
///
/// Verifies the browser's response and stores the passkey; the enrollment token is used up.
#[utoipa::path(
    post,
    path = "/api/client/v1/registration/verify",
    tag = "Client API",
    request_body(content = RegistrationVerifyRequest, content_type = "application/json"),
    responses(
        (status = 200, body = RegistrationVerifyResponse),
        (status = 400, description = "`invalid_request`, `ceremony_invalid`, `ceremony_expired`, `origin_mismatch`, `rp_id_mismatch`, `challenge_mismatch`, `user_verification_required`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`token_invalid`, `token_expired`, `token_used`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`scope_required`, `passkeys_disabled`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`credential_exists`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many requests (or failed authentications, or unfinished ceremonies) from this address; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("enrollment_token" = []))
)]
async fn registration_verify(
    State(services): State<Services>,
    EnrollmentBearer(token): EnrollmentBearer,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<RegistrationVerifyRequest>,
) -> Result<Json<RegistrationVerifyResponse>, ApiError> {
    let registered = services
        .end_users()
        .finish_registration(
            &token,
            &body.ceremony_id,
            body.credential.get(),
            body.name.as_deref(),
            body.device.map(DeviceProof::from).as_ref(),
            meta,
        )
        .await?;
    Ok(Json(RegistrationVerifyResponse {
        token: registered.token,
        authenticator: registered.authenticator.into(),
        signals: registered.signals.into(),
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AuthenticationOptionsRequest {
    /// Sign in a known user (their passkeys in `allowCredentials`); leave out for discoverable
    /// passkeys (a passkey picker, or autofill / conditional UI).
    #[schema(nullable = false)]
    pub user_id: Option<String>,
}

/// Start a sign-in
#[utoipa::path(
    post,
    path = "/api/client/v1/tenants/{tenant_id}/authentication/options",
    tag = "Client API",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id")),
    request_body(content = AuthenticationOptionsRequest, content_type = "application/json", example = json!({"user_id": "user-42"})),
    responses(
        (status = 200, body = CeremonyResponse, example = json!({
            "ceremony_id": "q3Vb0T8…",
            "publicKey": {"challenge": "x1Y…", "timeout": 300000, "rpId": "example.com",
                "allowCredentials": [], "userVerification": "preferred"}})),
        (status = 403, description = "`passkeys_disabled`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such tenant", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many requests from this address (see `Retry-After`)", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "`invalid_request`: the body is not the documented JSON (the problem's `field` names the member at fault)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn authentication_options(
    State(services): State<Services>,
    ApiPath(tenant_id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<AuthenticationOptionsRequest>,
) -> Result<Json<CeremonyResponse>, ApiError> {
    let ceremony = services
        .end_users()
        .begin_authentication(tenant_id, body.user_id.as_deref())
        .await?;
    Ok(Json(ceremony.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AuthenticationVerifyRequest {
    /// From the options call, as it came.
    pub ceremony_id: String,
    /// `AuthenticationResponseJSON` (`PublicKeyCredential.toJSON()` of the assertion).
    #[schema(value_type = Object)]
    pub credential: Box<serde_json::value::RawValue>,
    /// The browser's device key, signed over this assertion's `clientDataJSON`: the validation
    /// reports the device as `known`, `new` or `none`.
    #[schema(nullable = false)]
    pub device: Option<DeviceProofRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignInResponse {
    /// `lk_val_…` for your backend (`POST /api/v1/tokens/validate`), valid 5 minutes.
    pub token: String,
    pub signals: SignalsResponse,
}

/// What the browser's password manager should be told (the WebAuthn Signal API); the SDK passes
/// it on unless `signals: false`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignalsResponse {
    /// The RP ID the passkeys are bound to (`rpId` of every signal).
    pub rp_id: String,
    /// The user handle (`user.id` of the passkeys), base64url.
    pub user_id: String,
    /// The user's active passkeys' credential IDs, base64url, for
    /// `PublicKeyCredential.signalAllAcceptedCredentials`: a passkey of this user missing from
    /// it (revoked) is hidden by the password manager. Absent when the user has more than 100
    /// active passkeys (a partial list would hide the others).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub all_accepted_credential_ids: Option<Vec<String>>,
    /// Present when the user's username or display name changed since this passkey was last
    /// used, for `PublicKeyCredential.signalCurrentUserDetails`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub current_user_details: Option<UserDetailsResponse>,
}

/// `name` and `displayName` as a new passkey would get them.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserDetailsResponse {
    pub name: String,
    pub display_name: String,
}

impl From<Signals> for SignalsResponse {
    fn from(s: Signals) -> Self {
        Self {
            rp_id: s.rp_id,
            user_id: s.user_id,
            all_accepted_credential_ids: s.all_accepted_credential_ids,
            current_user_details: s.current_user_details.map(|d| UserDetailsResponse {
                name: d.name,
                display_name: d.display_name,
            }),
        }
    }
}

/// Finish a sign-in
#[utoipa::path(
    post,
    path = "/api/client/v1/tenants/{tenant_id}/authentication/verify",
    tag = "Client API",
    params(("tenant_id" = Uuid, Path, description = "The tenant's id")),
    request_body(content = AuthenticationVerifyRequest, content_type = "application/json"),
    responses(
        (status = 200, body = SignInResponse, example = json!({"token": "lk_val_Qm9…",
            "signals": {"rp_id": "example.com", "user_id": "AZOitHwdfi-KO0xdbn-AkQ",
                "all_accepted_credential_ids": ["Xk2…", "pQ9…"],
                "current_user_details": {"name": "ada@example.com", "display_name": "Ada Lovelace"}}})),
        (status = 400, description = "`invalid_request`, `ceremony_invalid`, `ceremony_expired`, `origin_mismatch`, `rp_id_mismatch`, `challenge_mismatch`, `user_verification_required`, `counter_regressed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`credential_unknown` (with `signal_unknown_credential: true` when the tenant has no such credential at all), `credential_revoked`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`passkeys_disabled`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many requests from this address (see `Retry-After`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`: the body is over 64 KiB", body = Problem, content_type = "application/problem+json"),
    ),
)]
async fn authentication_verify(
    State(services): State<Services>,
    ApiPath(tenant_id): ApiPath<Uuid>,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<AuthenticationVerifyRequest>,
) -> Result<Json<SignInResponse>, ApiError> {
    let signed_in = services
        .end_users()
        .finish_authentication(
            tenant_id,
            &body.ceremony_id,
            body.credential.get(),
            body.device.map(DeviceProof::from).as_ref(),
            meta,
        )
        .await?;
    Ok(Json(SignInResponse {
        token: signed_in.token,
        signals: signed_in.signals.into(),
    }))
}
