//! Which schema the database has, against the migrations this release knows.
//!
//! A rolling upgrade runs two releases on one database for a while: the newer one migrates at
//! start, the older one keeps serving (every migration so far only adds tables, columns with
//! defaults, or indexes: see the README's "Upgrading"). What an older release must not do is *start*
//! on a schema it does not know — it could not tell whether the unknown migrations changed
//! something it relies on — so it refuses, naming the migrations, before touching anything.

use std::collections::HashSet;

use migration::{Migrator, MigratorTrait, SchemaManager};
use sea_orm::{DatabaseConnection, DbErr, EntityTrait};
use sea_orm_migration::seaql_migrations;

/// The database's migrations against this release's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaState {
    /// Known to this release, not applied yet (applied at start).
    pub pending: Vec<String>,
    /// Applied by a newer release, unknown to this one.
    pub unknown: Vec<String>,
}

impl SchemaState {
    pub fn is_current(&self) -> bool {
        self.pending.is_empty() && self.unknown.is_empty()
    }
}

/// This release's migrations, oldest first.
pub fn known_migrations() -> Vec<String> {
    Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}

/// Reads the applied migrations without creating anything (a fresh database has none).
pub async fn state(db: &DatabaseConnection) -> Result<SchemaState, DbErr> {
    let table = Migrator::migration_table_name().to_string();
    let applied: HashSet<String> = if SchemaManager::new(db).has_table(&table).await? {
        seaql_migrations::Entity::find()
            .all(db)
            .await?
            .into_iter()
            .map(|m| m.version)
            .collect()
    } else {
        HashSet::new()
    };
    let known = known_migrations();
    let mut unknown: Vec<String> = applied
        .iter()
        .filter(|v| !known.contains(v))
        .cloned()
        .collect();
    unknown.sort();
    Ok(SchemaState {
        pending: known.into_iter().filter(|v| !applied.contains(v)).collect(),
        unknown,
    })
}
