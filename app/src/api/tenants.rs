//! Tenants, their members and their passkey configuration. Every function authorizes in the
//! service (`latchkey_core::tenants`); pages only hide what would be refused.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use super::{display_time, parse_id};
use crate::PortalError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub passkeys_enabled: bool,
    pub rp_id: Option<String>,
}

/// The passkey settings form's values (strings where people type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConfigForm {
    pub enabled: bool,
    pub rp_id: String,
    pub rp_name: String,
    /// One origin per line.
    pub origins: String,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRow {
    pub operator_id: String,
    pub email: String,
    pub display_name: String,
    pub role: String,
    pub since: String,
}

#[cfg(feature = "ssr")]
fn parse_role(value: &str) -> Result<latchkey_core::access::Role, PortalError> {
    latchkey_core::access::Role::parse(value)
        .ok_or_else(|| latchkey_core::Error::invalid("role", "Choose a role.").into())
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

#[server(prefix = "/portal/api", endpoint = "my_tenants")]
pub async fn my_tenants() -> Result<Vec<TenantRow>, PortalError> {
    let request = crate::state::request()?;
    let operator = request.operator().await?;
    let rows = request.services.tenants().list_for(&operator).await?;
    Ok(rows
        .into_iter()
        .map(|t| TenantRow {
            id: t.id.to_string(),
            name: t.name,
            role: t.role.as_str().to_owned(),
            passkeys_enabled: t.passkeys_enabled,
            rp_id: t.rp_id,
        })
        .collect())
}

#[server(prefix = "/portal/api", endpoint = "create_tenant")]
pub async fn create_tenant(name: String) -> Result<String, PortalError> {
    let request = crate::state::request()?;
    let operator = request.operator().await?;
    let id = request
        .services
        .tenants()
        .create(&operator, &name, request.meta.clone())
        .await?;
    Ok(id.to_string())
}

#[server(prefix = "/portal/api", endpoint = "tenant_details")]
pub async fn tenant_details(id: String) -> Result<TenantView, PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    Ok(view_of(request.services.tenants().get(&access).await?))
}

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

#[server(prefix = "/portal/api", endpoint = "tenant_members")]
pub async fn tenant_members(id: String) -> Result<Vec<MemberRow>, PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let members = request.services.tenants().members(&access).await?;
    Ok(members
        .into_iter()
        .map(|m| MemberRow {
            operator_id: m.operator_id.to_string(),
            email: m.email,
            display_name: m.display_name,
            role: m.role.as_str().to_owned(),
            since: display_time(m.since),
        })
        .collect())
}

/// Adds a member; answers the invitation link (shown once) when the address is not an operator
/// yet.
#[server(prefix = "/portal/api", endpoint = "add_member")]
pub async fn add_member(
    id: String,
    email: String,
    role: String,
) -> Result<Option<super::InvitationView>, PortalError> {
    use latchkey_core::tenants::MemberAdded;
    let (request, access) = crate::state::tenant_request(&id).await?;
    let role = parse_role(&role)?;
    let added = request
        .services
        .tenants()
        .add_member(&access, &email, role, request.meta.clone())
        .await?;
    Ok(match added {
        MemberAdded::Added => None,
        MemberAdded::Invited(issued) => Some(super::InvitationView {
            email: issued.email.clone().unwrap_or_default(),
            url: issued.url(request.services.public_url()),
            expires_at: display_time(issued.expires_at),
        }),
    })
}

#[server(prefix = "/portal/api", endpoint = "change_member_role")]
pub async fn change_member_role(
    id: String,
    member: String,
    role: String,
) -> Result<(), PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let member = parse_id("member", &member)?;
    let role = parse_role(&role)?;
    Ok(request
        .services
        .tenants()
        .set_role(&access, member, role, request.meta.clone())
        .await?)
}

#[server(prefix = "/portal/api", endpoint = "remove_member")]
pub async fn remove_member(id: String, member: String) -> Result<(), PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let member = parse_id("member", &member)?;
    Ok(request
        .services
        .tenants()
        .remove_member(&access, member, request.meta.clone())
        .await?)
}

#[server(prefix = "/portal/api", endpoint = "rename_tenant")]
pub async fn rename_tenant(id: String, name: String) -> Result<(), PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    Ok(request
        .services
        .tenants()
        .rename(&access, &name, request.meta.clone())
        .await?)
}

#[server(prefix = "/portal/api", endpoint = "delete_tenant")]
pub async fn delete_tenant(id: String, confirmation: String) -> Result<(), PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    Ok(request
        .services
        .tenants()
        .delete(&access, &confirmation, request.meta.clone())
        .await?)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_by: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A key just created: the secret is in this answer and nowhere else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApiKey {
    pub secret: String,
    pub key: ApiKeyRow,
}

#[cfg(feature = "ssr")]
impl From<latchkey_core::tenants::api_keys::ApiKeyInfo> for ApiKeyRow {
    fn from(k: latchkey_core::tenants::api_keys::ApiKeyInfo) -> Self {
        Self {
            id: k.id.to_string(),
            name: k.name,
            prefix: k.prefix,
            created_by: k.created_by,
            created_at: display_time(k.created_at),
            last_used_at: k.last_used_at.map(display_time),
            revoked_at: k.revoked_at.map(display_time),
        }
    }
}

#[server(prefix = "/portal/api", endpoint = "list_api_keys")]
pub async fn list_api_keys(id: String) -> Result<Vec<ApiKeyRow>, PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let keys = request.services.api_keys().list(&access).await?;
    Ok(keys.into_iter().map(ApiKeyRow::from).collect())
}

#[server(prefix = "/portal/api", endpoint = "create_api_key")]
pub async fn create_api_key(id: String, name: String) -> Result<NewApiKey, PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let created = request
        .services
        .api_keys()
        .create(&access, &name, request.meta.clone())
        .await?;
    Ok(NewApiKey {
        secret: created.secret,
        key: created.info.into(),
    })
}

#[server(prefix = "/portal/api", endpoint = "revoke_api_key")]
pub async fn revoke_api_key(id: String, key: String) -> Result<(), PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let key = parse_id("key", &key)?;
    Ok(request
        .services
        .api_keys()
        .revoke(&access, key, request.meta.clone())
        .await?)
}
