//! The append-only audit log. There is deliberately no update or delete here, and the database
//! refuses both (see the initial migration's triggers).

pub mod chain;
pub mod export;
pub mod readable;
pub mod retention;
pub mod seal;
pub mod sentence;
pub mod verify;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

pub use crate::access::Actor;
use crate::access::{OperatorIdentity, TenantAccess};
use crate::{Clock, ErrorCode, Result, entities::audit_event};

/// Where a request came from. Never holds a secret. Built only by [`RequestMeta::new`], which
/// bounds both values to their columns (`ip` 64, `user_agent` 512 characters): a client chooses
/// its User-Agent, and an over-long value must not fail the request on PostgreSQL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestMeta {
    ip: Option<String>,
    user_agent: Option<String>,
}

impl RequestMeta {
    pub const IP_MAX_CHARS: usize = 64;
    pub const USER_AGENT_MAX_CHARS: usize = 512;

    pub fn new(ip: Option<String>, user_agent: Option<String>) -> Self {
        Self {
            ip: clip(ip, Self::IP_MAX_CHARS),
            user_agent: clip(user_agent, Self::USER_AGENT_MAX_CHARS),
        }
    }

    pub fn ip(&self) -> Option<&str> {
        self.ip.as_deref()
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(ErrorCode),
}

/// An event about to be recorded.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub actor: Actor,
    pub action: &'static str,
    pub tenant_id: Option<Uuid>,
    pub target: Option<(&'static str, String)>,
    pub outcome: Outcome,
    pub details: Option<serde_json::Value>,
    pub meta: RequestMeta,
}

impl AuditEntry {
    pub fn new(actor: Actor, action: &'static str) -> Self {
        Self {
            actor,
            action,
            tenant_id: None,
            target: None,
            outcome: Outcome::Success,
            details: None,
            meta: RequestMeta::default(),
        }
    }

    pub fn tenant(mut self, tenant_id: Uuid) -> Self {
        self.tenant_id = Some(tenant_id);
        self
    }

    pub fn target(mut self, kind: &'static str, id: impl Into<String>) -> Self {
        self.target = Some((kind, id.into()));
        self
    }

