use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    Clock, SystemClock, audit::AuditLog, db::BackendKind, instance::Instance,
    sessions::DbSessionStore,
};

/// The handle every edge holds: the database pool and the clock, with one accessor per service.
/// Cheap to clone.
#[derive(Clone)]
pub struct Services {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
}

impl Services {
    pub fn new(db: DatabaseConnection) -> Self {
        Self::with_clock(db, Arc::new(SystemClock))
    }

    pub fn with_clock(db: DatabaseConnection, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    pub fn backend(&self) -> BackendKind {
        crate::db::backend_of(&self.db)
    }

    pub fn instance(&self) -> Instance<'_> {
        Instance::new(&self.db, self.clock.as_ref())
    }

    pub fn audit(&self) -> AuditLog<'_> {
        AuditLog::new(&self.db, self.clock.as_ref())
    }

    /// The portal's session store (for the `tower-sessions` layer and operator sign-out).
    pub fn sessions(&self) -> DbSessionStore {
        DbSessionStore::new(self.db.clone(), self.clock.clone())
    }

    /// Closes the pool (graceful shutdown). Clones still held elsewhere see a closed pool.
    pub async fn close(&self) -> crate::Result<()> {
        Ok(self.db.close_by_ref().await?)
    }
}
