//! Throw-away databases for tests: a fresh SQLite file, or a uniquely named PostgreSQL database
//! on the local server, each built by running the real migrations.
//!
//! PostgreSQL: `LATCHKEY_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! names a server where the test may create databases. When it does not answer, tests skip
//! loudly; with `CI` set they fail instead, so CI can never silently lose its PostgreSQL half.

pub mod device_key;
pub mod fuzz;
pub mod metadata;
pub mod seed;
pub mod shop;
pub mod soft_passkey;
pub mod verification;
pub mod webhook_receiver;

use std::{sync::Arc, time::Duration};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

use crate::{
    Clock, Services,
    db::{self, DatabaseUrl, DbOptions},
};

/// Inserts an operator directly (for tests about what operators may do, not how they enrolled).
pub async fn insert_operator(
    conn: &DatabaseConnection,
    email: &str,
    instance_admin: bool,
) -> crate::access::OperatorIdentity {
    use sea_orm::{ActiveValue::Set, EntityTrait};
    let id = uuid::Uuid::new_v4();
    let now = chrono::Utc::now();
    let row = crate::entities::operator::ActiveModel {
        id: Set(id),
        email: Set(email.into()),
        display_name: Set(email.into()),
        is_instance_admin: Set(instance_admin),
        created_at: Set(now),
        updated_at: Set(now),
        disabled_at: Set(None),
    };
    if let Err(e) = crate::entities::operator::Entity::insert(row)
        .exec(conn)
        .await
    {
        panic!("cannot insert operator {email}: {e}");
    }
    crate::access::OperatorIdentity {
        id,
        email: email.into(),
        display_name: email.into(),
        is_instance_admin: instance_admin,
    }
}

/// The single number `sql` selects (`SELECT COUNT(*) …`), for asserting what a test wrote.
pub async fn count(conn: &DatabaseConnection, sql: &str) -> i64 {
    let statement = sea_orm::Statement::from_string(conn.get_database_backend(), sql.to_owned());
    match conn.query_one_raw(statement).await {
        Ok(Some(row)) => match row.try_get_by_index::<i64>(0) {
            Ok(n) => n,
            Err(e) => panic!("{sql}: not a number: {e}"),
        },
        Ok(None) => panic!("{sql}: no row"),
        Err(e) => panic!("{sql}: {e}"),
    }
}

/// Every row of every table, as text (`(table, row)`): for asserting that no secret is stored.
/// SQLite's own tables (`sqlite_stat1`, … written by `PRAGMA optimize` whenever a connection
/// opens) are not Latchkey's state and are left out, and so are the audit chain's links and
/// seals and the webhook dispatcher's cursor: a running server's sealer writes them every few
/// seconds, derived from `audit_events` (which is compared), whatever the request under test
/// did.
pub async fn all_rows_as_text(conn: &DatabaseConnection) -> Vec<(String, String)> {
    use sea_orm::{DbBackend, Statement};
    let backend = conn.get_database_backend();
    let list = match backend {
        DbBackend::Postgres => {
            "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()"
        }
        _ => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        }
    };
    let tables = match conn
        .query_all_raw(Statement::from_string(backend, list))
        .await
    {
        Ok(rows) => rows,
        Err(e) => panic!("listing tables: {e}"),
    };
    let mut out = Vec::new();
    for table in tables {
        let Ok(name) = table.try_get::<String>("", "name") else {
            continue;
        };
        if matches!(
            name.as_str(),
            "audit_links" | "audit_seals" | "webhook_cursors"
        ) {
            continue;
        }
        let sql = match backend {
            DbBackend::Postgres => format!("SELECT CAST(t AS TEXT) AS row FROM \"{name}\" t"),
            _ => format!("SELECT * FROM \"{name}\""),
        };
        match conn
            .query_all_raw(Statement::from_string(backend, sql))
            .await
        {
            Ok(rows) => out.extend(rows.iter().map(|row| (name.clone(), format!("{row:?}")))),
            Err(e) => panic!("reading {name}: {e}"),
        }
    }
    out
}

/// The portal origin tests run under (the spec's default public URL).
pub const TEST_PUBLIC_URL: &str = crate::DEFAULT_PUBLIC_URL;

/// Services on `conn` for the portal at [`TEST_PUBLIC_URL`], reading time from `clock`.
pub fn services(conn: DatabaseConnection, clock: Arc<dyn Clock>) -> Services {
    let url = match url::Url::parse(TEST_PUBLIC_URL) {
        Ok(url) => url,
        Err(e) => panic!("{e}"),
    };
    match Services::with_clock(conn, &url, clock) {
        Ok(services) => services,
        Err(e) => panic!("cannot build services: {e}"),
    }
}

/// `operator` as a session that verified a passkey a moment ago hands them to the actions that
/// need step-up (the window itself is tested with [`Services::step_up`]).
pub fn stepped_up(
    operator: &crate::access::OperatorIdentity,
) -> crate::access::step_up::StepUp<'_> {
    let now = chrono::Utc::now();
    crate::access::step_up::StepUp::judge(
        operator,
        Some(now),
        now,
        crate::access::step_up::DEFAULT_WINDOW,
    )
}

