//! Brings every database to the same schema, and makes room for what lower-casing produces.
//!
//! - Migration 000007 was edited after it had landed: its dashboard index gained
//!   `backup_eligible`, so databases migrated before the edit kept the three-column index under
//!   the same name. Whichever version a database has, it is dropped here and the four-column
//!   index created under a new name.
//! - The search keys are the user ID and username lower-cased, and lower-casing can lengthen a
//!   string (`İ` becomes `i̇`, two characters; no character lower-cases to more than two). On
//!   PostgreSQL, whose `varchar(n)` is enforced, the keys get twice their source's length (SQLite
//!   does not enforce declared lengths).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Authenticators {
    Table,
    TenantId,
    RevokedAt,
    ProviderName,
    BackupEligible,
}

const OLD_INDEX: &str = "idx_authenticators_tenant_provider";
const NEW_INDEX: &str = "idx_authenticators_tenant_provider_synced";

fn dashboard_index(name: &str) -> IndexCreateStatement {
    Index::create()
        .name(name)
        .table(Authenticators::Table)
        .col(Authenticators::TenantId)
        .col(Authenticators::RevokedAt)
        .col(Authenticators::ProviderName)
        .col(Authenticators::BackupEligible)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(OLD_INDEX)
                    .table(Authenticators::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager.create_index(dashboard_index(NEW_INDEX)).await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "ALTER TABLE end_users \
                     ALTER COLUMN external_id_key TYPE varchar(256) COLLATE \"C\", \
                     ALTER COLUMN username_key TYPE varchar(512) COLLATE \"C\"",
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "ALTER TABLE end_users \
                     ALTER COLUMN external_id_key TYPE varchar(128) COLLATE \"C\", \
                     ALTER COLUMN username_key TYPE varchar(256) COLLATE \"C\"",
                )
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name(NEW_INDEX)
                    .table(Authenticators::Table)
                    .to_owned(),
            )
            .await?;
        manager.create_index(dashboard_index(OLD_INDEX)).await
    }
}
