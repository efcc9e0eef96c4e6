//! The `latchkey` binary as an operator runs it: help, migrate, serve, signals and bad
//! configuration (one-line reasons, non-zero exit, no panic).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener},
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    time::Duration,
};

use latchkey_core::testing::{TestBackend, TestDb};

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// A named bad configuration: its variables and what the one-line reason must say.
type BadConfig<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

fn latchkey(args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    // A clean environment of our own: nothing from the developer's shell leaks in.
    for (key, _) in std::env::vars() {
        if key.starts_with("LATCHKEY_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.envs(envs.iter().copied());
    cmd
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    latchkey(args, envs).output().expect("runs")
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}/nested/latchkey.db?mode=rwc", dir.display())
}

/// Asserts a failed run: non-zero exit, one line on stderr, no panic.
fn assert_one_line_failure(out: &Output, expect: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must fail: {stderr}");
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
    assert!(!stderr.contains("backtrace"), "no backtrace: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains(expect), "expected {expect:?} in {last:?}");
    assert!(
        last.starts_with("error:") || last.contains("(see --help)"),
        "{last}"
    );
}

#[test]
fn help_lists_the_commands_and_variables() {
    for args in [
        &["--help"][..],
        &["serve", "--help"][..],
        &["migrate", "--help"][..],
    ] {
        let out = run(args, &[]);
        assert!(out.status.success(), "{args:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("LATCHKEY_DATABASE_URL"), "{help}");
        assert!(help.contains("LATCHKEY_BIND"));
        assert!(help.contains("LATCHKEY_PUBLIC_URL"));
    }
    let help = String::from_utf8_lossy(&run(&["--help"], &[]).stdout).into_owned();
    assert!(help.contains("serve") && help.contains("migrate"));
}

#[test]
fn migrate_creates_the_sqlite_database_and_its_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sqlite_url(dir.path());
    let out = run(&["migrate"], &[("LATCHKEY_DATABASE_URL", &url)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("nested/latchkey.db").is_file());
    assert!(
        out.stdout.is_empty(),
        "logs go to stderr, stdout stays for output"
    );
    // Idempotent.
    let out = run(&["migrate", "--database-url", &url], &[]);
    assert!(out.status.success());
}

#[tokio::test]
async fn migrate_works_on_postgres() {
    let Some(db) = TestDb::create(TestBackend::Postgres).await else {
        return;
    };
    let out = run(
        &["migrate"],
        &[("LATCHKEY_DATABASE_URL", db.url().expose())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("migrations applied"), "{stderr}");
}

async fn migration_rows(db: &sea_orm::DatabaseConnection) -> i64 {
    use sea_orm::ConnectionTrait;
    db.query_one_raw(sea_orm::Statement::from_string(
        db.get_database_backend(),
        "SELECT COUNT(*) AS n FROM seaql_migrations",
    ))
    .await
    .expect("counted")
    .expect("row")
    .try_get::<i64>("", "n")
    .expect("n")
}

/// Rolling upgrades: a release refuses to start (serve or migrate) on a schema a newer release
/// migrated, with a one-line reason naming the unknown migration, and writes nothing.
#[tokio::test]
async fn a_schema_newer_than_the_release_is_refused_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = sqlite_url(dir.path());
    let postgres = TestDb::create(TestBackend::Postgres).await;
    let mut urls = vec![sqlite];
    if let Some(db) = &postgres {
        urls.push(db.url().expose().to_owned());
    }
    const FUTURE: &str = "m20991231_000099_from_a_newer_release";
    for url in urls {
        let env = [("LATCHKEY_DATABASE_URL", url.as_str())];
        assert!(run(&["migrate"], &env).status.success(), "{url}");
        let db = sea_orm::Database::connect(&url).await.expect("connects");
        let record =
            format!("INSERT INTO seaql_migrations (version, applied_at) VALUES ('{FUTURE}', 0)");
        sea_orm::ConnectionTrait::execute_unprepared(&db, &record)
            .await
            .expect("recorded");
        let before = migration_rows(&db).await;
        for args in [&["migrate"][..], &["serve"][..]] {
            let out = run(args, &[env[0], ("LATCHKEY_BIND", "127.0.0.1:0")]);
            assert_one_line_failure(&out, "migrated by a newer release");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains(FUTURE),
                "names the migration"
            );
        }
        let after = migration_rows(&db).await;
        assert_eq!(before, after, "nothing migrated");
        db.close().await.expect("closed");
    }
}

#[test]
fn bad_configuration_exits_with_a_one_line_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases: &[BadConfig] = &[
        (
            "unsupported URL",
            &[("LATCHKEY_DATABASE_URL", "mysql://root@localhost/x")],
            "unsupported database URL",
        ),
        (
            "unparseable bind address",
            &[("LATCHKEY_BIND", "localhost")],
            "LATCHKEY_BIND",
        ),
        (
            "public URL with a path",
            &[("LATCHKEY_PUBLIC_URL", "https://auth.example.com/portal")],
            "origin only",
        ),
        (
            "unreachable database",
            &[(
                "LATCHKEY_DATABASE_URL",
                "postgres://postgres@127.0.0.1:1/latchkey",
            )],
            "cannot connect",
        ),
    ];
    for (name, envs, expect) in cases {
        let mut envs = envs.to_vec();
        let default_url = sqlite_url(dir.path());
        if !envs.iter().any(|(k, _)| *k == "LATCHKEY_DATABASE_URL") {
            envs.push(("LATCHKEY_DATABASE_URL", &default_url));
        }
        let out = run(&["serve"], &envs);
        eprintln!("case: {name}");
        assert_one_line_failure(&out, expect);
    }
}

#[test]
fn a_password_in_the_database_url_never_reaches_the_output() {
    let out = run(
        &["migrate"],
        &[(
            "LATCHKEY_DATABASE_URL",
            "postgres://postgres:hunter2@127.0.0.1:1/x",
        )],
    );
    assert_one_line_failure(&out, "cannot connect");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains("hunter2"), "{all}");
}

