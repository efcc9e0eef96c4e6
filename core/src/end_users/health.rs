//! The credential health queue: a tenant's active passkeys that need support's attention, each
//! with its reason and the date it was raised, newest first.
//!
//! Each reason is its own keyset walk of its own partial index (migration 000013), so a page
//! costs a few index seeks whatever the tenant's size: the queue of every reason merges the
//! reasons' pages here, by (date, passkey, reason). The predicates below are written exactly as
//! the indexes' (SQLite uses a partial index only when the query repeats its terms).
//! "Breaks the policy" depends on the policy of the day and has no index of its own: it walks
//! the tenant's active passkeys newest first until it has a page.
//!
//! A dismissal (with a note, audited) hides a flag raised before it; the same reason raised
//! again later (a counter that regresses again, a new policy saved) shows again.

use std::collections::HashMap;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ColumnTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    sea_query::{Alias, Expr, ExprTrait, Query, SimpleExpr},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::EndUsers;
use crate::{
    Error, Result,
    access::{Permission, TenantAccess},
    audit::{self, AuditEntry, RequestMeta},
    entities::{authenticator, credential_dismissal, end_user},
    tenants::{Tenants, policy::AuthenticatorPolicy},
    validate,
};

/// Items per page at most.
pub const MAX_PAGE: u64 = 100;
/// Counts per reason stop here ("100+"). Each counted passkey costs an index step and a
/// dismissal lookup: at 1,000 the seven counts took about 100 ms of every Health page and the
/// dashboard at 1M passkeys; a support queue needs "more than a hundred", not the exact figure.
pub const COUNT_CAP: u64 = 100;

/// Why a passkey is in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthReason {
    /// Its signature counter went backwards: possibly a cloned authenticator.
    CounterRegressed,
    /// Its backup state flipped (it became synced, or stopped being).
    BackupStateChanged,
    /// A newer FIDO metadata BLOB downgraded its model.
    MetadataDowngraded,
    /// The tenant's current policy refuses it (or will at its next sign-in).
    BreaksPolicy,
    /// Registered without user verification.
    NotUserVerified,
    /// Its AAGUID names no known model (often all zeros).
    UnknownModel,
    /// Unused for longer than the tenant's setting.
    Unused,
}

impl HealthReason {
    pub const ALL: [HealthReason; 7] = [
        Self::CounterRegressed,
        Self::BackupStateChanged,
        Self::MetadataDowngraded,
        Self::BreaksPolicy,
        Self::NotUserVerified,
        Self::UnknownModel,
        Self::Unused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CounterRegressed => "counter_regressed",
            Self::BackupStateChanged => "backup_state_changed",
            Self::MetadataDowngraded => "metadata_downgraded",
            Self::BreaksPolicy => "breaks_policy",
            Self::NotUserVerified => "not_user_verified",
            Self::UnknownModel => "unknown_model",
            Self::Unused => "unused",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == value)
    }

    /// What support reads.
    pub fn label(self) -> &'static str {
        match self {
            Self::CounterRegressed => "Counter went backwards (possible clone)",
            Self::BackupStateChanged => "Backup state changed",
            Self::MetadataDowngraded => "Model downgraded by FIDO metadata",
            Self::BreaksPolicy => "Refused by the current policy",
            Self::NotUserVerified => "Registered without user verification",
            Self::UnknownModel => "Unknown authenticator model",
            Self::Unused => "Unused",
        }
    }

    fn rank(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }

    /// The date the flag was raised, per row. Qualified by its table, for the dismissals'
    /// correlated subquery; SQLite still matches it to the partial indexes' unqualified terms.
    fn date(self) -> SimpleExpr {
        let col = |c: authenticator::Column| Expr::col((authenticator::Entity, c));
        match self {
            Self::CounterRegressed => col(authenticator::Column::CounterRegressedAt),
            Self::BackupStateChanged => col(authenticator::Column::BackupStateChangedAt),
            Self::MetadataDowngraded => col(authenticator::Column::MetadataFlaggedAt),
            Self::BreaksPolicy | Self::NotUserVerified | Self::UnknownModel => {
                col(authenticator::Column::CreatedAt)
            }
            Self::Unused => last_activity(),
        }
    }
}

/// When the passkey was last used (registered, if never): what "unused" is measured from.
fn last_activity() -> SimpleExpr {
    Expr::cust("COALESCE(authenticators.last_used_at, authenticators.created_at)")
}

