//! The schema, the connection settings and the audit log's append-only guarantee, on both
//! databases.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::sync::Arc;

use chrono::{TimeDelta, TimeZone, Utc};
use latchkey_core::{
    ErrorCode, ManualClock,
    audit::{Actor, AuditEntry, RequestMeta},
    both_backends,
    db::statistics,
    db::{self, BackendKind, DatabaseUrl, DbOptions},
    testing::{TestBackend, TestDb},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TryGetable};
use uuid::Uuid;

both_backends!(
    migrations_are_idempotent,
    audit_log_is_append_only,
    instance_status_counts_rows,
    planner_statistics_follow_the_data,
    pending_migrations_make_the_instance_not_ready
);

/// A fresh, migrated database and services on it (the system clock); `None` without PostgreSQL.
async fn migrated(
    backend: TestBackend,
) -> Option<(TestDb, DatabaseConnection, latchkey_core::Services)> {
    let test_db = TestDb::create(backend).await?;
    let db = test_db.connect().await;
    let services = latchkey_core::testing::services(
        db.clone(),
        std::sync::Arc::new(latchkey_core::SystemClock),
    );
    Some((test_db, db, services))
}

/// A database whose newest migration is not recorded (restored or replaced under a running
/// instance) is not ready; a migration from a newer release is reported, and readiness is kept
/// (an older instance keeps serving during a rolling upgrade).
async fn pending_migrations_make_the_instance_not_ready(backend: TestBackend) {
    let Some((_test_db, db, services)) = migrated(backend).await else {
        return;
    };
    db.execute_unprepared(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m20991231_000099_newer', 0)",
    )
    .await
    .expect("recorded");
    let state = db::schema::state(&db).await.expect("state");
    assert_eq!(state.unknown, vec!["m20991231_000099_newer".to_owned()]);
    assert!(state.pending.is_empty());
    services.instance().readiness().await.expect("still ready");
    assert!(matches!(
        db::migrate(&db).await,
        Err(db::DbOpenError::NewerSchema { unknown }) if unknown == state.unknown
    ));

    let newest = db::schema::known_migrations()
        .last()
        .cloned()
        .expect("some");
    db.execute_unprepared(&format!(
        "DELETE FROM seaql_migrations WHERE version = '{newest}'"
    ))
    .await
    .expect("forgotten");
    assert_eq!(
        db::schema::state(&db).await.expect("state").pending,
        vec![newest]
    );
    assert_eq!(
        services.instance().readiness().await,
        Err(latchkey_core::instance::NotReady::MigrationsPending)
    );
}

async fn migrations_are_idempotent(backend: TestBackend) {
    let Some(test_db) = TestDb::create(backend).await else {
        return;
    };
    let db = test_db.connect().await;
    // A second run (what every `latchkey serve` does on start-up) must be a no-op.
    db::migrate(&db).await.expect("second migration run");
    let services = latchkey_core::testing::services(
        db.clone(),
        std::sync::Arc::new(latchkey_core::SystemClock),
    );
    let expected = match backend {
        TestBackend::Sqlite => BackendKind::Sqlite,
        TestBackend::Postgres => BackendKind::Postgres,
    };
    assert_eq!(services.backend(), expected);
    services.instance().readiness().await.expect("ready");
    assert!(db::schema::state(&db).await.expect("state").is_current());
}

