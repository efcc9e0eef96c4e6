//! Tenants, their members and their passkey configuration. Every method acting in one tenant
//! takes a [`crate::access::TenantAccess`] and asks it for its permission first (a tenant the
//! operator is not a member of has no access value at all: `not_found`).

pub mod api_keys;
pub mod config;
pub mod config_cache;
pub mod config_events;
pub mod dashboard;
pub mod doctor;
pub mod first_run;
pub mod policy;
pub mod policy_changes;
pub mod portability;
pub mod related_origins;

use std::{collections::HashSet, sync::Arc};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    Clock, Error, ErrorCode, Result,
    access::{OperatorIdentity, Permission, Role, TenantAccess},
    audit::{self, Actor, AuditEntry, RequestMeta},
    entities::{operator, tenant, tenant_member},
    error::on_unique,
    invitations::{Grant, TokenPurpose, insert_member, insert_token},
    tenants::config::{
        self as rules, Algorithm, PasskeyConfig, PasskeyConfigInput, enum_name, enum_stored,
    },
    tenants::config_cache::ConfigCache,
    tenants::policy::AuthenticatorPolicy,
    validate,
};

/// A tenant in the operator's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSummary {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub passkeys_enabled: bool,
    pub rp_id: Option<String>,
}

/// A tenant as its members see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantDetails {
    pub id: Uuid,
    pub name: String,
    /// The viewer's role.
    pub role: Role,
    pub config: PasskeyConfig,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub operator_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub since: DateTime<Utc>,
}

/// What adding a member did.
#[derive(Debug, Clone)]
pub enum MemberAdded {
    /// An existing operator is now a member.
    Added,
    /// No operator has the address: this invitation (shown once) makes them one, and a member.
    Invited(crate::invitations::IssuedToken),
}

/// A tenant made by automation (`latchkey tenant create`).
#[derive(Debug, Clone, Default)]
pub struct NewTenant {
    pub name: String,
    pub rp_id: Option<String>,
    pub origins: Vec<String>,
    pub enable_passkeys: bool,
    /// An existing operator who becomes its owner (otherwise nobody sees it in the portal).
    pub owner_email: Option<String>,
}

pub struct Tenants<'a> {
    db: &'a DatabaseConnection,
    clock: &'a dyn Clock,
    cache: &'a ConfigCache,
}

/// The stored configuration of a tenant row.
fn config_of(row: &tenant::Model) -> Result<PasskeyConfig> {
    let unreadable =
        |what: &str| Error::Internal(format!("tenant {}: stored {what} unreadable", row.id));
    let origins: Vec<String> =
        serde_json::from_str(&row.origins).map_err(|_| unreadable("origins"))?;
    let origins = origins
        .iter()
        .map(|o| rules::origin("origins", o, None))
        .collect::<Result<Vec<_>>>()
        .map_err(|_| unreadable("origins"))?;
    let algorithms: Vec<Algorithm> =
        serde_json::from_str(&row.algorithms).map_err(|_| unreadable("algorithms"))?;
    let related_origins: Vec<String> =
        serde_json::from_str(&row.related_origins).map_err(|_| unreadable("related_origins"))?;
    let ios_app_ids: Vec<String> =
        serde_json::from_str(&row.ios_app_ids).map_err(|_| unreadable("ios_app_ids"))?;
    Ok(PasskeyConfig {
        enabled: row.passkeys_enabled,
        rp_id: row.rp_id.clone(),
        rp_name: row.rp_name.clone(),
        origins,
        related_origins,
        ios_app_ids,
        attestation: enum_stored("attestation", &row.attestation)?,
        user_verification: enum_stored("user_verification", &row.user_verification)?,
        resident_key: enum_stored("resident_key", &row.resident_key)?,
        attachment: enum_stored("attachment", &row.attachment)?,
        algorithms,
        timeout_seconds: u32::try_from(row.timeout_seconds)
            .map_err(|_| unreadable("timeout_seconds"))?,
        policy: AuthenticatorPolicy::from_stored(row.id, &row.authenticator_policy)?,
        version: row.config_version,
    })
}

/// A tenant ID as an edge received it (a path segment, a page's argument). One that does not
/// parse names no tenant: `not_found`, exactly as an unknown one, on every edge.
pub fn parse_tenant_id(value: &str) -> Result<Uuid> {
    Uuid::parse_str(value.trim()).map_err(|_| Error::NotFound)
}

