//! The query planner's statistics, kept fresh by Latchkey itself.
//!
//! A freshly migrated PostgreSQL database has no statistics: until autovacuum's first `ANALYZE`
//! of a table (checked once a minute per database by default, and only after 50 rows + 10 %
//! changed) the planner guesses, and it guessed the sign-in path's passkey lookup as a nested
//! loop over the whole tenant: about a third of the throughput of an analyzed database (measured
//! 105 against 326 complete sign-ins/s). Latchkey therefore does not wait for autovacuum: at start
//! and then every [`REFRESH_INTERVAL`] it analyzes each of its tables that was never analyzed or
//! that changed by autovacuum's own threshold since its last analysis. A burst of writes (the
//! first day's enrolments, an import) is covered within seconds; a quiet database costs one query
//! on `pg_stat_user_tables` per interval.
//!
//! SQLite keeps its statistics with `PRAGMA optimize`, as its documentation recommends for
//! long-lived connections: every connection runs `PRAGMA optimize=0x10002` when it opens (see
//! [`crate::db::connect`]), and the refresh runs `PRAGMA optimize` once an hour, which analyzes
//! only the tables SQLite judges stale, with a bounded sample (`analysis_limit`).

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, FromQueryResult, Statement};

/// How often PostgreSQL's per-table change counters are checked.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// How often SQLite's `PRAGMA optimize` runs (SQLite's documentation suggests hourly or daily).
const SQLITE_OPTIMIZE_EVERY: u32 = 360; // × REFRESH_INTERVAL = 1 hour

/// Rows sampled per index when SQLite analyzes (`PRAGMA analysis_limit`): bounds the cost of an
/// `optimize` on a large table to milliseconds, which SQLite's documentation recommends.
pub const SQLITE_ANALYSIS_LIMIT: u32 = 400;

/// The tables whose statistics were stale and were analyzed (PostgreSQL); SQLite does not say.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refreshed {
    pub tables: Vec<String>,
}

#[derive(Debug, FromQueryResult)]
struct StaleTable {
    name: String,
}

/// Tables of the current schema that were never analyzed but hold (or held) rows, or whose rows
/// changed by more than autovacuum's default analyze threshold (50 rows + 10 % of the table)
/// since their last analysis. `n_mod_since_analyze` counts inserts, updates and deletes.
const STALE_POSTGRES_TABLES: &str = r"
    SELECT s.relname AS name
    FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
    WHERE s.schemaname = current_schema()
      AND ((s.last_analyze IS NULL AND s.last_autoanalyze IS NULL
              AND (s.n_mod_since_analyze > 0 OR c.reltuples < 0))
           OR s.n_mod_since_analyze > 50 + 0.1 * GREATEST(c.reltuples, 0))
    ORDER BY s.relname";

/// Brings the statistics up to date where they are stale (see the module documentation).
pub async fn refresh_stale(db: &DatabaseConnection) -> Result<Refreshed, DbErr> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let stale = StaleTable::find_by_statement(Statement::from_string(
                DbBackend::Postgres,
                STALE_POSTGRES_TABLES,
            ))
            .all(db)
            .await?;
            let mut refreshed = Refreshed::default();
            for table in stale {
                // The name comes from the catalogue, quoted as an identifier all the same.
                let quoted = format!("\"{}\"", table.name.replace('"', "\"\""));
                db.execute_unprepared(&format!("ANALYZE {quoted}")).await?;
                refreshed.tables.push(table.name);
            }
            Ok(refreshed)
        }
        _ => {
            db.execute_unprepared("PRAGMA optimize").await?;
            Ok(Refreshed::default())
        }
    }
}

/// Refreshes stale statistics now and then every [`REFRESH_INTERVAL`] (PostgreSQL) or hourly
/// (SQLite), for as long as the returned task runs. Failures are logged, never fatal.
pub fn spawn_refresh(db: DatabaseConnection) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let postgres = db.get_database_backend() == DbBackend::Postgres;
        let mut tick = tokio::time::interval(REFRESH_INTERVAL);
        let mut ticks: u32 = 0;
        loop {
            tick.tick().await;
            // SQLite analyzed every table when each connection opened; it needs this rarely.
            let due = postgres || (ticks > 0 && ticks.is_multiple_of(SQLITE_OPTIMIZE_EVERY));
            ticks = ticks.wrapping_add(1);
            if !due {
                continue;
            }
            match refresh_stale(&db).await {
                Ok(refreshed) if !refreshed.tables.is_empty() => {
                    tracing::debug!(tables = ?refreshed.tables, "planner statistics refreshed");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "refreshing planner statistics failed"),
            }
        }
    })
}
