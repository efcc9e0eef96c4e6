//! Data leaving and entering an instance, through the real binary.
//!
//! `latchkey backup --to FILE`: a consistent copy of the SQLite database taken while a server
//! writes to it, which a server then runs from. Clients register passkeys without pause; a
//! backup runs in the middle of that. A server started on the backup finds every passkey whose
//! registration was acknowledged before the backup began (listed, and signing in), and none
//! whose registration started after it ended (a snapshot, not a later copy).
//!
//! `latchkey export` / `latchkey import`: a tenant moved from SQLite to PostgreSQL (SQLite again
//! without PostgreSQL) keeps its id, its users and passkeys exactly (as the Server API lists
//! them, revoked ones included), and its passkeys sign in there; importing it twice, or a file
//! with another tenant's row in it, is refused and writes nothing.
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
    /// A tenant with passkeys on and an API key, made with the CLI on `url`, and a server on it.
    fn start(url: &str, name: &str) -> (Arc<Self>, ServerProcess) {
        let tenant = cli_json(
            url,
            &[
                "tenant",
                "create",
                "--name",
                name,
                "--rp-id",
                RP_ID,
                "--origin",
                ORIGIN,
                "--enable-passkeys",
            ],
        );
        let tenant_id = tenant["tenant_id"].as_str().unwrap().to_owned();
        let key = cli_json(
            url,
            &["api-key", "create", "--tenant", &tenant_id, "--name", "k"],
        );
        let server = ServerProcess::start(url);
        let load = Arc::new(Self {
            http: reqwest::Client::new(),
            base: server.base_url.clone(),
            tenant_id,
            api_key: key["api_key"].as_str().unwrap().to_owned(),
            stop: AtomicBool::new(false),
            done: Mutex::new(Vec::new()),
        });
        (load, server)
    }

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
    let (load, mut server) = Load::start(&live, "Shop");
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

#[tokio::test]
async fn a_tenant_moves_to_another_instance_and_its_passkeys_sign_in_there() {
    let dir = tempfile::tempdir().unwrap();
    let source = format!("sqlite://{}/source.db?mode=rwc", dir.path().display());
    let (load, mut server) = Load::start(&source, "Movers");
    let tenant_id = load.tenant_id.clone();
    let mut users = Vec::new();
    for n in 0..4 {
        users.push(load.register(format!("mover-{n}")).await);
    }
    // One revoked, with its reason: it moves as revoked.
    let res = load
        .http
        .delete(format!(
            "{}/api/v1/users/mover-3/authenticators/{}",
            load.base, users[3].authenticator
        ))
        .bearer_auth(&load.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let listed = |base: String, api_key: String, user: String| {
        let http = load.http.clone();
        async move {
            http.get(format!("{base}/api/v1/users/{user}/authenticators"))
                .bearer_auth(api_key)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let mut before = Vec::new();
    for u in &users {
        before.push(listed(load.base.clone(), load.api_key.clone(), u.user_id.clone()).await);
    }
    server.sigterm();

    let export = dir.path().join("movers.jsonl");
    let out = latchkey(&source)
        .args(["export", "--tenant", &tenant_id, "--to"])
        .arg(&export)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&export).unwrap();
    assert_eq!(text.lines().count(), 1 + 4 + 4, "header, users, passkeys");
    assert!(
        !text.contains(load.api_key.as_str()),
        "no API key: {}",
        text.lines()
            .find(|l| l.contains(load.api_key.as_str()))
            .unwrap_or_default()
    );

    // Into PostgreSQL when there is one: the move from the embedded database to scale-out.
    let pg =
        latchkey_core::testing::TestDb::create(latchkey_core::testing::TestBackend::Postgres).await;
    let target = match &pg {
        Some(db) => db.url().expose().to_owned(),
        None => format!("sqlite://{}/target.db?mode=rwc", dir.path().display()),
    };
    // Another tenant's user smuggled into a file: refused, and nothing of it stays (the real
    // import below reuses its first user's id).
    let other = uuid::Uuid::new_v4().to_string();
    let smuggled: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, line)| match i {
            0 => line.replace(&tenant_id, &other),
            2 => line.to_owned(),
            _ => line.replace(&tenant_id, &other),
        })
        .collect();
    let bad = dir.path().join("smuggled.jsonl");
    std::fs::write(&bad, smuggled.join("\n")).unwrap();
    let refused = latchkey(&target)
        .args(["import", "--from", bad.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("line 3: a user of another tenant"),
        "{stderr}"
    );

    let imported = cli_json(&target, &["import", "--from", export.to_str().unwrap()]);
    assert_eq!(imported["tenant_id"], json!(tenant_id));
    assert_eq!(
        (imported["users"].as_u64(), imported["passkeys"].as_u64()),
        (Some(4), Some(4))
    );

    // Imported twice: refused, nothing written.
    let again = latchkey(&target)
        .args(["import", "--from", export.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let key = cli_json(
        &target,
        &["api-key", "create", "--tenant", &tenant_id, "--name", "t"],
    );
    let api_key = key["api_key"].as_str().unwrap().to_owned();
    let server = ServerProcess::start(&target);
    for (u, expected) in users.iter().zip(&before) {
        let after = listed(server.base_url.clone(), api_key.clone(), u.user_id.clone()).await;
        assert_eq!(&after, expected, "{}", u.user_id);
    }
    // The smuggled file's tenant does not exist.
    let res = load
        .http
        .post(format!(
            "{}/api/client/v1/tenants/{other}/authentication/options",
            server.base_url
        ))
        .header("origin", ORIGIN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // A moved passkey signs in on the new instance; the revoked one does not.
    let sign_in = |n: usize| {
        let mut passkeys = users[n].passkeys.clone();
        let user = users[n].user_id.clone();
        let base = format!(
            "{}/api/client/v1/tenants/{tenant_id}/authentication",
            server.base_url
        );
        let http = load.http.clone();
        async move {
            let options: Value = http
                .post(format!("{base}/options"))
                .header("origin", ORIGIN)
                .json(&json!({ "user_id": user }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let Ok(credential) = passkeys.authenticate(ORIGIN, &options["publicKey"]) else {
                return 0;
            };
            http.post(format!("{base}/verify"))
                .header("origin", ORIGIN)
                .json(&json!({ "ceremony_id": options["ceremony_id"], "credential": credential }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(sign_in(0).await, 200);
    assert_ne!(sign_in(3).await, 200, "revoked before the move");
}
