//! Instance-wide facts: liveness of the database and what the portal's home page summarises.

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait, Statement,
};

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

/// Why an instance should not be sent traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    DatabaseUnreachable,
    /// Migrations this release knows are not applied (they are applied at start: someone
    /// restored or replaced the database under a running instance).
    MigrationsPending,
    ReadOnly,
}

impl NotReady {
    pub fn message(self) -> &'static str {
        match self {
            Self::DatabaseUnreachable => "The database is not reachable.",
            Self::MigrationsPending => {
                "The database has migrations pending; restart to apply them."
            }
            Self::ReadOnly => "The database is read-only.",
        }
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

    /// Readiness: the database answers, has every migration this release knows, and takes
    /// writes (a PostgreSQL standby or a read-only transaction default does not).
    pub async fn readiness(&self) -> std::result::Result<(), NotReady> {
        let unreachable = |err: sea_orm::DbErr| {
            tracing::warn!(error = %err, "readiness: the database does not answer");
            NotReady::DatabaseUnreachable
        };
        // Reading the applied migrations is also the check that the database answers.
        if !crate::db::schema::state(self.db)
            .await
            .map_err(unreachable)?
            .pending
            .is_empty()
        {
            return Err(NotReady::MigrationsPending);
        }
        if self.db.get_database_backend() == DbBackend::Postgres {
            let read_only = self
                .db
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT (pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on') AS ro",
                ))
                .await
                .map_err(unreachable)?
                .map(|row| row.try_get::<bool>("", "ro"))
                .transpose()
                .map_err(unreachable)?;
            if read_only != Some(false) {
                return Err(NotReady::ReadOnly);
            }
        }
        Ok(())
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