/// Sets a tenant row's configuration columns (the version is the caller's).
trait SetConfig: Sized {
    fn set_config(self, config: &PasskeyConfig) -> Result<Self>;
}

impl SetConfig for sea_orm::UpdateMany<tenant::Entity> {
    fn set_config(self, config: &PasskeyConfig) -> Result<Self> {
        Ok(config_columns(config)?
            .into_iter()
            .fold(self, |update, (column, value)| {
                update.col_expr(column, value)
            }))
    }
}

/// The row's configuration columns for `config` (version excluded).
fn config_columns(
    config: &PasskeyConfig,
) -> Result<Vec<(tenant::Column, sea_orm::sea_query::SimpleExpr)>> {
    let origins: Vec<String> = config
        .origins
        .iter()
        .map(rules::Origin::as_client_origin)
        .collect();
    Ok(vec![
        (tenant::Column::PasskeysEnabled, Expr::value(config.enabled)),
        (tenant::Column::RpId, Expr::value(config.rp_id.clone())),
        (tenant::Column::RpName, Expr::value(config.rp_name.clone())),
        (tenant::Column::Origins, Expr::value(to_json(&origins)?)),
        (
            tenant::Column::RelatedOrigins,
            Expr::value(to_json(&config.related_origins)?),
        ),
        (
            tenant::Column::IosAppIds,
            Expr::value(to_json(&config.ios_app_ids)?),
        ),
        (
            tenant::Column::Attestation,
            Expr::value(enum_name(&config.attestation)),
        ),
        (
            tenant::Column::UserVerification,
            Expr::value(enum_name(&config.user_verification)),
        ),
        (
            tenant::Column::ResidentKey,
            Expr::value(enum_name(&config.resident_key)),
        ),
        (
            tenant::Column::Attachment,
            Expr::value(enum_name(&config.attachment)),
        ),
        (
            tenant::Column::Algorithms,
            Expr::value(to_json(&config.algorithms)?),
        ),
        (
            tenant::Column::TimeoutSeconds,
            Expr::value(i32::try_from(config.timeout_seconds).unwrap_or(300)),
        ),
        (
            tenant::Column::AuthenticatorPolicy,
            Expr::value(config.policy.to_stored()?),
        ),
    ])
}

fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::Internal(format!("serialising configuration: {e}")))
}

impl<'a> Tenants<'a> {
    pub(crate) fn new(
        db: &'a DatabaseConnection,
        clock: &'a dyn Clock,
        cache: &'a ConfigCache,
    ) -> Self {
        Self { db, clock, cache }
    }

    /// Creates a tenant (instance admins only); its creator becomes its owner.
    pub async fn create(
        &self,
        actor: &OperatorIdentity,
        name: &str,
        meta: RequestMeta,
    ) -> Result<Uuid> {
        actor.require_instance_admin()?;
        let name = validate::label("name", "tenant name", name, 100)?;
        self.insert(
            &name,
            &PasskeyConfig::default(),
            Some(actor.id),
            actor.actor(),
            meta,
        )
        .await
    }

    /// Creates a tenant for automation (`latchkey tenant create`), with the same rules as the
    /// portal; audited with the actor `cli`.
    pub async fn create_for_automation(&self, new: NewTenant) -> Result<Uuid> {
        let name = validate::label("name", "tenant name", &new.name, 100)?;
        let input = PasskeyConfigInput {
            enabled: new.enable_passkeys,
            rp_id: new.rp_id.unwrap_or_default(),
            origins: new.origins.join("\n"),
            ..PasskeyConfigInput::from(&PasskeyConfig::default())
        };
        let config = input.validate(1)?;
        let owner = match new.owner_email {
            Some(email) => Some(self.owner_by_email(&email).await?),
            None => None,
        };
        self.insert(&name, &config, owner, Actor::Cli, RequestMeta::default())
            .await
    }

    /// The operator the command line names as a tenant's owner (`--owner`).
    pub(crate) async fn owner_by_email(&self, email: &str) -> Result<Uuid> {
        let email = validate::email("owner", email)?;
        let found = operator::Entity::find()
            .filter(operator::Column::Email.eq(&email))
            .one(self.db)
            .await?
            .ok_or_else(|| {
                Error::invalid(
                    "owner",
                    format!("No operator has the email address {email}."),
                )
            })?;
        Ok(found.id)
    }