async fn audit_log_is_append_only(backend: TestBackend) {
    let Some(test_db) = TestDb::create(backend).await else {
        return;
    };
    let db = test_db.connect().await;
    let start = Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap();
    let clock = ManualClock::new(start);
    let services = latchkey_core::testing::services(db.clone(), Arc::new(clock.clone()));
    let tenant = Uuid::now_v7();

    services
        .audit()
        .record(
            AuditEntry::new(Actor::Cli, "tenant.created")
                .tenant(tenant)
                .target("tenant", tenant.to_string())
                .details(serde_json::json!({"name": "Acme"}))
                .meta(RequestMeta::new(
                    Some("203.0.113.9".into()),
                    Some("x".repeat(2000)),
                )),
        )
        .await
        .expect("record");
    clock.advance(TimeDelta::seconds(5));
    services
        .audit()
        .record(AuditEntry::new(Actor::System, "signin.failed").failed(ErrorCode::OriginMismatch))
        .await
        .expect("record");

    let all = services.audit().recent(None, 10).await.expect("recent");
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].action, "signin.failed", "newest first");
    assert_eq!(all[0].outcome, "failure");
    assert_eq!(all[0].error_code.as_deref(), Some("origin_mismatch"));
    assert_eq!(all[0].occurred_at, start + TimeDelta::seconds(5));
    assert_eq!(all[1].actor_kind, "cli");
    assert_eq!(all[1].occurred_at, start);
    assert_eq!(
        all[1].user_agent.as_ref().map(String::len),
        Some(512),
        "clipped"
    );
    assert_eq!(all[1].details, Some(serde_json::json!({"name": "Acme"})));

    let only_tenant = services
        .audit()
        .recent(Some(tenant), 10)
        .await
        .expect("recent");
    assert_eq!(only_tenant.len(), 1);
    assert_eq!(only_tenant[0].tenant_id, Some(tenant));

    // The database itself refuses to rewrite history.
    let backend = db.get_database_backend();
    for sql in [
        "UPDATE audit_events SET action = 'forged'",
        "DELETE FROM audit_events",
    ] {
        let result = db.execute_raw(Statement::from_string(backend, sql)).await;
        assert!(result.is_err(), "{sql} must be refused");
    }
    assert_eq!(
        services.audit().recent(None, 10).await.expect("recent"),
        all
    );
}

async fn instance_status_counts_rows(backend: TestBackend) {
    let Some((_test_db, db, services)) = migrated(backend).await else {
        return;
    };
    let status = services.instance().status().await.expect("status");
    assert_eq!((status.tenants, status.operators), (0, 0));
    assert!(status.needs_setup());

    let now = Utc::now();
    let sql = match db.get_database_backend() {
        DbBackend::Postgres => {
            "INSERT INTO tenants (id, name, created_at, updated_at) VALUES ($1, $2, $3, $4)"
        }
        _ => "INSERT INTO tenants (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
    };
    let insert = Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        [Uuid::now_v7().into(), "Acme".into(), now.into(), now.into()],
    );
    db.execute_raw(insert).await.expect("insert tenant");
    let status = services.instance().status().await.expect("status");
    assert_eq!(status.tenants, 1);
    assert!(status.needs_setup(), "still no operator");
}

async fn pragma<T: TryGetable>(db: &DatabaseConnection, name: &str) -> T {
    db.query_one_raw(Statement::from_string(
        DbBackend::Sqlite,
        format!("PRAGMA {name}"),
    ))
    .await
    .expect("pragma")
    .expect("row")
    .try_get_by_index::<T>(0)
    .expect("value")
}

#[tokio::test]
async fn sqlite_file_gets_its_directory_wal_foreign_keys_and_busy_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/deeper/latchkey.db");
    let url: DatabaseUrl = format!("sqlite://{}?mode=rwc", path.display())
        .parse()
        .expect("url");
    let db = db::connect(&DbOptions::new(url)).await.expect("connect");
    assert!(path.exists(), "database file created with its directories");

    assert_eq!(pragma::<String>(&db, "journal_mode").await, "wal");
    assert_eq!(pragma::<i64>(&db, "foreign_keys").await, 1);
    assert_eq!(pragma::<i64>(&db, "busy_timeout").await, 10_000);
    assert_eq!(
        pragma::<i64>(&db, "synchronous").await,
        2,
        "FULL by default"
    );
}

