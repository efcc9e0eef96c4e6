//! Server functions of the pages inside one tenant, grouped like those pages
//! (`crate::pages::tenant`). Each starts with `crate::state::tenant_request`, the operator's
//! `TenantAccess`; the services decide what it allows.

mod api_keys;
mod dashboard;
mod enrollment_tokens;
mod health;
mod members;
mod passkeys;
mod policy;
mod users;
mod webhooks;

pub use api_keys::*;
pub use dashboard::*;
pub use enrollment_tokens::*;
pub use health::*;
pub use members::*;
pub use passkeys::*;
pub use policy::*;
pub use users::*;
pub use webhooks::*;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PortalError;

/// The passkey settings form's values (strings where people type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConfigForm {
    pub enabled: bool,
    pub rp_id: String,
    pub rp_name: String,
    /// One origin per line.
    pub origins: String,
    /// One related origin per line.
    #[serde(default)]
    pub related_origins: String,
    /// One iOS app ID per line.
    #[serde(default)]
    pub ios_app_ids: String,
    pub attestation: String,
    pub user_verification: String,
    pub resident_key: String,
    pub attachment: String,
    pub algorithms: Vec<String>,
    pub timeout_seconds: String,
    /// The configuration version the form was loaded with.
    pub version: i64,
    /// The operator confirmed replacing the saved RP ID (the service refuses it otherwise).
    #[serde(default)]
    pub confirm_rp_id_change: bool,
}

/// An Android origin with the fingerprint people recognise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AndroidOrigin {
    pub origin: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub role: String,
    pub can_configure: bool,
    pub can_manage_members: bool,
    pub config: ConfigForm,
    pub android: Vec<AndroidOrigin>,
}

#[cfg(feature = "ssr")]
fn view_of(details: latchkey_core::tenants::TenantDetails) -> TenantView {
    use latchkey_core::{
        access::Permission,
        tenants::config::{PasskeyConfigInput, enum_name},
    };
    let input = PasskeyConfigInput::from(&details.config);
    TenantView {
        id: details.id.to_string(),
        name: details.name,
        role: details.role.as_str().to_owned(),
        can_configure: details.role.allows(Permission::ManagePasskeyConfig),
        can_manage_members: details.role.allows(Permission::ManageMembers),
        android: details
            .config
            .origins
            .iter()
            .filter_map(|o| {
                Some(AndroidOrigin {
                    origin: o.as_client_origin(),
                    fingerprint: o.fingerprint()?,
                })
            })
            .collect::<Vec<_>>(),
        config: ConfigForm {
            enabled: input.enabled,
            rp_id: input.rp_id,
            rp_name: input.rp_name,
            origins: input.origins,
            related_origins: input.related_origins,
            ios_app_ids: input.ios_app_ids,
            attestation: enum_name(&input.attestation),
            user_verification: enum_name(&input.user_verification),
            resident_key: enum_name(&input.resident_key),
            attachment: enum_name(&input.attachment),
            algorithms: input
                .algorithms
                .iter()
                .map(|a| a.label().to_owned())
                .collect(),
            timeout_seconds: input.timeout_seconds.to_string(),
            version: details.config.version,
            confirm_rp_id_change: false,
        },
    }
}

#[server(prefix = "/portal/api", endpoint = "tenant_details")]
pub async fn tenant_details(id: String) -> Result<TenantView, PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    Ok(view_of(request.services.tenants().get(&access).await?))
}
