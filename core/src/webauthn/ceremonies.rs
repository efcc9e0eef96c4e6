//! WebAuthn ceremonies: the server-side half of every registration and authentication.
//!
//! A stored ceremony is created with its options and consumed exactly once by the conditional
//! update of [`crate::single_use`], so of any number of concurrent attempts one wins, on every
//! instance and both databases. The state lives in the database, so any instance can finish a
//! ceremony another one started. A tenant sign-in's ceremony is sealed into its ID instead
//! ([`super::sealed`], [`open_sealed`]): nothing is stored at options, and its use is an
//! insert into `ceremony_uses` whose key decides, in the verify step
//! ([`CeremonyKey::consume_link`]).
//!
//! Two ways to finish a stored one:
//! - [`consume`] first, then verify (the portal's ceremonies): two write transactions.
//! - [`pending`] reads it without writing, the caller verifies, and [`CeremonyKey::consume_in`]
//!   consumes it inside the one transaction that writes what the success implies (the tenants'
//!   Client API, the hot path: one write transaction per ceremony step). The conditional update
//!   still decides: a response verified twice concurrently commits once, the loser is refused
//!   as a used ceremony and its transaction rolled back. A refused step consumes the ceremony
//!   in the transaction that audits the refusal, so every attempt still uses up its challenge.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QuerySelect, sea_query::OnConflict,
};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::{
    Clock, Error, ErrorCode, Result,
    abuse::{AbuseLimits, SourceKey},
    entities::{ceremony, ceremony_use},
    single_use::{self, Attempt, Claim},
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
    pub(crate) fn as_str(self) -> &'static str {
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
    crate::db::lock_named(&txn, &format!("latchkey.ceremony_source:{source}")).await?;
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

/// The ceremonies of `kind` in `tenant_id` (none: the portal's): a ceremony outside them is
/// unknown to the caller.
fn scope(tenant_id: Option<Uuid>, kind: CeremonyKind) -> sea_orm::Condition {
    let tenant = match tenant_id {
        Some(t) => ceremony::Column::TenantId.eq(t),
        None => ceremony::Column::TenantId.is_null(),
    };
    sea_orm::Condition::all()
        .add(tenant)
        .add(ceremony::Column::Kind.eq(kind.as_str()))
}

/// Names a ceremony for consuming it later, in the caller's write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CeremonyKey {
    id: Uuid,
    tenant_id: Option<Uuid>,
    kind: CeremonyKind,
    /// A sealed ceremony ([`super::sealed`]): when it expires. Its use is a row of
    /// `ceremony_uses`, not an update of `ceremonies`.
    sealed_until: Option<DateTime<Utc>>,
}

/// A ceremony read for verification, not consumed yet.
pub(crate) struct Pending<S> {
    pub key: CeremonyKey,
    pub subject: Option<String>,
    pub token_id: Option<Uuid>,
    pub state: S,
    pub context: Option<serde_json::Value>,
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
    let row = ceremony::Entity::find_by_id(id)
        .filter(scope(tenant_id, kind))
        .one(conn)
        .await?;
    let claim = single_use::standing::<ceremony::Entity>(row.as_ref(), clock.now());
    let (Claim::Won(()), Some(row)) = (claim, row) else {
        return Err(refusal(claim));
    };
    Ok(Pending {
        key: CeremonyKey {
            id,
            tenant_id,
            kind,
            sealed_until: None,
        },
        subject: row.subject,
        token_id: row.token_id,
        state: state_of(&row.state)?,
        context: row.context,
    })
}

impl CeremonyKey {
    fn attempt(self) -> Attempt<ceremony::Entity> {
        Attempt::new(self.id).scoped(scope(self.tenant_id, self.kind))
    }

    /// Consumes the ceremony inside the caller's transaction (the conditional update decides),
    /// or says why it cannot be (used or expired meanwhile).
    pub(crate) async fn consume_in(
        self,
        conn: &impl ConnectionTrait,
        clock: &dyn Clock,
    ) -> Result<()> {
        match self.attempt().claim(conn, clock.now()).await? {
            Claim::Won(()) => Ok(()),
            lost => Err(refusal(lost)),
        }
    }