    pub fn failed(mut self, code: ErrorCode) -> Self {
        self.outcome = Outcome::Failure(code);
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn meta(mut self, meta: RequestMeta) -> Self {
        self.meta = meta;
        self
    }

    /// The refusal's code, for a failed outcome.
    pub fn outcome_code(&self) -> Option<ErrorCode> {
        match self.outcome {
            Outcome::Success => None,
            Outcome::Failure(code) => Some(code),
        }
    }
}

/// A recorded event, as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub tenant_id: Option<Uuid>,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub actor_label: Option<String>,
    pub action: String,
    pub target_kind: Option<String>,
    pub target_id: Option<String>,
    pub outcome: String,
    pub error_code: Option<String>,
    pub details: Option<serde_json::Value>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl From<audit_event::Model> for AuditRecord {
    fn from(m: audit_event::Model) -> Self {
        Self {
            id: m.id,
            occurred_at: m.occurred_at,
            tenant_id: m.tenant_id,
            actor_kind: m.actor_kind,
            actor_id: m.actor_id,
            actor_label: m.actor_label,
            action: m.action,
            target_kind: m.target_kind,
            target_id: m.target_id,
            outcome: m.outcome,
            error_code: m.error_code,
            details: m.details,
            ip: m.ip,
            user_agent: m.user_agent,
        }
    }
}

/// Events per page of the audit log page.
pub const AUDIT_PAGE_SIZE: u64 = 50;
/// Events per read while exporting (and the largest page).
pub const AUDIT_EXPORT_BATCH: u64 = 1000;

/// The actor kinds an actor filter may name instead of a label (an email, `API key lk_sk_…`).
pub const ACTOR_KINDS: [&str; 6] = [
    "operator",
    "api_key",
    "end_user",
    "cli",
    "system",
    "anonymous",
];

/// What the audit log page filters by; every part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// An actor kind (`operator`, `api_key`, …) or an actor's label (an operator's email).
    pub actor: Option<String>,
    pub action: Option<String>,
    /// The tenant's user ID the event is about.
    pub target_user: Option<String>,
    /// From (inclusive) …
    pub from: Option<DateTime<Utc>>,
    /// … to (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Events about one passkey (its ID in the event's details).
    pub passkey: Option<Uuid>,
    /// Refusals with this error code.
    pub error_code: Option<crate::ErrorCode>,
    /// One event, by its ID (the event's own link).
    pub event: Option<i64>,
    /// The `next` of the previous page.
    pub before: Option<i64>,
    pub limit: Option<u64>,
}

/// The filter as people type it (the portal's form, the export's query string): every part
/// text, empty for "any".
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct FilterText {
    pub actor: String,
    pub action: String,
    pub user: String,
    /// `YYYY-MM-DD` (UTC), inclusive.
    pub from: String,
    /// `YYYY-MM-DD` (UTC), inclusive.
    pub to: String,
    /// A passkey's ID.
    pub passkey: String,
    /// An error code (`credential_revoked`, …).
    pub code: String,
    /// One event's ID.
    pub event: String,
    /// Cursor: older than this event id.
    pub before: String,
}

impl FilterText {
    /// The filter; a malformed date or cursor names its field.
    pub fn parse(&self) -> crate::Result<AuditFilter> {
        use chrono::{Days, NaiveDate};
        let text = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let day = |field: &'static str, s: &str| -> crate::Result<Option<NaiveDate>> {
            text(s)
                .map(|s| {
                    NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                        .map_err(|_| crate::Error::invalid(field, "Enter a date as YYYY-MM-DD."))
                })
                .transpose()
        };
        let midnight = |d: NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc();
        let from = day("from", &self.from)?.map(midnight);
        // "To" names a whole day: up to the next midnight.
        let to = day("to", &self.to)?
            .and_then(|d| d.checked_add_days(Days::new(1)))
            .map(midnight);
        let before = text(&self.before)
            .map(|s| {
                s.parse::<i64>()
                    .map_err(|_| crate::Error::invalid("before", "This page link is not valid."))
            })
            .transpose()?;
        let passkey = text(&self.passkey)
            .map(|s| {
                Uuid::parse_str(&s)
                    .map_err(|_| crate::Error::invalid("passkey", "Enter a passkey's ID."))
            })
            .transpose()?;
        let error_code = text(&self.code)
            .map(|s| {
                crate::ErrorCode::ALL
                    .into_iter()
                    .find(|c| c.as_str() == s)
                    .ok_or_else(|| {
                        crate::Error::invalid("code", "This is not one of Latchkey's error codes.")
                    })
            })
            .transpose()?;
        let event = text(&self.event)
            .map(|s| {
                s.parse::<i64>()
                    .map_err(|_| crate::Error::invalid("event", "This event link is not valid."))
            })
            .transpose()?;
        Ok(AuditFilter {
            actor: text(&self.actor),
            action: text(&self.action),
            target_user: text(&self.user),
            from,
            to,
            passkey,
            error_code,
            event,
            before,
            limit: None,
        })
    }
}

/// Whose audit log: one tenant's (its members who may read it) or the instance's own events
/// (those of no tenant; instance admins).
#[derive(Debug, Clone)]
pub enum AuditScope {
    Tenant(TenantAccess),
    Instance(OperatorIdentity),
}

/// One page of events, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub events: Vec<AuditRecord>,
    /// Where the next (older) page starts, if there is one.
    pub next: Option<i64>,
}

/// Whose events a page shows.
#[derive(Debug, Clone, Copy)]
enum Scope {
    Tenant(Uuid),
    /// Events of no tenant.
    Instance,
}

pub struct AuditLog<'a> {
    db: &'a DatabaseConnection,
    #[cfg_attr(
        not(any(test, feature = "testing")),
        expect(dead_code, reason = "only the test-only `record` stamps events itself")
    )]
    clock: &'a dyn Clock,
}

/// `details.<key> = value`, in each database's JSON dialect. Unindexed: the portal's links
/// pair it with the user filter, whose index narrows the rows first.
fn details_field(
    backend: sea_orm::DatabaseBackend,
    key: &'static str,
    value: String,
) -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::Expr;
    match backend {
        sea_orm::DatabaseBackend::Postgres => {
            Expr::cust_with_values(format!("(audit_events.details ->> '{key}') = $1"), [value])
        }
        _ => Expr::cust_with_values(
            format!("json_extract(audit_events.details, '$.{key}') = ?"),
            [value],
        ),
    }
}

