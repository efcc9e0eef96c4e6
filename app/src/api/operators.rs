//! Instance administration: operators, invitations and the instance-wide audit log. The services
//! refuse non-admins; the pages merely hide what would be refused.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use super::display_time;
use crate::PortalError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorRow {
    pub email: String,
    pub display_name: String,
    pub instance_admin: bool,
    pub disabled: bool,
    pub created_at: String,
}

/// An invitation just created: its link is shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationView {
    pub email: String,
    pub url: String,
    pub expires_at: String,
}

#[server(prefix = "/portal/api", endpoint = "list_operators")]
pub async fn list_operators() -> Result<Vec<OperatorRow>, PortalError> {
    let request = crate::state::request()?;
    let operator = request.operator().await?;
    let rows = request.services.operators().list(&operator).await?;
    Ok(rows
        .into_iter()
        .map(|row| OperatorRow {
            email: row.identity.email,
            display_name: row.identity.display_name,
            instance_admin: row.identity.is_instance_admin,
            disabled: row.disabled,
            created_at: display_time(row.created_at),
        })
        .collect())
}

#[server(prefix = "/portal/api", endpoint = "invite_operator")]
pub async fn invite_operator(
    email: String,
    instance_admin: bool,
) -> Result<InvitationView, PortalError> {
    use latchkey_core::operators::Inviter;
    let request = crate::state::request()?;
    let operator = request.operator().await?;
    let issued = request
        .services
        .operators()
        .invite(
            Inviter::Operator(request.step_up(&operator).await?),
            &email,
            instance_admin,
            request.meta.clone(),
        )
        .await?;
    Ok(InvitationView {
        email: issued.email.clone().unwrap_or_default(),
        url: issued.url(request.services.public_url()),
        expires_at: display_time(issued.expires_at),
    })
}
