//! Access to one tenant, as a value: the only way to reach a tenant-scoped operation.
//!
//! A [`TenantAccess`] names the tenant and who acts in it, and is made only where that was
//! established: [`crate::Services::tenant`] for an operator (their membership and role read from
//! the database), an authenticated API key for the tenant's backend
//! ([`crate::tenants::api_keys::ApiKeyPrincipal::access`]), or
//! [`crate::Services::tenant_for_host`] for the command line. Every tenant-scoped service method
//! takes one and asks it [`TenantAccess::require`] for the permission it needs, then filters its
//! queries by [`TenantAccess::tenant_id`]: a method cannot forget the check, and cannot be pointed
//! at a tenant other than the one checked.

use uuid::Uuid;

use super::{Actor, OperatorIdentity, Permission, Role, step_up::StepUp};
use crate::{Error, Result};

/// Who acts in the tenant, as established when the access was made.
#[derive(Debug, Clone)]
enum Caller {
    /// The tenant's backend, by one of its API keys.
    Backend { key_id: Uuid, prefix: String },
    /// A member of the tenant, with their role at the time of the request. `stepped_up`: their
    /// session verified a passkey recently enough for the actions that need step-up.
    Operator {
        identity: OperatorIdentity,
        role: Role,
        stepped_up: bool,
    },
    /// Someone with access to the host (the `latchkey` command line).
    Host,
}

/// Proof that a caller may act in one tenant (see the module documentation).
#[derive(Debug, Clone)]
pub struct TenantAccess {
    tenant_id: Uuid,
    caller: Caller,
}

impl TenantAccess {
    pub(crate) fn backend(tenant_id: Uuid, key_id: Uuid, prefix: String) -> Self {
        Self {
            tenant_id,
            caller: Caller::Backend { key_id, prefix },
        }
    }

    pub(crate) fn member(tenant_id: Uuid, identity: OperatorIdentity, role: Role) -> Self {
        Self {
            tenant_id,
            caller: Caller::Operator {
                identity,
                role,
                stepped_up: false,
            },
        }
    }

    pub(crate) fn host(tenant_id: Uuid) -> Self {
        Self {
            tenant_id,
            caller: Caller::Host,
        }
    }

    /// The same access, for the actions that need step-up too, if `step_up` is this operator's
    /// and recent (see [`super::step_up`]).
    pub fn stepped_up(mut self, step_up: &StepUp<'_>) -> Self {
        if let Caller::Operator {
            identity,
            stepped_up,
            ..
        } = &mut self.caller
        {
            *stepped_up = step_up.operator().id == identity.id && step_up.is_fresh();
        }
        self
    }

    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }

    /// The operator's role; `None` for a backend or the command line.
    pub fn role(&self) -> Option<Role> {
        match &self.caller {
            Caller::Operator { role, .. } => Some(*role),
            Caller::Backend { .. } | Caller::Host => None,
        }
    }

    /// The operator acting, if one is.
    pub fn operator(&self) -> Option<&OperatorIdentity> {
        match &self.caller {
            Caller::Operator { identity, .. } => Some(identity),
            Caller::Backend { .. } | Caller::Host => None,
        }
    }

    /// Who to record in the audit log.
    pub fn actor(&self) -> Actor {
        match &self.caller {
            Caller::Backend { key_id, prefix } => Actor::ApiKey {
                id: *key_id,
                prefix: prefix.clone(),
            },
            Caller::Operator { identity, .. } => identity.actor(),
            Caller::Host => Actor::Cli,
        }
    }

    /// Whether the caller may do `permission` here: an operator by their role; a backend what
    /// the Server API offers; the command line anything.
    pub fn allows(&self, permission: Permission) -> bool {
        match &self.caller {
            Caller::Operator { role, .. } => role.allows(permission),
            Caller::Backend { .. } => permission.for_backends(),
            Caller::Host => true,
        }
    }

    /// `forbidden` unless the caller may do `permission` here.
    pub fn require(&self, permission: Permission) -> Result<()> {
        if self.allows(permission) {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }

    /// `step_up_required` unless an operator stepped up recently; a backend and the command line
    /// never need to (they plant nothing in the portal).
    pub fn require_step_up(&self) -> Result<()> {
        match &self.caller {
            Caller::Operator { stepped_up, .. } if !stepped_up => Err(Error::refused(
                crate::ErrorCode::StepUpRequired,
                super::step_up::REQUIRED_MESSAGE,
            )),
            _ => Ok(()),
        }
    }
}
