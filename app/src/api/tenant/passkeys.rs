//! The Passkeys page: the tenant's relying party and ceremony options, and the app setup.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

#[cfg(feature = "ssr")]
use super::view_of;
use super::{AndroidOrigin, ConfigForm, TenantView};
use crate::PortalError;

#[server(prefix = "/portal/api", endpoint = "save_passkey_config", input = Json)]
pub async fn save_passkey_config(id: String, form: ConfigForm) -> Result<TenantView, PortalError> {
    use latchkey_core::tenants::config::{Algorithm, PasskeyConfigInput, enum_from};
    let (request, access) = crate::state::tenant_request(&id).await?;
    let algorithms = form
        .algorithms
        .iter()
        .map(|a| {
            Algorithm::ALL
                .into_iter()
                .find(|known| known.label() == a)
                .ok_or_else(|| latchkey_core::Error::invalid("algorithms", "Unknown algorithm."))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let timeout_seconds = form.timeout_seconds.trim().parse::<u32>().map_err(|_| {
        latchkey_core::Error::invalid(
            "timeout_seconds",
            "Enter a whole number of seconds (30 to 600).",
        )
    })?;
    let input = PasskeyConfigInput {
        enabled: form.enabled,
        rp_id: form.rp_id,
        rp_name: form.rp_name,
        origins: form.origins,
        related_origins: form.related_origins,
        ios_app_ids: form.ios_app_ids,
        attestation: enum_from("attestation", &form.attestation)?,
        user_verification: enum_from("user_verification", &form.user_verification)?,
        resident_key: enum_from("resident_key", &form.resident_key)?,
        attachment: enum_from("attachment", &form.attachment)?,
        algorithms,
        timeout_seconds,
        confirm_rp_id_change: form.confirm_rp_id_change,
    };
    let tenants = request.services.tenants();
    tenants
        .update_passkey_config(&access, &input, form.version, request.meta.clone())
        .await?;
    Ok(view_of(tenants.get(&access).await?))
}

/// The Android origin for a signing certificate's SHA-256 fingerprint (as keytool prints it).
#[server(prefix = "/portal/api", endpoint = "android_origin_for")]
pub async fn android_origin_for(fingerprint: String) -> Result<AndroidOrigin, PortalError> {
    use latchkey_core::tenants::config::{self, Origin};
    let request = crate::state::request()?;
    request.operator().await?;
    let hash = config::fingerprint("fingerprint", &fingerprint)?;
    let origin = Origin::Android(hash);
    Ok(AndroidOrigin {
        origin: origin.as_client_origin(),
        fingerprint: config::fingerprint_of(&hash),
    })
}

/// The `assetlinks.json` for an Android app (`package`, signed with `fingerprints`), as the
/// passkeys page shows it while the operator types.
#[server(prefix = "/portal/api", endpoint = "asset_links")]
pub async fn asset_links(
    package: String,
    fingerprints: Vec<String>,
) -> Result<String, PortalError> {
    let request = crate::state::request()?;
    request.operator().await?;
    let document = latchkey_core::tenants::config::asset_links(&package, &fingerprints);
    Ok(serde_json::to_string_pretty(&document)
        .map_err(|e| latchkey_core::Error::Internal(e.to_string()))?)
}

/// The `/.well-known/webauthn` document for the tenant's saved related origins.
#[server(prefix = "/portal/api", endpoint = "well_known_webauthn")]
pub async fn well_known_webauthn(id: String) -> Result<String, PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let document = request
        .services
        .tenants()
        .well_known_webauthn(&access)
        .await?;
    Ok(serde_json::to_string_pretty(&document)
        .map_err(|e| latchkey_core::Error::Internal(e.to_string()))?)
}

/// One finding of the origin doctor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FindingView {
    pub ok: bool,
    pub message: String,
}

/// One file the origin doctor read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileCheckView {
    /// Its path, e.g. `/.well-known/assetlinks.json`.
    pub name: String,
    pub url: String,
    pub ok: bool,
    pub findings: Vec<FindingView>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OriginCheckView {
    pub ok: bool,
    pub origins: Vec<FindingView>,
    pub files: Vec<FileCheckView>,
}

/// Runs the origin doctor on the saved configuration.
#[server(prefix = "/portal/api", endpoint = "check_origins")]
pub async fn check_origins(id: String) -> Result<OriginCheckView, PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let report = request.services.check_origins(&access).await?;
    let finding = |f: latchkey_core::tenants::doctor::Finding| FindingView {
        ok: f.ok,
        message: f.message,
    };
    Ok(OriginCheckView {
        ok: report.ok(),
        origins: report.origins.into_iter().map(finding).collect(),
        files: report
            .files
            .into_iter()
            .map(|f| FileCheckView {
                name: f.file.path().to_owned(),
                url: f.url,
                ok: f.ok,
                findings: f.findings.into_iter().map(finding).collect(),
            })
            .collect(),
    })
}
