//! What the support console searches and filters by, indexed so that it stays fast with 100k users,
//! 1M credentials and a long audit log:
//!
//! - `end_users.external_id_key`: the tenant's user ID lower-cased (like `username_key`), so that
//!   "Search users" is a case-insensitive *prefix range* on an index, never a scan;
//! - both search keys compare byte-wise on PostgreSQL too (`COLLATE "C"`), because the prefix range
//!   `key >= p AND key < p || U+10FFFF` is only exact under code-point order;
//! - keyset-pagination indexes ending in the row id, for users and for the filters of the audit log.
//!
//! The new key is backfilled here in Rust (`str::to_lowercase`, as the services compute it)
//! rather than with SQL `lower()`, which on SQLite folds ASCII only.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DbBackend, prelude::Uuid};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EndUsers {
    Table,
    Id,
    TenantId,
    ExternalId,
    /// `lower(external_id)`, for case-insensitive prefix search.
    ExternalIdKey,
    UsernameKey,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    TenantId,
    Action,
    ActorLabel,
    TargetKind,
    TargetId,
}

#[derive(DeriveIden)]
enum Authenticators {
    Table,
    TenantId,
    RevokedAt,
    ProviderName,
    BackupEligible,
}

/// Rows backfilled per round trip.
const BACKFILL_BATCH: u64 = 1000;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        let mut key = ColumnDef::new(EndUsers::ExternalIdKey);
        key.string_len(128).not_null().default("");
        if postgres {
            key.extra("COLLATE \"C\"");
        }
        manager
            .alter_table(
                Table::alter()
                    .table(EndUsers::Table)
                    .add_column(key)
                    .to_owned(),
            )
            .await?;
        if postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "ALTER TABLE end_users ALTER COLUMN username_key TYPE varchar(256) COLLATE \"C\"",
                )
                .await?;
        }
        backfill_external_id_key(manager).await?;

        manager
            .drop_index(
                Index::drop()
                    .name("idx_end_users_tenant_username")
                    .table(EndUsers::Table)
                    .to_owned(),
            )
            .await?;
        let indexes = [
            Index::create()
                .name("idx_end_users_tenant_id_key")
                .table(EndUsers::Table)
                .col(EndUsers::TenantId)
                .col(EndUsers::ExternalIdKey)
                .col(EndUsers::Id)
                .to_owned(),
            // Carries the user-ID key so that a username match can be told from a user-ID match
            // (listed once, by its user ID) from the index alone.
            Index::create()
                .name("idx_end_users_tenant_username_key")
                .table(EndUsers::Table)
                .col(EndUsers::TenantId)
                .col(EndUsers::UsernameKey)
                .col(EndUsers::Id)
                .col(EndUsers::ExternalIdKey)
                .to_owned(),
            Index::create()
                .name("idx_audit_events_tenant_action")
                .table(AuditEvents::Table)
                .col(AuditEvents::TenantId)
                .col(AuditEvents::Action)
                .col(AuditEvents::Id)
                .to_owned(),
            Index::create()
                .name("idx_audit_events_tenant_target")
                .table(AuditEvents::Table)
                .col(AuditEvents::TenantId)
                .col(AuditEvents::TargetKind)
                .col(AuditEvents::TargetId)
                .col(AuditEvents::Id)
                .to_owned(),
            Index::create()
                .name("idx_audit_events_tenant_actor")
                .table(AuditEvents::Table)
                .col(AuditEvents::TenantId)
                .col(AuditEvents::ActorLabel)
                .col(AuditEvents::Id)
                .to_owned(),
            // The dashboard's "active credentials by provider, synced or not", read from the
            // index alone.
            Index::create()
                .name("idx_authenticators_tenant_provider")
                .table(Authenticators::Table)
                .col(Authenticators::TenantId)
                .col(Authenticators::RevokedAt)
                .col(Authenticators::ProviderName)
                .col(Authenticators::BackupEligible)
                .to_owned(),
        ];
        for index in indexes {
            manager.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            (
                "idx_authenticators_tenant_provider",
                Authenticators::Table.into_iden(),
            ),
            (
                "idx_audit_events_tenant_actor",
                AuditEvents::Table.into_iden(),
            ),
            (
                "idx_audit_events_tenant_target",
                AuditEvents::Table.into_iden(),
            ),
            (
                "idx_audit_events_tenant_action",
                AuditEvents::Table.into_iden(),
            ),
            (
                "idx_end_users_tenant_username_key",
                EndUsers::Table.into_iden(),
            ),
            ("idx_end_users_tenant_id_key", EndUsers::Table.into_iden()),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_end_users_tenant_username")
                    .table(EndUsers::Table)
                    .col(EndUsers::TenantId)
                    .col(EndUsers::UsernameKey)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(EndUsers::Table)
                    .drop_column(EndUsers::ExternalIdKey)
                    .to_owned(),
            )
            .await
    }
}

/// Sets `external_id_key` of the users that existed before this migration, a batch at a time
/// (keyset on the id, so the loop ends even if a key equals the old default).
async fn backfill_external_id_key(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let conn = manager.get_connection();
    let mut after: Option<Uuid> = None;
    loop {
        let mut select = Query::select();
        select
            .columns([EndUsers::Id, EndUsers::ExternalId])
            .from(EndUsers::Table)
            .order_by(EndUsers::Id, Order::Asc)
            .limit(BACKFILL_BATCH);
        if let Some(after) = after {
            select.and_where(Expr::col(EndUsers::Id).gt(after));
        }
        let rows = conn.query_all(&select).await?;
        if rows.is_empty() {
            return Ok(());
        }
        for row in &rows {
            let id: Uuid = row.try_get("", "id")?;
            let external_id: String = row.try_get("", "external_id")?;
            let update = Query::update()
                .table(EndUsers::Table)
                .value(EndUsers::ExternalIdKey, external_id.to_lowercase())
                .and_where(Expr::col(EndUsers::Id).eq(id))
                .to_owned();
            conn.execute(&update).await?;
            after = Some(id);
        }
    }
}
