//! Crash safety: what Latchkey acknowledged survives a SIGKILL of the server.
//!
//! The real `latchkey` binary serves a tenant on SQLite (a file, `synchronous=full`) and on
//! PostgreSQL (a fresh database) while several clients run the whole flow over HTTP, as a
//! tenant's backend and its users' browsers do: issue an enrollment token (Server API), register
//! a software passkey (Client API options → verify), sign in with it (options → verify), and
//! validate some of the validation tokens they get. Mid-load the server is killed with SIGKILL
//! — no graceful shutdown, no pool close, requests in flight — and restarted on the same
//! database, several times.
//!
//! A client counts a step as acknowledged only when it read a 2xx answer. After the last kill and
//! restart the test proves:
//! - every acknowledged registration is there: its authenticator is listed by the Server API,
//!   and its passkey still signs in;
//! - every acknowledged validation token is there and single-use across crashes: one the clients
//!   never validated validates exactly once now (the first call says valid, for the right user,
//!   kind and authenticator; the second `already_used`); one they saw validated answers
//!   `already_used`; one whose validation was in flight at a kill validates at most once;
//! - while the server ran, no answer was an error (only lost connections around the kills);
//! - on SQLite, `PRAGMA integrity_check` is `ok` after every kill (the file as the crash left
//!   it, write-ahead log included).
//!
//! It matters because the single-use rules (enrollment and validation tokens) and every "2xx
//! means stored" promise are only as good as the commit the answer waits for: an answer sent
//! before its transaction commits, a token marked used outside the transaction that decides it,
//! or a file left corrupt by a crash shows up here as a lost registration, a token that validates
//! twice or a failed integrity check. A process kill cannot tell `synchronous=full` from
//! `normal` (both survive it; they differ on power loss, which no test here simulates).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod common;

use std::{
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::process::{ServerProcess, cli_json};
use latchkey_core::{
    both_backends,
    testing::{TestBackend, TestDb, soft_passkey::SoftPasskeys},
};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, Statement};
use serde_json::{Value, json};

both_backends!(acknowledged_writes_survive_sigkill);

/// The tenant's RP ID and web origin; the clients send the origin as browsers do.
const RP_ID: &str = "shop.example.com";
const ORIGIN: &str = "https://shop.example.com";
/// Concurrent clients, each running the flow in a loop.
const CLIENTS: usize = 6;
/// Kills per database.
const KILLS: usize = 4;
/// Each server life lasts at least this many acknowledged steps, so every kill lands in real
/// load, and then a random part of [`LIFE_MS`] more.
const ACKS_PER_LIFE: usize = 30;
const LIFE_MS: u64 = 1500;

