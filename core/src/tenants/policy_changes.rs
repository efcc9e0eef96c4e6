//! Changing a tenant's authenticator policy: the dry run (what a proposed policy does to the
//! passkeys that exist today), the users it affects, and saving it (audited with the dry run's
//! figures, announced to every instance's configuration cache).
//!
//! The figures come from two grouped queries over the tenant's active passkeys (per user, and
//! per model for the refused ones), using the policy's own SQL form
//! ([`AuthenticatorPolicy::breach_condition`]): the same rule the ceremonies apply.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
    sea_query::ExprTrait,
    sea_query::{Alias, CaseStatement, Expr, Query},
};
use uuid::Uuid;

use super::{Tenants, changed_meanwhile, config_of};
use crate::{
    Error, ErrorCode, Result,
    access::{Permission, TenantAccess},
    audit::{AuditEntry, RequestMeta},
    entities::{authenticator, end_user, tenant},
    tenants::config::PasskeyConfig,
    tenants::policy::{AuthenticatorPolicy, ExistingPasskeys, PolicyInput},
};

/// Passkeys of one model that a proposed policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModelImpact {
    pub aaguid: Uuid,
    /// `None` when the AAGUID is not in the community list (or is all zeros).
    pub provider_name: Option<String>,
    pub passkeys: u64,
    pub users: u64,
}

/// What a proposed policy does to the passkeys that exist today.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DryRun {
    /// Active passkeys in the tenant today.
    pub active_passkeys: u64,
    /// Active passkeys the policy refuses (at their next sign-in when `blocks_existing`).
    pub refused_passkeys: u64,
    /// Users with at least one refused passkey.
    pub affected_users: u64,
    /// Users every one of whose active passkeys is refused: with `blocks_existing` they can no
    /// longer sign in at all until they register a passkey the policy allows.
    pub users_left_without_passkey: u64,
    /// Refused passkeys by model, most first.
    pub by_model: Vec<ModelImpact>,
    /// The policy refuses existing passkeys at sign-in (otherwise it only flags them).
    pub blocks_existing: bool,
}

/// A page of the users a proposed policy affects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffectedUsers {
    /// Their external IDs, in internal ID order.
    pub users: Vec<AffectedUser>,
    /// The cursor of the next page.
    pub next: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffectedUser {
    pub user_id: String,
    pub username: Option<String>,
}

