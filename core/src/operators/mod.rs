//! Portal operators and their passkeys: first-run setup, invitations, sign-in and passkey
//! management. The portal is a relying party of its own (see [`PortalRelyingParty`]).
//!
//! Every flow follows the ceremony lifecycle: options → stored ceremony → consume (one attempt
//! per challenge) → verify → one transaction for everything the success implies (operator,
//! passkey, token consumed, audit event). A failure after consumption writes only the audit
//! event.

mod enrollment;
mod passkeys;
mod sign_in;
mod step_up;
pub(crate) mod tokens;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use passkeys::PasskeyInfo;
pub use tokens::{Inviter, TokenInfo};

use crate::{
    Clock, Result,
    abuse::AbuseControls,
    access::OperatorIdentity,
    audit::{self, AuditEntry},
    entities::{operator, session},
    webauthn::PortalRelyingParty,
};

pub use crate::invitations::{IssuedToken, TOKEN_TTL_HOURS, TokenPurpose};

/// How long a started portal ceremony may wait for the browser (matches the options' timeout).
fn ceremony_ttl() -> Duration {
    Duration::seconds(crate::webauthn::PORTAL_CEREMONY_TIMEOUT.as_secs() as i64)
}

/// What the browser needs to run a ceremony: its id (to send back) and the `publicKey` member
/// (WebAuthn L3 JSON, for `PublicKeyCredential.parse…OptionsFromJSON`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CeremonyOptions {
    pub ceremony_id: Uuid,
    #[serde(rename = "publicKey")]
    pub public_key: serde_json::Value,
}

pub struct Operators<'a> {
    db: &'a DatabaseConnection,
    clock: &'a dyn Clock,
    rp: &'a PortalRelyingParty,
    abuse: &'a AbuseControls,
}

impl<'a> Operators<'a> {
    pub(crate) fn new(
        db: &'a DatabaseConnection,
        clock: &'a dyn Clock,
        rp: &'a PortalRelyingParty,
        abuse: &'a AbuseControls,
    ) -> Self {
        Self {
            db,
            clock,
            rp,
            abuse,
        }
    }

    /// Audits a refused anonymous step (sign-in, enrollment): its own event once it used up a
    /// live ceremony; otherwise only counted, without the caller's claims (`crate::abuse`).
    async fn record_anonymous_refusal<T>(
        &self,
        result: &Result<T>,
        consumed_ceremony: bool,
        mut entry: AuditEntry,
    ) -> Result<()> {
        match result {
            Err(err) if !err.is_internal() && !consumed_ceremony => {
                entry.target = None;
                self.abuse
                    .refusals
                    .count(&entry, err.code(), self.clock.now());
                Ok(())
            }
            _ => crate::audit::record_refusal(self.db, self.clock, result, entry).await,
        }
    }

    /// The operator behind a session, if they still exist and are not disabled. Read on every
    /// request so that disabling an operator takes effect at once.
    pub async fn identity(&self, operator_id: Uuid) -> Result<Option<OperatorIdentity>> {
        let row = operator::Entity::find_by_id(operator_id)
            .filter(operator::Column::DisabledAt.is_null())
            .one(self.db)
            .await?;
        Ok(row.map(identity_of))
    }

    /// Whether any operator exists (a fresh instance waits for setup).
    /// Test-only (the `testing` feature).
    #[cfg(any(test, feature = "testing"))]
    pub async fn any_exist(&self) -> Result<bool> {
        Ok(operator::Entity::find().count(self.db).await? > 0)
    }

    /// Every operator, for instance admins.
    pub async fn list(&self, actor: &OperatorIdentity) -> Result<Vec<OperatorSummary>> {
        actor.require_instance_admin()?;
        let rows = operator::Entity::find()
            .order_by_asc(operator::Column::Email)
            .all(self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| OperatorSummary {
                created_at: row.created_at,
                disabled: row.disabled_at.is_some(),
                identity: identity_of(row),
            })
            .collect())
    }

    /// Ends every session of the operator, on every instance (the session rows are deleted).
    /// Answers how many were ended.
    pub async fn sign_out_everywhere(
        &self,
        operator: &OperatorIdentity,
        meta: audit::RequestMeta,
    ) -> Result<u64> {
        let txn = crate::db::begin_write(self.db).await?;
        let ended = session::Entity::delete_many()
            .filter(session::Column::OperatorId.eq(operator.id))
            .exec(&txn)
            .await?
            .rows_affected;
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(operator.actor(), "operator.sessions_revoked")
                .target("operator", operator.id.to_string())
                .details(serde_json::json!({ "sessions": ended }))
                .meta(meta),
        )
        .await?;
        txn.commit().await?;
        Ok(ended)
    }

    /// Records a sign-out (the edge ends the session itself).
    pub async fn record_sign_out(
        &self,
        operator: &OperatorIdentity,
        meta: audit::RequestMeta,
    ) -> Result<()> {
        audit::record_in(
            self.db,
            self.clock,
            AuditEntry::new(operator.actor(), "operator.signed_out")
                .target("operator", operator.id.to_string())
                .meta(meta),
        )
        .await
    }
}

/// An operator as the instance admins' list shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSummary {
    pub identity: OperatorIdentity,
    pub created_at: DateTime<Utc>,
    pub disabled: bool,
}

fn identity_of(row: operator::Model) -> OperatorIdentity {
    OperatorIdentity {
        id: row.id,
        email: row.email,
        display_name: row.display_name,
        is_instance_admin: row.is_instance_admin,
    }
}

async fn operator_count(conn: &impl ConnectionTrait) -> Result<u64> {
    Ok(operator::Entity::find().count(conn).await?)
}
