//! Audit retention (`latchkey audit purge`): the audit log stays append-only, except for the one
//! documented retention operation. A purge records itself here, deletes the events up to
//! `up_to_id` and marks itself finished, all in one transaction; the triggers allow a DELETE on
//! `audit_events` only for an event covered by an unfinished run. Other transactions never see
//! an unfinished run (it is finished before it commits), so nothing else can delete, and an
//! UPDATE is refused as before.
//!
//! Safe under a running older instance: it adds a table and lets the triggers allow strictly
//! more (the older release never deletes audit events).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditRetentionRuns {
    Table,
    Id,
    /// Events that occurred before this are purged.
    Cutoff,
    /// The highest event id the run may delete.
    UpToId,
    StartedAt,
    FinishedAt,
    Deleted,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditRetentionRuns::Table)
                    .col(uuid(AuditRetentionRuns::Id).primary_key())
                    .col(timestamp_with_time_zone(AuditRetentionRuns::Cutoff))
                    .col(big_integer(AuditRetentionRuns::UpToId))
                    .col(timestamp_with_time_zone(AuditRetentionRuns::StartedAt))
                    .col(timestamp_with_time_zone_null(
                        AuditRetentionRuns::FinishedAt,
                    ))
                    .col(big_integer_null(AuditRetentionRuns::Deleted))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Sqlite => {
                // One call, so one connection: another connection of the pool may not have
                // seen the DROP yet, and SQLite checks a CREATE against its cached schema.
                db.execute_unprepared(
                    "DROP TRIGGER audit_events_no_delete; \
                     CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events \
                     WHEN NOT EXISTS (SELECT 1 FROM audit_retention_runs r \
                     WHERE r.finished_at IS NULL AND OLD.id <= r.up_to_id) \
                     BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
                )
                .await?;
            }
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE OR REPLACE FUNCTION latchkey_audit_append_only() RETURNS trigger \
                     LANGUAGE plpgsql AS $$ BEGIN \
                     IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM audit_retention_runs r \
                     WHERE r.finished_at IS NULL AND OLD.id <= r.up_to_id) THEN RETURN OLD; \
                     END IF; \
                     RAISE EXCEPTION 'audit_events is append-only'; END $$",
                )
                .await?;
            }
            _ => {}
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Sqlite => {
                db.execute_unprepared(
                    "DROP TRIGGER audit_events_no_delete; \
                     CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events \
                     BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
                )
                .await?;
            }
            DbBackend::Postgres => {
                db.execute_unprepared(
                    "CREATE OR REPLACE FUNCTION latchkey_audit_append_only() RETURNS trigger \
                     LANGUAGE plpgsql AS $$ BEGIN \
                     RAISE EXCEPTION 'audit_events is append-only'; END $$",
                )
                .await?;
            }
            _ => {}
        }
        manager
            .drop_table(Table::drop().table(AuditRetentionRuns::Table).to_owned())
            .await
    }
}
