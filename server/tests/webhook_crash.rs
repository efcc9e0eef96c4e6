//! Webhooks survive SIGKILL: the real `latchkey` binary serves a tenant with a webhook endpoint
//! on SQLite and on PostgreSQL while a backend issues enrollment tokens to new users (each one
//! `user.created` then `enrollment_token.issued`); mid-load the server is killed with SIGKILL and
//! restarted on the same database, several times, with a receiver that refuses every event's
//! first attempt. In the end the receiver — checking every signature with the `standardwebhooks`
//! package — has accepted both events of every acknowledged issuance (and of no user the
//! backend did not name), `user.created` before `enrollment_token.issued` for each user.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod common;

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use common::process::{ServerProcess, cli_json};
use latchkey_core::{
    both_backends,
    testing::{TestBackend, TestDb, webhook_receiver::Receiver},
};
use serde_json::{Value, json};

both_backends!(webhook_events_survive_sigkill);

const LIVES: usize = 3;
const USERS_PER_LIFE: usize = 12;

async fn webhook_events_survive_sigkill(backend: TestBackend) {
    let Some(db) = TestDb::create(backend).await else {
        return; // no PostgreSQL outside CI: announced loudly by TestDb
    };
    let started = Instant::now();
    let url = db.url().expose().to_owned();
    let tenant = cli_json(
        &url,
        &[
            "tenant",
            "create",
            "--name",
            "Hook Shop",
            "--rp-id",
            "shop.example.com",
            "--origin",
            "https://shop.example.com",
            "--enable-passkeys",
        ],
    )["tenant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = cli_json(
        &url,
        &["api-key", "create", "--tenant", &tenant, "--name", "hooks"],
    )["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let env = [
        ("LATCHKEY_CLIENT_RATE_LIMIT", "0"),
        ("LATCHKEY_SOURCE_RATE_LIMIT", "0"),
        ("LATCHKEY_OUTBOUND_ALLOW_PRIVATE", "true"),
    ];
    let receiver = Receiver::start(1, 0.0);
    let http = reqwest::Client::new();
    let mut server = ServerProcess::start_with(&url, &env);
    let created: Value = http
        .post(format!("{}/api/v1/webhooks", server.base_url))
        .bearer_auth(&key)
        .json(&json!({ "url": receiver.url(), "events": ["user.created", "enrollment_token.issued"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    receiver.use_secret(created["secret"].as_str().expect("a secret"));

    let mut acknowledged = HashSet::new();
    for life in 0..LIVES {
        let issues = (0..USERS_PER_LIFE).map(|n| {
            let (http, base, key) = (http.clone(), server.base_url.clone(), key.clone());
            let user = format!("user-{life}-{n}");
            async move {
                let res = http
                    .post(format!("{base}/api/v1/users/{user}/enrollment-tokens"))
                    .bearer_auth(&key)
                    .json(&json!({}))
                    .send()
                    .await;
                res.is_ok_and(|r| r.status().is_success()).then_some(user)
            }
        });
        acknowledged.extend(
            futures_util::future::join_all(issues)
                .await
                .into_iter()
                .flatten(),
        );
        // Killed at no particular point: before, while or after sealing, fanning out, sending.
        tokio::time::sleep(Duration::from_millis(300 * life as u64 + 200)).await;
        server.sigkill();
        server = ServerProcess::start_with(&url, &env);
    }
    assert_eq!(
        acknowledged.len(),
        LIVES * USERS_PER_LIFE,
        "{}",
        server.log_tail()
    );

    // Each event's first attempt is refused: retried after ~5 s, in order per user.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut missing;
    loop {
        let accepted = receiver.accepted();
        let mut seen: HashMap<String, Vec<String>> = HashMap::new();
        let mut ids = HashSet::new();
        for r in &accepted {
            // At least once: a repeat of an accepted id (sent again after a kill) is dropped,
            // as a receiver does.
            if !ids.insert(r["id"].as_str().unwrap().to_owned()) {
                continue;
            }
            let user = r["event"]["data"]["user_id"].as_str().unwrap().to_owned();
            seen.entry(user)
                .or_default()
                .push(r["event"]["type"].as_str().unwrap().to_owned());
        }
        missing = acknowledged
            .iter()
            .filter(|u| {
                seen.get(*u).map(Vec::as_slice)
                    != Some(
                        &[
                            "user.created".to_owned(),
                            "enrollment_token.issued".to_owned(),
                        ][..],
                    )
            })
            .count();
        let unknown = seen.keys().filter(|u| !acknowledged.contains(*u)).count();
        assert_eq!(
            unknown, 0,
            "events about users never acknowledged: {seen:?}"
        );
        if missing == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        missing,
        0,
        "{:?}\n{}",
        receiver.requests(),
        server.log_tail()
    );
    assert!(receiver.requests().iter().all(|r| r["verified"] == true));
    server.sigterm();
    eprintln!(
        "webhooks under SIGKILL ({backend:?}): {LIVES} kills, {} users, {} requests received; \
         {:.1} s",
        acknowledged.len(),
        receiver.requests().len(),
        started.elapsed().as_secs_f64()
    );
}