    async fn insert(
        &self,
        name: &str,
        config: &PasskeyConfig,
        owner: Option<Uuid>,
        actor: Actor,
        meta: RequestMeta,
    ) -> Result<Uuid> {
        let txn = crate::db::begin_write(self.db).await?;
        let now = self.clock.now();
        let id = Uuid::new_v4();
        tenant::Entity::insert(tenant::ActiveModel {
            id: Set(id),
            name: Set(name.to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        })
        .exec_without_returning(&txn)
        .await?;
        tenant::Entity::update_many()
            .set_config(config)?
            .filter(tenant::Column::Id.eq(id))
            .exec(&txn)
            .await?;
        if let Some(owner) = owner {
            insert_member(&txn, id, owner, Role::Owner, now).await?;
        }
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(actor, "tenant.created")
                .tenant(id)
                .target("tenant", id.to_string())
                .details(serde_json::json!({
                    "name": name,
                    "owner": owner,
                    "passkeys": config.audit_view(),
                }))
                .meta(meta),
        )
        .await?;
        // Its origins join the set CORS preflights are answered from, on every instance.
        config_events::announce(&txn, id).await?;
        txn.commit().await?;
        Ok(id)
    }

    /// Whether a tenant with passkeys on lists the web origin `origin` (CORS preflights that
    /// name no tenant yet). Answered from the cached set of all such origins, read again when it
    /// ages out (see [`ConfigCache::web_origin_listed`]): a flood of preflights costs at most a
    /// few reads per second for the whole instance, not one each.
    pub(crate) async fn web_origin_listed(&self, origin: &str) -> Result<bool> {
        let now = self.clock.now();
        if let Some(listed) = self.cache.web_origin_listed(origin, now) {
            return Ok(listed);
        }
        let generation = self.cache.generation();
        let mut origins = HashSet::new();
        for row in tenant::Entity::find()
            .filter(tenant::Column::PasskeysEnabled.eq(true))
            .all(self.db)
            .await?
        {
            origins.extend(config_of(&row)?.web_origins().map(str::to_owned));
        }
        let listed = origins.contains(origin);
        self.cache.put_web_origins(origins, now, generation);
        Ok(listed)
    }

    /// The tenants `actor` is a member of, by name.
    pub async fn list_for(&self, actor: &OperatorIdentity) -> Result<Vec<TenantSummary>> {
        let memberships = tenant_member::Entity::find()
            .filter(tenant_member::Column::OperatorId.eq(actor.id))
            .all(self.db)
            .await?;
        let ids: Vec<Uuid> = memberships.iter().map(|m| m.tenant_id).collect();
        let rows = tenant::Entity::find()
            .filter(tenant::Column::Id.is_in(ids))
            .order_by_asc(tenant::Column::Name)
            .all(self.db)
            .await?;
        rows.into_iter()
            .filter_map(|t| {
                let m = memberships.iter().find(|m| m.tenant_id == t.id)?;
                Some(Role::stored(&m.role).map(|role| TenantSummary {
                    id: t.id,
                    name: t.name,
                    role,
                    passkeys_enabled: t.passkeys_enabled,
                    rp_id: t.rp_id,
                }))
            })
            .collect()
    }

    /// One tenant with its configuration, for any member.
    pub async fn get(&self, access: &TenantAccess) -> Result<TenantDetails> {
        let tenant_id = access.tenant_id();
        access.require(Permission::ViewTenant)?;
        // The details name the viewer's role: a member's view.
        let role = access.role().ok_or(Error::Forbidden)?;
        let row = tenant::Entity::find_by_id(tenant_id)
            .one(self.db)
            .await?
            .ok_or(Error::NotFound)?;
        Ok(TenantDetails {
            id: row.id,
            name: row.name.clone(),
            role,
            config: config_of(&row)?,
            created_at: row.created_at,
        })
    }

    /// The tenant's passkey configuration for ceremonies: cached per instance (see
    /// [`ConfigCache`]), `None` for an unknown tenant.
    pub async fn passkey_config(&self, tenant_id: Uuid) -> Result<Option<Arc<PasskeyConfig>>> {
        let now = self.clock.now();
        if let Some(config) = self.cache.get(tenant_id, now) {
            return Ok(Some(config));
        }
        let generation = self.cache.generation();
        let Some(row) = tenant::Entity::find_by_id(tenant_id).one(self.db).await? else {
            return Ok(None);
        };
        let config = Arc::new(config_of(&row)?);
        self.cache.put(tenant_id, config.clone(), now, generation);
        Ok(Some(config))
    }

