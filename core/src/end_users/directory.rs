//! A tenant's users and their authenticators: lookup and revocation.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};
use uuid::Uuid;

use super::{EndUsers, aaguid, active_authenticators, find_user, user_id};
use crate::{
    Clock, Error, Result,
    access::{Permission, TenantAccess},
    audit::{self, Actor, AuditEntry, RequestMeta},
    entities::{authenticator, end_user},
    validate,
};

/// A user as the APIs show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub user_id: String,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Active (unrevoked) authenticators.
    pub authenticator_count: u64,
}

/// A user's page in the portal (see [`EndUsers::user_detail`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDetail {
    pub user: UserView,
    /// Oldest first, revoked ones included.
    pub authenticators: Vec<AuthenticatorView>,
    /// Bound devices, most recently seen first.
    pub devices: Vec<super::DeviceView>,
    /// The operator may revoke and rename (support, admin, owner).
    pub may_revoke: bool,
    /// The operator may issue recovery tokens (support and up; see `authz`).
    pub may_issue_tokens: bool,
    /// … with `add:authenticators`, for a user who still has passkeys (admin, owner).
    pub may_add_authenticators: bool,
}

/// One of a user's authenticators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatorView {
    pub id: Uuid,
    pub name: String,
    pub aaguid: Uuid,
    pub provider_name: Option<String>,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub transports: Vec<String>,
    pub user_verified: bool,
    pub sign_count: i64,
    pub attachment: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub counter_regressed_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
    pub revoked_reason: Option<String>,
    /// `none`, `self` or `certified` (against FIDO metadata), as judged at registration.
    pub attestation_trust: String,
    /// A certified passkey's certification level (`FIDO_CERTIFIED_L1`, …).
    pub certification_level: Option<String>,
    /// A certified passkey's model, as FIDO metadata describes it.
    pub certified_model: Option<String>,
    /// The status FIDO metadata reports for the model when it refuses it (`REVOKED`, …).
    pub metadata_status: Option<String>,
}

/// What a certified passkey recorded of its model (see `crate::metadata`).
#[derive(serde::Deserialize, Default)]
struct CertificationRecord {
    level: Option<String>,
    description: Option<String>,
}

impl From<authenticator::Model> for AuthenticatorView {
    fn from(row: authenticator::Model) -> Self {
        let certification: CertificationRecord = row
            .certification
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default();
        Self {
            id: row.id,
            name: row.name,
            aaguid: row.aaguid,
            provider_name: row.provider_name,
            backup_eligible: row.backup_eligible,
            backup_state: row.backup_state,
            transports: serde_json::from_str(&row.transports).unwrap_or_default(),
            user_verified: row.user_verified,
            sign_count: row.sign_count,
            attachment: row.attachment,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            counter_regressed_at: row.counter_regressed_at,
            revoked_at: row.revoked_at,
            revoked_by: row.revoked_by,
            revoked_reason: row.revoked_reason,
            attestation_trust: row.attestation_trust,
            certification_level: certification.level,
            certified_model: certification.description,
            metadata_status: row.metadata_status,
        }
    }
}