/// Bounds what one event may hold, so a hostile user agent cannot bloat the log.
fn clip(value: Option<String>, max_chars: usize) -> Option<String> {
    value.map(|v| v.chars().take(max_chars).collect())
}

impl<'a> AuditLog<'a> {
    pub(crate) fn new(db: &'a DatabaseConnection, clock: &'a dyn Clock) -> Self {
        Self { db, clock }
    }

    /// Records an event on its own.
    /// Test-only (the `testing` feature).
    #[cfg(any(test, feature = "testing"))]
    pub async fn record(&self, entry: AuditEntry) -> Result<()> {
        record_in(self.db, self.clock, entry).await
    }

    /// A page of a tenant's events matching `filter`, newest first: members who may read the audit
    /// log (`support` and up). Another tenant is `not_found`.
    pub async fn tenant_page(
        &self,
        access: &TenantAccess,
        filter: &AuditFilter,
    ) -> Result<AuditPage> {
        access.require(crate::access::Permission::ReadAuditLog)?;
        self.page(Scope::Tenant(access.tenant_id()), filter).await
    }

    /// A page of `scope`'s events matching `filter`.
    pub async fn scoped_page(&self, scope: &AuditScope, filter: &AuditFilter) -> Result<AuditPage> {
        match scope {
            AuditScope::Tenant(access) => self.tenant_page(access, filter).await,
            AuditScope::Instance(operator) => self.instance_page(operator, filter).await,
        }
    }

    /// A page of the instance's own events (those of no tenant: operators, setup, invitations,
    /// the CLI's instance-wide changes) matching `filter`: instance admins only. A tenant's
    /// events are its members' to read (`access`: being an instance admin grants no access to a
    /// tenant's contents).
    pub async fn instance_page(
        &self,
        actor: &OperatorIdentity,
        filter: &AuditFilter,
    ) -> Result<AuditPage> {
        actor.require_instance_admin()?;
        self.page(Scope::Instance, filter).await
    }

    /// Keyset on the event id (ids only grow): the page after `filter.before` ends at the smallest
    /// id shown, so events recorded meanwhile neither repeat nor shift a page.
    async fn page(&self, scope: Scope, filter: &AuditFilter) -> Result<AuditPage> {
        let limit = filter.limit.unwrap_or(AUDIT_PAGE_SIZE);
        if !(1..=AUDIT_EXPORT_BATCH).contains(&limit) {
            return Err(crate::Error::invalid(
                "limit",
                format!("A page holds 1 to {AUDIT_EXPORT_BATCH} events."),
            ));
        }
        if let (Some(from), Some(to)) = (filter.from, filter.to)
            && from >= to
        {
            return Err(crate::Error::invalid(
                "to",
                "The end of the time range must be after its start.",
            ));
        }
        // No actor, action or user ID holds a control character, and PostgreSQL refuses NUL in
        // any text parameter: such a filter is refused here rather than failing in the database.
        for (field, value) in [
            ("actor", &filter.actor),
            ("action", &filter.action),
            ("user", &filter.target_user),
        ] {
            if value
                .as_deref()
                .is_some_and(|v| v.chars().any(char::is_control))
            {
                return Err(crate::Error::invalid(
                    field,
                    "A filter cannot contain control characters.",
                ));
            }
        }
        let mut query = audit_event::Entity::find().filter(match scope {
            Scope::Tenant(tenant_id) => audit_event::Column::TenantId.eq(tenant_id),
            Scope::Instance => audit_event::Column::TenantId.is_null(),
        });
        if let Some(actor) = filter
            .actor
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            query = if ACTOR_KINDS.contains(&actor) {
                query.filter(audit_event::Column::ActorKind.eq(actor))
            } else {
                query.filter(audit_event::Column::ActorLabel.eq(actor))
            };
        }
        if let Some(action) = filter
            .action
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            query = query.filter(audit_event::Column::Action.eq(action));
        }
        if let Some(user) = filter
            .target_user
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            query = query
                .filter(audit_event::Column::TargetKind.eq("user"))
                .filter(audit_event::Column::TargetId.eq(user));
        }
        if let Some(from) = filter.from {
            query = query.filter(audit_event::Column::OccurredAt.gte(from));
        }
        if let Some(to) = filter.to {
            query = query.filter(audit_event::Column::OccurredAt.lt(to));
        }
        if let Some(passkey) = filter.passkey {
            query = query.filter(details_field(
                self.db.get_database_backend(),
                "authenticator_id",
                passkey.to_string(),
            ));
        }
        if let Some(code) = filter.error_code {
            query = query.filter(audit_event::Column::ErrorCode.eq(code.as_str()));
        }
        if let Some(event) = filter.event {
            query = query.filter(audit_event::Column::Id.eq(event));
        }
        if let Some(before) = filter.before {
            query = query.filter(audit_event::Column::Id.lt(before));
        }
        let mut rows = query
            .order_by_desc(audit_event::Column::Id)
            .limit(limit + 1)
            .all(self.db)
            .await?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let next = if more {
            rows.last().map(|r| r.id)
        } else {
            None
        };
        Ok(AuditPage {
            events: rows.into_iter().map(AuditRecord::from).collect(),
            next,
        })
    }

    /// The newest events, optionally of one tenant, newest first. Not authorized: for callers
    /// that have already checked (and for tests).
    /// Test-only (the `testing` feature).
    #[cfg(any(test, feature = "testing"))]
    pub async fn recent(&self, tenant_id: Option<Uuid>, limit: u64) -> Result<Vec<AuditRecord>> {
        let mut query = audit_event::Entity::find();
        if let Some(tenant_id) = tenant_id {
            query = query.filter(audit_event::Column::TenantId.eq(tenant_id));
        }
        let rows = query
            .order_by_desc(audit_event::Column::Id)
            .limit(limit)
            .all(self.db)
            .await?;
        Ok(rows.into_iter().map(AuditRecord::from).collect())
    }
}

