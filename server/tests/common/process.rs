//! A real `latchkey` binary as a child process, and its command line.

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// A `latchkey serve` child on its own free port, its stderr kept for diagnostics.
pub struct ServerProcess {
    pub child: Child,
    pub base_url: String,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl ServerProcess {
    /// A server for tests that are not about the request limits: every client comes from
    /// 127.0.0.1, so no request limit and no bound on unfinished ceremonies.
    pub fn start(database_url: &str) -> Self {
        Self::start_with(
            database_url,
            &[
                ("LATCHKEY_CLIENT_RATE_LIMIT", "0"),
                ("LATCHKEY_SOURCE_RATE_LIMIT", "0"),
                ("LATCHKEY_OPEN_CEREMONIES_PER_ADDRESS", "0"),
            ],
        )
    }

    /// A server with the given `LATCHKEY_*` variables (and the test defaults of [`latchkey`]).
    pub fn start_with(database_url: &str, env: &[(&str, &str)]) -> Self {
        Self::start_bin(BIN, database_url, env)
    }

    /// Like [`Self::start_with`], with another build of the binary (an older release).
    pub fn start_bin(bin: &str, database_url: &str, env: &[(&str, &str)]) -> Self {
        let mut child = latchkey_bin(bin, database_url)
            .arg("serve")
            .env("LATCHKEY_BIND", "127.0.0.1:0")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn latchkey serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let kept = log.clone();
        // Drains stderr for the child's whole life (a full pipe would block the server).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("latchkey is listening")
                    && let Some(addr) = listening_address(&line)
                {
                    let _ = addr_tx.send(addr.to_owned());
                }
                let mut kept = kept.lock().unwrap();
                if kept.len() == 200 {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        let mut server = Self {
            child,
            base_url: String::new(),
            log,
        };
        match addr_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => server.base_url = format!("http://{addr}"),
            Err(_) => panic!(
                "the server did not start within 30 s\n{}",
                server.log_tail()
            ),
        }
        server
    }

    /// The crash: SIGKILL, then reap the process.
    pub fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// The orderly stop, for the end of the test.
    pub fn sigterm(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().expect("try_wait").is_none() {
            assert!(Instant::now() < deadline, "no exit within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        format!(
            "--- server log (last {} lines) ---\n{}",
            log.len(),
            Vec::from(log.clone()).join("\n")
        )
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A failed test must not leave a server behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The address in the "listening" line, in either log format.
fn listening_address(line: &str) -> Option<&str> {
    match line.split_once("\"addr\":\"") {
        Some((_, json)) => json.split('"').next(),
        None => line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr=")),
    }
}

/// The binary with a clean `LATCHKEY_*` environment of our own.
pub fn latchkey(database_url: &str) -> Command {
    latchkey_bin(BIN, database_url)
}

/// Like [`latchkey`], with another build of the binary.
pub fn latchkey_bin(bin: &str, database_url: &str) -> Command {
    let mut cmd = Command::new(bin);
    for (key, _) in std::env::vars() {
        if key.starts_with("LATCHKEY_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.env("LATCHKEY_DATABASE_URL", database_url)
        .env("LATCHKEY_SQLITE_SYNCHRONOUS", "full")
        .env("RUST_LOG", "warn,latchkey_server=info");
    cmd
}

/// Runs a `latchkey` command that prints JSON on success; answers the JSON.
pub fn cli_json(database_url: &str, args: &[&str]) -> Value {
    let out = latchkey(database_url)
        .args(args)
        .output()
        .expect("run latchkey");
    assert!(
        out.status.success(),
        "latchkey {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}
