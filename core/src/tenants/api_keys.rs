//! Tenants' API keys (`lk_sk_…`) for the Server API: created by owners and admins (or the CLI),
//! shown once, stored as SHA-256 only, revocable with immediate effect on every instance (the
//! revocation is checked in the same query that finds the key; nothing is cached).

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    Clock, Error, Result,
    access::{Permission, TenantAccess},
    audit::{self, Actor, AuditEntry, RequestMeta},
    entities::{api_key, operator},
    secrets::{self, SecretKind},
    validate,
};

/// How stale `last_used_at` may get before a request refreshes it: writing it on every API call
/// would add a write to every request.
const LAST_USED_RESOLUTION: Duration = Duration::minutes(1);

/// A key as lists show it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    /// The creating operator's email, or `cli`.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key just created: `secret` is shown once and exists nowhere else.
#[derive(Clone)]
pub struct CreatedApiKey {
    pub info: ApiKeyInfo,
    pub secret: String,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// The tenant backend behind a valid key; made only by [`ApiKeys::authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyPrincipal {
    key_id: Uuid,
    tenant_id: Uuid,
    prefix: String,
}

impl ApiKeyPrincipal {
    /// The key's access to its own tenant (the only one it has).
    pub fn access(&self) -> TenantAccess {
        TenantAccess::backend(self.tenant_id, self.key_id, self.prefix.clone())
    }

    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }

    pub fn actor(&self) -> Actor {
        Actor::ApiKey {
            id: self.key_id,
            prefix: self.prefix.clone(),
        }
    }
}

pub struct ApiKeys<'a> {
    db: &'a DatabaseConnection,
    /// Where the hot path's write (last use) goes (see [`crate::db::writer_for`]).
    writer: &'a DatabaseConnection,
    /// The hot path's read (every Server API request authenticates).
    steps: &'a crate::db::steps::StepWriter,
    clock: &'a dyn Clock,
}

fn info_of(row: api_key::Model, creator: String) -> ApiKeyInfo {
    ApiKeyInfo {
        id: row.id,
        name: row.name,
        prefix: row.key_prefix,
        created_by: creator,
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        revoked_at: row.revoked_at,
    }
}

impl<'a> ApiKeys<'a> {
    pub(crate) fn new(
        db: &'a DatabaseConnection,
        writer: &'a DatabaseConnection,
        steps: &'a crate::db::steps::StepWriter,
        clock: &'a dyn Clock,
    ) -> Self {
        Self {
            db,
            writer,
            steps,
            clock,
        }
    }