/// One passkey in the queue, for one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthItem {
    pub reason: HealthReason,
    /// When the reason was raised: the event's date, or (for states) the registration or the
    /// last use.
    pub flagged_at: DateTime<Utc>,
    pub authenticator_id: Uuid,
    pub name: String,
    pub aaguid: Uuid,
    pub provider_name: Option<String>,
    pub user_id: String,
    pub username: Option<String>,
    /// More about the reason (the metadata's status), when there is more.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPage {
    pub items: Vec<HealthItem>,
    /// The cursor of the next page.
    pub next: Option<String>,
}

/// Queue items per reason, capped at [`COUNT_CAP`] + 1 (show "100+").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCount {
    pub reason: HealthReason,
    pub count: u64,
}

/// A page's position: the last item's (date, passkey, reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    date: DateTime<Utc>,
    id: Uuid,
    reason: HealthReason,
}

impl Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}|{}|{}",
            self.date
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            self.id,
            self.reason.as_str()
        ))
    }

    fn decode(value: &str) -> Result<Self> {
        let bad = || Error::invalid("after", "This page link is not valid: start again.");
        if value.len() > 200 {
            return Err(bad());
        }
        let raw = URL_SAFE_NO_PAD.decode(value.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let mut parts = text.split('|');
        let (Some(date), Some(id), Some(reason), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(Self {
            date: DateTime::parse_from_rfc3339(date)
                .map_err(|_| bad())?
                .with_timezone(&Utc),
            id: Uuid::parse_str(id).map_err(|_| bad())?,
            reason: HealthReason::parse(reason).ok_or_else(bad)?,
        })
    }
}

/// The rows one reason flags (active passkeys of the tenant, not dismissed since). `None` when
/// the tenant's settings make the reason impossible (no policy, no "unused" setting).
fn flagged(
    reason: HealthReason,
    tenant_id: Uuid,
    policy: &AuthenticatorPolicy,
    now: DateTime<Utc>,
) -> Option<sea_orm::Select<authenticator::Entity>> {
    let rows = authenticator::Entity::find().filter(authenticator::Column::TenantId.eq(tenant_id));
    // Each predicate repeats its index's terms (see the migration).
    let rows = match reason {
        HealthReason::CounterRegressed => rows
            .filter(Expr::cust("counter_regressed_at IS NOT NULL"))
            .filter(Expr::cust("revoked_at IS NULL")),
        HealthReason::BackupStateChanged => rows
            .filter(Expr::cust("backup_state_changed_at IS NOT NULL"))
            .filter(Expr::cust("revoked_at IS NULL")),
        HealthReason::MetadataDowngraded => rows
            .filter(Expr::cust("metadata_flagged_at IS NOT NULL"))
            .filter(Expr::cust("revoked_at IS NULL")),
        HealthReason::UnknownModel => rows
            .filter(Expr::cust("provider_name IS NULL"))
            .filter(Expr::cust("revoked_at IS NULL")),
        HealthReason::NotUserVerified => rows
            .filter(Expr::cust("NOT user_verified"))
            .filter(Expr::cust("revoked_at IS NULL")),
        HealthReason::Unused => {
            let days = policy.unused_after_days?;
            rows.filter(Expr::cust("revoked_at IS NULL"))
                .filter(last_activity().lt(now - Duration::days(i64::from(days))))
        }
        HealthReason::BreaksPolicy => rows
            .filter(Expr::cust("revoked_at IS NULL"))
            .filter(policy.breach_condition()?),
    };
    // Raised before a dismissal of the same reason: hidden. A policy flag is raised when the
    // policy is saved; the others at their own date.
    let raised = match reason {
        HealthReason::BreaksPolicy => {
            Expr::value(policy.saved_at.unwrap_or(DateTime::<Utc>::MIN_UTC))
        }
        other => other.date(),
    };
    let dismissed = Query::select()
        .expr(Expr::value(1))
        .from(credential_dismissal::Entity)
        .and_where(
            Expr::col((
                credential_dismissal::Entity,
                credential_dismissal::Column::AuthenticatorId,
            ))
            .equals((authenticator::Entity, authenticator::Column::Id)),
        )
        .and_where(credential_dismissal::Column::Reason.eq(reason.as_str()))
        .and_where(Expr::col(credential_dismissal::Column::DismissedAt).gte(raised))
        .to_owned();
    Some(rows.filter(Expr::exists(dismissed).not()))
}

impl EndUsers<'_> {
    async fn policy_of(&self, tenant_id: Uuid) -> Result<AuthenticatorPolicy> {
        let config = Tenants::new(self.db, self.clock, self.configs)
            .passkey_config(tenant_id)
            .await?
            .ok_or(Error::NotFound)?;
        Ok(config.policy.clone())
    }

    /// A page of the tenant's health queue, newest first: every reason, or one.
    pub async fn credential_health(
        &self,
        access: &TenantAccess,
        reason: Option<HealthReason>,
        after: Option<&str>,
        limit: u64,
    ) -> Result<HealthPage> {
        access.require(Permission::ReadCredentialHealth)?;
        let tenant_id = access.tenant_id();
        let after = after
            .filter(|a| !a.trim().is_empty())
            .map(Cursor::decode)
            .transpose()?;
        let limit = limit.clamp(1, MAX_PAGE);
        let policy = self.policy_of(tenant_id).await?;
        let now = self.clock.now();
        let reasons: Vec<HealthReason> = match reason {
            Some(reason) => vec![reason],
            None => HealthReason::ALL.to_vec(),
        };
        let mut found: Vec<Cursor> = Vec::new();
        for reason in reasons {
            let Some(rows) = flagged(reason, tenant_id, &policy, now) else {
                continue;
            };
            let date = reason.date();
            let mut rows = rows;
            if let Some(after) = after {
                // After the cursor in (date desc, id desc, reason) order.
                let key = Expr::tuple([date.clone(), Expr::col(authenticator::Column::Id)]);
                let at = Expr::tuple([Expr::value(after.date), Expr::value(after.id)]);
                rows = rows.filter(date.clone().lte(after.date)).filter(
                    if reason.rank() > after.reason.rank() {
                        key.lte(at)
                    } else {
                        key.lt(at)
                    },
                );
            }
            let page: Vec<(Uuid, DateTime<Utc>)> = rows
                .select_only()
                .column(authenticator::Column::Id)
                .expr_as(date.clone(), "flagged_at")
                .order_by(date, Order::Desc)
                .order_by(authenticator::Column::Id, Order::Desc)
                .limit(limit + 1)
                .into_tuple()
                .all(self.db)
                .await?;
            found.extend(
                page.into_iter()
                    .map(|(id, date)| Cursor { date, id, reason }),
            );
        }
        found.sort_by(|a, b| {
            b.date
                .cmp(&a.date)
                .then(b.id.cmp(&a.id))
                .then(a.reason.rank().cmp(&b.reason.rank()))
        });
        let more = found.len() as u64 > limit;
        found.truncate(limit as usize);
        let next = more.then(|| found.last().map(Cursor::encode)).flatten();
        let items = self.describe(tenant_id, &found).await?;
        Ok(HealthPage { items, next })
    }

    /// The passkeys and users behind a page's positions, in the page's order.
    async fn describe(&self, tenant_id: Uuid, found: &[Cursor]) -> Result<Vec<HealthItem>> {
        let ids: Vec<Uuid> = found.iter().map(|c| c.id).collect();
        let rows: HashMap<Uuid, (authenticator::Model, Option<end_user::Model>)> =
            authenticator::Entity::find()
                .find_also_related(end_user::Entity)
                .filter(authenticator::Column::TenantId.eq(tenant_id))
                .filter(authenticator::Column::Id.is_in(ids))
                .all(self.db)
                .await?
                .into_iter()
                .map(|(a, u)| (a.id, (a, u)))
                .collect();
        Ok(found
            .iter()
            .filter_map(|c| {
                let (row, user) = rows.get(&c.id)?;
                let user = user.as_ref()?;
                Some(HealthItem {
                    reason: c.reason,
                    flagged_at: c.date,
                    authenticator_id: row.id,
                    name: row.name.clone(),
                    aaguid: row.aaguid,
                    provider_name: row.provider_name.clone(),
                    user_id: user.external_id.clone(),
                    username: user.username.clone(),
                    detail: (c.reason == HealthReason::MetadataDowngraded)
                        .then(|| row.metadata_status.clone())
                        .flatten(),
                })
            })
            .collect())
    }

    /// The queue's size per reason (each capped at [`COUNT_CAP`] + 1), for the dashboard.
    pub async fn credential_health_counts(
        &self,
        access: &TenantAccess,
    ) -> Result<Vec<HealthCount>> {
        access.require(Permission::ReadCredentialHealth)?;
        let tenant_id = access.tenant_id();
        let policy = self.policy_of(tenant_id).await?;
        let now = self.clock.now();
        let mut counts = Vec::new();
        for reason in HealthReason::ALL {
            let Some(rows) = flagged(reason, tenant_id, &policy, now) else {
                continue;
            };
            // Ordered as the page walks them: the planner then reads the reason's own partial
            // index (without an order, SQLite picked a wider index and scanned the tenant:
            // 0.1–0.3 s at 1M passkeys instead of milliseconds).
            let limited = rows
                .select_only()
                .column(authenticator::Column::Id)
                .order_by(reason.date(), Order::Desc)
                .order_by(authenticator::Column::Id, Order::Desc)
                .limit(COUNT_CAP + 1)
                .into_query();
            let count = Query::select()
                .expr_as(Expr::cust("COUNT(*)"), Alias::new("n"))
                .from_subquery(limited, Alias::new("limited"))
                .to_owned();
            use sea_orm::ConnectionTrait;
            let n: i64 = match self.db.query_one(&count).await? {
                Some(row) => row.try_get("", "n")?,
                None => 0,
            };
            counts.push(HealthCount {
                reason,
                count: u64::try_from(n).unwrap_or(0),
            });
        }
        Ok(counts)
    }

    /// Dismisses one passkey's flag with a note (support and up), audited. The flag shows again
    /// when its reason is raised again. A passkey of another tenant is `not_found`.
    pub async fn dismiss_health_flag(
        &self,
        access: &TenantAccess,
        authenticator_id: Uuid,
        reason: HealthReason,
        note: &str,
        meta: RequestMeta,
    ) -> Result<()> {
        access.require(Permission::DismissHealthFlags)?;
        let tenant_id = access.tenant_id();
        let note = validate::label("note", "note", note, 500)?;
        let txn = crate::db::begin_write(self.writer).await?;
        let row = authenticator::Entity::find_by_id(authenticator_id)
            .find_also_related(end_user::Entity)
            .filter(authenticator::Column::TenantId.eq(tenant_id))
            .one(&txn)
            .await?
            .ok_or(Error::NotFound)?;
        let now = self.clock.now();
        let actor = access.actor();
        credential_dismissal::Entity::insert(credential_dismissal::ActiveModel {
            id: sea_orm::ActiveValue::Set(Uuid::new_v4()),
            tenant_id: sea_orm::ActiveValue::Set(tenant_id),
            authenticator_id: sea_orm::ActiveValue::Set(authenticator_id),
            reason: sea_orm::ActiveValue::Set(reason.as_str().to_owned()),
            dismissed_at: sea_orm::ActiveValue::Set(now),
            dismissed_by: sea_orm::ActiveValue::Set(actor.label()),
            note: sea_orm::ActiveValue::Set(note.clone()),
        })
        .exec_without_returning(&txn)
        .await?;
        let mut entry = AuditEntry::new(actor, "authenticator.health_flag_dismissed")
            .tenant(tenant_id)
            .details(serde_json::json!({
                "authenticator_id": authenticator_id,
                "reason": reason.as_str(),
                "note": note,
            }))
            .meta(meta);
        if let (_, Some(user)) = &row {
            entry = entry.target("user", user.external_id.clone());
        }
        audit::record_in(&txn, self.clock, entry).await?;
        txn.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = Cursor {
            date: DateTime::<Utc>::from_timestamp(1_780_000_000, 123_456_000).unwrap_or_default(),
            id: Uuid::from_u128(99),
            reason: HealthReason::Unused,
        };
        assert_eq!(Cursor::decode(&cursor.encode()).ok(), Some(cursor));
        for garbage in [
            "",
            "!!",
            &"A".repeat(500),
            &URL_SAFE_NO_PAD.encode("x|y|z|w"),
        ] {
            assert!(Cursor::decode(garbage).is_err(), "{garbage}");
        }
        for reason in HealthReason::ALL {
            assert_eq!(HealthReason::parse(reason.as_str()), Some(reason));
        }
    }
}
