//! Instance-wide facts: liveness of the database and what the portal's home page summarises.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};

use crate::{
    Clock, Result,
    db::{BackendKind, backend_of},
    entities::{operator, tenant},
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceStatus {
    pub backend: BackendKind,
    pub tenants: u64,
    pub operators: u64,
    pub checked_at: DateTime<Utc>,
}

impl InstanceStatus {
    /// A fresh instance has no operator yet and waits for the first-run setup.
    pub fn needs_setup(&self) -> bool {
        self.operators == 0
    }
}

pub struct Instance<'a> {
    db: &'a DatabaseConnection,
    clock: &'a dyn Clock,
}

impl<'a> Instance<'a> {
    pub(crate) fn new(db: &'a DatabaseConnection, clock: &'a dyn Clock) -> Self {
        Self { db, clock }
    }

    /// Readiness: the database answers.
    pub async fn check_ready(&self) -> Result<()> {
        Ok(self.db.ping().await?)
    }

    pub async fn status(&self) -> Result<InstanceStatus> {
        let tenants = tenant::Entity::find().count(self.db).await?;
        let operators = operator::Entity::find().count(self.db).await?;
        Ok(InstanceStatus {
            backend: backend_of(self.db),
            tenants,
            operators,
            checked_at: self.clock.now(),
        })
    }
}
