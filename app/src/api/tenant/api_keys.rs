//! The API keys page: the tenant backend's secret keys.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PortalError;
#[cfg(feature = "ssr")]
use crate::api::{display_time, parse_id};

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