async fn acknowledged_writes_survive_sigkill(backend: TestBackend) {
    let Some(db) = TestDb::create(backend).await else {
        return; // no PostgreSQL outside CI: announced loudly by TestDb
    };
    let started = Instant::now();
    let url = db.url().expose().to_owned();
    let (tenant_id, api_key) = create_tenant_and_key(&url);
    let load = Arc::new(Load::new(tenant_id, api_key));

    let mut server = ServerProcess::start(&url);
    load.set_base(&server.base_url);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|n| tokio::spawn(client(load.clone(), n)))
        .collect();

    for kill in 1..=KILLS {
        load.wait_for_acks(ACKS_PER_LIFE, &server).await;
        // A random while more, so the kill lands at no particular point of a request.
        tokio::time::sleep(Duration::from_millis(jitter_ms(LIFE_MS))).await;
        if kill == KILLS {
            // The clients stop after this kill: what they saw is the ledger to check.
            load.stop.store(true, Ordering::SeqCst);
        }
        server.sigkill();
        if backend == TestBackend::Sqlite {
            assert_crashed_sqlite_intact(&url).await;
        }
        server = ServerProcess::start(&url);
        load.set_base(&server.base_url);
    }
    let mut passkeys = Vec::new();
    for task in clients {
        passkeys.extend(task.await.expect("client task"));
    }

    let ledger = std::mem::take(&mut *load.ledger.lock().unwrap());
    assert!(
        ledger.unexpected.is_empty(),
        "answers that are not 2xx while the server ran:\n{}\n{}",
        ledger.unexpected.join("\n"),
        server.log_tail()
    );
    let checked = verify(&load, &ledger).await;
    sign_in_again(&load, &mut passkeys).await;
    server.sigterm();
    if backend == TestBackend::Sqlite {
        assert_sqlite_intact(&url).await;
    }
    eprintln!(
        "crash safety ({backend:?}): {KILLS} kills, {} acknowledged registrations, {} validation \
         tokens ({} unvalidated, {} validated, {} validation in flight at a kill), {} requests in \
         flight at the kills, {} refused while down; {:.1} s",
        ledger.registrations.len(),
        ledger.tokens.len(),
        checked.unvalidated,
        checked.validated,
        checked.in_flight,
        ledger.lost_in_flight,
        ledger.refused_connections,
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// The server process

/// A tenant with passkeys on and a Server API key, made with the CLI as an operator would:
/// answers `(tenant_id, api_key)`.
fn create_tenant_and_key(database_url: &str) -> (String, String) {
    let run = |args: &[&str]| cli_json(database_url, args);
    let tenant = run(&[
        "tenant",
        "create",
        "--name",
        "Crash Shop",
        "--rp-id",
        RP_ID,
        "--origin",
        ORIGIN,
        "--enable-passkeys",
    ]);
    let tenant_id = tenant["tenant_id"].as_str().expect("tenant_id").to_owned();
    let key = run(&[
        "api-key", "create", "--tenant", &tenant_id, "--name", "crash",
    ]);
    (
        tenant_id,
        key["api_key"].as_str().expect("api_key").to_owned(),
    )
}

/// SQLite's check of the files exactly as the crash left them (database and write-ahead log), on
/// a copy: the restarted server, not this check, is the one to recover the original.
async fn assert_crashed_sqlite_intact(url: &str) {
    let file = url
        .strip_prefix("sqlite://")
        .and_then(|rest| rest.split('?').next())
        .expect("a SQLite file URL");
    let copy = tempfile::tempdir().expect("tempdir");
    let target = copy.path().join("crashed.db");
    std::fs::copy(file, &target).expect("copy the database file");
    let wal = format!("{file}-wal");
    if std::path::Path::new(&wal).exists() {
        std::fs::copy(&wal, copy.path().join("crashed.db-wal")).expect("copy the WAL");
    }
    assert_sqlite_intact(&format!("sqlite://{}?mode=rw", target.display())).await;
}

/// SQLite's own check of the file (pages, indexes, free list), on a plain connection opened while
/// no server runs.
async fn assert_sqlite_intact(url: &str) {
    let mut options = ConnectOptions::new(url);
    options.max_connections(1).sqlx_logging(false);
    let conn = Database::connect(options)
        .await
        .expect("open the SQLite file");
    let rows = conn
        .query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "PRAGMA integrity_check",
        ))
        .await
        .expect("integrity_check");
    let result: Vec<String> = rows
        .iter()
        .map(|row| row.try_get_by_index::<String>(0).expect("text"))
        .collect();
    assert_eq!(result, ["ok"], "PRAGMA integrity_check");
    conn.close().await.expect("close");
}

fn jitter_ms(max: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() % u128::from(max + 1)) as u64
}

// ---------------------------------------------------------------------------------------------
// The load and what the clients saw

