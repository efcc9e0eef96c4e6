//! Signing in and out, and creating an operator from a setup or invitation link. These are the
//! only server functions an anonymous visitor may call.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::CeremonyView;
#[cfg(feature = "ssr")]
use super::{display_time, parse_id};
use crate::PortalError;

/// The signed-in operator, as pages see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorView {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub is_instance_admin: bool,
}

#[cfg(feature = "ssr")]
impl From<latchkey_core::access::OperatorIdentity> for OperatorView {
    fn from(op: latchkey_core::access::OperatorIdentity) -> Self {
        Self {
            id: op.id.to_string(),
            email: op.email,
            display_name: op.display_name,
            is_instance_admin: op.is_instance_admin,
        }
    }
}

/// What a setup or invitation link allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkView {
    /// `setup` or `invitation`.
    pub purpose: String,
    /// The invited address (fixed); `None` for setup.
    pub email: Option<String>,
    pub instance_admin: bool,
    pub expires_at: String,
}

/// The signed-in operator, or `None`.
#[server(prefix = "/portal/api", endpoint = "whoami")]
pub async fn whoami() -> Result<Option<OperatorView>, PortalError> {
    let request = crate::state::request()?;
    Ok(request.current_operator().await?.map(OperatorView::from))
}

/// Checks a setup or invitation link before the form is shown.
#[server(prefix = "/portal/api", endpoint = "link_status")]
pub async fn link_status(token: String) -> Result<LinkView, PortalError> {
    use latchkey_core::operators::TokenPurpose;
    let request = crate::state::request()?;
    let info = request.services.operators().token_info(&token).await?;
    Ok(LinkView {
        purpose: match info.purpose {
            TokenPurpose::Setup => "setup",
            TokenPurpose::Invitation => "invitation",
        }
        .to_owned(),
        email: info.email,
        instance_admin: info.grants_instance_admin,
        expires_at: display_time(info.expires_at),
    })
}

#[server(prefix = "/portal/api", endpoint = "begin_enrollment")]
pub async fn begin_enrollment(
    token: String,
    email: String,
    display_name: String,
) -> Result<CeremonyView, PortalError> {
    let request = crate::state::request()?;
    let options = request
        .services
        .operators()
        .begin_enrollment(&token, &email, &display_name)
        .await?;
    CeremonyView::try_from(options)
}

/// Verifies the new operator's passkey, creates them, and signs them in.
#[server(prefix = "/portal/api", endpoint = "finish_enrollment")]
pub async fn finish_enrollment(ceremony_id: String, credential: String) -> Result<(), PortalError> {
    let request = crate::state::request()?;
    let ceremony_id = parse_id("ceremony_id", &ceremony_id)?;
    let operator = request
        .services
        .operators()
        .finish_enrollment(ceremony_id, &credential, request.meta.clone())
        .await?;
    request.sign_in(&operator).await
}

#[server(prefix = "/portal/api", endpoint = "begin_sign_in")]
pub async fn begin_sign_in() -> Result<CeremonyView, PortalError> {
    let request = crate::state::request()?;
    CeremonyView::try_from(
        request
            .services
            .operators()
            .begin_sign_in(&request.meta)
            .await?,
    )
}

#[server(prefix = "/portal/api", endpoint = "finish_sign_in")]
pub async fn finish_sign_in(ceremony_id: String, credential: String) -> Result<(), PortalError> {
    let request = crate::state::request()?;
    let ceremony_id = parse_id("ceremony_id", &ceremony_id)?;
    let operator = request
        .services
        .operators()
        .finish_sign_in(ceremony_id, &credential, request.meta.clone())
        .await?;
    request.sign_in(&operator).await
}

/// Ends this session. Signing out without a session is not an error (a second tab, a retry).
#[server(prefix = "/portal/api", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), PortalError> {
    let request = crate::state::request()?;
    if let Some(operator) = request.current_operator().await? {
        request
            .services
            .operators()
            .record_sign_out(&operator, request.meta.clone())
            .await?;
    }
    // Without JavaScript the form posts here directly and leptos_axum sends the browser back
    // to the page it came from, which then redirects to the sign-in page.
    request.sign_out().await
}
