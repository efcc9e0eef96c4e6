//! A webhook receiver for the tests: `webhook_receiver.py`, which verifies every request with
//! the `standardwebhooks` package from PyPI (independent of Latchkey's signing), answers as
//! told, and logs each request. Installed into `tools/.venv` by `scripts/setup.sh test`.

use std::{
    io::BufRead,
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use serde_json::Value;

/// The receiver process; killed when dropped.
pub struct Receiver {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn must<T, E: std::fmt::Display>(what: &str, result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(err) => panic!("webhook receiver: {what}: {err}"),
    }
}

impl Receiver {
    /// Starts a receiver that answers 500 to the first `fail_first` attempts of each
    /// `webhook-id`, after `delay_seconds`. It verifies with a placeholder until
    /// [`Self::use_secret`] gives it the endpoint's secret.
    pub fn start(fail_first: u32, delay_seconds: f64) -> Self {
        let dir = must("temporary directory", tempfile::tempdir());
        let log = dir.path().join("received.jsonl");
        let python = concat!(env!("CARGO_MANIFEST_DIR"), "/../tools/.venv/bin/python3");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/testing/webhook_receiver.py"
        );
        let mut child = must(
            "start (bash scripts/setup.sh test installs its venv)",
            Command::new(python)
                .arg(script)
                .env(
                    "WEBHOOK_SECRET",
                    "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                )
                .env("FAIL_FIRST", fail_first.to_string())
                .env("DELAY_SECONDS", delay_seconds.to_string())
                .env("LOG", &log)
                .stdout(Stdio::piped())
                .spawn(),
        );
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            must(
                "read its port",
                std::io::BufReader::new(stdout).read_line(&mut line),
            );
        }
        Self {
            port: must("parse its port", line.trim().parse()),
            child,
            log,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Verifies with `secret` from now on.
    pub fn use_secret(&self, secret: &str) {
        must(
            "write the secret",
            std::fs::write(self.log.with_extension("jsonl.secret"), secret),
        );
    }

    /// Every request so far: `{id, verified, status, attempt, event, signatures}`.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| must("parse the log", serde_json::from_str(l)))
            .collect()
    }

    /// The accepted (200) requests.
    pub fn accepted(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["status"] == 200)
            .collect()
    }
}
