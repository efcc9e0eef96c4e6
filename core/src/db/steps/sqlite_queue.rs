//! SQLite's group-commit writer: one thread owns a write connection (rusqlite) and runs the
//! chains waiting in its queue as one transaction.
//!
//! Why a thread of our own: sqlx runs each SQLite connection on a thread of its own and every
//! statement is a round trip to it (two thread wake-ups), so a step of six statements held the
//! database's single write lock for six round trips (~1 ms on a 2-core machine, of which
//! ~0.25 ms was work). Here a step costs one hand-off in and one out, and the lock is held for
//! the statements alone.
//!
//! Why group commit: steps that queue while a transaction runs are committed together by the
//! next one — each in its own savepoint, so a step that fails is rolled back alone — with one
//! commit, so `synchronous=full` pays one fsync per batch instead of one per step. Every step is
//! answered only after the commit that holds it returned: nothing is acknowledged before it is
//! durable, and a commit that fails fails every step in it.
//!
//! Other writers (sqlx's pool: the portal and the rarer API writes; the CLI; another process)
//! share the database through SQLite's own lock (`BEGIN IMMEDIATE` and the busy timeout).

use std::{
    path::PathBuf,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::Duration,
};

use chrono::SecondsFormat;
use rusqlite::{Connection, OpenFlags, params_from_iter, types::Value as SqlValue};
use sea_orm::sea_query::Value;
use tokio::sync::oneshot;

use super::Outcome;
use crate::{Error, Result, db::SqliteDurability};

/// The most steps one transaction takes: bounds the latency of the first step of a long queue.
const MAX_BATCH: usize = 128;
/// How long a step waits for another process's write lock (sqlx's pool uses the same).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// The name of the writer thread (the load generator reports its CPU time).
pub const THREAD_NAME: &str = "latchkey-sqlite-writer";

/// What the thread is asked to do.
enum Job {
    /// A write step: statements in a savepoint of the batch's transaction.
    Write {
        statements: Vec<(String, Vec<Value>)>,
        links: usize,
        reply: oneshot::Sender<Result<Outcome>>,
    },
    /// A read, outside any transaction: it sees what is committed. It replies itself.
    Read(Box<dyn FnOnce(&Connection) + Send>),
}

pub(crate) struct CommitQueue {
    path: PathBuf,
    durability: SqliteDurability,
    /// Started on first use: a service that never writes a step starts no thread.
    sender: OnceLock<std::result::Result<mpsc::Sender<Job>, String>>,
    /// Jobs sent and not yet taken by the thread (the metrics' queue depth).
    queued: Arc<AtomicUsize>,
}

impl CommitQueue {
    pub(crate) fn new(path: PathBuf, durability: SqliteDurability) -> Self {
        Self {
            path,
            durability,
            sender: OnceLock::new(),
            queued: Arc::default(),
        }
    }

    /// Jobs waiting for the thread now.
    pub(crate) fn depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Hands `job` to the thread (starting it on first use).
    fn send(&self, job: Job) -> Result<()> {
        let sender = self
            .sender
            .get_or_init(|| start(self.path.clone(), self.durability, self.queued.clone()))
            .as_ref()
            .map_err(|e| Error::Internal(format!("SQLite writer: {e}")))?;
        self.queued.fetch_add(1, Ordering::Relaxed);
        sender.send(job).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            Error::Internal("SQLite writer: the thread has stopped".into())
        })
    }

    /// Runs one step's statements (the first `links` of them must each change one row) and
    /// answers once the transaction holding it is committed.
    pub(crate) async fn run(
        &self,
        links: usize,
        statements: Vec<(String, Vec<Value>)>,
    ) -> Result<Outcome> {
        let (reply, answer) = oneshot::channel();
        self.send(Job::Write {
            statements,
            links,
            reply,
        })?;
        answer
            .await
            .map_err(|_| Error::Internal("SQLite writer: no answer".into()))?
    }

    /// Runs `query` and answers its rows, each column converted by `convert` (its name and
    /// value); on the thread, between write batches. Reading on the connection that writes
    /// keeps its page cache: SQLite empties a connection's cache whenever another connection
    /// has committed, which under load made every read on sqlx's pool refill it (profiled for
    /// issue 19), besides two thread wake-ups per statement.
    pub(crate) async fn read<R: Send + 'static>(
        &self,
        sql: String,
        values: Vec<Value>,
        convert: impl Fn(&str, rusqlite::types::ValueRef<'_>) -> Result<R> + Send + 'static,
    ) -> Result<Vec<Vec<(String, R)>>> {
        let (reply, answer) = oneshot::channel();
        let job = Job::Read(Box::new(move |conn: &Connection| {
            let _ = reply.send(read_rows(conn, &sql, &values, &convert));
        }));
        self.send(job)?;
        answer
            .await
            .map_err(|_| Error::Internal("SQLite writer: no answer".into()))?
    }
}

