//! Server functions called by the portal's pages. Each one: authorize, call a service, map the
//! error. All live under one URL prefix so that request guards (CSRF, sessions) can scope to it.

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
    let services = crate::state::services()?;
    let status = services.instance().status().await?;
    Ok(InstanceStatusView {
        database: status.backend.label().to_owned(),
        tenants: status.tenants,
        operators: status.operators,
        needs_setup: status.needs_setup(),
        checked_at: status.checked_at.format("%H:%M:%S%.3f UTC").to_string(),
    })
}
