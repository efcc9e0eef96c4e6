//! Audit retention: events older than a cutoff are written to an export file and then deleted,
//! in one documented operation that is itself audited (`latchkey audit purge`).
//!
//! The log stays append-only for everything else: the database's triggers refuse a DELETE on
//! `audit_events` unless an unfinished retention run covers the event, and a run is recorded,
//! used and finished inside the one transaction that deletes (migration 000012), so no other
//! transaction ever sees it open. The export is complete and flushed to disk before that
//! transaction starts; a purge that fails deletes nothing and removes its export.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{AuditEntry, AuditRecord, export::json_line, record_in};
use crate::{
    Clock, Error, Result,
    access::Actor,
    entities::{audit_event, audit_retention_run},
};

/// Events are read for the export this many at a time.
const BATCH: u64 = 1_000;

/// What a purge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    pub cutoff: DateTime<Utc>,
    pub deleted: u64,
    pub export: PathBuf,
    /// SHA-256 of the export file, as recorded in the purge's audit event.
    pub export_sha256: String,
}

/// Exports every event that occurred more than `older_than` ago to `export_to` (JSON Lines, a
/// new file), then deletes them; audits the purge with the export's name and digest.
pub async fn purge(
    db: &sea_orm::DatabaseConnection,
    clock: &dyn Clock,
    older_than: Duration,
    export_to: &Path,
) -> Result<Purged> {
    if older_than < Duration::days(1) {
        return Err(Error::invalid(
            "older_than_days",
            "Keep at least one day of audit events.",
        ));
    }
    let cutoff = clock.now() - older_than;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(export_to)
        .map_err(|e| {
            Error::invalid(
                "export_to",
                format!(
                    "{}: {e} (the export must be a new file)",
                    export_to.display()
                ),
            )
        })?;
    let outcome = async {
        // The export reads outside the write transaction: audit events never change and only a
        // purge deletes them, so the set (at most `up_to_id`, older than the cutoff) is fixed
        // once `up_to_id` is read, and SQLite's writers are held up only for the delete.
        let old = || audit_event::Entity::find().filter(audit_event::Column::OccurredAt.lt(cutoff));
        let up_to_id: Option<i64> = old()
            .select_only()
            .column_as(audit_event::Column::Id.max(), "max")
            .into_tuple::<Option<i64>>()
            .one(db)
            .await?
            .flatten();
        let mut digest = Sha256::new();
        let mut deleted = 0u64;
        if let Some(up_to_id) = up_to_id {
            let mut after = 0i64;
            loop {
                let batch = old()
                    .filter(audit_event::Column::Id.gt(after))
                    .filter(audit_event::Column::Id.lte(up_to_id))
                    .order_by_asc(audit_event::Column::Id)
                    .limit(BATCH)
                    .all(db)
                    .await?;
                let Some(last) = batch.last() else { break };
                after = last.id;
                for event in batch {
                    let mut line = json_line(&AuditRecord::from(event)).to_string();
                    line.push('\n');
                    digest.update(line.as_bytes());
                    file.write_all(line.as_bytes()).map_err(internal)?;
                    deleted += 1;
                }
            }
            file.sync_all().map_err(internal)?;
        }
        let txn = crate::db::begin_write(db).await?;
        if let Some(up_to_id) = up_to_id {
            let run = Uuid::new_v4();
            audit_retention_run::Entity::insert(audit_retention_run::ActiveModel {
                id: Set(run),
                cutoff: Set(cutoff),
                up_to_id: Set(up_to_id),
                started_at: Set(clock.now()),
                finished_at: Set(None),
                deleted: Set(None),
            })
            .exec_without_returning(&txn)
            .await?;
            let removed = audit_event::Entity::delete_many()
                .filter(audit_event::Column::OccurredAt.lt(cutoff))
                .filter(audit_event::Column::Id.lte(up_to_id))
                .exec(&txn)
                .await?;
            if removed.rows_affected != deleted {
                // Another purge ran meanwhile: this one deletes nothing (its export is removed).
                return Err(Error::refused(
                    crate::ErrorCode::InvalidRequest,
                    format!(
                        "another purge ran meanwhile ({deleted} events exported, {} left to \
                         delete); nothing was deleted: run it again",
                        removed.rows_affected
                    ),
                ));
            }
            audit_retention_run::Entity::update_many()
                .col_expr(
                    audit_retention_run::Column::FinishedAt,
                    Expr::value(clock.now()),
                )
                .col_expr(
                    audit_retention_run::Column::Deleted,
                    Expr::value(i64::try_from(deleted).unwrap_or(i64::MAX)),
                )
                .filter(audit_retention_run::Column::Id.eq(run))
                .exec(&txn)
                .await?;
        }
        let export_sha256 = crate::secrets::hex(&digest.finalize());
        record_in(
            &txn,
            clock,
            AuditEntry::new(Actor::Cli, "audit.retention_purged").details(serde_json::json!({
                "cutoff": cutoff.to_rfc3339(),
                "up_to_id": up_to_id,
                "deleted": deleted,
                "export": export_to.file_name().map(|n| n.to_string_lossy().into_owned()),
                "export_sha256": export_sha256,
            })),
        )
        .await?;
        txn.commit().await?;
        Ok(Purged {
            cutoff,
            deleted,
            export: export_to.to_path_buf(),
            export_sha256,
        })
    }
    .await;
    if outcome.is_err() {
        // Nothing was deleted: an export of events still in the log is only misleading.
        let _ = std::fs::remove_file(export_to);
    }
    outcome
}

fn internal(err: std::io::Error) -> Error {
    Error::Internal(format!("writing the audit export: {err}"))
}
