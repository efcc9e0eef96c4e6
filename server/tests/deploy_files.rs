//! The deployment files in `deploy/` checked against the binary they deploy:
//! - the systemd unit passes `systemd-analyze verify` without a single warning;
//! - nginx's example passes `nginx -t` (with a throw-away certificate and the upstreams on
//!   loopback, as the test cannot resolve the compose services' names);
//! - every `LATCHKEY_*` variable any of them (and `latchkey.env.example`) sets is one the binary
//!   reads, and the unit's and the compose file's settings start a real server;
//! - the container file copies what cargo-leptos builds, where the README says it lies, and
//!   checks health on the liveness path.
//!
//! The tools are installed by `scripts/setup.sh test`; without them a check is skipped with a
//! loud line, except in CI, where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod common;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use common::process::{BIN, ServerProcess};
use latchkey_server::config::KNOWN_ENV_VARS;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `Some(path)` of a tool, or `None` after saying so (a failure in CI).
fn tool(path: &str) -> Option<&str> {
    if Path::new(path).is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{path} is missing: run scripts/setup.sh test"
    );
    eprintln!("SKIPPED: {path} is not installed (scripts/setup.sh test installs it)");
    None
}

#[test]
fn the_systemd_unit_verifies_without_warnings() {
    let Some(analyze) = tool("/usr/bin/systemd-analyze") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The unit names the installed path; here the binary is the one just built.
    let unit = read("deploy/latchkey.service").replace(
        "ExecStart=/opt/latchkey/latchkey ",
        &format!("ExecStart={BIN} "),
    );
    assert!(unit.contains(&format!("ExecStart={BIN} serve\n")));
    let path = dir.path().join("latchkey.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
    for hardening in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=latchkey",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(
            read("deploy/latchkey.service").contains(hardening),
            "{hardening}"
        );
    }
}

#[test]
fn the_nginx_example_passes_nginx_t() {
    let Some(nginx) = tool("/usr/sbin/nginx") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=auth.example.com"])
        .arg("-keyout")
        .arg(d.join("privkey.pem"))
        .arg("-out")
        .arg(d.join("fullchain.pem"))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let site = read("deploy/nginx.conf")
        .replace("/etc/nginx/tls/", &format!("{}/", d.display()))
        .replace("latchkey-a:3000", "127.0.0.1:3000")
        .replace("latchkey-b:3000", "127.0.0.1:3001");
    std::fs::write(d.join("latchkey.conf"), site).unwrap();
    // The example is a conf.d file: wrapped in the main file a distribution ships.
    let main = format!(
        "pid {d}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n  access_log off;\n  \
         include {d}/latchkey.conf;\n}}\n",
        d = d.display()
    );
    std::fs::write(d.join("nginx.conf"), main).unwrap();
    let out = Command::new(nginx)
        .arg("-t")
        .arg("-p")
        .arg(d)
        .arg("-c")
        .arg(d.join("nginx.conf"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("[warn]"), "{stderr}");
}

/// Every `LATCHKEY_…` name in `text`.
fn variables(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("LATCHKEY_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_' || c.is_ascii_digit())
            .collect();
        found.insert(name.trim_end_matches('_').to_owned());
        rest = &rest[at + name.len().max(1)..];
    }
    found
}

#[test]
fn the_deployment_files_set_only_variables_the_binary_reads() {
    for file in [
        "deploy/latchkey.service",
        "deploy/Containerfile",
        "deploy/compose.yaml",
        "deploy/nginx.conf",
        "latchkey.env.example",
    ] {
        for name in variables(&read(file)) {
            assert!(
                KNOWN_ENV_VARS.contains(&name.as_str()),
                "{file} names {name}, which the binary does not read"
            );
        }
    }
}

#[test]
fn the_container_file_copies_what_the_build_makes() {
    let containerfile = read("deploy/Containerfile");
    let manifest = read("Cargo.toml");
    // cargo-leptos's outputs, as the workspace configures them.
    assert!(manifest.contains("bin-target = \"latchkey\""));
    assert!(manifest.contains("site-root = \"target/site\""));
    assert!(
        containerfile
            .contains("COPY --from=build /src/target/release/latchkey /opt/latchkey/latchkey")
    );
    assert!(containerfile.contains("COPY --from=build /src/target/site /opt/latchkey/site"));
    assert!(containerfile.contains("LATCHKEY_SITE_ROOT=/opt/latchkey/site"));
    assert!(containerfile.contains("http://127.0.0.1:3000/healthz"));
    assert!(containerfile.contains("LATCHKEY_BIND=0.0.0.0:3000"));
    assert!(containerfile.contains("USER 10001"), "not root");
    assert!(containerfile.contains("CMD [\"serve\"]"));
}

/// `KEY=VALUE` settings of the unit's `Environment=` lines.
fn unit_environment(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `KEY: value` settings of the compose file's shared `environment:` block.
fn compose_environment(compose: &str) -> Vec<(String, String)> {
    compose
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("LATCHKEY_"))
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect()
}

#[test]
fn the_unit_and_compose_settings_start_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/latchkey.db?mode=rwc", dir.path().display());
    for (file, settings) in [
        (
            "deploy/latchkey.service",
            unit_environment(&read("deploy/latchkey.service")),
        ),
        (
            "deploy/compose.yaml",
            compose_environment(&read("deploy/compose.yaml")),
        ),
    ] {
        assert!(settings.len() >= 3, "{file}: {settings:?}");
        // Their values, except where they point at the machines they run on: the state
        // directory is a temporary one, the compose file's PostgreSQL a SQLite file here.
        let state = dir.path().display().to_string();
        let env: Vec<(String, String)> = settings
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "LATCHKEY_SITE_ROOT" | "LATCHKEY_BIND" | "LATCHKEY_METRICS_BIND"
                )
            })
            .map(|(k, v)| match k.as_str() {
                "LATCHKEY_DATABASE_URL" if v.starts_with("postgres") => {
                    (k.clone(), database.clone())
                }
                _ => (k.clone(), v.replace("/var/lib/latchkey", &state)),
            })
            .chain([("LATCHKEY_METRICS_BIND".into(), "127.0.0.1:0".into())])
            .collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut server = ServerProcess::start_with(&database, &env);
        server.sigterm();
    }
}