/// One dry run at a time per instance. Each reads every active passkey of its tenant (seconds
/// with a million), so a backend's flood of them must not take the database from every other
/// tenant: the others wait their turn, up to [`DRY_RUN_WAIT`], and are then refused.
static DRY_RUNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
const DRY_RUN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl Tenants<'_> {
    /// The tenant's policy as saved (owners, admins and the tenant's backend).
    pub async fn policy(&self, access: &TenantAccess) -> Result<AuthenticatorPolicy> {
        access.require(Permission::DryRunPolicy)?;
        Ok(self.stored_config(access.tenant_id()).await?.policy)
    }

    /// What `input` would do if saved, without saving anything (owners and admins, and the
    /// tenant's backend). A policy that refuses nothing answers zeros without reading a passkey.
    pub async fn dry_run_policy(
        &self,
        access: &TenantAccess,
        input: &PolicyInput,
    ) -> Result<DryRun> {
        access.require(Permission::DryRunPolicy)?;
        let config = self.stored_config(access.tenant_id()).await?;
        let policy = input.validate(config.attestation)?;
        self.dry_run(self.db, access.tenant_id(), &policy).await
    }

    async fn dry_run(
        &self,
        conn: &impl ConnectionTrait,
        tenant_id: Uuid,
        policy: &AuthenticatorPolicy,
    ) -> Result<DryRun> {
        let _turn = tokio::time::timeout(DRY_RUN_WAIT, DRY_RUNS.acquire())
            .await
            .map_err(|_| {
                Error::refused(
                    ErrorCode::RateLimited,
                    "Other dry runs are running on this instance: try again in a minute.",
                )
            })?
            .map_err(|_| Error::Internal("the dry-run turn is closed".into()))?;
        let active = || {
            authenticator::Entity::find()
                .filter(authenticator::Column::TenantId.eq(tenant_id))
                .filter(authenticator::Column::RevokedAt.is_null())
        };
        let blocks_existing = policy.existing == ExistingPasskeys::Block;
        let breach = policy.breach_condition();
        // The tenant-wide figures in one pass: per user, their active passkeys and how many the
        // policy refuses; then sums and counts over the users. (A passkey-level count, a model
        // grouping and a per-user grouping as separate queries read every passkey three times.)
        let refused = match breach.clone() {
            Some(breach) => Expr::expr(CaseStatement::new().case(breach, 1).finally(0)).sum(),
            None => Expr::val(0i64),
        };
        let per_user = active()
            .select_only()
            .column(authenticator::Column::UserId)
            .expr_as(Expr::cust("COUNT(*)"), "total")
            .expr_as(refused, "refused")
            .group_by(authenticator::Column::UserId)
            .into_query();
        // PostgreSQL sums BIGINTs as NUMERIC: cast back, for both databases alike.
        let figures = Query::select()
            .expr_as(
                Expr::cust("CAST(COALESCE(SUM(total), 0) AS BIGINT)"),
                Alias::new("active"),
            )
            .expr_as(
                Expr::cust("CAST(COALESCE(SUM(refused), 0) AS BIGINT)"),
                Alias::new("refused"),
            )
            .expr_as(
                Expr::cust("COUNT(CASE WHEN refused > 0 THEN 1 END)"),
                Alias::new("affected"),
            )
            .expr_as(
                Expr::cust("COUNT(CASE WHEN refused = total THEN 1 END)"),
                Alias::new("left"),
            )
            .from_subquery(per_user, Alias::new("per_user"))
            .to_owned();
        let (active_passkeys, refused_passkeys, affected_users, users_left): (i64, i64, i64, i64) =
            match conn.query_one(&figures).await? {
                Some(row) => (
                    row.try_get("", "active")?,
                    row.try_get("", "refused")?,
                    row.try_get("", "affected")?,
                    row.try_get("", "left")?,
                ),
                None => (0, 0, 0, 0),
            };
        let Some(breach) = breach else {
            return Ok(DryRun {
                active_passkeys: count(active_passkeys),
                refused_passkeys: 0,
                affected_users: 0,
                users_left_without_passkey: 0,
                by_model: Vec::new(),
                blocks_existing,
            });
        };
        // By model: only the refused passkeys.
        let rows: Vec<(Uuid, Option<String>, i64, i64)> = active()
            .filter(breach)
            .select_only()
            .column(authenticator::Column::Aaguid)
            .column(authenticator::Column::ProviderName)
            .expr(Expr::cust("COUNT(*)"))
            .expr(Expr::col(authenticator::Column::UserId).count_distinct())
            .group_by(authenticator::Column::Aaguid)
            .group_by(authenticator::Column::ProviderName)
            .into_tuple()
            .all(conn)
            .await?;
        let mut by_model: Vec<ModelImpact> = rows
            .into_iter()
            .map(|(aaguid, provider_name, passkeys, users)| ModelImpact {
                aaguid,
                provider_name,
                passkeys: count(passkeys),
                users: count(users),
            })
            .collect();
        by_model.sort_by(|a, b| b.passkeys.cmp(&a.passkeys).then(a.aaguid.cmp(&b.aaguid)));
        Ok(DryRun {
            active_passkeys: count(active_passkeys),
            refused_passkeys: count(refused_passkeys),
            affected_users: count(affected_users),
            users_left_without_passkey: count(users_left),
            by_model,
            blocks_existing,
        })
    }

    /// A page of the users with at least one active passkey that `input` refuses (the dry run's
    /// list), after the cursor `after`.
    pub async fn users_affected_by(
        &self,
        access: &TenantAccess,
        input: &PolicyInput,
        after: Option<Uuid>,
        limit: u64,
    ) -> Result<AffectedUsers> {
        access.require(Permission::DryRunPolicy)?;
        access.require(Permission::ReadUsers)?;
        let tenant_id = access.tenant_id();
        let config = self.stored_config(tenant_id).await?;
        let policy = input.validate(config.attestation)?;
        let Some(breach) = policy.breach_condition() else {
            return Ok(AffectedUsers {
                users: Vec::new(),
                next: None,
            });
        };
        let limit = limit.clamp(1, 200);
        let mut affected = authenticator::Entity::find()
            .select_only()
            .column(authenticator::Column::UserId)
            .distinct()
            .filter(authenticator::Column::TenantId.eq(tenant_id))
            .filter(authenticator::Column::RevokedAt.is_null())
            .filter(breach);
        if let Some(after) = after {
            affected = affected.filter(authenticator::Column::UserId.gt(after));
        }
        let ids: Vec<Uuid> = affected
            .order_by_asc(authenticator::Column::UserId)
            .limit(limit + 1)
            .into_tuple()
            .all(self.db)
            .await?;
        let more = ids.len() as u64 > limit;
        let ids: Vec<Uuid> = ids.into_iter().take(limit as usize).collect();
        let users = end_user::Entity::find()
            .filter(end_user::Column::TenantId.eq(tenant_id))
            .filter(end_user::Column::Id.is_in(ids.clone()))
            .order_by_asc(end_user::Column::Id)
            .all(self.db)
            .await?;
        Ok(AffectedUsers {
            next: more.then(|| ids.last().copied()).flatten(),
            users: users
                .into_iter()
                .map(|u| AffectedUser {
                    user_id: u.external_id,
                    username: u.username,
                })
                .collect(),
        })
    }

    /// Saves a new authenticator policy (owners and admins). Its dry run is computed first and
    /// recorded in the audit event with the policy before and after; every instance drops its
    /// cached configuration at commit. `expected_version` is the
    /// configuration version the form was loaded with.
    pub async fn update_authenticator_policy(
        &self,
        access: &TenantAccess,
        input: &PolicyInput,
        expected_version: i64,
        meta: RequestMeta,
    ) -> Result<(PasskeyConfig, DryRun)> {
        let tenant_id = access.tenant_id();
        access.require(Permission::ManagePasskeyConfig)?;
        // The dry run reads every active passkey of the tenant (seconds with a million): it runs
        // before the write transaction, so that SQLite's one writer is not held meanwhile. Its
        // figures are what the admin is shown and what the audit event records.
        let stored = self.stored_config(tenant_id).await?;
        if stored.version != expected_version {
            return Err(changed_meanwhile());
        }
        let now = self.clock.now();
        let mut policy = input.validate(stored.attestation)?;
        if policy.require_certified && !crate::metadata::imported(self.db).await? {
            // Nothing can be certified without FIDO metadata: saving this would refuse every
            // registration.
            return Err(Error::invalid(
                "require_certified",
                "Certification is checked against FIDO metadata, and none has been imported: \
                 every registration would be refused. An instance admin imports it first.",
            ));
        }
        policy.saved_at = Some(now);
        let dry_run = self.dry_run(self.db, tenant_id, &policy).await?;
        let generation = self.cache.generation();
        let txn = crate::db::begin_write(self.db).await?;
        let row = tenant::Entity::find_by_id(tenant_id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound)?;
        let before = config_of(&row)?;
        // Changed since the dry run (the version guard of the update decides under races).
        if before.version != expected_version {
            return Err(changed_meanwhile());
        }
        let config = PasskeyConfig {
            policy,
            version: before.version + 1,
            ..before.clone()
        };
        let entry = AuditEntry::new(access.actor(), "tenant.authenticator_policy_changed")
            .tenant(tenant_id)
            .target("tenant", tenant_id.to_string())
            .details(serde_json::json!({
                "before": policy_view(&before.policy),
                "after": policy_view(&config.policy),
                "dry_run": dry_run,
            }))
            .meta(meta);
        self.store_config(txn, tenant_id, expected_version, &config, entry, generation)
            .await?;
        Ok((config, dry_run))
    }

    /// The stored configuration (not the cache: a policy is judged against what is saved).
    pub(super) async fn stored_config(&self, tenant_id: Uuid) -> Result<PasskeyConfig> {
        let row = tenant::Entity::find_by_id(tenant_id)
            .one(self.db)
            .await?
            .ok_or(Error::NotFound)?;
        config_of(&row)
    }
}

/// A policy as the audit log records it (without its save time, which the event has).
fn policy_view(policy: &AuthenticatorPolicy) -> serde_json::Value {
    serde_json::json!({
        "models": policy.models,
        "aaguids": policy.aaguids,
        "allow_synced": policy.allow_synced,
        "require_certified": policy.require_certified,
        "existing": policy.existing,
        "unused_after_days": policy.unused_after_days,
    })
}