/// A `latchkey serve` child whose stderr is followed line by line.
struct Served {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: SocketAddr,
}

impl Served {
    fn start(envs: &[(&str, &str)]) -> Self {
        let mut child = latchkey(&["serve"], envs)
            .env("LATCHKEY_BIND", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let addr = loop {
            let line = lines
                .recv_timeout(Duration::from_secs(30))
                .expect("server announces its address");
            if line.contains("latchkey is listening") {
                let addr = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("addr="))
                    .expect("addr field");
                break addr.parse().expect("socket address");
            }
        };
        Self { child, lines, addr }
    }

    fn wait_for_line(&self, needle: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("no line containing {needle:?}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    fn wait_exit(mut self) -> std::process::ExitStatus {
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("server did not stop within 10 s");
    }
}

async fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    reqwest::get(format!("http://{addr}{path}"))
        .await
        .expect("request")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn serve_answers_logs_requests_and_stops_on_sigterm_and_sigint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sqlite_url(dir.path());
    for signal in ["TERM", "INT"] {
        let served = Served::start(&[("LATCHKEY_DATABASE_URL", &url)]);
        let ready = get_json(served.addr, "/readyz").await;
        assert_eq!(ready["database"], "SQLite");
        // One log line per request, with status and latency but without the query string.
        let res = reqwest::get(format!(
            "http://{}/login?token=lk_secret_value",
            served.addr
        ))
        .await
        .expect("the sign-in page");
        let id = res.headers()["x-request-id"]
            .to_str()
            .expect("an ID")
            .to_owned();
        // With the request's ID, as its answer carried it.
        let line = served.wait_for_line(&format!("path=/login request_id={id}}}"));
        assert!(
            line.contains("status=200") && line.contains("latency_ms="),
            "{line}"
        );
        assert!(!line.contains("lk_secret_value"), "{line}");

        served.signal(signal);
        served.wait_for_line("stopped");
        let status = served.wait_exit();
        assert!(status.success(), "SIG{signal}: graceful exit, got {status}");
    }
}

