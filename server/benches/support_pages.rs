//! How fast the support console renders with a large tenant: 100k users, 1M credentials, a
//! month of audit events, on SQLite (the embedded default).
//!
//! `cargo bench -p server --bench support_pages` (release build). It starts a real server on a
//! fresh SQLite file, signs an owner in with a soft passkey, seeds the tenant
//! (`latchkey_core::testing::seed`), then requests each page repeatedly over HTTP and prints the
//! median, p90 and max of the full server-side render (request sent → whole body received). Every
//! answer is checked (status and content), so a broken page cannot look fast.
//!
//! `LATCHKEY_SEED_USERS` / `LATCHKEY_SEED_CREDENTIALS_PER_USER` / `LATCHKEY_BENCH_ROUNDS` shrink
//! or grow the run.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the bench failing

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use common::TestServer;
use latchkey_core::{
    tenants::NewTenant,
    testing::{
        TestBackend,
        seed::{SeedPlan, large_tenant, seeded_user_id},
    },
};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Measured {
    page: String,
    times: Vec<Duration>,
    bytes: usize,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let plan = SeedPlan {
        users: env_u64("LATCHKEY_SEED_USERS", SeedPlan::default().users),
        credentials_per_user: env_u64(
            "LATCHKEY_SEED_CREDENTIALS_PER_USER",
            SeedPlan::default().credentials_per_user,
        ),
        sign_ins_per_day: SeedPlan::default().sign_ins_per_day,
    };
    let rounds = env_u64("LATCHKEY_BENCH_ROUNDS", 50) as usize;
    let t = TestServer::start(TestBackend::Sqlite)
        .await
        .expect("SQLite is always available");
    let mut owner = t.set_up_first_operator("owner@bench.test").await;
    let tenant = t
        .services
        .tenants()
        .create_for_automation(NewTenant {
            name: "Large".into(),
            rp_id: Some("large.example.com".into()),
            origins: vec!["https://large.example.com".into()],
            enable_passkeys: true,
            owner_email: Some("owner@bench.test".into()),
        })
        .await
        .expect("tenant");
    let started = Instant::now();
    let (users, credentials) = large_tenant(&t.conn, tenant, plan, t.services.clock().now())
        .await
        .expect("seeded");
    eprintln!(
        "seeded {users} users and {credentials} credentials in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Fresh statistics, as a long-running database has.
    use sea_orm::ConnectionTrait;
    t.conn.execute_unprepared("ANALYZE").await.expect("analyze");

    let cookie = owner.cookie.clone();
    let probe = seeded_user_id(users / 2 + 123);
    let next = t
        .call_ok(
            &mut owner,
            "search_users",
            &[("id", &tenant.to_string()), ("query", "user-")],
        )
        .await["next"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let base = format!("/tenants/{tenant}");
    let prefix = &probe[..probe.len() - 2];
    let pages: Vec<(String, String, String)> = vec![
        (
            "Users, first page (no search)".into(),
            format!("{base}/users"),
            seeded_user_id(0),
        ),
        (
            format!("Users, search `{prefix}` (100 matches)"),
            format!("{base}/users?q={prefix}"),
            probe.clone(),
        ),
        (
            "Users, search `USER-` (every user matches; count capped)".into(),
            format!("{base}/users?q=USER-"),
            "more than 1,000".into(),
        ),
        (
            "Users, search `grace.hopper` (username prefix)".into(),
            format!("{base}/users?q=grace.hopper"),
            "grace.hopper".into(),
        ),
        (
            "Users, second page (keyset cursor)".into(),
            format!("{base}/users?q=user-&after={next}"),
            seeded_user_id(50),
        ),
        (
            format!(
                "User page `{probe}` ({} passkeys)",
                plan.credentials_per_user
            ),
            format!("{base}/users/{}", URL_SAFE_NO_PAD.encode(&probe)),
            "Google Password Manager".into(),
        ),
        (
            "Dashboard (30 days of events, every credential grouped)".into(),
            format!("{base}/dashboard"),
            "active passkeys".into(),
        ),
    ];
    let mut results = Vec::new();
    for (name, path, expect) in pages {
        eprintln!("measuring: {name}");
        // Warm-up: the first request fills caches (SQLite pages, relying party, config).
        for _ in 0..3 {
            let res = t.get_as(&path, cookie.as_deref()).await;
            assert_eq!(res.status(), 200, "{path}");
            let body = res.text().await.expect("body");
            assert!(body.contains(&expect), "{path} lacks {expect}");
        }
        let mut times = Vec::with_capacity(rounds);
        let mut bytes = 0;
        for _ in 0..rounds {
            let start = Instant::now();
            let res = t.get_as(&path, cookie.as_deref()).await;
            let status = res.status();
            let body = res.text().await.expect("body");
            times.push(start.elapsed());
            assert_eq!(status, 200, "{path}");
            assert!(body.contains(&expect), "{path} lacks {expect}");
            bytes = body.len();
        }
        times.sort();
        results.push(Measured {
            page: name,
            times,
            bytes,
        });
    }

    println!(
        "\n{users} users, {credentials} credentials, SQLite, release build, {rounds} requests per page\n"
    );
    println!("| page | median | p90 | max | HTML |");
    println!("|---|---:|---:|---:|---:|");
    for m in &results {
        let n = m.times.len();
        println!(
            "| {} | {:.1} ms | {:.1} ms | {:.1} ms | {} KB |",
            m.page,
            ms(m.times[n / 2]),
            ms(m.times[(n * 9 / 10).min(n - 1)]),
            ms(m.times[n - 1]),
            m.bytes / 1024
        );
    }
    if std::env::var_os("LATCHKEY_BENCH_KEEP_DB").is_some() {
        // For EXPLAIN QUERY PLAN by hand: the temporary database is left behind.
        println!("\ndatabase kept: {}", t.db.url().expose());
        std::mem::forget(t);
    }
}
