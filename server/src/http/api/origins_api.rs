//! The Server API's view of where a tenant's passkeys may be used: the `/.well-known/webauthn`
//! document its RP ID site must serve (for backends that proxy it), and the origin doctor.

use axum::{Json, extract::State};
use latchkey_core::{
    Services,
    tenants::doctor::{DoctorReport, FileReport, Finding, WellKnownFile},
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::auth::BackendKey;
use crate::http::problem::{ApiError, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Services: axum::extract::FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(well_known_webauthn))
        .routes(routes!(check_origins))
}

/// The WebAuthn related-origins document.
#[derive(Debug, Serialize, ToSchema)]
pub struct WellKnownWebauthn {
    /// The tenant's related origins, in the order configured.
    pub origins: Vec<String>,
}

/// Get the `/.well-known/webauthn` document
///
/// What `https://<rp id>/.well-known/webauthn` must answer (as `application/json`) for browsers
/// to let the tenant's related origins use its RP ID. A backend may proxy this call.
#[utoipa::path(
    get,
    path = "/api/v1/well-known/webauthn",
    tag = "Server API",
    responses(
        (status = 200, body = WellKnownWebauthn, example = json!({"origins": ["https://shop.example.de", "https://example.fr"]})),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn well_known_webauthn(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(
        services
            .tenants()
            .well_known_webauthn(&key.access())
            .await?,
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FindingResponse {
    pub ok: bool,
    /// For people, e.g. "com.example.app signed with AA:BB:… may use the passkeys."
    pub message: String,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WellKnownFileName {
    Webauthn,
    AssetLinks,
    AppleAppSiteAssociation,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FileReportResponse {
    /// `webauthn`, `asset_links` or `apple_app_site_association`.
    pub file: WellKnownFileName,
    /// Where it was read.
    pub url: String,
    /// Every finding is `ok`.
    pub ok: bool,
    pub findings: Vec<FindingResponse>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OriginCheckResponse {
    /// Nothing is wrong.
    pub ok: bool,
    /// About the configured origins themselves.
    pub origins: Vec<FindingResponse>,
    /// One per file read.
    pub files: Vec<FileReportResponse>,
}

fn finding(f: Finding) -> FindingResponse {
    FindingResponse {
        ok: f.ok,
        message: f.message,
    }
}

impl From<DoctorReport> for OriginCheckResponse {
    fn from(r: DoctorReport) -> Self {
        Self {
            ok: r.ok(),
            origins: r.origins.into_iter().map(finding).collect(),
            files: r
                .files
                .into_iter()
                .map(|f: FileReport| FileReportResponse {
                    file: match f.file {
                        WellKnownFile::Webauthn => WellKnownFileName::Webauthn,
                        WellKnownFile::AssetLinks => WellKnownFileName::AssetLinks,
                        WellKnownFile::AppleAppSiteAssociation => {
                            WellKnownFileName::AppleAppSiteAssociation
                        }
                    },
                    url: f.url,
                    ok: f.ok,
                    findings: f.findings.into_iter().map(finding).collect(),
                })
                .collect(),
        }
    }
}

/// Check the tenant's origins (the origin doctor)
///
/// Reads `/.well-known/webauthn`, `/.well-known/assetlinks.json` and
/// `/.well-known/apple-app-site-association` from the RP ID's site, as far as the configuration
/// needs them (related origins, Android origins, iOS app IDs), and says what matches. Outbound
/// requests time out after 5 s, read at most 64 KiB, follow no redirect to another host and
/// refuse private addresses unless the instance allows them. Once per 10 seconds per tenant.
#[utoipa::path(
    post,
    path = "/api/v1/origin-check",
    tag = "Server API",
    responses(
        (status = 200, body = OriginCheckResponse, example = json!({"ok": false,
            "origins": [{"ok": true, "message": "https://example.com: the RP ID example.com is a registrable suffix of its host."}],
            "files": [{"file": "asset_links", "url": "https://example.com/.well-known/assetlinks.json", "ok": false,
                "findings": [{"ok": true, "message": "Served as application/json."},
                    {"ok": false, "message": "No statement lists the fingerprint AA:BB:… (the configured android:apk-key-hash:qrs…); the file lists com.example.app (CC:DD:…)."}]}]})),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: the tenant was checked less than 10 seconds ago (see `Retry-After`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn check_origins(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
) -> Result<Json<OriginCheckResponse>, ApiError> {
    Ok(Json(services.check_origins(&key.access()).await?.into()))
}
