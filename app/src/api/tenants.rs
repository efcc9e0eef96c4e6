//! The Tenants page: the operator's tenants, and creating one (instance admins). Every function
//! authorizes in the service (`latchkey_core::tenants`); pages only hide what would be refused.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PortalError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub passkeys_enabled: bool,
    pub rp_id: Option<String>,
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
