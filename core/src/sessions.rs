//! Portal sessions, stored in the application database (SQLite or PostgreSQL) for
//! `tower-sessions`.
//!
//! Written here because no published store matches tower-sessions 0.15 with SeaORM 2 (sqlx 0.9).
//! The raw session id only ever lives in the operator's cookie: rows are keyed by its SHA-256, so
//! a copy of the database cannot be replayed as cookies. Each row also carries the operator it
//! belongs to, so that all of an operator's sessions can be ended at once.

use std::{fmt, sync::Arc};

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    sea_query::Expr,
};
use time::OffsetDateTime;
use tower_sessions_core::{
    SessionStore,
    session::{Id, Record},
    session_store::{self, ExpiredDeletion},
};
use uuid::Uuid;

use crate::{Clock, entities::session, secrets::hex_sha256};

/// The session key under which the signed-in operator's id is kept; mirrored into its own
/// column for revocation.
pub const OPERATOR_ID_KEY: &str = "operator_id";
/// When the operator signed in (Unix seconds).
pub const SIGNED_IN_AT_KEY: &str = "signed_in_at";
/// When a request last pushed the idle deadline back (Unix seconds).
pub const SEEN_AT_KEY: &str = "seen_at";
/// When this session last verified one of its operator's passkeys (sign-in, enrollment or a
/// step-up): what [`crate::access::step_up`] judges.
pub const PASSKEY_VERIFIED_AT_KEY: &str = "passkey_verified_at";

/// A session ends this long after sign-in, however active it is.
pub const ABSOLUTE_LIFETIME: chrono::Duration = chrono::Duration::hours(12);
/// A session ends after this long without a request (the store's expiry, slid on activity).
pub const IDLE_TIMEOUT: chrono::Duration = chrono::Duration::hours(1);
/// How stale the idle deadline may get before a request pushes it back: sliding it on every
/// request would write the session row on every request.
pub const IDLE_REFRESH: chrono::Duration = chrono::Duration::minutes(1);

/// What a request does with a signed-in session, by the lifetime rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Past its absolute lifetime (or without a sign-in time): end it.
    Ended,
    /// Live; `slide_to`: the new deadline to store when the idle deadline is due a push.
    Live { slide_to: Option<DateTime<Utc>> },
}

impl Lifetime {
    /// Judges a session signed in at `signed_in_at` and last slid at `seen_at`, at `now`.
    pub fn judge(
        now: DateTime<Utc>,
        signed_in_at: Option<DateTime<Utc>>,
        seen_at: Option<DateTime<Utc>>,
    ) -> Self {
        match signed_in_at {
            Some(at) if now - at < ABSOLUTE_LIFETIME => Self::Live {
                slide_to: seen_at
                    .is_none_or(|seen| now - seen >= IDLE_REFRESH)
                    .then(|| deadline(now, at)),
            },
            _ => Self::Ended,
        }
    }
}

/// When a session seen at `now` ends unless used again: the idle deadline, capped by the
/// absolute one. Stored as the session's own expiry, so the store refuses it afterwards on every
/// instance.
pub fn deadline(now: DateTime<Utc>, signed_in_at: DateTime<Utc>) -> DateTime<Utc> {
    (now + IDLE_TIMEOUT).min(signed_in_at + ABSOLUTE_LIFETIME)
}

/// How often `create` draws a fresh id after a collision before giving up. A collision of two
/// random 128-bit ids is practically impossible; the loop exists so that one can never overwrite
/// another operator's session.
const CREATE_ATTEMPTS: usize = 4;

#[derive(Clone)]
pub struct DbSessionStore {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for DbSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbSessionStore").finish_non_exhaustive()
    }
}

/// Hex SHA-256 of the session id as it appears in the cookie.
fn id_hash(id: &Id) -> String {
    hex_sha256(id.to_string().as_bytes())
}

fn backend(err: DbErr) -> session_store::Error {
    session_store::Error::Backend(err.to_string())
}

fn to_chrono(at: OffsetDateTime) -> DateTime<Utc> {
    DateTime::from_timestamp(at.unix_timestamp(), at.nanosecond())
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
        .trunc_subsecs(6)
}

fn to_time(at: DateTime<Utc>) -> session_store::Result<OffsetDateTime> {
    let nanos = at
        .timestamp_nanos_opt()
        .ok_or_else(|| session_store::Error::Decode("expiry out of range".into()))?;
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .map_err(|e| session_store::Error::Decode(e.to_string()))
}

fn operator_of(record: &Record) -> Option<Uuid> {
    record
        .data
        .get(OPERATOR_ID_KEY)
        .and_then(|v| v.as_str())
        .and_then(|s| Uuid::parse_str(s).ok())
}

