//! How fast the support console renders with a large tenant: 100k users, 1M credentials, a
//! month of audit events, on SQLite (the embedded default).
//!
//! `cargo bench -p server --bench support_pages` (release build). It starts a real server on a
//! fresh SQLite file, signs an owner in with a soft passkey, seeds the tenant
//! (`latchkey_core::testing::seed`), then requests each page repeatedly over HTTP and prints the
//! median, p90 and max of the full server-side render (request sent → whole body received). Every
//! answer is checked (status and content), so a broken page cannot look fast.
//!
//! The pages and service calls are measured on a second server started after the seed and its
//! `ANALYZE` (see [`common::TestServer::beside`]): a steady-state instance, whose connections plan
//! with statistics.
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

/// 1Password's AAGUID: one of the seeded providers, blocked by the measured policy.
const ONE_PASSWORD: &str = "bada5566-a7aa-401f-bd96-45619a55120d";

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
    // Measured on a second server started now: its connections open with these statistics, as a
    // running instance's do. (The first server's pool opened on the empty database, and SQLite
    // loads statistics when a connection opens: its plans are those of a database with none.)
    let steady = t.beside().await;

    // A policy for the health queue and the dry run: 1Password blocked (a sixth of the
    // passkeys), passkeys unused for a year flagged (every 89th).
    let policy = latchkey_core::tenants::policy::PolicyInput {
        models: latchkey_core::tenants::policy::ModelRule::Block,
        aaguids: vec![ONE_PASSWORD.into()],
        allow_synced: true,
        require_certified: false,
        existing: latchkey_core::tenants::policy::ExistingPasskeys::Flag,
        unused_after_days: Some(365),
    };
    let host = latchkey_core::testing::host_access(&steady.services, tenant).await;
    let version = steady
        .services
        .tenants()
        .get(&host)
        .await
        .map(|d| d.config.version)
        .unwrap_or(1);
    let started = Instant::now();
    let (_, saved_run) = steady
        .services
        .tenants()
        .update_authenticator_policy(&host, &policy, version, Default::default())
        .await
        .expect("policy saved");
    eprintln!(
        "policy saved with its dry run ({} passkeys refused) in {:.0} ms",
        saved_run.refused_passkeys,
        started.elapsed().as_secs_f64() * 1000.0
    );
    let mut dry_runs = Vec::new();
    let device_bound = latchkey_core::tenants::policy::PolicyInput {
        models: latchkey_core::tenants::policy::ModelRule::Any,
        aaguids: Vec::new(),
        allow_synced: false,
        ..policy.clone()
    };
    for (name, input) in [
        ("Dry run: block one model (1/6 of passkeys)", &policy),
        (
            "Dry run: device-bound only (1/2 of passkeys)",
            &device_bound,
        ),
    ] {
        eprintln!("measuring: {name}");
        let mut times = Vec::new();
        for round in 0..(3 + rounds.min(10)) {
            let start = Instant::now();
            let run = steady
                .services
                .tenants()
                .dry_run_policy(&host, input)
                .await
                .expect("dry run");
            assert!(run.refused_passkeys > 0);
            if round >= 3 {
                times.push(start.elapsed());
            }
        }
        times.sort();
        dry_runs.push(Measured {
            page: name.into(),
            times,
            bytes: 0,
        });
    }

    let cookie = owner.cookie.clone();
    let probe = seeded_user_id(users / 2 + 123);
    let health_next = steady
        .call_ok(
            &mut owner,
            "credential_health",
            &[("id", &tenant.to_string()), ("reason", "")],
        )
        .await["next"]
        .as_str()
        .expect("a second page of the health queue")
        .to_owned();
    let next = steady
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
            "Dashboard (30 days of events, every credential grouped, adoption)".into(),
            format!("{base}/dashboard"),
            // The page must hold the adoption figures (issue 24), so their queries are measured too.
            "data-figure=\"sign-in-success\"".into(),
        ),
        (
            "Health, first page (every reason)".into(),
            format!("{base}/health"),
            "health-item".into(),
        ),
        (
            "Health, second page (keyset cursor)".into(),
            format!("{base}/health?after={health_next}"),
            "health-item".into(),
        ),
        (
            "Health, counter went backwards (rare)".into(),
            format!("{base}/health?reason=counter_regressed"),
            "counter_regressed".into(),
        ),
        (
            "Health, unused for a year".into(),
            format!("{base}/health?reason=unused"),
            "data-reason=\"unused\"".into(),
        ),
        (
            "Health, refused by the policy (1/6 of passkeys)".into(),
            format!("{base}/health?reason=breaks_policy"),
            "breaks_policy".into(),
        ),
    ];
    let mut results = Vec::new();
    for (name, path, expect) in pages {
        eprintln!("measuring: {name}");
        // Warm-up: the first request fills caches (SQLite pages, relying party, config).
        for _ in 0..3 {
            let res = steady.get_as(&path, cookie.as_deref()).await;
            assert_eq!(res.status(), 200, "{path}");
            let body = res.text().await.expect("body");
            assert!(body.contains(&expect), "{path} lacks {expect}");
        }
        let mut times = Vec::with_capacity(rounds);
        let mut bytes = 0;
        for _ in 0..rounds {
            let start = Instant::now();
            let res = steady.get_as(&path, cookie.as_deref()).await;
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
    println!("\n| service call | median | p90 | max |");
    println!("|---|---:|---:|---:|");
    for m in &dry_runs {
        let n = m.times.len();
        println!(
            "| {} | {:.1} ms | {:.1} ms | {:.1} ms |",
            m.page,
            ms(m.times[n / 2]),
            ms(m.times[(n * 9 / 10).min(n - 1)]),
            ms(m.times[n - 1]),
        );
    }
    if std::env::var_os("LATCHKEY_BENCH_KEEP_DB").is_some() {
        // For EXPLAIN QUERY PLAN by hand: the temporary database is left behind.
        println!("\ndatabase kept: {}", t.db.url().expose());
        std::mem::forget(t);
    }
}
