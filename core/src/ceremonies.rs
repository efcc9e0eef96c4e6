//! Stored WebAuthn ceremonies: the server-side half of every registration and authentication.
//!
//! A ceremony is created with its options and consumed exactly once by a conditional update that
//! both decides and marks (`… WHERE used_at IS NULL AND expires_at > now RETURNING …`), so of
//! any number of concurrent attempts one wins, on every instance and both databases. The state
//! lives in the database, so any instance can finish a ceremony another one started.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::Expr,
};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::{Clock, Error, ErrorCode, Result, entities::ceremony};

/// What a ceremony is for; a ceremony of one kind can never finish another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CeremonyKind {
    /// Registering an operator's passkey (setup, invitation or an additional passkey).
    PortalRegistration,
    /// Signing in to the portal with a discoverable passkey.
    PortalAuthentication,
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
}

/// A consumed ceremony, ready to be verified.
pub(crate) struct Consumed<S> {
    pub subject: Option<String>,
    pub token_id: Option<Uuid>,
    pub state: S,
    pub context: Option<serde_json::Value>,
}

pub(crate) async fn start<S: Serialize>(
    conn: &impl ConnectionTrait,
    clock: &dyn Clock,
    new: NewCeremony<S>,
) -> Result<Uuid> {
    let now = clock.now();
    let id = Uuid::new_v4();
    let state = serde_json::to_string(&new.state)
        .map_err(|e| Error::Internal(format!("serialising ceremony state: {e}")))?;
    ceremony::Entity::insert(ceremony::ActiveModel {
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
    })
    .exec_without_returning(conn)
    .await?;
    Ok(id)
}

fn scoped(tenant_id: Option<Uuid>) -> sea_orm::Condition {
    match tenant_id {
        Some(t) => sea_orm::Condition::all().add(ceremony::Column::TenantId.eq(t)),
        None => sea_orm::Condition::all().add(ceremony::Column::TenantId.is_null()),
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
    Ok(match row {
        Some(row) if row.used_at.is_none() && row.expires_at <= now => Error::refused(
            ErrorCode::CeremonyExpired,
            "This attempt has expired. Start again.",
        ),
        Some(_) => Error::refused(
            ErrorCode::CeremonyInvalid,
            "This attempt has already been used. Start again.",
        ),
        None => Error::refused(ErrorCode::CeremonyInvalid, "Unknown ceremony. Start again."),
    })
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
