//! How the webhook worker's queries behave when an endpoint has a long history: finished
//! deliveries are kept 30 days for the delivery log, so a busy endpoint holds millions of rows.
//!
//! `cargo bench -p server --bench webhook_backlog` (release build). It seeds one endpoint with
//! `LATCHKEY_BENCH_FINISHED` finished deliveries (default 300,000) and `LATCHKEY_BENCH_PENDING`
//! pending ones (default 5,000, for 1,000 users) on a fresh SQLite file (PostgreSQL with
//! `LATCHKEY_BENCH_DB=postgres`), analyzes it, and then measures on a fresh connection:
//! - the worker's rounds (`deliver_due`: claim up to 64, sign, POST to an in-process receiver
//!   answering 204, record), `LATCHKEY_BENCH_ROUNDS` of them (default 10);
//! - the portal's delivery log, first page;
//! - housekeeping's purge of deliveries finished more than 30 days ago (none are that old here:
//!   the cost is finding that out).
//!
//! `LATCHKEY_BENCH_INDEXES=before` puts back the indexes as they were before migration 000020
//! (same binary, same data): the before/after comparison of `BENCHMARKS.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the bench failing

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::Utc;
use latchkey_core::{
    Clock, ManualClock,
    audit::RequestMeta,
    entities::webhook_delivery,
    testing::{TestBackend, TestDb, insert_operator, shop},
    webhooks::NewEndpoint,
};
use sea_orm::{ActiveValue::Set, ConnectionTrait};
use uuid::Uuid;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A receiver that accepts everything: the bench measures Latchkey's side.
async fn receiver(count: Arc<AtomicU64>) -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/hook")
}

/// The indexes as migration 000019 left them.
const BEFORE_000020: &str = "\
    DROP INDEX webhook_deliveries_pending_line; \
    DROP INDEX webhook_deliveries_endpoint_log; \
    DROP INDEX webhook_deliveries_checkpoints; \
    DROP INDEX webhook_deliveries_finished; \
    CREATE INDEX webhook_deliveries_endpoint_seq ON webhook_deliveries (endpoint_id, seq)";

#[tokio::main]
async fn main() {
    let finished = env_u64("LATCHKEY_BENCH_FINISHED", 300_000);
    let pending = env_u64("LATCHKEY_BENCH_PENDING", 5_000);
    let rounds = env_u64("LATCHKEY_BENCH_ROUNDS", 10);
    let before = std::env::var("LATCHKEY_BENCH_INDEXES").as_deref() == Ok("before");
    let backend = match std::env::var("LATCHKEY_BENCH_DB").as_deref() {
        Ok("postgres") => TestBackend::Postgres,
        _ => TestBackend::Sqlite,
    };
    let db = TestDb::create(backend).await.expect("a database");
    let conn = db.connect().await;
    // Near the wall clock: the signature's timestamp is the clock's.
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let services = latchkey_core::testing::services(conn.clone(), clock.clone())
        .with_private_outbound(true)
        .unwrap();
    let owner = insert_operator(&conn, "owner@bench.test", false).await;
    let tenant = shop::create(&services, &owner).await;
    let access = latchkey_core::testing::access(&services, &owner, tenant).await;
    let received = Arc::new(AtomicU64::new(0));
    let endpoint = services
        .webhooks()
        .create(
            &access,
            NewEndpoint {
                url: receiver(received.clone()).await,
                description: "bench receiver".into(),
                events: vec!["user.signed_in".into()],
            },
            RequestMeta::default(),
        )
        .await
        .unwrap()
        .endpoint
        .id;

    // A month of one user-ordered event type, finished, then the pending tail.
    let started = Instant::now();
    let now = clock.now();
    let payload = format!(
        "{{\"id\":\"evt\",\"type\":\"user.signed_in\",\"data\":{{\"user_id\":\"u\",\"pad\":\"{}\"}}}}",
        "x".repeat(300)
    );
    let total = finished + pending;
    let txn = sea_orm::TransactionTrait::begin(&conn).await.unwrap();
    let mut rows = Vec::new();
    for i in 0..total {
        let done = i < finished;
        let at = now - chrono::Duration::seconds(i64::try_from(total - i).unwrap() / 10);
        rows.push(webhook_delivery::ActiveModel {
            id: Set(Uuid::new_v4()),
            tenant_id: Set(tenant),
            endpoint_id: Set(endpoint),
            event_id: Set(Uuid::new_v4()),
            audit_event_id: Set(None),
            event_type: Set("user.signed_in".into()),
            payload: Set(payload.clone()),
            ordering_key: Set(Some(format!("user-{}", i % 1_000))),
            seq: Set(i64::try_from(i).unwrap() * 16),
            status: Set(if done { "delivered" } else { "pending" }.into()),
            attempts: Set(i32::from(done)),
            next_attempt_at: Set(at),
            lease_until: Set(None),
            lease_token: Set(None),
            last_status: Set(done.then_some(204)),
            last_error: Set(None),
            created_at: Set(at),
            finished_at: Set(done.then_some(at)),
        });
        if rows.len() == 4_096 {
            latchkey_core::db::insert_all(&txn, std::mem::take(&mut rows))
                .await
                .unwrap();
        }
    }
    latchkey_core::db::insert_all(&txn, rows).await.unwrap();
    txn.commit().await.unwrap();
    if before {
        for statement in BEFORE_000020.split("; ") {
            conn.execute_unprepared(statement).await.unwrap();
        }
    }
    conn.execute_unprepared("ANALYZE").await.unwrap();
    eprintln!(
        "seeded {finished} finished and {pending} pending deliveries in {:.1} s ({} indexes)",
        started.elapsed().as_secs_f64(),
        if before { "pre-000020" } else { "current" }
    );

    // A fresh pool: its connections plan with the statistics just gathered.
    let steady_conn =
        latchkey_core::db::connect(&latchkey_core::db::DbOptions::new(db.url().clone()))
            .await
            .unwrap();
    let steady = latchkey_core::testing::services(steady_conn, clock.clone())
        .with_private_outbound(true)
        .unwrap();

    let mut times = Vec::new();
    let mut delivered = 0;
    for _ in 0..rounds {
        let started = Instant::now();
        let run = steady.webhooks().deliver_due().await.unwrap();
        times.push(started.elapsed());
        assert_eq!(run.failed_attempts, 0, "the receiver accepts everything");
        delivered += run.delivered;
    }
    assert_eq!(received.load(Ordering::Relaxed), delivered);
    assert!(delivered > 0, "the rounds delivered nothing");
    times.sort();
    let spent: Duration = times.iter().sum();
    println!(
        "worker: {rounds} rounds, {delivered} delivered, median round {:.1} ms, max {:.1} ms, \
         {:.0} deliveries/s",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        delivered as f64 / spent.as_secs_f64()
    );

    let steady_access = latchkey_core::testing::access(&steady, &owner, tenant).await;
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let page = steady
            .webhooks()
            .deliveries(&steady_access, endpoint, Default::default())
            .await
            .unwrap();
        times.push(started.elapsed());
        assert!(!page.is_empty());
    }
    times.sort();
    println!(
        "delivery log, first page: median {:.1} ms, max {:.1} ms",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );

    let started = Instant::now();
    let purged = steady.webhooks().purge_finished().await.unwrap();
    assert_eq!(purged, 0, "nothing is 30 days old");
    println!(
        "purge of finished deliveries (none due): {:.1} ms",
        ms(started.elapsed())
    );
}
