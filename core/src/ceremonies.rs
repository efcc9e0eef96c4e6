//! Stored WebAuthn ceremonies: the server-side half of every registration and authentication.
//!
//! A ceremony is created with its options and consumed exactly once by a conditional update that
//! both decides and marks (`… WHERE used_at IS NULL AND expires_at > now …`), so of any number of
//! concurrent attempts one wins, on every instance and both databases. The state lives in the
//! database, so any instance can finish a ceremony another one started.
//!
//! Two ways to finish one:
//! - [`consume`] first, then verify (the portal's ceremonies): two write transactions.
//! - [`pending`] reads it without writing, the caller verifies, and [`CeremonyKey::consume_in`]
//!   consumes it inside the one transaction that writes what the success implies (the tenants'
//!   Client API, the hot path: one write transaction per ceremony step). The conditional update
//!   still decides: a response verified twice concurrently commits once, the loser is refused
//!   as a used ceremony and its transaction rolled back. A refused step consumes the ceremony
//!   in the transaction that audits the refusal, so every attempt still uses up its challenge.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, QuerySelect, Statement, sea_query::Expr,
};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::{
    Clock, Error, ErrorCode, Result,
    abuse::{AbuseLimits, SourceKey},
    entities::ceremony,
};

/// What a ceremony is for; a ceremony of one kind can never finish another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CeremonyKind {
    /// Registering an operator's passkey (setup, invitation or an additional passkey).
    PortalRegistration,
    /// Signing in to the portal with a discoverable passkey.
    PortalAuthentication,
    /// A signed-in operator confirming with one of their own passkeys (step-up).
    PortalStepUp,
    /// An end user registering a passkey with an enrollment token (Client API).
    TenantRegistration,
    /// An end user signing in to a tenant (Client API).
    TenantAuthentication,
}

impl CeremonyKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::PortalRegistration => "portal_registration",
            Self::PortalAuthentication => "portal_authentication",
            Self::PortalStepUp => "portal_step_up",
            Self::TenantRegistration => "tenant_registration",
            Self::TenantAuthentication => "tenant_authentication",
        }
    }
}

pub(crate) struct NewCeremony<S: Serialize> {
    pub tenant_id: Option<Uuid>,
    pub kind: CeremonyKind,
    pub subject: Option<String>,
    pub token_id: Option<Uuid>,
    pub state: S,
    pub context: Option<serde_json::Value>,
    pub ttl: Duration,
    /// Where it was started from; a source holds a bounded number of unfinished ceremonies.
    pub source: Option<SourceKey>,
}

/// A consumed ceremony, ready to be verified.
pub(crate) struct Consumed<S> {
    pub subject: Option<String>,
    pub token_id: Option<Uuid>,
    pub state: S,
    pub context: Option<serde_json::Value>,
}

pub(crate) async fn start<S: Serialize>(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    limits: &AbuseLimits,
    new: NewCeremony<S>,
) -> Result<Uuid> {
    let now = clock.now();
    let id = Uuid::new_v4();
    let state = serde_json::to_string(&new.state)
        .map_err(|e| Error::Internal(format!("serialising ceremony state: {e}")))?;
    let row = ceremony::ActiveModel {
        id: Set(id),
        tenant_id: Set(new.tenant_id),
        kind: Set(new.kind.as_str().to_owned()),
        subject: Set(new.subject),
        token_id: Set(new.token_id),
        state: Set(state),
        context: Set(new.context),
        created_at: Set(now),
        expires_at: Set(now + new.ttl),
        used_at: Set(None),
        source: Set(new.source.map(|s| s.to_string())),
    };
    let (Some(source), Some(cap)) = (new.source, limits.open_ceremonies_per_source) else {
        ceremony::Entity::insert(row)
            .exec_without_returning(db)
            .await?;
        return Ok(id);
    };
    // Counted and inserted in one transaction that holds the source's lock, so that concurrent
    // starts cannot all see room for one more (PostgreSQL: an advisory lock per source, as READ
    // COMMITTED would let each count the same rows; SQLite: the IMMEDIATE write lock).
    let txn = crate::db::begin_write(db).await?;
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [format!("latchkey.ceremony_source:{source}").into()],
        ))
        .await?;
    }
    let open = ceremony::Entity::find()
        .select_only()
        .column_as(ceremony::Column::Id.count(), "open")
        .column_as(ceremony::Column::ExpiresAt.min(), "oldest")
        .filter(ceremony::Column::Source.eq(source.to_string()))
        .filter(ceremony::Column::ExpiresAt.gt(now))
        .filter(ceremony::Column::UsedAt.is_null())
        .into_tuple::<(i64, Option<DateTime<Utc>>)>()
        .one(&txn)
        .await?;
    if let Some((count, Some(oldest))) = open
        && count >= i64::from(cap)
    {
        return Err(Error::Throttled {
            message: "Too many unfinished sign-ins and registrations from this address. Finish \
                      one, or try again when one has expired."
                .into(),
            retry_after_seconds: u64::try_from((oldest - now).num_seconds()).unwrap_or(0) + 1,
        });
    }
    ceremony::Entity::insert(row)
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await?;
    Ok(id)
}

fn scoped(tenant_id: Option<Uuid>) -> sea_orm::Condition {
    match tenant_id {
        Some(t) => sea_orm::Condition::all().add(ceremony::Column::TenantId.eq(t)),
        None => sea_orm::Condition::all().add(ceremony::Column::TenantId.is_null()),
    }
}

/// Names a stored ceremony for consuming it later, in the caller's transaction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CeremonyKey {
    id: Uuid,
    tenant_id: Option<Uuid>,
    kind: CeremonyKind,
}

