//! The verifiable audit log (`latchkey_core::audit::chain`): every audit event is linked into
//! its scope's hash chain (one per tenant, one for the instance's own events) a moment after it
//! commits, and each sealing run is itself chained into the instance-wide chain of seals.
//!
//! Both tables are append-only, like `audit_events`: a link or a seal never changes. Links are
//! kept when retention purges their events, so the chain still verifies from the first event
//! left.
//!
//! Safe under a running older instance: it only adds tables (the older release neither reads
//! nor writes them; the newer one seals what the older one recorded).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditSeals {
    Table,
    Id,
    SealedAt,
    /// Events that occurred before this and are still unlinked are never sealed later: the
    /// verifier reports them as inserted after the fact.
    Floor,
    /// Events linked by this seal.
    Events,
    /// The chains this seal advanced, with their new heads (JSON).
    Heads,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum AuditLinks {
    Table,
    /// The linked event (no foreign key: retention may purge the event, the link stays).
    EventId,
    /// `instance` or the tenant's id.
    Chain,
    Seq,
    PrevHash,
    Hash,
    SealId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditSeals::Table)
                    .col(big_integer(AuditSeals::Id).primary_key())
                    .col(timestamp_with_time_zone(AuditSeals::SealedAt))
                    .col(timestamp_with_time_zone(AuditSeals::Floor))
                    .col(big_integer(AuditSeals::Events))
                    .col(json(AuditSeals::Heads))
                    .col(string_len(AuditSeals::PrevHash, 64))
                    .col(string_len(AuditSeals::Hash, 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditLinks::Table)
                    .col(big_integer(AuditLinks::EventId).primary_key())
                    .col(string_len(AuditLinks::Chain, 40))
                    .col(big_integer(AuditLinks::Seq))
                    .col(string_len(AuditLinks::PrevHash, 64))
                    .col(string_len(AuditLinks::Hash, 64))
                    .col(big_integer(AuditLinks::SealId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_links_chain_seq")
                    .table(AuditLinks::Table)
                    .col(AuditLinks::Chain)
                    .col(AuditLinks::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The verifier reads a seal's links by it.
        manager
            .create_index(
                Index::create()
                    .name("audit_links_seal")
                    .table(AuditLinks::Table)
                    .col(AuditLinks::SealId)
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for table in ["audit_seals", "audit_links"] {
            match manager.get_database_backend() {
                DbBackend::Sqlite => {
                    for op in ["UPDATE", "DELETE"] {
                        db.execute_unprepared(&format!(
                            "CREATE TRIGGER {table}_no_{lower} BEFORE {op} ON {table} \
                             BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END",
                            lower = op.to_lowercase()
                        ))
                        .await?;
                    }
                }
                DbBackend::Postgres => {
                    db.execute_unprepared(&format!(
                        "CREATE FUNCTION latchkey_{table}_append_only() RETURNS trigger \
                         LANGUAGE plpgsql AS $$ BEGIN \
                         RAISE EXCEPTION '{table} is append-only'; END $$; \
                         CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} \
                         FOR EACH ROW EXECUTE FUNCTION latchkey_{table}_append_only()"
                    ))
                    .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AuditLinks::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AuditSeals::Table).to_owned())
            .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "DROP FUNCTION latchkey_audit_links_append_only(); \
                     DROP FUNCTION latchkey_audit_seals_append_only()",
                )
                .await?;
        }
        Ok(())
    }
}