impl DbSessionStore {
    pub(crate) fn new(db: DatabaseConnection, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    fn row(&self, record: &Record) -> session_store::Result<session::ActiveModel> {
        let data = serde_json::to_vec(&record.data)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        Ok(session::ActiveModel {
            id_hash: Set(id_hash(&record.id)),
            operator_id: Set(operator_of(record)),
            data: Set(data),
            created_at: Set(self.clock.now()),
            expires_at: Set(to_chrono(record.expiry_date)),
        })
    }

    /// Ends every session of an operator (sign out everywhere, removal, suspected theft).
    /// Returns how many were ended.
    /// Test-only (the `testing` feature).
    #[cfg(any(test, feature = "testing"))]
    pub async fn revoke_operator(&self, operator_id: Uuid) -> crate::Result<u64> {
        let deleted = session::Entity::delete_many()
            .filter(session::Column::OperatorId.eq(operator_id))
            .exec(&self.db)
            .await?;
        Ok(deleted.rows_affected)
    }

    /// How many unexpired sessions an operator has.
    /// Test-only (the `testing` feature).
    #[cfg(any(test, feature = "testing"))]
    pub async fn count_active(&self, operator_id: Uuid) -> crate::Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(session::Entity::find()
            .filter(session::Column::OperatorId.eq(operator_id))
            .filter(session::Column::ExpiresAt.gt(self.clock.now()))
            .count(&self.db)
            .await?)
    }
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        for _ in 0..CREATE_ATTEMPTS {
            let row = self.row(record)?;
            match session::Entity::insert(row).exec(&self.db).await {
                Ok(_) => return Ok(()),
                Err(err) if crate::error::is_unique_violation(&err) => {
                    record.id = Id::default();
                }
                Err(err) => return Err(backend(err)),
            }
        }
        Err(session_store::Error::Backend(
            "could not draw an unused session id".into(),
        ))
    }

    /// Updates a session that still exists and has not expired; never creates one.
    /// tower-sessions calls `create` for new sessions and `save` only for loaded ones, so a
    /// missing row means the session ended meanwhile (sign-out, "Sign out everywhere", removal,
    /// expiry) while this request was in flight: re-inserting it (an upsert) would bring the
    /// ended session back. The update is one statement, so it cannot interleave with a delete.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_vec(&record.data)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        session::Entity::update_many()
            .col_expr(
                session::Column::OperatorId,
                Expr::value(operator_of(record)),
            )
            .col_expr(session::Column::Data, Expr::value(data))
            .col_expr(
                session::Column::ExpiresAt,
                Expr::value(to_chrono(record.expiry_date)),
            )
            .filter(session::Column::IdHash.eq(id_hash(&record.id)))
            .filter(session::Column::ExpiresAt.gt(self.clock.now()))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let row = session::Entity::find_by_id(id_hash(session_id))
            .filter(session::Column::ExpiresAt.gt(self.clock.now()))
            .one(&self.db)
            .await
            .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let data = serde_json::from_slice(&row.data)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record {
            id: *session_id,
            data,
            expiry_date: to_time(row.expires_at)?,
        }))
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        session::Entity::delete_by_id(id_hash(session_id))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for DbSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        session::Entity::delete_many()
            .filter(session::Column::ExpiresAt.lte(self.clock.now()))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hashed_and_times_round_trip_at_microsecond_precision() {
        let id = Id(42);
        let hash = id_hash(&id);
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(&id.to_string()));
        assert_eq!(hash, id_hash(&Id(42)), "stable");
        assert_ne!(hash, id_hash(&Id(43)));

        let at = OffsetDateTime::from_unix_timestamp_nanos(1_790_000_000_123_456_789)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let back = to_time(to_chrono(at)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(back.unix_timestamp_nanos(), 1_790_000_000_123_456_000);
    }

    #[test]
    fn a_session_lives_twelve_hours_and_slides_its_idle_hour_once_a_minute() {
        let start = DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default();
        let minutes = |m: i64| start + chrono::Duration::minutes(m);
        // Just signed in and seen: nothing to slide.
        assert_eq!(
            Lifetime::judge(minutes(0), Some(start), Some(start)),
            Lifetime::Live { slide_to: None }
        );
        // A minute later the idle deadline is pushed an hour past now.
        assert_eq!(
            Lifetime::judge(minutes(1), Some(start), Some(start)),
            Lifetime::Live {
                slide_to: Some(minutes(61))
            }
        );
        // Near the end, the absolute lifetime caps the deadline.
        assert_eq!(
            Lifetime::judge(minutes(700), Some(start), Some(minutes(650))),
            Lifetime::Live {
                slide_to: Some(minutes(720))
            }
        );
        assert_eq!(
            Lifetime::judge(minutes(720), Some(start), Some(minutes(719))),
            Lifetime::Ended
        );
        assert_eq!(Lifetime::judge(minutes(0), None, None), Lifetime::Ended);
    }
}