/// Opens the connection and starts the thread; the thread ends when every sender is gone.
fn start(
    path: PathBuf,
    durability: SqliteDurability,
    queued: Arc<AtomicUsize>,
) -> std::result::Result<mpsc::Sender<Job>, String> {
    let conn = open(&path, durability).map_err(|e| format!("{}: {e}", path.display()))?;
    let (sender, jobs) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || serve(conn, jobs, &queued))
        .map_err(|e| format!("starting the writer thread: {e}"))?;
    Ok(sender)
}

fn open(path: &std::path::Path, durability: SqliteDurability) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The pool's settings (`crate::db::connect`): WAL is a property of the file, the others of
    // each connection.
    let synchronous = match durability {
        SqliteDurability::Full => "FULL",
        SqliteDurability::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;"
    ))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

struct WriteJob {
    statements: Vec<(String, Vec<Value>)>,
    links: usize,
    reply: oneshot::Sender<Result<Outcome>>,
}

fn serve(conn: Connection, jobs: mpsc::Receiver<Job>, queued: &AtomicUsize) {
    while let Ok(first) = jobs.recv() {
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next.take() {
            queued.fetch_sub(1, Ordering::Relaxed);
            match job {
                // Reads run at once, before the writes that queued with them: they were sent
                // while those were unanswered, so either order is a valid one.
                Job::Read(read) => read(&conn),
                Job::Write {
                    statements,
                    links,
                    reply,
                } => batch.push(WriteJob {
                    statements,
                    links,
                    reply,
                }),
            }
            if batch.len() < MAX_BATCH {
                next = jobs.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            commit_batch(&conn, batch);
        }
    }
}

fn read_rows<R>(
    conn: &Connection,
    sql: &str,
    values: &[Value],
    convert: &impl Fn(&str, rusqlite::types::ValueRef<'_>) -> Result<R>,
) -> Result<Vec<Vec<(String, R)>>> {
    let internal = |e: rusqlite::Error| Error::Internal(format!("SQLite reader: {e}"));
    let mut statement = conn.prepare_cached(sql).map_err(internal)?;
    let names: Vec<String> = statement
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let values = values
        .iter()
        .map(sqlite_value)
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(internal)?;
    let mut rows = statement
        .query(params_from_iter(values))
        .map_err(internal)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(internal)? {
        let mut columns = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let value = row.get_ref(i).map_err(internal)?;
            columns.push((name.clone(), convert(name, value)?));
        }
        out.push(columns);
    }
    Ok(out)
}

/// One transaction for the whole batch; each job in a savepoint; replies after the commit.
fn commit_batch(conn: &Connection, batch: Vec<WriteJob>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let message = format!("SQLite writer: BEGIN: {e}");
        for job in batch {
            let _ = job.reply.send(Err(Error::Internal(message.clone())));
        }
        return;
    }
    let mut results = Vec::with_capacity(batch.len());
    for job in &batch {
        results.push(run_in_savepoint(conn, job));
    }
    let committed = conn.execute_batch("COMMIT");
    if let Err(e) = &committed {
        // A failed COMMIT may leave the transaction open.
        let _ = conn.execute_batch("ROLLBACK");
        tracing::error!(error = %e, steps = batch.len(), "SQLite writer: COMMIT failed");
    }
    for (job, result) in batch.into_iter().zip(results) {
        let answer = match &committed {
            Ok(()) => result,
            Err(e) => Err(Error::Internal(format!("SQLite writer: COMMIT: {e}"))),
        };
        let _ = job.reply.send(answer);
    }
}

