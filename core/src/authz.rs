//! Who may do what. Every service method that acts for an operator checks here, whatever the UI
//! shows or hides.
//!
//! Per tenant an operator holds one [`Role`]; instance admins may additionally create tenants and
//! invite operators, but gain no access to a tenant's contents by that alone: not its users, not
//! its audit events (the instance audit log holds only events of no tenant). A tenant the
//! operator is not a member of is `not_found`, never `forbidden` (no existence oracle).
//!
//! The decided edges of the rule table (README, "Roles"):
//! - viewers see the dashboard's outcome counts: numbers only, no user, address or event;
//! - support issues recovery tokens, but only without `add:authenticators`: such a token
//!   registers a passkey only for a user who has none left (revoke the lost one first), so
//!   support cannot add a passkey beside a user's working ones; admins and owners may;
//! - only instance admins create operator accounts: an owner adding an address no operator has
//!   is refused unless the owner is an instance admin.

use sea_orm::{ConnectionTrait, EntityTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Error, Result, entities::tenant_member};

/// A signed-in operator, as the services see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorIdentity {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub is_instance_admin: bool,
}

impl OperatorIdentity {
    pub fn actor(&self) -> crate::audit::Actor {
        crate::audit::Actor::Operator {
            id: self.id,
            email: self.email.clone(),
        }
    }

    /// Instance-wide actions (creating tenants, inviting operators, the instance audit log).
    pub fn require_instance_admin(&self) -> Result<()> {
        if self.is_instance_admin {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }
}

/// An operator's role in one tenant (spec: Who uses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Support,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Self::Owner, Self::Admin, Self::Support, Self::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Support => "support",
            Self::Viewer => "viewer",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == value)
    }

    /// The rule table: what each role may do in its tenant.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Self::Owner => true,
            Self::Admin => !matches!(permission, ManageMembers | RenameTenant | DeleteTenant),
            Self::Support => matches!(
                permission,
                ViewTenant
                    | ReadUsers
                    | ReadDashboard
                    | RevokeCredentials
                    | ReadAuditLog
                    | IssueRecoveryTokens
            ),
            Self::Viewer => matches!(permission, ViewTenant | ReadUsers | ReadDashboard),
        }
    }
}

/// Something an operator may do inside a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// See the tenant and its passkey configuration.
    ViewTenant,
    /// Read users and their authenticators.
    ReadUsers,
    /// The dashboard: counts of users, passkeys and ceremony outcomes (no events).
    ReadDashboard,
    ReadAuditLog,
    RevokeCredentials,
    ManagePasskeyConfig,
    ManageApiKeys,
    /// Enrollment tokens of any scope (`add:authenticators` included).
    IssueEnrollmentTokens,
    /// Enrollment tokens without `add:authenticators` (recovery for a user with no passkey
    /// left), and listing and revoking a tenant's enrollment tokens.
    IssueRecoveryTokens,
    ManageMembers,
    RenameTenant,
    DeleteTenant,
}

impl Permission {
    pub const ALL: [Permission; 12] = [
        Self::ViewTenant,
        Self::ReadUsers,
        Self::ReadDashboard,
        Self::ReadAuditLog,
        Self::RevokeCredentials,
        Self::ManagePasskeyConfig,
        Self::ManageApiKeys,
        Self::IssueEnrollmentTokens,
        Self::IssueRecoveryTokens,
        Self::ManageMembers,
        Self::RenameTenant,
        Self::DeleteTenant,
    ];
}

/// The operator's role in `tenant_id`, read from the database on every call (a removed member
/// loses access with their next request).
pub(crate) async fn role_in(
    conn: &impl ConnectionTrait,
    operator_id: Uuid,
    tenant_id: Uuid,
) -> Result<Option<Role>> {
    let row = tenant_member::Entity::find_by_id((tenant_id, operator_id))
        .one(conn)
        .await?;
    Ok(row.and_then(|m| Role::parse(&m.role)))
}

/// Checks that `operator` may do `permission` in `tenant_id`; answers their role.
pub(crate) async fn require(
    conn: &impl ConnectionTrait,
    operator: &OperatorIdentity,
    tenant_id: Uuid,
    permission: Permission,
) -> Result<Role> {
    match role_in(conn, operator.id, tenant_id).await? {
        None => Err(Error::NotFound),
        Some(role) if role.allows(permission) => Ok(role),
        Some(_) => Err(Error::Forbidden),
    }
}