#[tokio::test]
async fn serve_works_on_postgres() {
    let Some(db) = TestDb::create(TestBackend::Postgres).await else {
        return;
    };
    let served = Served::start(&[("LATCHKEY_DATABASE_URL", db.url().expose())]);
    let ready = get_json(served.addr, "/readyz").await;
    assert_eq!(ready["database"], "PostgreSQL");
    served.signal("TERM");
    assert!(served.wait_exit().success());
}

#[test]
fn port_in_use_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = run(
        &["serve"],
        &[
            ("LATCHKEY_DATABASE_URL", &sqlite_url(dir.path())),
            ("LATCHKEY_BIND", &addr),
        ],
    );
    assert_one_line_failure(&out, &format!("cannot listen on {addr}"));
}

#[test]
fn unknown_latchkey_variables_are_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(
        &["migrate"],
        &[
            ("LATCHKEY_DATABASE_URL", &sqlite_url(dir.path())),
            ("LATCHKEY_DATABSE_URL", "zz-not-echoed"),
        ],
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LATCHKEY_DATABSE_URL"), "{stderr}");
    assert!(
        !stderr.contains("zz-not-echoed"),
        "the value is not echoed: {stderr}"
    );
}

/// The path and query of the one-time link in a log line (the line names the public URL, which
/// is not where the test server listens).
fn link_in(line: &str, path: &str) -> String {
    let start = line
        .find(path)
        .unwrap_or_else(|| panic!("{path} in {line}"));
    line[start..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_fresh_instance_logs_a_single_use_setup_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sqlite_url(dir.path());
    let served = Served::start(&[("LATCHKEY_DATABASE_URL", &url)]);
    let line = served.wait_for_line("/setup?token=");
    assert!(
        line.contains("http://localhost:3000/setup?token=lk_setup_"),
        "the link is under the public URL: {line}"
    );
    let first = link_in(&line, "/setup?token=");
    let page = reqwest::get(format!("http://{}{first}", served.addr))
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(page.contains("Create passkey"), "{page}");
    served.signal("TERM");
    assert!(served.wait_exit().success());

    // A restart logs a new link; the old one stops working.
    let served = Served::start(&[("LATCHKEY_DATABASE_URL", &url)]);
    let second = link_in(&served.wait_for_line("/setup?token="), "/setup?token=");
    assert_ne!(first, second);
    let page = reqwest::get(format!("http://{}{first}", served.addr))
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert!(page.contains("This setup link has expired"), "{page}");
    served.signal("TERM");
    assert!(served.wait_exit().success());
}

#[test]
fn operator_invite_prints_only_the_invitation_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sqlite_url(dir.path());
    let envs = [
        ("LATCHKEY_DATABASE_URL", url.as_str()),
        ("LATCHKEY_PUBLIC_URL", "https://auth.example.com"),
    ];
    let out = run(
        &[
            "operator",
            "invite",
            "--email",
            "Grace@Example.com",
            "--instance-admin",
        ],
        &envs,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "nothing else on stdout: {stdout}");
    assert!(
        lines[0].starts_with("https://auth.example.com/invite?token=lk_inv_"),
        "{stdout}"
    );
    // Each run is a new single-use link.
    let again = run(&["operator", "invite", "--email", "eve@example.com"], &envs);
    assert!(again.status.success());
    assert_ne!(String::from_utf8_lossy(&again.stdout), stdout);

    // Bad input: one line naming the flag, non-zero exit, nothing on stdout.
    let out = run(&["operator", "invite", "--email", "not an address"], &envs);
    assert_one_line_failure(&out, "--email: Enter a valid email address");
    assert!(out.stdout.is_empty());
    let out = run(&["operator", "invite"], &envs);
    assert_one_line_failure(&out, "--email");
    let help = run(&["operator", "invite", "--help"], &envs);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--instance-admin"));

    // Audited with the actor `cli`.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let events = rt.block_on(async {
        let options = latchkey_core::db::DbOptions::new(
            latchkey_core::db::DatabaseUrl::from_str_unchecked(url.clone()),
        );
        let db = latchkey_core::db::connect(&options).await.expect("connect");
        let services =
            latchkey_core::testing::services(db, std::sync::Arc::new(latchkey_core::SystemClock));
        services.audit().recent(None, 10).await.expect("audit")
    });
    let invited: Vec<_> = events
        .iter()
        .filter(|e| e.action == "operator.invited")
        .collect();
    assert_eq!(invited.len(), 2);
    assert!(invited.iter().all(|e| e.actor_kind == "cli"));
    assert!(
        !format!("{events:?}").contains("lk_inv_"),
        "no secret in the log"
    );
}

