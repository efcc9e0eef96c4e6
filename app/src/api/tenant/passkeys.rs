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
