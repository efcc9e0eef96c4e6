//! Server functions called by the portal's pages. Each one: authorize, call a service, map the
//! error. All live under one URL prefix so that request guards (CSRF, sessions) can scope to it.

mod audit;
mod auth;
mod metadata;
mod operators;
mod security;
mod tenant;
mod tenants;

pub use audit::*;
pub use auth::*;
pub use metadata::*;
pub use operators::*;
pub use security::*;
pub use tenant::*;
pub use tenants::*;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PortalError;

/// The prefix of every portal server function's URL.
pub const SERVER_FN_PREFIX: &str = "/portal/api";

/// What the home page shows about this instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatusView {
    pub database: String,
    pub tenants: u64,
    pub operators: u64,
    pub needs_setup: bool,
    /// When the server answered, `HH:MM:SS.mmm UTC`.
    pub checked_at: String,
}

#[server(prefix = "/portal/api", endpoint = "instance_status")]
pub async fn instance_status() -> Result<InstanceStatusView, PortalError> {
    let request = crate::state::request()?;
    request.operator().await?;
    let services = request.services;
    let status = services.instance().status().await?;
    Ok(InstanceStatusView {
        database: status.backend.label().to_owned(),
        tenants: status.tenants,
        operators: status.operators,
        needs_setup: status.needs_setup(),
        checked_at: status.checked_at.format("%H:%M:%S%.3f UTC").to_string(),
    })
}

/// What the browser needs to run a WebAuthn ceremony.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CeremonyView {
    pub ceremony_id: String,
    /// The `publicKey` options as WebAuthn L3 JSON text.
    pub public_key: String,
}

#[cfg(feature = "ssr")]
impl TryFrom<latchkey_core::operators::CeremonyOptions> for CeremonyView {
    type Error = PortalError;

    fn try_from(options: latchkey_core::operators::CeremonyOptions) -> Result<Self, Self::Error> {
        Ok(Self {
            ceremony_id: options.ceremony_id.to_string(),
            public_key: serde_json::to_string(&options.public_key)
                .map_err(|e| latchkey_core::Error::Internal(e.to_string()))?,
        })
    }
}

/// Parses an id the page sent back; a mangled one is the caller's error.
#[cfg(feature = "ssr")]
fn parse_id(field: &str, value: &str) -> Result<uuid::Uuid, PortalError> {
    uuid::Uuid::parse_str(value.trim())
        .map_err(|_| latchkey_core::Error::invalid(field, "This is not a valid identifier.").into())
}

/// Times as the portal shows them.
#[cfg(feature = "ssr")]
fn display_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The home page's getting-started checklist (see `latchkey_core::tenants::first_run`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstRunView {
    /// The tenant the steps link to: `(id, name)`.
    pub tenant: Option<(String, String)>,
    pub may_create_tenant: bool,
    pub passkeys_configured: bool,
    pub api_key_created: bool,
    pub enrollment_token_issued: bool,
    pub passkey_registered: bool,
    pub done: bool,
}

#[server(prefix = "/portal/api", endpoint = "first_run")]
pub async fn first_run() -> Result<FirstRunView, PortalError> {
    let request = crate::state::request()?;
    let operator = request.operator().await?;
    let run = request.services.tenants().first_run(&operator).await?;
    Ok(FirstRunView {
        done: run.done(),
        tenant: run.tenant.map(|(id, name)| (id.to_string(), name)),
        may_create_tenant: run.may_create_tenant,
        passkeys_configured: run.passkeys_configured,
        api_key_created: run.api_key_created,
        enrollment_token_issued: run.enrollment_token_issued,
        passkey_registered: run.passkey_registered,
    })
}
