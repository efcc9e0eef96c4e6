//! Single use, decided in one place: ceremonies, enrollment tokens, validation tokens and operator
//! tokens are each used up by the same conditional update.
//!
//! `UPDATE … SET used_at = now WHERE id = ? AND <scope> AND used_at IS NULL AND expires_at > now
//! [AND revoked_at IS NULL] [AND <condition>]` both decides and marks: of any number of concurrent
//! attempts, on any instance and either database, exactly one changes the row (PostgreSQL
//! re-checks the `WHERE` after waiting for a concurrent winner's row lock; SQLite has one writer).
//! Only a loser pays a second query: the row is read back, in the same transaction, to say *why*
//! it lost ([`Claim`]); that read never decides anything.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    sea_query::{Expr, SimpleExpr},
};
use uuid::Uuid;

use crate::{
    Result,
    entities::{ceremony, enrollment_token, operator_token, validation_token},
};

/// The lifecycle columns of a single-use row.
pub(crate) trait SingleUse: EntityTrait {
    const ID: Self::Column;
    const USED_AT: Self::Column;
    const EXPIRES_AT: Self::Column;
    /// Rows that can also be withdrawn before use (enrollment tokens).
    const REVOKED_AT: Option<Self::Column> = None;

    /// `(used_at, expires_at, revoked_at)` of a row as read.
    fn lifecycle(row: &Self::Model) -> Lifecycle;
}

/// Where a single-use row stands.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lifecycle {
    pub used_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The answer to an attempt to use a row up (or to [`standing`]: whether it could be).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim<T = ()> {
    /// This attempt used it up (or, for [`standing`], it is usable now).
    Won(T),
    Used,
    Expired,
    Revoked,
    /// No such row within the scope.
    Unknown,
    /// The row is unused and live, but the attempt's extra condition did not hold
    /// ([`Attempt::provided`]).
    Withheld,
}

/// How `row` stands at `now`, read without writing (for a read-then-verify flow that claims the
/// row later; the later claim still decides).
pub(crate) fn standing<E: SingleUse>(row: Option<&E::Model>, now: DateTime<Utc>) -> Claim {
    let Some(row) = row else {
        return Claim::Unknown;
    };
    let state = E::lifecycle(row);
    if state.used_at.is_some() {
        Claim::Used
    } else if state.revoked_at.is_some() {
        Claim::Revoked
    } else if state.expires_at <= now {
        Claim::Expired
    } else {
        Claim::Won(())
    }
}

/// One attempt to use up the row `id` of `E`.
pub(crate) struct Attempt<E: SingleUse> {
    id: Uuid,
    /// Narrows both the update and the read that explains a loss (tenant, kind).
    scope: Condition,
    /// Narrows the update only: a condition outside the row's lifecycle.
    condition: Condition,
    /// Further columns set by the winning update.
    marks: Vec<(E::Column, SimpleExpr)>,
}

impl<E: SingleUse> Attempt<E> {
    pub(crate) fn new(id: Uuid) -> Self {
        Self {
            id,
            scope: Condition::all(),
            condition: Condition::all(),
            marks: Vec::new(),
        }
    }

    /// Only a row that also matches `scope`; outside it the row is [`Claim::Unknown`].
    pub(crate) fn scoped(mut self, scope: impl sea_orm::sea_query::IntoCondition) -> Self {
        self.scope = self.scope.add(scope);
        self
    }

    /// Wins only if `condition` also holds when the update runs ([`Claim::Withheld`] if not).
    pub(crate) fn provided(mut self, condition: impl sea_orm::sea_query::IntoCondition) -> Self {
        self.condition = self.condition.add(condition);
        self
    }

    /// Also sets `column` to `value` on winning (who used it, what it produced).
    pub(crate) fn marking(mut self, column: E::Column, value: impl Into<SimpleExpr>) -> Self {
        self.marks.push((column, value.into()));
        self
    }

    fn update(&self, now: DateTime<Utc>) -> sea_orm::UpdateMany<E> {
        let mut update = E::update_many().col_expr(E::USED_AT, Expr::value(now));
        for (column, value) in &self.marks {
            update = update.col_expr(*column, value.clone());
        }
        let mut live = Condition::all()
            .add(E::ID.eq(self.id))
            .add(self.scope.clone())
            .add(E::USED_AT.is_null())
            .add(E::EXPIRES_AT.gt(now))
            .add(self.condition.clone());
        if let Some(revoked_at) = E::REVOKED_AT {
            live = live.add(revoked_at.is_null());
        }
        update.filter(live)
    }

