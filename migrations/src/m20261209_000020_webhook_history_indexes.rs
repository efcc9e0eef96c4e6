//! Indexes that keep the webhook worker's queries independent of how many deliveries an endpoint
//! has finished (they are kept 30 days for the delivery log).
//!
//! Before, the worker's "is an earlier delivery for this user still pending?" check went through
//! `(endpoint_id, seq)` and read every earlier delivery of the endpoint, finished or not: on SQLite,
//! with 300k finished and 5k pending deliveries on one endpoint, one worker round of 64 took 26–29 s
//! against 90–95 ms with these indexes (with or without statistics; `BENCHMARKS.md`, issue 23), so
//! a busy endpoint's deliveries fell further behind the longer the server ran. The partial index
//! holds only pending deliveries.
//!
//! - `webhook_deliveries_pending_line (endpoint_id, ordering_key, seq) WHERE status = 'pending'`:
//!   that check (its SQL names `status = 'pending'` literally, so that SQLite can use the index).
//! - `webhook_deliveries_endpoint_log (endpoint_id, created_at, seq)`: the portal's delivery log,
//!   newest first a page at a time, which sorted the endpoint's whole history per page. It
//!   replaces `webhook_deliveries_endpoint_seq`, which no query needs any more (the endpoint's
//!   cascade delete uses the new index's first column).
//! - `webhook_deliveries_checkpoints (endpoint_id, created_at) WHERE event_type =
//!   'audit.checkpoint'`: the dispatcher's "was a checkpoint sent this hour?" check, run every two
//!   seconds per subscribed endpoint, which read the endpoint's whole history.
//! - `webhook_deliveries_finished (finished_at)`: housekeeping's purge of deliveries finished more
//!   than 30 days ago, which scanned the table inside a write transaction.
//!
//! Safe under a running older instance: only indexes are added, and the one dropped serves no
//! query that the new ones do not serve as well.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// `(name, definition)`: the same SQL on both databases.
const INDEXES: [(&str, &str); 4] = [
    (
        "webhook_deliveries_pending_line",
        "webhook_deliveries (endpoint_id, ordering_key, seq) WHERE status = 'pending'",
    ),
    (
        "webhook_deliveries_endpoint_log",
        "webhook_deliveries (endpoint_id, created_at, seq)",
    ),
    (
        "webhook_deliveries_checkpoints",
        "webhook_deliveries (endpoint_id, created_at) WHERE event_type = 'audit.checkpoint'",
    ),
    (
        "webhook_deliveries_finished",
        "webhook_deliveries (finished_at)",
    ),
];

const REPLACED: &str = "webhook_deliveries_endpoint_seq";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, definition) in INDEXES {
            db.execute_unprepared(&format!("CREATE INDEX {name} ON {definition}"))
                .await?;
        }
        db.execute_unprepared(&format!("DROP INDEX {REPLACED}"))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(&format!(
            "CREATE INDEX {REPLACED} ON webhook_deliveries (endpoint_id, seq)"
        ))
        .await?;
        for (name, _) in INDEXES {
            db.execute_unprepared(&format!("DROP INDEX {name}")).await?;
        }
        Ok(())
    }
}