    /// Saves a new passkey configuration (owners and admins). Refuses with the offending field
    /// and saves nothing when any value is invalid. `expected_version` is the version the form
    /// was loaded with: a concurrent change is refused rather than silently overwritten.
    pub async fn update_passkey_config(
        &self,
        access: &TenantAccess,
        input: &PasskeyConfigInput,
        expected_version: i64,
        meta: RequestMeta,
    ) -> Result<PasskeyConfig> {
        let tenant_id = access.tenant_id();
        access.require(Permission::ManagePasskeyConfig)?;
        let mut config = input.validate(expected_version + 1)?;
        let generation = self.cache.generation();
        let txn = crate::db::begin_write(self.db).await?;
        let row = tenant::Entity::find_by_id(tenant_id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound)?;
        let before = config_of(&row)?;
        if before.version != expected_version {
            return Err(changed_meanwhile());
        }
        // The policy is saved on its own (with its dry run); this form keeps it.
        config.policy = before.policy.clone();
        if config.policy.require_certified && config.attestation != rules::Attestation::Direct {
            return Err(Error::invalid(
                "attestation",
                "The authenticator policy requires a certified authenticator, which needs \
                 attestation \"direct\". Change the policy first.",
            ));
        }
        if before.rp_id.is_some() && config.rp_id != before.rp_id && !input.confirm_rp_id_change {
            use sea_orm::PaginatorTrait;
            let registered = crate::entities::authenticator::Entity::find()
                .filter(crate::entities::authenticator::Column::TenantId.eq(tenant_id))
                .filter(crate::entities::authenticator::Column::RevokedAt.is_null())
                // In the transaction: a second connection is not needed, nor always free.
                .count(&txn)
                .await?;
            return Err(Error::invalid(
                "rp_id",
                format!(
                    "Changing the Relying Party ID from {} orphans every passkey registered for it \
                     ({registered} now). Confirm the change to save it.",
                    before.rp_id.as_deref().unwrap_or_default()
                ),
            ));
        }
        // Moving the tenant to another domain (the first one is set freely, at set-up).
        if before.rp_id.is_some() && config.rp_id != before.rp_id {
            access.require_step_up()?;
        }
        config.version = before.version + 1;
        let entry = AuditEntry::new(access.actor(), "tenant.passkey_config_changed")
            .tenant(tenant_id)
            .target("tenant", tenant_id.to_string())
            .details(serde_json::json!({
                "before": before.audit_view(),
                "after": config.audit_view(),
            }))
            .meta(meta);
        self.store_config(txn, tenant_id, expected_version, &config, entry, generation)
            .await?;
        Ok(config)
    }

    /// Stores `config` (its version already bumped) if the row is still at `expected_version`,
    /// with its audit event, and announces the change to every instance: one transaction. The
    /// cache of this instance gets the new configuration at once.
    async fn store_config(
        &self,
        txn: sea_orm::DatabaseTransaction,
        tenant_id: Uuid,
        expected_version: i64,
        config: &PasskeyConfig,
        entry: AuditEntry,
        generation: u64,
    ) -> Result<()> {
        let now = self.clock.now();
        let updated = tenant::Entity::update_many()
            .set_config(config)?
            .col_expr(tenant::Column::ConfigVersion, Expr::value(config.version))
            .col_expr(tenant::Column::UpdatedAt, Expr::value(now))
            .filter(tenant::Column::Id.eq(tenant_id))
            .filter(tenant::Column::ConfigVersion.eq(expected_version))
            .exec(&txn)
            .await?;
        // The read before it takes no row lock on PostgreSQL: this condition is the real guard.
        if updated.rows_affected != 1 {
            return Err(changed_meanwhile());
        }
        audit::record_in(&txn, self.clock, entry).await?;
        config_events::announce(&txn, tenant_id).await?;
        txn.commit().await?;
        self.cache
            .put(tenant_id, Arc::new(config.clone()), now, generation);
        Ok(())
    }

