//! Tenants and their members. (The passkey configuration of a tenant arrives with its own
//! service.) Every method takes the acting operator and checks their role first.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    SqlErr, sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    Clock, Error, ErrorCode, Result,
    audit::{self, AuditEntry, RequestMeta},
    authz::{self, OperatorIdentity, Permission, Role},
    entities::{operator, tenant, tenant_member},
    validate,
};

pub struct Tenants<'a> {
    db: &'a DatabaseConnection,
    clock: &'a dyn Clock,
}

impl<'a> Tenants<'a> {
    pub(crate) fn new(db: &'a DatabaseConnection, clock: &'a dyn Clock) -> Self {
        Self { db, clock }
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
        let txn = crate::db::begin_write(self.db).await?;
        let now = self.clock.now();
        let id = Uuid::new_v4();
        tenant::Entity::insert(tenant::ActiveModel {
            id: Set(id),
            name: Set(name.clone()),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await?;
        tenant_member::Entity::insert(tenant_member::ActiveModel {
            tenant_id: Set(id),
            operator_id: Set(actor.id),
            role: Set(Role::Owner.as_str().to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await?;
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(actor.actor(), "tenant.created")
                .tenant(id)
                .target("tenant", id.to_string())
                .details(serde_json::json!({ "name": name }))
                .meta(meta),
        )
        .await?;
        txn.commit().await?;
        Ok(id)
    }

    /// Checks that `actor` may do `permission` in `tenant_id` and answers their role:
    /// `not_found` for non-members, `forbidden` for members whose role does not allow it.
    pub async fn authorize(
        &self,
        actor: &OperatorIdentity,
        tenant_id: Uuid,
        permission: Permission,
    ) -> Result<Role> {
        authz::require(self.db, actor, tenant_id, permission).await
    }

    /// Adds an existing operator to the tenant (owners only).
    pub async fn add_member(
        &self,
        actor: &OperatorIdentity,
        tenant_id: Uuid,
        email: &str,
        role: Role,
        meta: RequestMeta,
    ) -> Result<()> {
        authz::require(self.db, actor, tenant_id, Permission::ManageMembers).await?;
        let email = validate::email("email", email)?;
        let member = operator::Entity::find()
            .filter(operator::Column::Email.eq(&email))
            .one(self.db)
            .await?
            .ok_or_else(|| {
                Error::invalid(
                    "email",
                    "No operator has this email address; invite them to Latchkey first.",
                )
            })?;
        let txn = crate::db::begin_write(self.db).await?;
        let now = self.clock.now();
        tenant_member::Entity::insert(tenant_member::ActiveModel {
            tenant_id: Set(tenant_id),
            operator_id: Set(member.id),
            role: Set(role.as_str().to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(|e| match e.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                Error::invalid("email", "This operator is already a member.")
            }
            _ => Error::from(e),
        })?;
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(actor.actor(), "member.added")
                .tenant(tenant_id)
                .target("operator", member.id.to_string())
                .details(serde_json::json!({ "role": role.as_str() }))
                .meta(meta),
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Changes a member's role (owners only). A tenant always keeps at least one owner.
    pub async fn set_role(
        &self,
        actor: &OperatorIdentity,
        tenant_id: Uuid,
        member_id: Uuid,
        role: Role,
        meta: RequestMeta,
    ) -> Result<()> {
        authz::require(self.db, actor, tenant_id, Permission::ManageMembers).await?;
        let txn = crate::db::begin_write(self.db).await?;
        let now = self.clock.now();
        // Touch the tenant row first: it serialises role changes within one tenant, so two
        // owners cannot demote each other at once and leave it ownerless.
        tenant::Entity::update_many()
            .col_expr(tenant::Column::UpdatedAt, Expr::value(now))
            .filter(tenant::Column::Id.eq(tenant_id))
            .exec(&txn)
            .await?;
        let current = tenant_member::Entity::find_by_id((tenant_id, member_id))
            .one(&txn)
            .await?
            .ok_or(Error::NotFound)?;
        let from = Role::parse(&current.role);
        if from == Some(Role::Owner) && role != Role::Owner {
            let owners = tenant_member::Entity::find()
                .filter(tenant_member::Column::TenantId.eq(tenant_id))
                .filter(tenant_member::Column::Role.eq(Role::Owner.as_str()))
                .count(&txn)
                .await?;
            if owners <= 1 {
                return Err(Error::refused(
                    ErrorCode::InvalidRequest,
                    "A tenant needs at least one owner. Make someone else owner first.",
                ));
            }
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
            AuditEntry::new(actor.actor(), "member.role_changed")
                .tenant(tenant_id)
                .target("operator", member_id.to_string())
                .details(serde_json::json!({
                    "from": from.map(Role::as_str),
                    "to": role.as_str(),
                }))
                .meta(meta),
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }
}