impl EndUsers<'_> {
    pub(super) async fn user_of(
        &self,
        access: &TenantAccess,
        external_id: &str,
        permission: Permission,
    ) -> Result<(crate::audit::Actor, end_user::Model)> {
        access.require(permission)?;
        let external_id = user_id(external_id).map_err(|_| Error::NotFound)?;
        let user = find_user(self.db, access.tenant_id(), external_id)
            .await?
            .ok_or(Error::NotFound)?;
        Ok((access.actor(), user))
    }

    /// The user with their number of active authenticators; `not_found` if unknown.
    pub async fn user(&self, access: &TenantAccess, external_id: &str) -> Result<UserView> {
        let (_, user) = self
            .user_of(access, external_id, Permission::ReadUsers)
            .await?;
        let authenticator_count = active_authenticators(self.db, user.id).await?;
        Ok(UserView {
            user_id: user.external_id,
            username: user.username,
            display_name: user.display_name,
            created_at: user.created_at,
            authenticator_count,
        })
    }

    /// Every authenticator of the user, revoked ones included, oldest first.
    pub async fn authenticators(
        &self,
        access: &TenantAccess,
        external_id: &str,
    ) -> Result<Vec<AuthenticatorView>> {
        let (_, user) = self
            .user_of(access, external_id, Permission::ReadUsers)
            .await?;
        self.authenticators_of(&user).await
    }

    async fn authenticators_of(&self, user: &end_user::Model) -> Result<Vec<AuthenticatorView>> {
        let rows = authenticator::Entity::find()
            .filter(authenticator::Column::TenantId.eq(user.tenant_id))
            .filter(authenticator::Column::UserId.eq(user.id))
            .order_by_asc(authenticator::Column::CreatedAt)
            .order_by_asc(authenticator::Column::Id)
            .all(self.db)
            .await?;
        Ok(rows.into_iter().map(AuthenticatorView::from).collect())
    }

    /// What the portal's user page shows: the user, every authenticator (revoked ones
    /// included) and what this operator may do there — the role read once, the rule table
    /// deciding, so the page offers only what the service would allow.
    pub async fn user_detail(
        &self,
        access: &TenantAccess,
        external_id: &str,
    ) -> Result<UserDetail> {
        let (_, user) = self
            .user_of(access, external_id, Permission::ReadUsers)
            .await?;
        let authenticators = self.authenticators_of(&user).await?;
        let devices = self.devices_of(&user).await?;
        let authenticator_count = authenticators
            .iter()
            .filter(|a| a.revoked_at.is_none())
            .count() as u64;
        Ok(UserDetail {
            user: UserView {
                user_id: user.external_id,
                username: user.username,
                display_name: user.display_name,
                created_at: user.created_at,
                authenticator_count,
            },
            authenticators,
            devices,
            may_revoke: access.allows(Permission::RevokeCredentials),
            may_issue_tokens: access.allows(Permission::IssueRecoveryTokens),
            may_add_authenticators: access.allows(Permission::IssueEnrollmentTokens),
        })
    }

    /// Who revokes what and why, once the caller may revoke the user's authenticators and the
    /// reason is valid (before anything is written).
    async fn revocation(
        &self,
        access: &TenantAccess,
        external_id: &str,
        reason: &str,
        all: bool,
    ) -> Result<Revocation> {
        let (actor, user) = self
            .user_of(access, external_id, Permission::RevokeCredentials)
            .await?;
        Ok(Revocation {
            reason: validate::label("reason", "reason", reason, 500)?,
            actor,
            user,
            now: self.clock.now(),
            all,
        })
    }

    /// Revokes one of the user's authenticators: kept with who, when and why, never usable
    /// again (the sign-in refuses it in the query that loads it). Revoking a revoked
    /// authenticator changes nothing. Audited.
    pub async fn revoke_authenticator(
        &self,
        access: &TenantAccess,
        external_id: &str,
        authenticator_id: Uuid,
        reason: &str,
        meta: RequestMeta,
    ) -> Result<AuthenticatorView> {
        let revocation = self.revocation(access, external_id, reason, false).await?;
        let user = &revocation.user;
        let txn = crate::db::begin_write(self.writer).await?;
        let find = || {
            authenticator::Entity::find_by_id(authenticator_id)
                .filter(authenticator::Column::TenantId.eq(access.tenant_id()))
                .filter(authenticator::Column::UserId.eq(user.id))
        };
        let row = find().one(&txn).await?.ok_or(Error::NotFound)?;
        revocation.apply(&txn, self.clock, &row, &meta).await?;
        let row = find().one(&txn).await?.ok_or(Error::NotFound)?;
        txn.commit().await?;
        Ok(row.into())
    }

    /// Revokes every active authenticator of the user at once ("I lost my phone" and the user
    /// has nothing left to trust), in one transaction, one audit event per authenticator.
    /// Returns how many were revoked (0 when none was active).
    pub async fn revoke_all_authenticators(
        &self,
        access: &TenantAccess,
        external_id: &str,
        reason: &str,
        meta: RequestMeta,
    ) -> Result<u64> {
        let revocation = self.revocation(access, external_id, reason, true).await?;
        let user = &revocation.user;
        let txn = crate::db::begin_write(self.writer).await?;
        // All of them locked first, in one statement and in id order (PostgreSQL; SQLite's
        // one writer has nothing to order). Each revocation's trigger then takes the user's
        // row (migration 000019). Locking them one at a time instead would hold the user's row
        // while waiting for a passkey that a single revocation holds, and that one waits for
        // the user's row: a deadlock. In id order, two of these never hold each other's rows.
        let active = authenticator::Entity::find()
            .filter(authenticator::Column::TenantId.eq(access.tenant_id()))
            .filter(authenticator::Column::UserId.eq(user.id))
            .filter(authenticator::Column::RevokedAt.is_null())
            .order_by_asc(authenticator::Column::Id)
            .lock_exclusive()
            .all(&txn)
            .await?;
        let mut revoked = 0;
        for row in active {
            if revocation.apply(&txn, self.clock, &row, &meta).await? {
                revoked += 1;
            }
        }
        txn.commit().await?;
        Ok(revoked)
    }

    /// Gives one of the user's authenticators a new name (what support and the user call it).
    /// Audited with the old and the new name.
    pub async fn rename_authenticator(
        &self,
        access: &TenantAccess,
        external_id: &str,
        authenticator_id: Uuid,
        name: &str,
        meta: RequestMeta,
    ) -> Result<AuthenticatorView> {
        let (actor, user) = self
            .user_of(access, external_id, Permission::RevokeCredentials)
            .await?;
        let name = validate::label("name", "name", name, 100)?;
        let txn = crate::db::begin_write(self.writer).await?;
        let find = || {
            authenticator::Entity::find_by_id(authenticator_id)
                .filter(authenticator::Column::TenantId.eq(access.tenant_id()))
                .filter(authenticator::Column::UserId.eq(user.id))
        };
        let row = find().one(&txn).await?.ok_or(Error::NotFound)?;
        if row.name != name {
            authenticator::Entity::update_many()
                .col_expr(authenticator::Column::Name, Expr::value(name.clone()))
                .filter(authenticator::Column::Id.eq(row.id))
                .filter(authenticator::Column::TenantId.eq(access.tenant_id()))
                .exec(&txn)
                .await?;
            audit::record_in(
                &txn,
                self.clock,
                AuditEntry::new(actor, "authenticator.renamed")
                    .tenant(access.tenant_id())
                    .target("user", user.external_id.clone())
                    .details(serde_json::json!({
                        "authenticator_id": row.id,
                        "from": row.name,
                        "to": name,
                    }))
                    .meta(meta),
            )
            .await?;
        }
        let row = find().one(&txn).await?.ok_or(Error::NotFound)?;
        txn.commit().await?;
        Ok(row.into())
    }
}