fn run_in_savepoint(conn: &Connection, job: &WriteJob) -> Result<Outcome> {
    let internal = |e: rusqlite::Error| Error::Internal(format!("SQLite writer: {e}"));
    conn.execute_batch("SAVEPOINT step").map_err(internal)?;
    let outcome = run_statements(conn, job);
    let end = match outcome {
        Ok(_) => "RELEASE step",
        // Undone alone: the batch's other steps commit.
        Err(_) => "ROLLBACK TO step; RELEASE step",
    };
    conn.execute_batch(end).map_err(internal)?;
    outcome
}

fn run_statements(conn: &Connection, job: &WriteJob) -> Result<Outcome> {
    for (n, (sql, values)) in job.statements.iter().enumerate() {
        let changed = conn
            .prepare_cached(sql)
            .and_then(|mut statement| {
                let values = values
                    .iter()
                    .map(sqlite_value)
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                statement.execute(params_from_iter(values))
            })
            .map_err(|e| Error::Internal(format!("SQLite writer: {e}")))?;
        if n < job.links && changed != 1 {
            return Ok(Outcome::BrokeAt(n));
        }
    }
    Ok(Outcome::Held)
}

/// A sea-query value as sqlx binds it for SQLite (`sea-query-sqlx` → sqlx's `Encode`), so that
/// rows written here read back through sea-orm exactly like rows it wrote: UUIDs as 16-byte
/// blobs, times as RFC 3339 text (`2026-12-03T10:00:00.123456+00:00`, compared as text by the
/// other queries), JSON as text, booleans as integers.
fn sqlite_value(value: &Value) -> rusqlite::Result<SqlValue> {
    fn or_null<T>(value: &Option<T>, f: impl FnOnce(&T) -> SqlValue) -> SqlValue {
        value.as_ref().map_or(SqlValue::Null, f)
    }
    Ok(match value {
        Value::Bool(v) => or_null(v, |b| SqlValue::Integer(i64::from(*b))),
        Value::TinyInt(v) => or_null(v, |i| SqlValue::Integer(i64::from(*i))),
        Value::SmallInt(v) => or_null(v, |i| SqlValue::Integer(i64::from(*i))),
        Value::Int(v) => or_null(v, |i| SqlValue::Integer(i64::from(*i))),
        Value::BigInt(v) => or_null(v, |i| SqlValue::Integer(*i)),
        Value::TinyUnsigned(v) => or_null(v, |i| SqlValue::Integer(i64::from(*i))),
        Value::SmallUnsigned(v) => or_null(v, |i| SqlValue::Integer(i64::from(*i))),
        Value::Unsigned(v) => or_null(v, |i| SqlValue::Integer(i64::from(*i))),
        Value::BigUnsigned(v) => or_null(v, |i| match i64::try_from(*i) {
            Ok(i) => SqlValue::Integer(i),
            // sqlx refuses these too; no column of ours holds one.
            Err(_) => SqlValue::Null,
        }),
        Value::Float(v) => or_null(v, |f| SqlValue::Real(f64::from(*f))),
        Value::Double(v) => or_null(v, |f| SqlValue::Real(*f)),
        Value::String(v) => or_null(v, |s| SqlValue::Text(s.clone())),
        Value::Char(v) => or_null(v, |c| SqlValue::Text(c.to_string())),
        Value::Bytes(v) => or_null(v, |b| SqlValue::Blob(b.clone())),
        Value::Uuid(v) => or_null(v, |u| SqlValue::Blob(u.as_bytes().to_vec())),
        Value::Json(v) => or_null(v, |j| SqlValue::Text(j.to_string())),
        Value::ChronoDateTimeUtc(v) => or_null(v, |t| {
            SqlValue::Text(t.to_rfc3339_opts(SecondsFormat::AutoSi, false))
        }),
        Value::ChronoDateTimeWithTimeZone(v) => or_null(v, |t| {
            SqlValue::Text(t.to_rfc3339_opts(SecondsFormat::AutoSi, false))
        }),
        Value::ChronoDateTime(v) => {
            or_null(v, |t| SqlValue::Text(t.format("%F %T%.f").to_string()))
        }
        Value::ChronoDate(v) => or_null(v, |d| SqlValue::Text(d.format("%F").to_string())),
        Value::ChronoTime(v) => or_null(v, |t| SqlValue::Text(t.format("%T%.f").to_string())),
        other => {
            // Not a type any entity of ours uses: refused rather than written differently from
            // sqlx.
            return Err(rusqlite::Error::ToSqlConversionFailure(
                format!("unsupported value type: {other:?}").into(),
            ));
        }
    })
}