    /// Renames the tenant (owners).
    pub async fn rename(&self, access: &TenantAccess, name: &str, meta: RequestMeta) -> Result<()> {
        let tenant_id = access.tenant_id();
        access.require(Permission::RenameTenant)?;
        let name = validate::label("name", "tenant name", name, 100)?;
        let txn = crate::db::begin_write(self.db).await?;
        let row = tenant::Entity::find_by_id(tenant_id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound)?;
        tenant::Entity::update_many()
            .col_expr(tenant::Column::Name, Expr::value(name.clone()))
            .col_expr(tenant::Column::UpdatedAt, Expr::value(self.clock.now()))
            .filter(tenant::Column::Id.eq(tenant_id))
            .exec(&txn)
            .await?;
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(access.actor(), "tenant.renamed")
                .tenant(tenant_id)
                .target("tenant", tenant_id.to_string())
                .details(serde_json::json!({ "before": row.name, "after": name }))
                .meta(meta),
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Deletes the tenant (owners), confirmed by typing its exact name. Its memberships go with
    /// it; its audit events stay.
    pub async fn delete(
        &self,
        access: &TenantAccess,
        confirmation: &str,
        meta: RequestMeta,
    ) -> Result<()> {
        let tenant_id = access.tenant_id();
        access.require(Permission::DeleteTenant)?;
        let txn = crate::db::begin_write(self.db).await?;
        let row = tenant::Entity::find_by_id(tenant_id)
            .one(&txn)
            .await?
            .ok_or(Error::NotFound)?;
        if confirmation.trim() != row.name {
            return Err(Error::invalid(
                "confirmation",
                format!("Type the tenant's name, {}, to confirm.", row.name),
            ));
        }
        tenant::Entity::delete_by_id(tenant_id).exec(&txn).await?;
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(access.actor(), "tenant.deleted")
                .tenant(tenant_id)
                .target("tenant", tenant_id.to_string())
                .details(serde_json::json!({
                    "name": row.name,
                    "passkeys": config_of(&row)?.audit_view(),
                }))
                .meta(meta),
        )
        .await?;
        config_events::announce(&txn, tenant_id).await?;
        txn.commit().await?;
        self.cache.forget(tenant_id);
        Ok(())
    }

    /// The tenant's members, for any member.
    pub async fn members(&self, access: &TenantAccess) -> Result<Vec<MemberInfo>> {
        let tenant_id = access.tenant_id();
        access.require(Permission::ViewTenant)?;
        let members = tenant_member::Entity::find()
            .filter(tenant_member::Column::TenantId.eq(tenant_id))
            .all(self.db)
            .await?;
        let ids: Vec<Uuid> = members.iter().map(|m| m.operator_id).collect();
        let operators = operator::Entity::find()
            .filter(operator::Column::Id.is_in(ids))
            .order_by_asc(operator::Column::Email)
            .all(self.db)
            .await?;
        operators
            .into_iter()
            .filter_map(|op| {
                let m = members.iter().find(|m| m.operator_id == op.id)?;
                Some(Role::stored(&m.role).map(|role| MemberInfo {
                    operator_id: op.id,
                    email: op.email,
                    display_name: op.display_name,
                    role,
                    since: m.created_at,
                }))
            })
            .collect()
    }

    /// Removes a member (owners). A tenant always keeps at least one owner.
    pub async fn remove_member(
        &self,
        access: &TenantAccess,
        member_id: Uuid,
        meta: RequestMeta,
    ) -> Result<()> {
        let tenant_id = access.tenant_id();
        access.require(Permission::ManageMembers)?;
        let txn = crate::db::begin_write(self.db).await?;
        lock_tenant(&txn, tenant_id, self.clock.now()).await?;
        let current = tenant_member::Entity::find_by_id((tenant_id, member_id))
            .one(&txn)
            .await?
            .ok_or(Error::NotFound)?;
        if Role::stored(&current.role)? == Role::Owner && owner_count(&txn, tenant_id).await? <= 1 {
            return Err(last_owner());
        }
        tenant_member::Entity::delete_by_id((tenant_id, member_id))
            .exec(&txn)
            .await?;
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(access.actor(), "member.removed")
                .tenant(tenant_id)
                .target("operator", member_id.to_string())
                .details(serde_json::json!({ "role": current.role }))
                .meta(meta),
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Adds `email` to the tenant with `role` (owners only): an existing operator at once;
    /// anyone else gets a single-use invitation link (24 h) that makes them an operator and a
    /// member when they create their passkey.
    pub async fn add_member(
        &self,
        access: &TenantAccess,
        email: &str,
        role: Role,
        meta: RequestMeta,
    ) -> Result<MemberAdded> {
        let tenant_id = access.tenant_id();
        access.require(Permission::ManageMembers)?;
        // Only a member adds members: the operator's own standing decides what they may add.
        let operator = access.operator().ok_or(Error::Forbidden)?;
        let email = validate::email("email", email)?;
        // Access for another account, or a new account: a foothold if the session was stolen.
        access.require_step_up()?;
        let txn = crate::db::begin_write(self.db).await?;
        let now = self.clock.now();
        let existing = operator::Entity::find()
            .filter(operator::Column::Email.eq(&email))
            .one(&txn)
            .await?;
        let (outcome, target, action) = match existing {
            Some(member) => {
                insert_member(&txn, tenant_id, member.id, role, now)
                    .await
                    .map_err(on_unique(|| {
                        Error::invalid("email", "This operator is already a member.")
                    }))?;
                (
                    MemberAdded::Added,
                    ("operator", member.id.to_string()),
                    "member.added",
                )
            }
            // A new operator account is the instance's business (spec: an instance admin
            // invites operators); an owner who is not one adds existing operators only.
            None if !operator.is_instance_admin => {
                return Err(Error::invalid(
                    "email",
                    "No operator has this address yet. Only an instance admin can invite new \
                     operators: ask one to invite them, then add them here.",
                ));
            }
            None => {
                let grant = Grant {
                    email: Some(email.clone()),
                    instance_admin: false,
                    created_by: Some(operator.id),
                    tenant: Some((tenant_id, role)),
                };
                let (issued, token_id) =
                    insert_token(&txn, now, TokenPurpose::Invitation, grant).await?;
                (
                    MemberAdded::Invited(issued),
                    ("operator_token", token_id.to_string()),
                    "member.invited",
                )
            }
        };
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(access.actor(), action)
                .tenant(tenant_id)
                .target(target.0, target.1)
                .details(serde_json::json!({ "email": email, "role": role.as_str() }))
                .meta(meta),
        )
        .await?;
        txn.commit().await?;
        Ok(outcome)
    }

