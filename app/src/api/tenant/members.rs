//! The Members page: the tenant's members and their roles, renaming and deleting the tenant.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PortalError;
#[cfg(feature = "ssr")]
use crate::api::{display_time, parse_id};

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
) -> Result<Option<crate::api::InvitationView>, PortalError> {
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
        MemberAdded::Invited(issued) => Some(crate::api::InvitationView {
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