/// One revocation as the directory records it: who, why, when.
struct Revocation {
    actor: Actor,
    user: end_user::Model,
    reason: String,
    now: DateTime<Utc>,
    /// Part of "Revoke all".
    all: bool,
}

impl Revocation {
    /// Revokes `row` unless it already is — conditional, so that of concurrent revocations one
    /// records it — and audits it in the same transaction. Answers whether it revoked.
    async fn apply(
        &self,
        txn: &impl ConnectionTrait,
        clock: &dyn Clock,
        row: &authenticator::Model,
        meta: &RequestMeta,
    ) -> Result<bool> {
        let done = authenticator::Entity::update_many()
            .col_expr(authenticator::Column::RevokedAt, Expr::value(self.now))
            .col_expr(
                authenticator::Column::RevokedBy,
                Expr::value(self.actor.label()),
            )
            .col_expr(
                authenticator::Column::RevokedReason,
                Expr::value(self.reason.clone()),
            )
            .filter(authenticator::Column::Id.eq(row.id))
            .filter(authenticator::Column::TenantId.eq(row.tenant_id))
            .filter(authenticator::Column::RevokedAt.is_null())
            .exec(txn)
            .await?;
        if done.rows_affected != 1 {
            return Ok(false);
        }
        let mut details = serde_json::json!({
            "authenticator_id": row.id,
            "name": row.name,
            "provider": aaguid::provider(row.aaguid).map(|p| p.name.as_str()),
            "reason": self.reason,
        });
        if self.all {
            details["all"] = serde_json::Value::Bool(true);
        }
        audit::record_in(
            txn,
            clock,
            AuditEntry::new(self.actor.clone(), "authenticator.revoked")
                .tenant(row.tenant_id)
                .target("user", self.user.external_id.clone())
                .details(details)
                .meta(meta.clone()),
        )
        .await?;
        Ok(true)
    }
}
