//! The home page's getting-started checklist: how far an operator's tenants have come, from a
//! first tenant to a first registered passkey. Each step is one `EXISTS`-style read (a row, not
//! a count), so the home page costs the same on a busy instance.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use super::Tenants;
use crate::{
    Result,
    access::OperatorIdentity,
    entities::{api_key, authenticator, enrollment_token, tenant},
};

/// Which steps are done, over the tenants the operator is a member of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstRun {
    /// The tenant the steps link to: the first (by name) of the operator's tenants.
    pub tenant: Option<(Uuid, String)>,
    /// Whether this operator may create tenants (instance admins).
    pub may_create_tenant: bool,
    /// Passkeys enabled, with an RP ID and at least one expected origin.
    pub passkeys_configured: bool,
    pub api_key_created: bool,
    pub enrollment_token_issued: bool,
    pub passkey_registered: bool,
}

impl FirstRun {
    /// Every step done.
    pub fn done(&self) -> bool {
        self.tenant.is_some()
            && self.passkeys_configured
            && self.api_key_created
            && self.enrollment_token_issued
            && self.passkey_registered
    }
}

impl Tenants<'_> {
    /// The checklist for `actor`. Reads only the actor's own tenants.
    pub async fn first_run(&self, actor: &OperatorIdentity) -> Result<FirstRun> {
        let tenants = self.list_for(actor).await?;
        let ids: Vec<Uuid> = tenants.iter().map(|t| t.id).collect();
        let mut run = FirstRun {
            tenant: tenants.first().map(|t| (t.id, t.name.clone())),
            may_create_tenant: actor.is_instance_admin,
            passkeys_configured: false,
            api_key_created: false,
            enrollment_token_issued: false,
            passkey_registered: false,
        };
        if ids.is_empty() {
            return Ok(run);
        }
        let configured: Vec<String> = tenant::Entity::find()
            .select_only()
            .column(tenant::Column::Origins)
            .filter(tenant::Column::Id.is_in(ids.clone()))
            .filter(tenant::Column::PasskeysEnabled.eq(true))
            .filter(tenant::Column::RpId.is_not_null())
            .into_tuple()
            .all(self.db)
            .await?;
        run.passkeys_configured = configured.iter().any(|origins| {
            serde_json::from_str::<Vec<String>>(origins).is_ok_and(|o| !o.is_empty())
        });
        run.api_key_created = any_row::<api_key::Entity>(
            self.db,
            api_key::Column::Id,
            api_key::Column::TenantId,
            &ids,
        )
        .await?;
        run.enrollment_token_issued = any_row::<enrollment_token::Entity>(
            self.db,
            enrollment_token::Column::Id,
            enrollment_token::Column::TenantId,
            &ids,
        )
        .await?;
        run.passkey_registered = any_row::<authenticator::Entity>(
            self.db,
            authenticator::Column::Id,
            authenticator::Column::TenantId,
            &ids,
        )
        .await?;
        Ok(run)
    }
}

/// Whether the table of `id` and `tenant` holds a row of any of `tenants`: one row's ID read, not a count.
async fn any_row<E: EntityTrait>(
    db: &sea_orm::DatabaseConnection,
    id: E::Column,
    tenant: E::Column,
    tenants: &[Uuid],
) -> Result<bool> {
    Ok(E::find()
        .select_only()
        .column(id)
        .filter(tenant.is_in(tenants.iter().copied()))
        .into_tuple::<Uuid>()
        .one(db)
        .await?
        .is_some())
}