    /// The conditional update itself, for a write step that runs it with others
    /// ([`crate::db::steps`]); [`Attempt::explain`] says why it changed no row.
    pub(crate) fn statement(&self, now: DateTime<Utc>) -> sea_orm::sea_query::UpdateStatement {
        use sea_orm::QueryTrait;
        self.update(now).into_query()
    }

    /// Uses the row up at `now`, in `conn`'s transaction.
    pub(crate) async fn claim(
        self,
        conn: &impl ConnectionTrait,
        now: DateTime<Utc>,
    ) -> Result<Claim> {
        let won = self.update(now).exec(conn).await?.rows_affected == 1;
        if won {
            Ok(Claim::Won(()))
        } else {
            self.why_lost(conn, now).await
        }
    }

    /// As [`Attempt::claim`], answering the row as the winning update left it.
    pub(crate) async fn claim_returning(
        self,
        conn: &impl ConnectionTrait,
        now: DateTime<Utc>,
    ) -> Result<Claim<E::Model>> {
        if let Some(row) = self.update(now).exec_with_returning(conn).await?.pop() {
            return Ok(Claim::Won(row));
        }
        Ok(match self.why_lost(conn, now).await? {
            // `why_lost` never answers `Won`.
            Claim::Won(()) | Claim::Withheld => Claim::Withheld,
            Claim::Used => Claim::Used,
            Claim::Expired => Claim::Expired,
            Claim::Revoked => Claim::Revoked,
            Claim::Unknown => Claim::Unknown,
        })
    }

    /// Explains a lost update. Only reads: the update decided.
    pub(crate) async fn why_lost(
        &self,
        conn: &impl ConnectionTrait,
        now: DateTime<Utc>,
    ) -> Result<Claim> {
        let row = E::find()
            .filter(E::ID.eq(self.id))
            .filter(self.scope.clone())
            .one(conn)
            .await?;
        Ok(match standing::<E>(row.as_ref(), now) {
            // Live by its own lifecycle, so the attempt's own condition stopped it.
            Claim::Won(()) => Claim::Withheld,
            lost => lost,
        })
    }
}

impl SingleUse for ceremony::Entity {
    const ID: Self::Column = ceremony::Column::Id;
    const USED_AT: Self::Column = ceremony::Column::UsedAt;
    const EXPIRES_AT: Self::Column = ceremony::Column::ExpiresAt;

    fn lifecycle(row: &ceremony::Model) -> Lifecycle {
        Lifecycle {
            used_at: row.used_at,
            expires_at: row.expires_at,
            revoked_at: None,
        }
    }
}

impl SingleUse for enrollment_token::Entity {
    const ID: Self::Column = enrollment_token::Column::Id;
    const USED_AT: Self::Column = enrollment_token::Column::UsedAt;
    const EXPIRES_AT: Self::Column = enrollment_token::Column::ExpiresAt;
    const REVOKED_AT: Option<Self::Column> = Some(enrollment_token::Column::RevokedAt);

    fn lifecycle(row: &enrollment_token::Model) -> Lifecycle {
        Lifecycle {
            used_at: row.used_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        }
    }
}

impl SingleUse for validation_token::Entity {
    const ID: Self::Column = validation_token::Column::Id;
    const USED_AT: Self::Column = validation_token::Column::UsedAt;
    const EXPIRES_AT: Self::Column = validation_token::Column::ExpiresAt;

    fn lifecycle(row: &validation_token::Model) -> Lifecycle {
        Lifecycle {
            used_at: row.used_at,
            expires_at: row.expires_at,
            revoked_at: None,
        }
    }
}

impl SingleUse for operator_token::Entity {
    const ID: Self::Column = operator_token::Column::Id;
    const USED_AT: Self::Column = operator_token::Column::UsedAt;
    const EXPIRES_AT: Self::Column = operator_token::Column::ExpiresAt;

    fn lifecycle(row: &operator_token::Model) -> Lifecycle {
        Lifecycle {
            used_at: row.used_at,
            expires_at: row.expires_at,
            revoked_at: None,
        }
    }
}