/// `operator`'s access to `tenant` as a session that verified a passkey a moment ago gets it.
/// Panics for a non-member: tests of that refusal ask [`Services::tenant`] themselves.
pub async fn access(
    services: &Services,
    operator: &crate::access::OperatorIdentity,
    tenant: uuid::Uuid,
) -> crate::access::TenantAccess {
    match services.tenant(operator, tenant).await {
        Ok(access) => access.stepped_up(&stepped_up(operator)),
        Err(err) => panic!("{} has no access to {tenant}: {err}", operator.email),
    }
}

/// Runs `action` with `operator`'s access to `tenant` (stepped up, as [`access`]), or answers
/// why there is none: for the tests of what non-members get.
pub async fn as_caller<T>(
    services: &Services,
    operator: &crate::access::OperatorIdentity,
    tenant: uuid::Uuid,
    action: impl AsyncFnOnce(&crate::access::TenantAccess) -> crate::Result<T>,
) -> crate::Result<T> {
    let access = services
        .tenant(operator, tenant)
        .await?
        .stepped_up(&stepped_up(operator));
    action(&access).await
}

/// What `operator` may do in `tenant`, decided as every tenant-scoped service method decides
/// it: their role, or `not_found` (not a member) / `forbidden` (the role does not allow it).
pub async fn authorize(
    services: &Services,
    operator: &crate::access::OperatorIdentity,
    tenant: uuid::Uuid,
    permission: crate::access::Permission,
) -> crate::Result<crate::access::Role> {
    let access = services.tenant(operator, tenant).await?;
    access.require(permission)?;
    access
        .role()
        .ok_or_else(|| crate::Error::Internal("an operator's access without a role".into()))
}

/// The command line's access to `tenant`.
pub async fn host_access(services: &Services, tenant: uuid::Uuid) -> crate::access::TenantAccess {
    match services.tenant_for_host(tenant).await {
        Ok(access) => access,
        Err(err) => panic!("no tenant {tenant}: {err}"),
    }
}

const DEFAULT_PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test and is removed afterwards.
pub struct TestDb {
    url: DatabaseUrl,
    /// Keeps the SQLite file's directory alive.
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database to drop on `Drop`, with the admin URL that can drop it.
    pg: Option<(String, String)>,
}

fn pg_admin_url() -> String {
    std::env::var("LATCHKEY_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG_ADMIN_URL.into())
}

fn replace_db_name(admin_url: &str, name: &str) -> Result<String, String> {
    let mut url = url::Url::parse(admin_url).map_err(|e| format!("bad admin URL: {e}"))?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

impl TestDb {
    /// Creates a database of the given kind, or `None` (with a loud message) when PostgreSQL is
    /// not reachable outside CI.
    pub async fn create(backend: TestBackend) -> Option<Self> {
        match backend {
            TestBackend::Sqlite => Some(Self::sqlite()),
            TestBackend::Postgres => Self::postgres().await,
        }
    }

    pub fn sqlite() -> Self {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temporary directory: {e}"),
        };
        let path = dir.path().join("latchkey-test.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self {
            url: DatabaseUrl::from_str_unchecked(url),
            _dir: Some(dir),
            pg: None,
        }
    }

    pub async fn postgres() -> Option<Self> {
        let admin_url = pg_admin_url();
        let admin = match tokio::time::timeout(
            Duration::from_secs(5),
            Database::connect(&admin_url),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            outcome => {
                let reason = match outcome {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                if std::env::var_os("CI").is_some() {
                    panic!(
                        "PostgreSQL is required when CI is set, but {admin_url} failed: {reason}"
                    );
                }
                eprintln!(
                    "\n*** SKIPPED: PostgreSQL test — no server at {admin_url} ({reason}). \
                     Set LATCHKEY_TEST_POSTGRES_URL or start PostgreSQL; CI=1 makes this fatal. ***\n"
                );
                return None;
            }
        };
        let name = format!("latchkey_test_{}", uuid::Uuid::new_v4().simple());
        if let Err(e) = admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
        {
            panic!("cannot create test database {name}: {e}");
        }
        let _ = admin.close().await;
        let url = match replace_db_name(&admin_url, &name) {
            Ok(url) => url,
            Err(e) => panic!("{e}"),
        };
        Some(Self {
            url: DatabaseUrl::from_str_unchecked(url),
            _dir: None,
            pg: Some((admin_url, name)),
        })
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Connects and applies the migrations.
    pub async fn connect(&self) -> DatabaseConnection {
        let db = match db::connect(&DbOptions::new(self.url.clone())).await {
            Ok(db) => db,
            Err(e) => panic!("cannot connect to the test database: {e}"),
        };
        if let Err(e) = db::migrate(&db).await {
            panic!("migrations failed: {e}");
        }
        db
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.pg.take() else {
            return;
        };
        // Drop runs outside any async context we could borrow; a short-lived runtime on its own
        // thread does the cleanup without blocking the test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(admin) = Database::connect(&admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// Runs `async fn $name(backend: TestBackend)` as two tests, `$name::sqlite` and
/// `$name::postgres`, so every database scenario is exercised on both backends.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::testing::TestBackend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::testing::TestBackend::Postgres).await
            }
        }
    )+};
}