#[test]
fn tenant_create_prints_the_id_as_json_with_the_portals_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sqlite_url(dir.path());
    let envs = [("LATCHKEY_DATABASE_URL", url.as_str())];
    let out = run(
        &[
            "tenant",
            "create",
            "--name",
            "Shop",
            "--rp-id",
            "example.com",
            "--origin",
            "https://example.com",
            "--origin",
            "https://auth.example.com",
            "--enable-passkeys",
        ],
        &envs,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let id = printed["tenant_id"].as_str().expect("tenant_id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{printed}");
    assert_eq!(printed.as_object().map(|o| o.len()), Some(1));

    for (args, expected) in [
        (
            &[
                "tenant",
                "create",
                "--name",
                "x",
                "--rp-id",
                "example.com",
                "--origin",
                "https://evil-example.com",
            ][..],
            "--origin: https://evil-example.com: its host must be example.com",
        ),
        (
            &["tenant", "create", "--name", "x", "--rp-id", "co.uk"][..],
            "--rp-id: co.uk is a public suffix",
        ),
        (
            &["tenant", "create", "--name", "x", "--enable-passkeys"][..],
            "--rp-id: Passkeys cannot be enabled",
        ),
        (
            &["tenant", "create", "--name", " "][..],
            "--name: Enter a tenant name",
        ),
    ] {
        let out = run(args, &envs);
        assert_one_line_failure(&out, expected);
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn api_key_create_prints_the_key_once_as_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sqlite_url(dir.path());
    let envs = [("LATCHKEY_DATABASE_URL", url.as_str())];
    let out = run(&["tenant", "create", "--name", "Shop"], &envs);
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let tenant = created["tenant_id"].as_str().expect("tenant_id").to_owned();

    let out = run(
        &[
            "api-key", "create", "--tenant", &tenant, "--name", "Backend",
        ],
        &envs,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let key = printed["api_key"].as_str().expect("api_key");
    assert!(key.starts_with("lk_sk_") && key.len() == 49, "{key}");
    assert_eq!(printed.as_object().map(|o| o.len()), Some(1));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(key),
        "the key is not logged"
    );

    for (args, expected) in [
        (
            &["api-key", "create", "--tenant", "nope", "--name", "x"][..],
            "--tenant: Not a tenant id",
        ),
        (
            &[
                "api-key",
                "create",
                "--tenant",
                "00000000-0000-0000-0000-000000000000",
                "--name",
                "x",
            ][..],
            "--tenant: No tenant has this id",
        ),
        (
            &["api-key", "create", "--tenant", &tenant, "--name", " "][..],
            "--name: Enter a key name",
        ),
        (&["api-key", "create", "--tenant", &tenant][..], "--name"),
    ] {
        let out = run(args, &envs);
        assert_one_line_failure(&out, expected);
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn audit_purge_exports_then_deletes_and_refuses_an_existing_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sqlite_url(dir.path());
    let env = [("LATCHKEY_DATABASE_URL", url.as_str())];
    let export = dir.path().join("audit.jsonl");
    let export_arg = export.to_string_lossy().into_owned();
    let args = [
        "audit",
        "purge",
        "--older-than-days",
        "30",
        "--export-to",
        export_arg.as_str(),
    ];
    let out = run(&args, &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(printed["deleted"], 0, "a fresh log has nothing that old");
    assert!(
        printed["export_sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64)
    );
    assert!(export.is_file());
    // The export is never overwritten: one line, nothing deleted.
    assert_one_line_failure(&run(&args, &env), "must be a new file");
    let short = run(
        &[
            "audit",
            "purge",
            "--older-than-days",
            "0",
            "--export-to",
            "x",
        ],
        &env,
    );
    assert_one_line_failure(&short, "--older-than-days");
}

#[test]
fn mds_import_refuses_a_blob_not_signed_under_the_fido_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sqlite_url(dir.path());
    let env = [("LATCHKEY_DATABASE_URL", url.as_str())];
    let missing = dir.path().join("missing.jwt");
    assert_one_line_failure(
        &run(&["mds", "import", &missing.to_string_lossy()], &env),
        "missing.jwt",
    );
    // Well formed and signed, but under a root of this test's own: the binary trusts only the
    // FIDO Alliance's.
    let pki = latchkey_core::testing::metadata::TestPki::new().expect("pki");
    let blob = pki.blob(
        1,
        "2027-01-01",
        &[pki.model(
            uuid::Uuid::new_v4(),
            "Test Key",
            &[("FIDO_CERTIFIED_L1", "2024-01-10")],
        )],
    );
    let file = dir.path().join("blob.jwt");
    std::fs::write(&file, blob).expect("write");
    let out = run(&["mds", "import", &file.to_string_lossy()], &env);
    assert_one_line_failure(&out, "root certificate");
    assert!(out.stdout.is_empty());
    std::fs::write(&file, "not a blob").expect("write");
    assert_one_line_failure(
        &run(&["mds", "import", &file.to_string_lossy()], &env),
        "not a FIDO metadata BLOB",
    );
}

#[tokio::test]
async fn audit_verify_names_an_event_edited_after_it_was_sealed() {
    use sea_orm::ConnectionTrait;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = sqlite_url(dir.path());
    let env = [("LATCHKEY_DATABASE_URL", url.as_str())];
    let created = run(
        &[
            "tenant",
            "create",
            "--name",
            "Shop",
            "--rp-id",
            "shop.example.com",
        ],
        &env,
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let sealed = run(&["audit", "seal"], &env);
    assert!(
        sealed.status.success(),
        "{}",
        String::from_utf8_lossy(&sealed.stderr)
    );
    let sealed: serde_json::Value = serde_json::from_slice(&sealed.stdout).expect("JSON");
    assert_eq!(sealed["seal"], 1);
    let verified = run(&["audit", "verify"], &env);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&verified.stdout).expect("JSON");
    assert_eq!(report["intact"], true);
    let checkpoint = report["latest_seal"]["checkpoint"]
        .as_str()
        .expect("checkpoint")
        .to_owned();
    assert!(
        run(&["audit", "verify", "--checkpoint", &checkpoint], &env)
            .status
            .success()
    );
    assert_one_line_failure(
        &run(&["audit", "verify", "--checkpoint", "1:abc"], &env),
        "--checkpoint",
    );

    // Edited behind Latchkey's back (the triggers dropped first).
    let db = sea_orm::Database::connect(&url).await.expect("connects");
    let id: i64 = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Sqlite,
            "SELECT min(id) AS id FROM audit_events",
        ))
        .await
        .expect("reads")
        .and_then(|row| row.try_get("", "id").ok())
        .expect("an event");
    db.execute_unprepared(&format!(
        "DROP TRIGGER audit_events_no_update; \
         UPDATE audit_events SET actor_label = 'someone else' WHERE id = {id}"
    ))
    .await
    .expect("tampers");
    db.close().await.expect("closes");
    let out = run(&["audit", "verify"], &env);
    assert_one_line_failure(&out, &format!("event {id} "));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["intact"], false);
    assert!(
        report["findings"][0]
            .as_str()
            .is_some_and(|f| f.contains("altered"))
    );
}