    /// Changes a member's role (owners only). A tenant always keeps at least one owner.
    pub async fn set_role(
        &self,
        access: &TenantAccess,
        member_id: Uuid,
        role: Role,
        meta: RequestMeta,
    ) -> Result<()> {
        let tenant_id = access.tenant_id();
        access.require(Permission::ManageMembers)?;
        let txn = crate::db::begin_write(self.db).await?;
        let now = self.clock.now();
        lock_tenant(&txn, tenant_id, now).await?;
        let current = tenant_member::Entity::find_by_id((tenant_id, member_id))
            .one(&txn)
            .await?
            .ok_or(Error::NotFound)?;
        let from = Role::stored(&current.role)?;
        if from == Role::Owner && role != Role::Owner && owner_count(&txn, tenant_id).await? <= 1 {
            return Err(last_owner());
        }
        tenant_member::Entity::update_many()
            .col_expr(tenant_member::Column::Role, Expr::value(role.as_str()))
            .col_expr(tenant_member::Column::UpdatedAt, Expr::value(now))
            .filter(tenant_member::Column::TenantId.eq(tenant_id))
            .filter(tenant_member::Column::OperatorId.eq(member_id))
            .exec(&txn)
            .await?;
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(access.actor(), "member.role_changed")
                .tenant(tenant_id)
                .target("operator", member_id.to_string())
                .details(serde_json::json!({
                    "from": from.as_str(),
                    "to": role.as_str(),
                }))
                .meta(meta),
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }
}

/// Writes the tenant's row first in a membership change: it serialises such changes within one
/// tenant (a row lock on PostgreSQL, the write lock on SQLite), so two owners cannot demote or
/// remove each other at once and leave it ownerless.
async fn lock_tenant(
    conn: &impl ConnectionTrait,
    tenant_id: Uuid,
    now: DateTime<Utc>,
) -> Result<()> {
    tenant::Entity::update_many()
        .col_expr(tenant::Column::UpdatedAt, Expr::value(now))
        .filter(tenant::Column::Id.eq(tenant_id))
        .exec(conn)
        .await?;
    Ok(())
}

async fn owner_count(conn: &impl ConnectionTrait, tenant_id: Uuid) -> Result<u64> {
    Ok(tenant_member::Entity::find()
        .filter(tenant_member::Column::TenantId.eq(tenant_id))
        .filter(tenant_member::Column::Role.eq(Role::Owner.as_str()))
        .count(conn)
        .await?)
}

fn changed_meanwhile() -> Error {
    Error::refused(
        ErrorCode::InvalidRequest,
        "Someone else changed this configuration meanwhile. Reload the page to see it.",
    )
}

fn last_owner() -> Error {
    Error::refused(
        ErrorCode::InvalidRequest,
        "A tenant needs at least one owner. Make someone else owner first.",
    )
}