    /// Creates a key for the tenant (owners and admins; or the CLI for any existing tenant).
    pub async fn create(
        &self,
        access: &TenantAccess,
        name: &str,
        meta: RequestMeta,
    ) -> Result<CreatedApiKey> {
        let tenant_id = access.tenant_id();
        access.require(Permission::ManageApiKeys)?;
        let name = validate::label("name", "key name", name, 100)?;
        // A key is lasting access to the tenant: a foothold if the session was stolen.
        access.require_step_up()?;
        let created_by = access.operator().map(|op| op.id);
        let creator_label = access
            .operator()
            .map_or_else(|| "cli".to_owned(), |op| op.email.clone());
        let actor = access.actor();
        let secret = secrets::issue(SecretKind::ApiKey)?;
        let now = self.clock.now();
        let row = api_key::Model {
            id: Uuid::new_v4(),
            tenant_id,
            name,
            key_hash: secret.hash.clone(),
            key_prefix: secret.display_prefix.clone(),
            created_by,
            created_at: now,
            last_used_at: None,
            revoked_at: None,
            revoked_by: None,
        };
        let txn = crate::db::begin_write(self.db).await?;
        api_key::Entity::insert(api_key::ActiveModel {
            id: Set(row.id),
            tenant_id: Set(row.tenant_id),
            name: Set(row.name.clone()),
            key_hash: Set(row.key_hash.clone()),
            key_prefix: Set(row.key_prefix.clone()),
            created_by: Set(row.created_by),
            created_at: Set(row.created_at),
            last_used_at: Set(None),
            revoked_at: Set(None),
            revoked_by: Set(None),
        })
        .exec_without_returning(&txn)
        .await?;
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(actor, "api_key.created")
                .tenant(tenant_id)
                .target("api_key", row.id.to_string())
                .details(serde_json::json!({ "name": row.name, "prefix": row.key_prefix }))
                .meta(meta),
        )
        .await?;
        txn.commit().await?;
        Ok(CreatedApiKey {
            info: info_of(row, creator_label),
            secret: secret.value,
        })
    }

    /// The tenant's keys, newest first (owners and admins).
    pub async fn list(&self, access: &TenantAccess) -> Result<Vec<ApiKeyInfo>> {
        let tenant_id = access.tenant_id();
        access.require(Permission::ManageApiKeys)?;
        let rows = api_key::Entity::find()
            .filter(api_key::Column::TenantId.eq(tenant_id))
            .order_by_desc(api_key::Column::CreatedAt)
            .all(self.db)
            .await?;
        let creators: Vec<Uuid> = rows.iter().filter_map(|r| r.created_by).collect();
        let emails = operator::Entity::find()
            .filter(operator::Column::Id.is_in(creators))
            .all(self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let creator = match row.created_by {
                    None => "cli".to_owned(),
                    Some(id) => emails
                        .iter()
                        .find(|o| o.id == id)
                        .map_or_else(|| "a former operator".to_owned(), |o| o.email.clone()),
                };
                info_of(row, creator)
            })
            .collect())
    }

    /// Revokes a key (owners and admins). Its next use is refused, on every instance. Revoking
    /// a revoked key changes nothing.
    pub async fn revoke(
        &self,
        access: &TenantAccess,
        key_id: Uuid,
        meta: RequestMeta,
    ) -> Result<()> {
        let tenant_id = access.tenant_id();
        access.require(Permission::ManageApiKeys)?;
        let txn = crate::db::begin_write(self.db).await?;
        let now = self.clock.now();
        let row = api_key::Entity::find_by_id(key_id)
            .filter(api_key::Column::TenantId.eq(tenant_id))
            .one(&txn)
            .await?
            .ok_or(Error::NotFound)?;
        let revoked = api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(now))
            .col_expr(
                api_key::Column::RevokedBy,
                Expr::value(access.operator().map(|op| op.id)),
            )
            .filter(api_key::Column::Id.eq(key_id))
            .filter(api_key::Column::TenantId.eq(tenant_id))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        if revoked.rows_affected == 1 {
            audit::record_in(
                &txn,
                self.clock,
                AuditEntry::new(access.actor(), "api_key.revoked")
                    .tenant(tenant_id)
                    .target("api_key", key_id.to_string())
                    .details(serde_json::json!({ "name": row.name, "prefix": row.key_prefix }))
                    .meta(meta),
            )
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// The tenant behind a presented key, or `unauthorized` (unknown, malformed or revoked:
    /// indistinguishable on purpose). The key is found by its hash and must be unrevoked in the
    /// same query.
    pub async fn authenticate(&self, presented: &str) -> Result<ApiKeyPrincipal> {
        if !secrets::is_well_formed(SecretKind::ApiKey, presented) {
            return Err(Error::Unauthorized);
        }
        let row = self
            .steps
            .all(
                api_key::Entity::find()
                    .filter(api_key::Column::KeyHash.eq(secrets::hash(presented)))
                    .filter(api_key::Column::RevokedAt.is_null())
                    .limit(1),
            )
            .await?
            .pop()
            .ok_or(Error::Unauthorized)?;
        let now = self.clock.now();
        if row
            .last_used_at
            .is_none_or(|at| now - at >= LAST_USED_RESOLUTION)
        {
            api_key::Entity::update_many()
                .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
                .filter(api_key::Column::Id.eq(row.id))
                .exec(self.writer)
                .await?;
        }
        Ok(ApiKeyPrincipal {
            key_id: row.id,
            tenant_id: row.tenant_id,
            prefix: row.key_prefix,
        })
    }
}
