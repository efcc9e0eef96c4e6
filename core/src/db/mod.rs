//! Opening the database: SQLite (embedded default) or PostgreSQL, chosen by the URL scheme.

pub mod backup;
pub mod schema;
pub mod statistics;
pub(crate) mod steps;

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

/// A database URL. It may carry a password, so `Debug`/`Display` show it redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

impl BackendKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbOpenError {
    #[error("unsupported database URL {0}: expected sqlite:… or postgres://…")]
    UnsupportedScheme(DatabaseUrl),
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: DatabaseUrl,
        source: sea_orm::DbErr,
    },
    #[error("cannot apply migrations: {0}")]
    Migrate(sea_orm::DbErr),
    /// Started on a schema migrated by a newer release (see [`schema`]).
    #[error(
        "the database was migrated by a newer release of Latchkey ({}), which this release does \
         not know: run that release or a newer one",
        .unknown.join(", ")
    )]
    NewerSchema { unknown: Vec<String> },
}

impl DatabaseUrl {
    /// For callers that build a URL they know is well-formed (tests, helpers).
    pub fn from_str_unchecked(url: String) -> Self {
        Self(url)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn backend(&self) -> Option<BackendKind> {
        if self.0.starts_with("sqlite:") {
            Some(BackendKind::Sqlite)
        } else if self.0.starts_with("postgres://") || self.0.starts_with("postgresql://") {
            Some(BackendKind::Postgres)
        } else {
            None
        }
    }

    /// The file behind a SQLite URL, if it names one (not `:memory:`).
    pub(crate) fn sqlite_file(&self) -> Option<PathBuf> {
        let rest = self.0.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or_default();
        (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
    }

    fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.password().is_some() => {
                // Only fails for URLs that cannot have a password, which this one has.
                let _ = url.set_password(Some("***"));
                url.to_string()
            }
            _ => self.0.clone(),
        }
    }
}

