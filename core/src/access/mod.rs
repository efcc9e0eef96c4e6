//! Who may do what, decided here whatever the UI shows or hides: the identities (operators,
//! actors), the role table, and [`TenantAccess`] — the value every tenant-scoped service method
//! takes and asks for the permission it needs.
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

pub mod step_up;
mod tenant;

pub use tenant::TenantAccess;

use sea_orm::{ConnectionTrait, EntityTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Error, Result, entities::tenant_member};

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Operator {
        id: Uuid,
        email: String,
    },
    ApiKey {
        id: Uuid,
        prefix: String,
    },
    EndUser {
        user_id: String,
    },
    /// The `latchkey` command line.
    Cli,
    /// Latchkey itself (start-up, housekeeping).
    System,
    /// Someone not (yet) identified: a failed sign-in, an unfinished setup.
    Anonymous,
}

impl Actor {
    /// Who it was, in a few words, for "issued by" / "revoked by" columns.
    pub fn label(&self) -> String {
        match self {
            Self::Operator { email, .. } => email.clone(),
            Self::ApiKey { prefix, .. } => format!("API key {prefix}…"),
            Self::EndUser { user_id } => format!("user {user_id}"),
            Self::Cli => "cli".to_owned(),
            Self::System => "latchkey".to_owned(),
            Self::Anonymous => "anonymous".to_owned(),
        }
    }

    pub(crate) fn parts(&self) -> (&'static str, Option<String>, Option<String>) {
        match self {
            Self::Operator { id, email } => ("operator", Some(id.to_string()), Some(email.clone())),
            Self::ApiKey { id, prefix } => ("api_key", Some(id.to_string()), Some(prefix.clone())),
            Self::EndUser { user_id } => ("end_user", Some(user_id.clone()), None),
            Self::Cli => ("cli", None, None),
            Self::System => ("system", None, None),
            Self::Anonymous => ("anonymous", None, None),
        }
    }
}

/// A signed-in operator, as the services see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorIdentity {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub is_instance_admin: bool,
}

impl OperatorIdentity {
    pub fn actor(&self) -> Actor {
        Actor::Operator {
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

    /// A role read from a row; anything unknown there is corruption (an internal error), not
    /// "no access" or a default.
    pub(crate) fn stored(value: &str) -> Result<Self> {
        Self::parse(value).ok_or_else(|| Error::Internal(format!("stored role {value:?} unknown")))
    }

    /// The rule table: what each role may do in its tenant.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            // Validation tokens are the backend's to redeem (see `Permission::for_backends`).
            _ if permission == ValidateTokens => false,
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
                    | ReadCredentialHealth
                    | DismissHealthFlags
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
    /// Redeem the validation token of a sign-in (the tenant's backend only; no role).
    ValidateTokens,
    /// See what a proposed authenticator policy would do to today's passkeys.
    DryRunPolicy,
    /// Read the credential health queue.
    ReadCredentialHealth,
    /// Dismiss a passkey's health flag with a note.
    DismissHealthFlags,
    /// Run the origin doctor (it makes requests to the tenant's sites) and read the
    /// `/.well-known/webauthn` document.
    CheckOrigins,
    /// Webhook endpoints: create, change, rotate their secrets, read their deliveries,
    /// redeliver.
    ManageWebhooks,
}

impl Permission {
    /// What a tenant's backend may do with its API key: what the Server API offers.
    pub(crate) fn for_backends(self) -> bool {
        matches!(
            self,
            Self::ReadUsers
                | Self::RevokeCredentials
                | Self::IssueEnrollmentTokens
                | Self::IssueRecoveryTokens
                | Self::ValidateTokens
                | Self::DryRunPolicy
                | Self::ReadCredentialHealth
                | Self::CheckOrigins
                | Self::ManageWebhooks
        )
    }

    pub const ALL: [Permission; 18] = [
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
        Self::ValidateTokens,
        Self::DryRunPolicy,
        Self::ReadCredentialHealth,
        Self::DismissHealthFlags,
        Self::CheckOrigins,
        Self::ManageWebhooks,
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
    row.map(|m| Role::stored(&m.role)).transpose()
}