#[tokio::test]
async fn unreachable_postgres_is_a_connect_error_not_a_hang() {
    // Port 1 on loopback refuses at once.
    let url: DatabaseUrl = "postgres://postgres@127.0.0.1:1/nothing"
        .parse()
        .expect("url");
    let err = db::connect(&DbOptions::new(url))
        .await
        .expect_err("must fail");
    assert!(matches!(err, db::DbOpenError::Connect { .. }), "{err}");
}

/// Inserts `n` tenants with plain SQL (no service rules involved: only the row count matters).
async fn insert_tenants(db: &DatabaseConnection, n: usize) {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "INSERT INTO tenants (id, name, created_at, updated_at) VALUES ($1, $2, $3, $4)"
        }
        _ => "INSERT INTO tenants (id, name, created_at, updated_at) VALUES (?, ?, ?, ?)",
    };
    let now = Utc::now();
    for i in 0..n {
        let values = [
            Uuid::now_v7().into(),
            format!("Tenant {i}").into(),
            now.into(),
            now.into(),
        ];
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await
            .expect("insert tenant");
    }
}

/// A young database gets statistics without waiting for autovacuum (PostgreSQL) and keeps them
/// as data arrives; SQLite's `optimize` runs at connection open and on refresh.
async fn planner_statistics_follow_the_data(backend: TestBackend) {
    let Some(test_db) = TestDb::create(backend).await else {
        return;
    };
    let db = test_db.connect().await;
    match backend {
        TestBackend::Postgres => {
            // Freshly migrated: nothing was ever analyzed, so every table is refreshed.
            let first = statistics::refresh_stale(&db).await.expect("refresh");
            for table in ["tenants", "end_users", "authenticators", "ceremonies"] {
                assert!(first.tables.iter().any(|t| t == table), "{first:?}");
            }
            let analyzed: i64 = db
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT count(*) FROM pg_stat_user_tables \
                     WHERE schemaname = current_schema() AND last_analyze IS NULL",
                ))
                .await
                .expect("query")
                .expect("row")
                .try_get_by_index(0)
                .expect("count");
            assert_eq!(analyzed, 0, "every table analyzed");

            // A burst of writes makes `tenants` stale; the change counters reach the statistics
            // views within a few seconds (backends flush them at most once a second).
            insert_tenants(&db, 200).await;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            loop {
                let refreshed = statistics::refresh_stale(&db).await.expect("refresh");
                if refreshed.tables.iter().any(|t| t == "tenants") {
                    assert!(
                        !refreshed.tables.iter().any(|t| t == "authenticators"),
                        "unchanged tables are left alone: {refreshed:?}"
                    );
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "tenants never refreshed"
                );
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            let estimate: f32 = db
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT reltuples FROM pg_class WHERE relname = 'tenants' \
                     AND relnamespace = current_schema()::regnamespace",
                ))
                .await
                .expect("query")
                .expect("row")
                .try_get_by_index(0)
                .expect("reltuples");
            assert_eq!(estimate, 200.0, "the planner knows the table's size");
        }
        TestBackend::Sqlite => {
            insert_tenants(&db, 200).await;
            let refreshed = statistics::refresh_stale(&db).await.expect("refresh");
            assert_eq!(refreshed, statistics::Refreshed::default());
            // A connection opening runs `PRAGMA optimize=0x10002`, which analyzes the tables
            // that never were.
            drop(db);
            let reopened = db::connect(&DbOptions::new(test_db.url().clone()))
                .await
                .expect("connect");
            assert_eq!(
                pragma::<i64>(&reopened, "analysis_limit").await,
                i64::from(statistics::SQLITE_ANALYSIS_LIMIT)
            );
            let stats: i64 = reopened
                .query_one_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'tenants'",
                ))
                .await
                .expect("sqlite_stat1 exists")
                .expect("row")
                .try_get_by_index(0)
                .expect("count");
            assert!(stats > 0, "tenants analyzed");
        }
    }
}