/// A validation token the server issued with a 2xx, and what the clients know of it.
struct IssuedToken {
    token: String,
    kind: &'static str,
    user_id: String,
    authenticator_id: String,
    state: TokenState,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TokenState {
    /// Nobody has asked the server about it yet.
    Unvalidated,
    /// A validation answered `valid: true`.
    Validated,
    /// A validation was sent but its answer was lost to a kill: it may or may not have counted.
    InFlight,
}

#[derive(Default)]
struct Ledger {
    /// Acknowledged registrations: `(user_id, authenticator_id)`.
    registrations: Vec<(String, String)>,
    tokens: Vec<IssuedToken>,
    /// Acknowledged steps since the server last started.
    acks: usize,
    /// Requests the server had when it was killed: their answers never came.
    lost_in_flight: usize,
    /// Requests refused a connection while the server was down.
    refused_connections: usize,
    /// HTTP answers other than 2xx (none is expected: a kill loses connections, it answers
    /// nothing).
    unexpected: Vec<String>,
}

/// Everything the clients share.
struct Load {
    http: reqwest::Client,
    base: RwLock<String>,
    tenant_id: String,
    api_key: String,
    stop: AtomicBool,
    ledger: Mutex<Ledger>,
}

/// Why a step did not complete.
enum StepError {
    /// No answer: the server died (or was not up yet). The step's effect is unknown.
    Lost,
    /// An answer other than 2xx (already recorded in the ledger).
    Refused,
}

impl Load {
    fn new(tenant_id: String, api_key: String) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("http client"),
            base: RwLock::new(String::new()),
            tenant_id,
            api_key,
            stop: AtomicBool::new(false),
            ledger: Mutex::new(Ledger::default()),
        }
    }

    fn set_base(&self, base: &str) {
        *self.base.write().unwrap() = base.to_owned();
        self.ledger.lock().unwrap().acks = 0;
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Waits until the current server acknowledged `n` steps (or fails after 30 s).
    async fn wait_for_acks(&self, n: usize, server: &ServerProcess) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.ledger.lock().unwrap().acks < n {
            assert!(
                Instant::now() < deadline,
                "no progress under load within 30 s\n{}",
                server.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// POSTs JSON; answers the body of a 2xx. Counts it as an acknowledged step.
    async fn post(
        &self,
        path: &str,
        bearer: Option<&str>,
        origin: bool,
        body: &Value,
    ) -> Result<Value, StepError> {
        let base = self.base.read().unwrap().clone();
        let mut req = self.http.post(format!("{base}{path}")).json(body);
        if let Some(bearer) = bearer {
            req = req.bearer_auth(bearer);
        }
        if origin {
            req = req.header("origin", ORIGIN);
        }
        self.answer(path, req).await
    }

    async fn get(&self, path: &str) -> Result<Value, StepError> {
        let base = self.base.read().unwrap().clone();
        let req = self
            .http
            .get(format!("{base}{path}"))
            .bearer_auth(&self.api_key);
        self.answer(path, req).await
    }

    async fn answer(&self, path: &str, req: reqwest::RequestBuilder) -> Result<Value, StepError> {
        let lost = |e: reqwest::Error| {
            let mut ledger = self.ledger.lock().unwrap();
            if e.is_connect() {
                ledger.refused_connections += 1;
            } else {
                ledger.lost_in_flight += 1;
            }
            StepError::Lost
        };
        let res = req.send().await.map_err(lost)?;
        let status = res.status();
        let text = res.text().await.map_err(lost)?;
        let mut ledger = self.ledger.lock().unwrap();
        if !status.is_success() {
            ledger.unexpected.push(format!("{path}: {status} {text}"));
            return Err(StepError::Refused);
        }
        ledger.acks += 1;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Records a token the server issued; answers its index in the ledger.
    fn record_token(
        &self,
        token: &Value,
        kind: &'static str,
        user_id: &str,
        authenticator: &str,
    ) -> usize {
        let mut ledger = self.ledger.lock().unwrap();
        ledger.tokens.push(IssuedToken {
            token: token.as_str().expect("lk_val_ token").to_owned(),
            kind,
            user_id: user_id.to_owned(),
            authenticator_id: authenticator.to_owned(),
            state: TokenState::Unvalidated,
        });
        ledger.tokens.len() - 1
    }

    /// The backend validates a token during the load.
    async fn validate_now(&self, index: usize) {
        let token = {
            let mut ledger = self.ledger.lock().unwrap();
            ledger.tokens[index].state = TokenState::InFlight;
            ledger.tokens[index].token.clone()
        };
        let answer = self.validate(&token).await;
        let mut ledger = self.ledger.lock().unwrap();
        match answer {
            Ok(body) if body["valid"] == true => ledger.tokens[index].state = TokenState::Validated,
            Ok(body) => ledger.unexpected.push(format!(
                "first validation of an issued token answered {body}"
            )),
            Err(StepError::Lost | StepError::Refused) => {} // stays in flight: unknown
        }
    }

    async fn validate(&self, token: &str) -> Result<Value, StepError> {
        self.post(
            "/api/v1/tokens/validate",
            Some(&self.api_key),
            false,
            &json!({ "token": token }),
        )
        .await
    }
}

/// One client: new users enroll a passkey and sign in with it, in a loop, until told to stop.
/// Every other validation token is validated at once; the rest are left for the final check.
/// Answers the users whose registration was acknowledged, with their passkeys.
async fn client(load: Arc<Load>, n: usize) -> Vec<(String, SoftPasskeys)> {
    let mut registered = Vec::new();
    let mut round = 0usize;
    while !load.stopping() {
        round += 1;
        let user_id = format!("client{n}-user{round}");
        let Ok((mut passkeys, authenticator, token)) = enroll(&load, &user_id).await else {
            pause().await;
            continue;
        };
        let index = load.record_token(&token, "sign_up", &user_id, &authenticator);
        if round.is_multiple_of(2) {
            load.validate_now(index).await;
        }
        for sign_in_round in 0..2 {
            if load.stopping() {
                break;
            }
            let Ok(token) = sign_in(&load, &user_id, &mut passkeys).await else {
                pause().await;
                continue;
            };
            let index = load.record_token(&token, "sign_in", &user_id, &authenticator);
            if sign_in_round == 0 {
                load.validate_now(index).await;
            }
        }
        registered.push((user_id, passkeys));
    }
    registered
}

/// While the server is down, requests fail at once: a short pause keeps the loop from spinning.
async fn pause() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Issue an enrollment token, register a passkey: answers the passkey, the authenticator id and
/// the `sign_up` validation token. The registration is recorded as acknowledged.
async fn enroll(load: &Load, user_id: &str) -> Result<(SoftPasskeys, String, Value), StepError> {
    let issued = load
        .post(
            &format!("/api/v1/users/{user_id}/enrollment-tokens"),
            Some(&load.api_key),
            false,
            &json!({ "username": format!("{user_id}@example.com") }),
        )
        .await?;
    let enrollment = issued["token"].as_str().expect("lk_enr_ token");
    let options = load
        .post(
            "/api/client/v1/registration/options",
            Some(enrollment),
            true,
            &json!({}),
        )
        .await?;
    let mut passkeys = SoftPasskeys::new();
    let credential = passkeys
        .register(ORIGIN, &options["publicKey"])
        .expect("the soft passkey registers");
    let registered = load
        .post(
            "/api/client/v1/registration/verify",
            Some(enrollment),
            true,
            &json!({ "ceremony_id": options["ceremony_id"], "credential": credential }),
        )
        .await?;
    let authenticator = registered["authenticator"]["id"]
        .as_str()
        .expect("authenticator id")
        .to_owned();
    load.ledger
        .lock()
        .unwrap()
        .registrations
        .push((user_id.to_owned(), authenticator.clone()));
    Ok((passkeys, authenticator, registered["token"].clone()))
}

/// Sign in with the user's passkey: answers the `sign_in` validation token.
async fn sign_in(
    load: &Load,
    user_id: &str,
    passkeys: &mut SoftPasskeys,
) -> Result<Value, StepError> {
    let base = format!("/api/client/v1/tenants/{}/authentication", load.tenant_id);
    let options = load
        .post(
            &format!("{base}/options"),
            None,
            true,
            &json!({ "user_id": user_id }),
        )
        .await?;
    let credential = passkeys
        .authenticate(ORIGIN, &options["publicKey"])
        .expect("the options offer the user's passkey");
    let verified = load
        .post(
            &format!("{base}/verify"),
            None,
            true,
            &json!({ "ceremony_id": options["ceremony_id"], "credential": credential }),
        )
        .await?;
    Ok(verified["token"].clone())
}

// ---------------------------------------------------------------------------------------------
// The check after the crashes

#[derive(Default)]
struct Checked {
    unvalidated: usize,
    validated: usize,
    in_flight: usize,
}

/// Checks every acknowledged registration and token against the restarted server (no load).
async fn verify(load: &Load, ledger: &Ledger) -> Checked {
    assert!(
        ledger.registrations.len() >= KILLS,
        "too little load to prove anything"
    );
    for (user_id, authenticator) in &ledger.registrations {
        let listed = load
            .get(&format!("/api/v1/users/{user_id}/authenticators"))
            .await
            .unwrap_or_else(|_| panic!("{user_id}: acknowledged user is gone"));
        let found = listed["authenticators"]
            .as_array()
            .expect("authenticators")
            .iter()
            .any(|a| a["id"] == authenticator.as_str() && a["revoked_at"].is_null());
        assert!(
            found,
            "{user_id}: acknowledged authenticator {authenticator} is not listed: {listed}"
        );
    }

    let mut checked = Checked::default();
    for issued in &ledger.tokens {
        let first = validated(load, &issued.token).await;
        match issued.state {
            TokenState::Unvalidated => {
                checked.unvalidated += 1;
                assert_valid_for(&first, issued);
            }
            TokenState::Validated => {
                checked.validated += 1;
                assert_eq!(
                    first,
                    json!({ "valid": false, "reason": "already_used" }),
                    "a token validated before a crash validates again"
                );
            }
            TokenState::InFlight => {
                checked.in_flight += 1;
                if first["valid"] == true {
                    assert_valid_for(&first, issued);
                } else {
                    assert_eq!(first, json!({ "valid": false, "reason": "already_used" }));
                }
            }
        }
        let second = validated(load, &issued.token).await;
        assert_eq!(
            second,
            json!({ "valid": false, "reason": "already_used" }),
            "{} token of {} validates twice",
            issued.kind,
            issued.user_id
        );
    }
    checked
}

/// Every acknowledged passkey still signs in: its public key and signature counter survived (a
/// counter ahead of what the passkey ever sent would refuse it as `counter_regressed`).
async fn sign_in_again(load: &Load, passkeys: &mut [(String, SoftPasskeys)]) {
    for (user_id, passkeys) in passkeys {
        if sign_in(load, user_id, passkeys).await.is_err() {
            panic!(
                "{user_id} cannot sign in after the crashes: {:?}",
                load.ledger.lock().unwrap().unexpected
            );
        }
    }
}

async fn validated(load: &Load, token: &str) -> Value {
    match load.validate(token).await {
        Ok(body) => body,
        Err(_) => panic!(
            "validation failed after the restart: {:?}",
            load.ledger.lock().unwrap().unexpected
        ),
    }
}

fn assert_valid_for(answer: &Value, issued: &IssuedToken) {
    assert_eq!(
        answer["valid"], true,
        "acknowledged {} token of {} does not validate: {answer}",
        issued.kind, issued.user_id
    );
    assert_eq!(answer["kind"], issued.kind, "{answer}");
    assert_eq!(answer["user_id"], issued.user_id.as_str(), "{answer}");
    assert_eq!(
        answer["authenticator_id"],
        issued.authenticator_id.as_str(),
        "{answer}"
    );
}
