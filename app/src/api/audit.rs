//! The audit log pages: one tenant's (`id`), or the instance's own (`id` empty).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::AuditRow;
use crate::PortalError;

/// The audit log filters as the page's form (and URL) carries them: all text, empty = any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    pub actor: String,
    pub action: String,
    pub user: String,
    /// `YYYY-MM-DD` (UTC), inclusive.
    pub from: String,
    /// `YYYY-MM-DD` (UTC), inclusive.
    pub to: String,
    /// Cursor: older than this event id.
    pub before: String,
}

#[cfg(feature = "ssr")]
impl AuditQuery {
    /// The service's filter (the rules are `latchkey_core::audit::FilterText`'s).
    pub fn to_filter(&self) -> Result<latchkey_core::audit::AuditFilter, latchkey_core::Error> {
        latchkey_core::audit::FilterText {
            actor: self.actor.clone(),
            action: self.action.clone(),
            user: self.user.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            before: self.before.clone(),
        }
        .parse()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPageView {
    pub events: Vec<AuditRow>,
    /// The `before` of the next (older) page.
    pub next: Option<i64>,
}

#[cfg(feature = "ssr")]
impl From<latchkey_core::audit::AuditPage> for AuditPageView {
    fn from(page: latchkey_core::audit::AuditPage) -> Self {
        Self {
            events: page.events.into_iter().map(AuditRow::from).collect(),
            next: page.next,
        }
    }
}

/// A page of the audit log: of one tenant (`id`), or of the whole instance (`id` empty; instance
/// admins only).
#[server(prefix = "/portal/api", endpoint = "audit_log")]
pub async fn audit_log(
    id: String,
    actor: String,
    action: String,
    user: String,
    from: String,
    to: String,
    before: String,
) -> Result<AuditPageView, PortalError> {
    let query = AuditQuery {
        actor,
        action,
        user,
        from,
        to,
        before,
    };
    let filter = query.to_filter()?;
    let page = if id.is_empty() {
        let request = crate::state::request()?;
        let operator = request.operator().await?;
        request
            .services
            .audit()
            .instance_page(&operator, &filter)
            .await?
    } else {
        let (request, access) = crate::state::tenant_request(&id).await?;
        request
            .services
            .audit()
            .tenant_page(&access, &filter)
            .await?
    };
    Ok(page.into())
}
