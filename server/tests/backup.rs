//! `latchkey backup --to FILE`: a consistent copy of the SQLite database taken while a server
//! writes to it, which a server then runs from.
//!
//! Clients register passkeys through the real binary without pause; a backup runs in the middle
//! of that. A server started on the backup finds every passkey whose registration was
//! acknowledged before the backup began (listed, and signing in), none whose registration
//! started after it ended (a snapshot, not a later copy), and SQLite's integrity check passes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::process::{ServerProcess, cli_json, latchkey};
use latchkey_core::testing::soft_passkey::SoftPasskeys;
use serde_json::{Value, json};

const RP_ID: &str = "shop.example.com";
const ORIGIN: &str = "https://shop.example.com";
const CLIENTS: usize = 4;

struct Registered {
    user_id: String,
    authenticator: String,
    passkeys: SoftPasskeys,
    started: Instant,
    acknowledged: Instant,
}

struct Load {
    http: reqwest::Client,
    base: String,
    tenant_id: String,
    api_key: String,
    stop: AtomicBool,
    done: Mutex<Vec<Registered>>,
}

impl Load {
    async fn post(&self, path: &str, bearer: &str, body: Value) -> Value {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(bearer)
            .header("origin", ORIGIN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn register(&self, user_id: String) -> Registered {
        let started = Instant::now();
        let issued = self
            .post(
                &format!("/api/v1/users/{user_id}/enrollment-tokens"),
                &self.api_key,
                json!({}),
            )
            .await;
        let token = issued["token"].as_str().unwrap().to_owned();
        let options = self
            .post("/api/client/v1/registration/options", &token, json!({}))
            .await;
        let mut passkeys = SoftPasskeys::new();
        let credential = passkeys.register(ORIGIN, &options["publicKey"]).unwrap();
        let registered = self
            .post(
                "/api/client/v1/registration/verify",
                &token,
                json!({ "ceremony_id": options["ceremony_id"], "credential": credential }),
            )
            .await;
        Registered {
            user_id,
            authenticator: registered["authenticator"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
            passkeys,
            started,
            acknowledged: Instant::now(),
        }
    }
}

async fn client(load: Arc<Load>, n: usize) {
    let mut i = 0;
    while !load.stop.load(Ordering::SeqCst) {
        let done = load.register(format!("user-{n}-{i}")).await;
        load.done.lock().unwrap().push(done);
        i += 1;
    }
}

#[tokio::test]
async fn a_backup_taken_under_load_holds_every_acknowledged_passkey() {
    let dir = tempfile::tempdir().unwrap();
    let live = format!("sqlite://{}/live.db?mode=rwc", dir.path().display());
    let tenant = cli_json(
        &live,
        &[
            "tenant",
            "create",
            "--name",
            "Shop",
            "--rp-id",
            RP_ID,
            "--origin",
            ORIGIN,
            "--enable-passkeys",
        ],
    );
    let tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();
    let key = cli_json(
        &live,
        &["api-key", "create", "--tenant", &tenant_id, "--name", "b"],
    );
    let api_key = key["api_key"].as_str().unwrap().to_owned();

    let mut server = ServerProcess::start(&live);
    let load = Arc::new(Load {
        http: reqwest::Client::new(),
        base: server.base_url.clone(),
        tenant_id,
        api_key,
        stop: AtomicBool::new(false),
        done: Mutex::new(Vec::new()),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(client(load.clone(), n)))
        .collect();
    while load.done.lock().unwrap().len() < 40 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let target = dir.path().join("backup.db");
    let backup_started = Instant::now();
    let out = {
        let mut cmd = latchkey(&live);
        cmd.args(["backup", "--to"]).arg(&target);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    };
    let backup_ended = Instant::now();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["backup"], json!(target));
    assert!(printed["bytes"].as_u64().unwrap() > 0);

    // Some more load after the backup, then stop.
    let after = load.done.lock().unwrap().len() + 2 * CLIENTS;
    while load.done.lock().unwrap().len() < after {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    load.stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }
    server.sigterm();

    let done = std::mem::take(&mut *load.done.lock().unwrap());
    let before: Vec<&Registered> = done
        .iter()
        .filter(|r| r.acknowledged < backup_started)
        .collect();
    let overlapping = done
        .iter()
        .filter(|r| r.started < backup_ended && r.acknowledged > backup_started)
        .count();
    let later: Vec<&Registered> = done.iter().filter(|r| r.started > backup_ended).collect();
    assert!(overlapping > 0, "the backup ran under load");
    assert!(!later.is_empty());

    // A server on the backup.
    let restored = format!("sqlite://{}?mode=rwc", target.display());
    let server = ServerProcess::start(&restored);
    let authenticators = |user: &str| {
        let load = load.clone();
        let url = format!("{}/api/v1/users/{user}/authenticators", server.base_url);
        async move {
            let res = load
                .http
                .get(url)
                .bearer_auth(&load.api_key)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            (status, body)
        }
    };
    for r in &before {
        let (status, body) = authenticators(&r.user_id).await;
        assert_eq!(status, 200, "{}: {body}", r.user_id);
        assert_eq!(
            body["authenticators"][0]["id"],
            json!(r.authenticator),
            "{body}"
        );
    }
    for r in &later {
        let (status, body) = authenticators(&r.user_id).await;
        assert_eq!(
            status, 404,
            "registered after the backup, yet in it: {body}"
        );
    }
    // And the restored passkeys sign in.
    let mut sampled = 0;
    for r in done
        .iter()
        .filter(|r| r.acknowledged < backup_started)
        .take(5)
    {
        let mut passkeys = r.passkeys.clone();
        let base = format!(
            "{}/api/client/v1/tenants/{}/authentication",
            server.base_url, load.tenant_id
        );
        let options: Value = load
            .http
            .post(format!("{base}/options"))
            .header("origin", ORIGIN)
            .json(&json!({ "user_id": r.user_id }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let credential = passkeys
            .authenticate(ORIGIN, &options["publicKey"])
            .unwrap();
        let res = load
            .http
            .post(format!("{base}/verify"))
            .header("origin", ORIGIN)
            .json(&json!({ "ceremony_id": options["ceremony_id"], "credential": credential }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        sampled += 1;
    }
    assert_eq!(sampled, 5);
    eprintln!(
        "backup under load: {} registrations before it, {overlapping} overlapping it, {} after; \
         backup took {:?}",
        before.len(),
        later.len(),
        backup_ended - backup_started
    );
}

#[test]
fn a_backup_never_overwrites_and_points_postgres_at_pg_dump() {
    let dir = tempfile::tempdir().unwrap();
    let live = format!("sqlite://{}/live.db?mode=rwc", dir.path().display());
    let out = latchkey(&live).arg("migrate").output().unwrap();
    assert!(out.status.success());
    let existing = dir.path().join("existing.db");
    std::fs::write(&existing, b"keep me").unwrap();
    let out = latchkey(&live)
        .args(["backup", "--to"])
        .arg(&existing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");

    let missing = format!("sqlite://{}/missing.db?mode=rwc", dir.path().display());
    let out = latchkey(&missing)
        .args(["backup", "--to"])
        .arg(dir.path().join("b.db"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to back up"));
    assert!(
        !dir.path().join("missing.db").exists(),
        "no empty database made"
    );

    let out = latchkey("postgres://postgres@127.0.0.1:1/none")
        .args(["backup", "--to"])
        .arg(dir.path().join("c.db"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
}