impl FromStr for DatabaseUrl {
    type Err = DbOpenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = Self(s.trim().to_owned());
        match url.backend() {
            Some(_) => Ok(url),
            None => Err(DbOpenError::UnsupportedScheme(url)),
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

/// How durable a SQLite commit is. `Full` fsyncs every commit (nothing committed is lost even on
/// power failure); `Normal` in WAL mode survives process crashes but may lose the last commits
/// on power loss, for many times the write throughput.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteDurability {
    #[default]
    Full,
    Normal,
}

impl FromStr for SqliteDurability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(Self::Full),
            "normal" => Ok(Self::Normal),
            other => Err(format!("expected `full` or `normal`, got `{other}`")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DbOptions {
    pub url: DatabaseUrl,
    pub max_connections: u32,
    pub sqlite_durability: SqliteDurability,
}

impl DbOptions {
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

    pub fn new(url: DatabaseUrl) -> Self {
        Self {
            url,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            sqlite_durability: SqliteDurability::default(),
        }
    }
}

/// Connects (creating the SQLite file and its directory when missing) and checks the connection.
pub async fn connect(options: &DbOptions) -> Result<DatabaseConnection, DbOpenError> {
    if let Some(file) = options.url.sqlite_file()
        && let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|source| DbOpenError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }

    let mut connect = ConnectOptions::new(options.url.expose());
    connect
        .max_connections(options.max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        // A health check on every acquire is a round trip per statement (each autocommit
        // statement acquires); a connection idle for a while is still checked, which is when a
        // server restart or a dropped connection would show.
        .test_before_acquire_if_idle_for(Duration::from_secs(30))
        // Statements are logged by our own tracing spans; sqlx's per-statement logs would drown
        // the request log and may carry bound secrets' hashes.
        .sqlx_logging(false);
    let synchronous = match options.sqlite_durability {
        SqliteDurability::Full => SqliteSynchronous::Full,
        SqliteDurability::Normal => SqliteSynchronous::Normal,
    };
    connect.map_sqlx_sqlite_opts(move |opts| {
        opts.create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Planner statistics as SQLite recommends for long-lived connections: a bounded
            // sample per index, and `optimize` (all tables) when each connection opens; see
            // `crate::db::statistics`, which also runs it periodically.
            .pragma(
                "analysis_limit",
                crate::db::statistics::SQLITE_ANALYSIS_LIMIT.to_string(),
            )
            .pragma("optimize", "0x10002")
    });

    let db = Database::connect(connect)
        .await
        .map_err(|source| DbOpenError::Connect {
            url: options.url.clone(),
            source,
        })?;
    db.ping().await.map_err(|source| DbOpenError::Connect {
        url: options.url.clone(),
        source,
    })?;
    Ok(db)
}

/// The connection the Server and Client APIs write through.
///
/// SQLite admits one writer at a time. When every connection of a pool may write, concurrent
/// writers find the lock taken and SQLite's busy handler puts their threads to sleep (1, 2, 5,
/// 10 … ms, polling), so under load the lock sits idle while writers sleep and each request
/// waits milliseconds for nothing. A pool of exactly one connection for writes makes writers
/// queue in the process instead: the pool hands the connection to the next waiter as soon as
/// it is returned (no thread blocked, no sleep), and that connection's page cache stays valid
/// across its own commits. Reads keep the main pool (WAL: readers never wait for the writer).
/// Other writers (the portal, the CLI, a second instance) still work as before, through the
/// busy timeout and `BEGIN IMMEDIATE`.
///
/// PostgreSQL has no such limit: the same pool serves both. So does an in-memory SQLite
/// database, which a second pool would not share.
pub fn writer_for(conn: &DatabaseConnection) -> DatabaseConnection {
    use sea_orm::{SqlxSqliteConnector, sqlx::sqlite::SqlitePoolOptions};
    if conn.get_database_backend() != DbBackend::Sqlite {
        return conn.clone();
    }
    let pool = conn.get_sqlite_connection_pool();
    let options = pool.connect_options();
    let file = options.get_filename().to_string_lossy();
    if file == ":memory:" || file.starts_with("file:sqlx-in-memory") {
        return conn.clone();
    }
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(10))
        // A file the process holds open does not go away: no health check round trip.
        .test_before_acquire(false)
        .connect_lazy_with((*options).clone());
    SqlxSqliteConnector::from_sqlx_sqlite_pool(writer)
}

/// A connection pool's occupancy now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGauge {
    /// Connections open, idle or lent out.
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

impl PoolGauge {
    pub fn of(conn: &DatabaseConnection) -> Option<Self> {
        fn gauge<DB: sea_orm::sqlx::Database>(pool: &sea_orm::sqlx::Pool<DB>) -> PoolGauge {
            PoolGauge {
                open: pool.size(),
                idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
                max: pool.options().get_max_connections(),
            }
        }
        match conn.get_database_backend() {
            DbBackend::Postgres => Some(gauge(conn.get_postgres_connection_pool())),
            DbBackend::Sqlite => Some(gauge(conn.get_sqlite_connection_pool())),
            _ => None,
        }
    }

    /// Connections lent out to requests now.
    pub fn in_use(&self) -> u32 {
        self.open.saturating_sub(self.idle)
    }
}

/// Applies every pending migration, after refusing a schema newer than this release (nothing is
/// written then).
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbOpenError> {
    let state = schema::state(db).await.map_err(DbOpenError::Migrate)?;
    if !state.unknown.is_empty() {
        return Err(DbOpenError::NewerSchema {
            unknown: state.unknown,
        });
    }
    Migrator::up(db, None).await.map_err(DbOpenError::Migrate)
}

/// Starts a transaction that will write. On SQLite it takes the write lock at `BEGIN`
/// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later fails at once
/// with `SQLITE_BUSY_SNAPSHOT` when another connection committed in between, whereas an
/// immediate one waits for the lock (up to the busy timeout). PostgreSQL ignores the option.
pub(crate) async fn begin_write(
    db: &DatabaseConnection,
) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Holds the lock called `name` until `txn` ends. PostgreSQL: an advisory transaction lock, as
/// READ COMMITTED lets concurrent transactions read the same rows before either writes. SQLite
/// needs none: a transaction from [`begin_write`] already holds the database's one write lock.
pub(crate) async fn lock_named(
    txn: &sea_orm::DatabaseTransaction,
    name: &str,
) -> Result<(), sea_orm::DbErr> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [name.into()],
        ))
        .await?;
    }
    Ok(())
}

