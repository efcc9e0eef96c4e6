//! Each user's count of active passkeys, `end_users.active_passkeys`, kept by the database, so
//! that the dashboard's "users with at least one passkey" counts users over a small partial index
//! instead of distinct users over every passkey (at 100k users and a million passkeys the distinct
//! count took as long as the rest of the dashboard together).
//!
//! Triggers keep the count, not the services: every path that adds, revokes or deletes a passkey
//! (registration, revocation, "revoke all", import, user and tenant deletion, the seeders) moves
//! it in the same statement, so no path can forget it and no race between two of them can skew
//! it (each change is an `UPDATE … SET n = n ± 1` on the user's row, which both databases apply
//! one at a time). Only a change between active and revoked fires the update trigger: a sign-in
//! (which writes other columns of the passkey) does not reach it.
//!
//! Safe under a running older instance: the column has a default, and the triggers count that
//! instance's writes too. The backfill runs after the triggers exist, in the migration's
//! transaction.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EndUsers {
    Table,
    ActivePasskeys,
}

const INDEX: &str = "idx_end_users_tenant_with_passkey";

/// `(trigger name, event, condition, change)`: the same three triggers on both databases.
const TRIGGERS: [(&str, &str, &str, &str); 3] = [
    (
        "authenticators_count_insert",
        "AFTER INSERT",
        "NEW.revoked_at IS NULL",
        "UPDATE end_users SET active_passkeys = active_passkeys + 1 WHERE id = NEW.user_id",
    ),
    (
        "authenticators_count_revoke",
        "AFTER UPDATE OF revoked_at",
        "(OLD.revoked_at IS NULL) <> (NEW.revoked_at IS NULL)",
        "UPDATE end_users SET active_passkeys = active_passkeys \
         + CASE WHEN NEW.revoked_at IS NULL THEN 1 ELSE -1 END WHERE id = NEW.user_id",
    ),
    (
        "authenticators_count_delete",
        "AFTER DELETE",
        "OLD.revoked_at IS NULL",
        "UPDATE end_users SET active_passkeys = active_passkeys - 1 WHERE id = OLD.user_id",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(EndUsers::Table)
                    .add_column(
                        ColumnDef::new(EndUsers::ActivePasskeys)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for (name, event, condition, change) in TRIGGERS {
            match manager.get_database_backend() {
                DbBackend::Sqlite => {
                    db.execute_unprepared(&format!(
                        "CREATE TRIGGER {name} {event} ON authenticators FOR EACH ROW \
                         WHEN {condition} BEGIN {change}; END"
                    ))
                    .await?;
                }
                DbBackend::Postgres => {
                    // The function's result is ignored for AFTER row triggers.
                    db.execute_unprepared(&format!(
                        "CREATE FUNCTION latchkey_{name}() RETURNS trigger \
                         LANGUAGE plpgsql AS $$ BEGIN {change}; RETURN NULL; END $$; \
                         CREATE TRIGGER {name} {event} ON authenticators FOR EACH ROW \
                         WHEN ({condition}) EXECUTE FUNCTION latchkey_{name}()"
                    ))
                    .await?;
                }
                _ => {}
            }
        }
        db.execute_unprepared(
            "UPDATE end_users SET active_passkeys = (SELECT COUNT(*) FROM authenticators a \
             WHERE a.user_id = end_users.id AND a.revoked_at IS NULL)",
        )
        .await?;
        // Partial: only users with a passkey are in it, and a sign-in never changes it.
        db.execute_unprepared(&format!(
            "CREATE INDEX {INDEX} ON end_users (tenant_id) WHERE active_passkeys > 0"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(&format!("DROP INDEX {INDEX}"))
            .await?;
        for (name, ..) in TRIGGERS {
            let drop = match manager.get_database_backend() {
                DbBackend::Postgres => format!(
                    "DROP TRIGGER {name} ON authenticators; DROP FUNCTION latchkey_{name}()"
                ),
                _ => format!("DROP TRIGGER {name}"),
            };
            db.execute_unprepared(&drop).await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(EndUsers::Table)
                    .drop_column(EndUsers::ActivePasskeys)
                    .to_owned(),
            )
            .await
    }
}