/// Records an event on any connection, so services can make it part of their transaction.
pub(crate) async fn record_in(
    conn: &impl ConnectionTrait,
    clock: &dyn Clock,
    entry: AuditEntry,
) -> Result<()> {
    audit_event::Entity::insert(row(clock, entry))
        .exec(conn)
        .await?;
    Ok(())
}

/// The row that records `entry` (for a write step that inserts it with others).
pub(crate) fn row(clock: &dyn Clock, entry: AuditEntry) -> audit_event::ActiveModel {
    let (actor_kind, actor_id, actor_label) = entry.actor.parts();
    let (outcome, error_code) = match entry.outcome {
        Outcome::Success => ("success", None),
        Outcome::Failure(code) => ("failure", Some(code.as_str().to_owned())),
    };
    let (target_kind, target_id) = match entry.target {
        Some((kind, id)) => (Some(kind.to_owned()), Some(id)),
        None => (None, None),
    };
    audit_event::ActiveModel {
        id: NotSet,
        occurred_at: Set(clock.now()),
        tenant_id: Set(entry.tenant_id),
        actor_kind: Set(actor_kind.to_owned()),
        actor_id: Set(clip(actor_id, 128)),
        actor_label: Set(clip(actor_label, 320)),
        action: Set(entry.action.to_owned()),
        target_kind: Set(target_kind),
        target_id: Set(clip(target_id, 160)),
        outcome: Set(outcome.to_owned()),
        error_code: Set(error_code),
        details: Set(entry.details),
        ip: Set(entry.meta.ip),
        user_agent: Set(entry.meta.user_agent),
    }
}

/// Records a refused attempt: besides a consumed ceremony, the only write a refusal makes.
/// Internal failures are not the caller's doing; the edge logs them instead.
pub(crate) async fn record_refusal<T>(
    conn: &impl ConnectionTrait,
    clock: &dyn Clock,
    result: &Result<T>,
    entry: AuditEntry,
) -> Result<()> {
    match result {
        Err(err) if !err.is_internal() => record_in(conn, clock, entry.failed(err.code())).await,
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_dates_are_whole_utc_days_and_bad_ones_name_their_field() {
        let filter = FilterText {
            from: "2026-11-01".into(),
            to: "2026-11-01".into(),
            ..FilterText::default()
        }
        .parse()
        .unwrap();
        assert_eq!(
            filter.to.unwrap() - filter.from.unwrap(),
            chrono::Duration::days(1)
        );
        let bad = FilterText {
            to: "yesterday".into(),
            ..FilterText::default()
        }
        .parse()
        .unwrap_err();
        assert_eq!(bad.field(), Some("to"));
    }
}