/// A ceremony read for verification, not consumed yet.
pub(crate) struct Pending<S> {
    pub key: CeremonyKey,
    pub subject: Option<String>,
    pub token_id: Option<Uuid>,
    pub state: S,
}

/// Reads the ceremony `id` for verification without writing; an unknown, used or expired one is
/// refused exactly as [`consume`] refuses it.
pub(crate) async fn pending<S: DeserializeOwned>(
    conn: &impl ConnectionTrait,
    clock: &dyn Clock,
    id: Uuid,
    tenant_id: Option<Uuid>,
    kind: CeremonyKind,
) -> Result<Pending<S>> {
    let now = clock.now();
    let row = ceremony::Entity::find_by_id(id)
        .filter(ceremony::Column::Kind.eq(kind.as_str()))
        .filter(scoped(tenant_id))
        .one(conn)
        .await?;
    let row = match row {
        Some(row) if row.used_at.is_none() && row.expires_at > now => row,
        other => return Err(refusal(other.as_ref(), now)),
    };
    let state = serde_json::from_str(&row.state)
        .map_err(|e| Error::Internal(format!("stored ceremony state unreadable: {e}")))?;
    Ok(Pending {
        key: CeremonyKey {
            id,
            tenant_id,
            kind,
        },
        subject: row.subject,
        token_id: row.token_id,
        state,
    })
}

impl CeremonyKey {
    /// Consumes the ceremony inside the caller's transaction (rule 3: the conditional update
    /// decides), or says why it cannot be (used or expired meanwhile).
    pub(crate) async fn consume_in(
        self,
        conn: &impl ConnectionTrait,
        clock: &dyn Clock,
    ) -> Result<()> {
        let now = clock.now();
        let won = self.mark_used(conn, now).await?;
        if won {
            Ok(())
        } else {
            Err(why_not_consumed(conn, now, self.id, self.tenant_id, self.kind).await?)
        }
    }

    /// Consumes the ceremony if it is still unused (a refused attempt uses up its challenge);
    /// one already consumed stays as it is.
    pub(crate) async fn use_up_in(
        self,
        conn: &impl ConnectionTrait,
        clock: &dyn Clock,
    ) -> Result<()> {
        self.mark_used(conn, clock.now()).await.map(drop)
    }

    async fn mark_used(self, conn: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<bool> {
        let updated = ceremony::Entity::update_many()
            .col_expr(ceremony::Column::UsedAt, Expr::value(now))
            .filter(ceremony::Column::Id.eq(self.id))
            .filter(ceremony::Column::Kind.eq(self.kind.as_str()))
            .filter(scoped(self.tenant_id))
            .filter(ceremony::Column::UsedAt.is_null())
            .filter(ceremony::Column::ExpiresAt.gt(now))
            .exec(conn)
            .await?;
        Ok(updated.rows_affected == 1)
    }
}

/// Consumes the ceremony `id` (one attempt per challenge), or says why it cannot be.
pub(crate) async fn consume<S: DeserializeOwned>(
    conn: &impl ConnectionTrait,
    clock: &dyn Clock,
    id: Uuid,
    tenant_id: Option<Uuid>,
    kind: CeremonyKind,
) -> Result<Consumed<S>> {
    let now = clock.now();
    let mut won = ceremony::Entity::update_many()
        .col_expr(ceremony::Column::UsedAt, Expr::value(now))
        .filter(ceremony::Column::Id.eq(id))
        .filter(ceremony::Column::Kind.eq(kind.as_str()))
        .filter(scoped(tenant_id))
        .filter(ceremony::Column::UsedAt.is_null())
        .filter(ceremony::Column::ExpiresAt.gt(now))
        .exec_with_returning(conn)
        .await?;
    let Some(row) = won.pop() else {
        return Err(why_not_consumed(conn, now, id, tenant_id, kind).await?);
    };
    let state = serde_json::from_str(&row.state)
        .map_err(|e| Error::Internal(format!("stored ceremony state unreadable: {e}")))?;
    Ok(Consumed {
        subject: row.subject,
        token_id: row.token_id,
        state,
        context: row.context,
    })
}

/// Classifies a failed consumption for the caller. Only reads; the decision was the update.
async fn why_not_consumed(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    id: Uuid,
    tenant_id: Option<Uuid>,
    kind: CeremonyKind,
) -> Result<Error> {
    let row = ceremony::Entity::find_by_id(id)
        .filter(ceremony::Column::Kind.eq(kind.as_str()))
        .filter(scoped(tenant_id))
        .one(conn)
        .await?;
    Ok(refusal(row.as_ref(), now))
}

/// Why a ceremony (as read, or missing) cannot be consumed at `now`.
fn refusal(row: Option<&ceremony::Model>, now: DateTime<Utc>) -> Error {
    match row {
        Some(row) if row.used_at.is_none() && row.expires_at <= now => Error::refused(
            ErrorCode::CeremonyExpired,
            "This attempt has expired. Start again.",
        ),
        Some(_) => Error::refused(
            ErrorCode::CeremonyInvalid,
            "This attempt has already been used. Start again.",
        ),
        None => Error::refused(ErrorCode::CeremonyInvalid, "Unknown ceremony. Start again."),
    }
}

/// Deletes ceremonies that expired more than `grace` ago (housekeeping).
pub(crate) async fn purge_expired(
    conn: &impl ConnectionTrait,
    clock: &dyn Clock,
    grace: Duration,
) -> Result<u64> {
    let cutoff = clock.now() - grace;
    let deleted = ceremony::Entity::delete_many()
        .filter(ceremony::Column::ExpiresAt.lt(cutoff))
        .exec(conn)
        .await?;
    Ok(deleted.rows_affected)
}
