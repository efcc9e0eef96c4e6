//! The credential health queue page: passkeys that need attention, by reason, with revoke and
//! dismiss. The services authorize and decide.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PortalError;
#[cfg(feature = "ssr")]
use crate::api::{display_time, parse_id};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthRow {
    pub reason: String,
    pub reason_label: String,
    pub flagged_at: String,
    pub authenticator_id: String,
    pub name: String,
    pub provider: Option<String>,
    pub user_id: String,
    pub username: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCountRow {
    pub reason: String,
    pub label: String,
    /// "3", or "100+".
    pub count: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthPageView {
    pub items: Vec<HealthRow>,
    pub next: Option<String>,
    /// Every reason that can apply to the tenant, with its count (the filter's choices).
    pub counts: Vec<HealthCountRow>,
    pub can_act: bool,
}

#[cfg(feature = "ssr")]
pub(crate) fn count_rows(
    counts: Vec<latchkey_core::end_users::health::HealthCount>,
) -> Vec<HealthCountRow> {
    use latchkey_core::end_users::health::COUNT_CAP;
    counts
        .into_iter()
        .map(|c| HealthCountRow {
            reason: c.reason.as_str().to_owned(),
            label: c.reason.label().to_owned(),
            count: if c.count > COUNT_CAP {
                format!("{COUNT_CAP}+")
            } else {
                c.count.to_string()
            },
        })
        .collect()
}

#[cfg(feature = "ssr")]
fn reason_of(
    value: &str,
) -> Result<Option<latchkey_core::end_users::health::HealthReason>, PortalError> {
    use latchkey_core::end_users::health::HealthReason;
    match value.trim() {
        "" | "all" => Ok(None),
        value => Ok(Some(HealthReason::parse(value).ok_or_else(|| {
            latchkey_core::Error::invalid("reason", "Choose one of the listed reasons.")
        })?)),
    }
}

#[server(prefix = "/portal/api", endpoint = "credential_health")]
pub async fn credential_health(
    id: String,
    reason: String,
    after: Option<String>,
) -> Result<HealthPageView, PortalError> {
    use latchkey_core::access::Permission;
    let (request, access) = crate::state::tenant_request(&id).await?;
    let users = request.services.end_users();
    let reason = reason_of(&reason)?;
    let page = users
        .credential_health(&access, reason, after.as_deref(), 50)
        .await?;
    let counts = users.credential_health_counts(&access).await?;
    Ok(HealthPageView {
        items: page
            .items
            .into_iter()
            .map(|i| HealthRow {
                reason: i.reason.as_str().to_owned(),
                reason_label: i.reason.label().to_owned(),
                flagged_at: display_time(i.flagged_at),
                authenticator_id: i.authenticator_id.to_string(),
                name: i.name,
                provider: i.provider_name,
                user_id: i.user_id,
                username: i.username,
                detail: i.detail,
            })
            .collect(),
        next: page.next,
        counts: count_rows(counts),
        can_act: access.allows(Permission::DismissHealthFlags),
    })
}

#[server(prefix = "/portal/api", endpoint = "dismiss_health_flag")]
pub async fn dismiss_health_flag(
    id: String,
    authenticator_id: String,
    reason: String,
    note: String,
) -> Result<(), PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let authenticator_id = parse_id("authenticator_id", &authenticator_id)?;
    let reason = reason_of(&reason)?.ok_or_else(|| {
        latchkey_core::Error::invalid("reason", "Choose one of the listed reasons.")
    })?;
    request
        .services
        .end_users()
        .dismiss_health_flag(
            &access,
            authenticator_id,
            reason,
            &note,
            request.meta.clone(),
        )
        .await?;
    Ok(())
}