/// Rows per statement of [`insert_all`]: a power of two, so a remainder splits into the
/// halves below it.
const INSERT_ROWS: usize = 256;

/// The statement sizes [`insert_all`] uses for `n` rows: [`INSERT_ROWS`] as often as it fits,
/// then the binary digits of the rest (100 → 64, 32, 4).
fn insert_sizes(mut n: usize) -> Vec<usize> {
    let mut sizes = vec![INSERT_ROWS; n / INSERT_ROWS];
    n %= INSERT_ROWS;
    let mut size = INSERT_ROWS / 2;
    while n > 0 {
        if n >= size {
            sizes.push(size);
            n -= size;
        }
        size /= 2;
    }
    sizes
}

/// Inserts `rows` in multi-row statements of a few fixed sizes.
///
/// Why not one statement per chunk of whatever is left: each connection caches its prepared
/// statements by SQL text (sqlx keeps 100), and a multi-row `INSERT` of *n* rows is a different
/// text for every *n*. The sealer and the webhook dispatcher insert a different number of rows
/// every run, so a long-running server compiled one statement per run and filled the cache with
/// near-duplicates (on SQLite a hundred inserts of 300–400 rows hold about 27 MiB; PostgreSQL
/// keeps each as a prepared statement in the session). With sizes 256, 128, …, 1 only nine
/// texts exist per table.
pub async fn insert_all<A>(conn: &impl ConnectionTrait, rows: Vec<A>) -> Result<(), sea_orm::DbErr>
where
    A: sea_orm::ActiveModelTrait + Send,
{
    let mut rows = rows.into_iter();
    for size in insert_sizes(rows.len()) {
        let chunk: Vec<A> = rows.by_ref().take(size).collect();
        <A::Entity as sea_orm::EntityTrait>::insert_many(chunk)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

pub fn backend_of(db: &impl ConnectionTrait) -> BackendKind {
    match db.get_database_backend() {
        DbBackend::Postgres => BackendKind::Postgres,
        _ => BackendKind::Sqlite,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_sizes_are_few_and_cover_every_row() {
        for n in [0, 1, 2, 3, 100, 255, 256, 257, 2_000, 4_321] {
            let sizes = insert_sizes(n);
            assert_eq!(sizes.iter().sum::<usize>(), n, "{n}");
            assert!(
                sizes
                    .iter()
                    .all(|s| s.is_power_of_two() && *s <= INSERT_ROWS),
                "{n}: {sizes:?}"
            );
        }
        assert_eq!(insert_sizes(100), [64, 32, 4]);
        assert_eq!(insert_sizes(600), [256, 256, 64, 16, 8]);
    }

    #[test]
    fn database_urls_are_classified_and_redacted() {
        let cases: &[(&str, Option<BackendKind>)] = &[
            (
                "sqlite://./data/latchkey.db?mode=rwc",
                Some(BackendKind::Sqlite),
            ),
            ("sqlite::memory:", Some(BackendKind::Sqlite)),
            ("postgres://u:pw@localhost/db", Some(BackendKind::Postgres)),
            ("postgresql://localhost/db", Some(BackendKind::Postgres)),
            ("mysql://localhost/db", None),
            ("not a url", None),
        ];
        for (raw, expected) in cases {
            assert_eq!(DatabaseUrl(raw.to_string()).backend(), *expected, "{raw}");
        }
        let url = DatabaseUrl("postgres://u:secret@localhost/db".into());
        assert!(!url.to_string().contains("secret"));
        assert!(!format!("{url:?}").contains("secret"));
        assert!(matches!(
            "mysql://x".parse::<DatabaseUrl>(),
            Err(DbOpenError::UnsupportedScheme(_))
        ));
    }

    #[test]
    fn sqlite_file_is_found_in_the_url() {
        let file = |s: &str| DatabaseUrl(s.into()).sqlite_file();
        assert_eq!(
            file("sqlite://./data/latchkey.db?mode=rwc"),
            Some(PathBuf::from("./data/latchkey.db"))
        );
        assert_eq!(
            file("sqlite:///var/lib/lk.db"),
            Some(PathBuf::from("/var/lib/lk.db"))
        );
        assert_eq!(file("sqlite:lk.db"), Some(PathBuf::from("lk.db")));
        assert_eq!(file("sqlite::memory:"), None);
    }
}
