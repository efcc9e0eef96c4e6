//! The signed-in operator's own passkeys and sessions (the Security page).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::CeremonyView;
#[cfg(feature = "ssr")]
use super::{display_time, parse_id};
use crate::PortalError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

#[cfg(feature = "ssr")]
impl From<latchkey_core::operators::PasskeyInfo> for PasskeyView {
    fn from(p: latchkey_core::operators::PasskeyInfo) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name,
            created_at: display_time(p.created_at),
            last_used_at: p.last_used_at.map(display_time),
        }
    }
}

#[server(prefix = "/portal/api", endpoint = "my_passkeys")]
pub async fn my_passkeys() -> Result<Vec<PasskeyView>, PortalError> {
    let request = crate::state::request()?;
    let operator = request.operator().await?;
    let passkeys = request.services.operators().passkeys(&operator).await?;
    Ok(passkeys.into_iter().map(PasskeyView::from).collect())
}

#[server(prefix = "/portal/api", endpoint = "begin_add_passkey")]
pub async fn begin_add_passkey() -> Result<CeremonyView, PortalError> {
    let request = crate::state::request()?;
    let operator = request.operator().await?;
    CeremonyView::try_from(
        request
            .services
            .operators()
            .begin_add_passkey(request.step_up(&operator).await?)
            .await?,
    )
}

/// Options for confirming with one of the operator's own passkeys (step-up).
#[server(prefix = "/portal/api", endpoint = "begin_step_up")]
pub async fn begin_step_up() -> Result<CeremonyView, PortalError> {
    let request = crate::state::request()?;
    let operator = request.operator().await?;
    CeremonyView::try_from(
        request
            .services
            .operators()
            .begin_step_up(&operator)
            .await?,
    )
}

/// Verifies the step-up assertion; this session may then do what needs step-up for a while.
#[server(prefix = "/portal/api", endpoint = "finish_step_up")]
pub async fn finish_step_up(ceremony_id: String, credential: String) -> Result<(), PortalError> {
    let request = crate::state::request()?;
    let operator = request.operator().await?;
    let ceremony_id = parse_id("ceremony_id", &ceremony_id)?;
    let verified_at = request
        .services
        .operators()
        .finish_step_up(&operator, ceremony_id, &credential, request.meta.clone())
        .await?;
    request.record_step_up(verified_at).await
}

#[server(prefix = "/portal/api", endpoint = "finish_add_passkey")]
pub async fn finish_add_passkey(
    ceremony_id: String,
    credential: String,
    name: String,
) -> Result<PasskeyView, PortalError> {
    let request = crate::state::request()?;
    let operator = request.operator().await?;
    let ceremony_id = parse_id("ceremony_id", &ceremony_id)?;
    let added = request
        .services
        .operators()
        .finish_add_passkey(
            &operator,
            ceremony_id,
            &credential,
            &name,
            request.meta.clone(),
        )
        .await?;
    Ok(added.into())
}

#[server(prefix = "/portal/api", endpoint = "remove_passkey")]
pub async fn remove_passkey(id: String) -> Result<(), PortalError> {
    let request = crate::state::request()?;
    let operator = request.operator().await?;
    let id = parse_id("id", &id)?;
    Ok(request
        .services
        .operators()
        .remove_passkey(&operator, id, request.meta.clone())
        .await?)
}

/// Ends every session of the signed-in operator, this one included.
#[server(prefix = "/portal/api", endpoint = "sign_out_everywhere")]
pub async fn sign_out_everywhere() -> Result<u64, PortalError> {
    let request = crate::state::request()?;
    let operator = request.operator().await?;
    let ended = request
        .services
        .operators()
        .sign_out_everywhere(&operator, request.meta.clone())
        .await?;
    request.sign_out().await?;
    Ok(ended)
}