    /// The write that consumes the ceremony, as a link of a write step ([`crate::db::steps`]):
    /// the conditional update of a stored one, the insert that records a sealed one's use.
    /// [`CeremonyKey::why_not_consumed`] explains a link that broke. A sealed ceremony that
    /// expired while its response was verified is refused here.
    pub(crate) fn consume_link(self, clock: &dyn Clock) -> Result<crate::db::steps::Link> {
        use crate::db::steps::{Link, Row};
        let now = clock.now();
        match (self.sealed_until, self.tenant_id) {
            (Some(expires_at), _) if expires_at <= now => Err(refusal(Claim::Expired)),
            (Some(expires_at), Some(tenant_id)) => Ok(Link::Insert(
                Row::of(&self.use_row(tenant_id, expires_at, now))
                    .unless_exists(ceremony_use::Column::Id),
            )),
            (Some(_), None) => Err(Error::Internal("a sealed ceremony without a tenant".into())),
            (None, _) => Ok(Link::Update(Box::new(self.attempt().statement(now)))),
        }
    }

    /// The row that records a sealed ceremony's use at `now`.
    fn use_row(
        self,
        tenant_id: Uuid,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> ceremony_use::ActiveModel {
        ceremony_use::ActiveModel {
            id: Set(self.id),
            tenant_id: Set(tenant_id),
            expires_at: Set(expires_at),
            used_at: Set(now),
        }
    }

    /// Why the ceremony could not be consumed (used or expired meanwhile). Only reads.
    pub(crate) async fn why_not_consumed(
        self,
        conn: &impl ConnectionTrait,
        clock: &dyn Clock,
    ) -> Result<Error> {
        if self.sealed_until.is_some() {
            // Its use was already recorded: the insert found the row.
            return Ok(refusal(Claim::Used));
        }
        Ok(refusal(self.attempt().why_lost(conn, clock.now()).await?))
    }

    /// A condition that holds while this sealed ceremony's use is not recorded, to fold into
    /// the verify step's read: a replayed response is then refused before any signature work
    /// without a read of its own (on the hot path a round trip is the cost that counts). The
    /// verify step's use link still decides; this only refuses early.
    pub(crate) fn unused(&self) -> sea_orm::sea_query::SimpleExpr {
        use sea_orm::{
            ExprTrait,
            sea_query::{Expr, Query},
        };
        Expr::exists(
            Query::select()
                .expr(Expr::val(1))
                .from(ceremony_use::Entity)
                .and_where(ceremony_use::Column::Id.eq(self.id))
                .to_owned(),
        )
        .not()
    }

    /// After a read gated on [`Self::unused`] found nothing: refuses a used ceremony as used,
    /// so the caller answers its own reason only for an unused one.
    pub(crate) async fn refuse_if_used(&self, steps: &crate::db::steps::StepWriter) -> Result<()> {
        if steps
            .all(ceremony_use::Entity::find_by_id(self.id))
            .await?
            .is_empty()
        {
            Ok(())
        } else {
            Err(refusal(Claim::Used))
        }
    }

    /// Consumes the ceremony if it is still unused (a refused attempt uses up its challenge);
    /// one already consumed stays as it is. Answers whether this call used it up.
    pub(crate) async fn use_up_in(
        self,
        conn: &impl ConnectionTrait,
        clock: &dyn Clock,
    ) -> Result<bool> {
        let (Some(expires_at), Some(tenant_id)) = (self.sealed_until, self.tenant_id) else {
            let claim = self.attempt().claim(conn, clock.now()).await?;
            return Ok(claim == Claim::Won(()));
        };
        let inserted =
            ceremony_use::Entity::insert(self.use_row(tenant_id, expires_at, clock.now()))
                .on_conflict(
                    OnConflict::column(ceremony_use::Column::Id)
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(conn)
                .await?;
        Ok(inserted == 1)
    }
}

/// Opens the sealed ceremony `ceremony_id` of `tenant_id` for verification; an unknown, used or
/// expired one is refused as a stored one would be (one read by primary key: a replay costs no
/// signature verification and is answered `ceremony_invalid`). The write that records its use
/// still decides ([`CeremonyKey::consume_link`]).
pub(crate) fn open_sealed<S: DeserializeOwned>(
    key: &[u8; 32],
    clock: &dyn Clock,
    ceremony_id: &str,
    tenant_id: Uuid,
    kind: CeremonyKind,
) -> Result<Pending<S>> {
    let Some(sealed) = super::sealed::open::<S>(key, tenant_id, kind.as_str(), ceremony_id) else {
        return Err(refusal(Claim::Unknown));
    };
    if sealed.expires_at <= clock.now() {
        return Err(refusal(Claim::Expired));
    }
    Ok(Pending {
        key: CeremonyKey {
            id: sealed.id,
            tenant_id: Some(tenant_id),
            kind,
            sealed_until: Some(sealed.expires_at),
        },
        subject: sealed.subject,
        token_id: None,
        state: sealed.state,
        context: None,
    })
}

/// Consumes the ceremony `id` (one attempt per challenge), or says why it cannot be.
pub(crate) async fn consume<S: DeserializeOwned>(
    conn: &impl ConnectionTrait,
    clock: &dyn Clock,
    id: Uuid,
    tenant_id: Option<Uuid>,
    kind: CeremonyKind,
) -> Result<Consumed<S>> {
    let key = CeremonyKey {
        id,
        tenant_id,
        kind,
        sealed_until: None,
    };
    let row = match key.attempt().claim_returning(conn, clock.now()).await? {
        Claim::Won(row) => row,
        Claim::Used => return Err(refusal(Claim::Used)),
        Claim::Expired => return Err(refusal(Claim::Expired)),
        Claim::Revoked | Claim::Unknown | Claim::Withheld => return Err(refusal(Claim::Unknown)),
    };
    Ok(Consumed {
        subject: row.subject,
        token_id: row.token_id,
        state: state_of(&row.state)?,
        context: row.context,
    })
}

fn state_of<S: DeserializeOwned>(stored: &str) -> Result<S> {
    serde_json::from_str(stored)
        .map_err(|e| Error::Internal(format!("stored ceremony state unreadable: {e}")))
}

/// The refusal of a ceremony ID that names no ceremony.
pub(crate) fn unknown() -> Error {
    refusal(Claim::Unknown)
}

/// Why a ceremony cannot be consumed.
fn refusal(claim: Claim) -> Error {
    match claim {
        Claim::Expired => Error::refused(
            ErrorCode::CeremonyExpired,
            "This attempt has expired. Start again.",
        ),
        Claim::Used => Error::refused(
            ErrorCode::CeremonyInvalid,
            "This attempt has already been used. Start again.",
        ),
        Claim::Won(()) | Claim::Revoked | Claim::Unknown | Claim::Withheld => {
            Error::refused(ErrorCode::CeremonyInvalid, "Unknown ceremony. Start again.")
        }
    }
}

/// Deletes ceremonies, and the recorded uses of sealed ones, that expired more than `grace` ago
/// (housekeeping; an expired sealed ceremony is refused for its age, used or not).
pub(crate) async fn purge_expired(
    conn: &impl ConnectionTrait,
    clock: &dyn Clock,
    grace: Duration,
) -> Result<u64> {
    let cutoff = clock.now() - grace;
    let stored = ceremony::Entity::delete_many()
        .filter(ceremony::Column::ExpiresAt.lt(cutoff))
        .exec(conn)
        .await?;
    let uses = ceremony_use::Entity::delete_many()
        .filter(ceremony_use::Column::ExpiresAt.lt(cutoff))
        .exec(conn)
        .await?;
    Ok(stored.rows_affected + uses.rows_affected)
}
