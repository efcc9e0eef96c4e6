//! The audit log pages: one tenant's (`id`), or the instance's own (`id` empty).

// `audit_log` takes each filter as its own form field, as every portal function does; the
// `server` macro also generates a browser-side function with the same arguments.
#![allow(clippy::too_many_arguments)]

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

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
    /// A passkey's ID.
    pub passkey: String,
    /// An error code.
    pub code: String,
    /// One event's ID.
    pub event: String,
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
            passkey: self.passkey.clone(),
            code: self.code.clone(),
            event: self.event.clone(),
            before: self.before.clone(),
        }
        .parse()
    }
}

/// A piece of an event's sentence; the ones that name someone or something filter the log by
/// them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SentencePart {
    Text(String),
    /// Who acted, and the actor filter that selects their events.
    Actor {
        label: String,
        filter: String,
    },
    /// An end user, by the tenant's user ID.
    User(String),
    /// A passkey's name; its ID and its user's, for the filter.
    Passkey {
        name: String,
        id: String,
        user: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub id: i64,
    pub occurred_at: String,
    pub sentence: Vec<SentencePart>,
    pub action: String,
    /// Refused or failed.
    pub failed: bool,
    pub error_code: Option<String>,
    /// Who acted, as recorded (`kind`, ID, label).
    pub actor: String,
    /// What it was about, as recorded.
    pub target: Option<String>,
    pub tenant_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// `Chrome 156 on Linux`.
    pub user_agent_summary: Option<String>,
    /// The event's structured details, one field per entry (nested values as compact JSON).
    pub details: Vec<(String, String)>,
}

#[cfg(feature = "ssr")]
impl From<latchkey_core::audit::readable::ReadableEvent> for AuditRow {
    fn from(e: latchkey_core::audit::readable::ReadableEvent) -> Self {
        use latchkey_core::audit::sentence::Part;
        let r = e.record;
        let target_user = (r.target_kind.as_deref() == Some("user"))
            .then(|| r.target_id.clone())
            .flatten();
        let sentence = e
            .sentence
            .parts
            .into_iter()
            .map(|part| match part {
                Part::Text { text } => SentencePart::Text(text),
                Part::Actor { label, filter } => SentencePart::Actor { label, filter },
                Part::User { id } => SentencePart::User(id),
                Part::Passkey { name, id } => SentencePart::Passkey {
                    name,
                    id,
                    user: target_user.clone(),
                },
            })
            .collect();
        let actor = [
            Some(r.actor_kind.clone()),
            r.actor_label.clone(),
            r.actor_id.clone(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" · ");
        let details = match r.details {
            Some(serde_json::Value::Object(map)) => map
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| {
                    let text = match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (k, text)
                })
                .collect(),
            Some(other) => vec![("details".to_owned(), other.to_string())],
            None => Vec::new(),
        };
        Self {
            id: r.id,
            occurred_at: r.occurred_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            sentence,
            action: r.action,
            failed: r.outcome != "success",
            error_code: r.error_code,
            actor,
            target: r
                .target_kind
                .map(|kind| format!("{kind} {}", r.target_id.unwrap_or_default())),
            tenant_id: r.tenant_id.map(|t| t.to_string()),
            ip: r.ip,
            user_agent: r.user_agent,
            user_agent_summary: e.user_agent_summary,
            details,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPageView {
    pub events: Vec<AuditRow>,
    /// The `before` of the next (older) page.
    pub next: Option<i64>,
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
    passkey: String,
    code: String,
    event: String,
    before: String,
) -> Result<AuditPageView, PortalError> {
    use latchkey_core::audit::AuditScope;
    let query = AuditQuery {
        actor,
        action,
        user,
        from,
        to,
        passkey,
        code,
        event,
        before,
    };
    let filter = query.to_filter()?;
    let request = crate::state::request()?;
    let scope = if id.is_empty() {
        AuditScope::Instance(request.operator().await?)
    } else {
        AuditScope::Tenant(request.tenant(&id).await?)
    };
    let page = request
        .services
        .audit()
        .readable_page(&scope, &filter)
        .await?;
    Ok(AuditPageView {
        events: page.events.into_iter().map(AuditRow::from).collect(),
        next: page.next,
    })
}
