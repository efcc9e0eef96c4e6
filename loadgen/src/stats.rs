//! Latency histograms per request kind, kept per worker (no shared lock on the measuring path)
//! and merged when a phase ends, and the serialisable results of a run.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Microseconds, 1 µs to 60 s, three significant digits.
#[allow(clippy::expect_used)] // constant bounds, valid for hdrhistogram: cannot fail at run time
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// One worker's measurements in one phase.
#[derive(Default)]
pub struct Recorder {
    kinds: BTreeMap<&'static str, Histogram<u64>>,
    pub errors: u64,
    /// The first few failures, verbatim, to say what went wrong.
    pub error_samples: Vec<String>,
}

impl Recorder {
    pub fn record(&mut self, kind: &'static str, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        self.kinds
            .entry(kind)
            .or_insert_with(histogram)
            .saturating_record(micros);
    }

    pub fn error(&mut self, what: String) {
        self.errors += 1;
        if self.error_samples.len() < 5 {
            self.error_samples.push(what);
        }
    }

    pub fn merge(&mut self, other: Recorder) {
        for (kind, h) in other.kinds {
            let mine = self.kinds.entry(kind).or_insert_with(histogram);
            // Same bounds on both sides: adding cannot fail.
            let _ = mine.add(&h);
        }
        self.errors += other.errors;
        for e in other.error_samples {
            if self.error_samples.len() < 5 {
                self.error_samples.push(e);
            }
        }
    }

    pub fn count(&self, kind: &str) -> u64 {
        self.kinds.get(kind).map_or(0, Histogram::len)
    }

    pub fn latencies(&self) -> Vec<Latency> {
        self.kinds
            .iter()
            .map(|(kind, h)| Latency {
                kind: (*kind).to_owned(),
                count: h.len(),
                p50_ms: h.value_at_quantile(0.50) as f64 / 1000.0,
                p90_ms: h.value_at_quantile(0.90) as f64 / 1000.0,
                p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
                max_ms: h.max() as f64 / 1000.0,
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    pub kind: String,
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// What a measured phase did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseResult {
    pub name: String,
    /// What one unit of the phase is ("complete sign-in", …).
    pub unit: String,
    pub seconds: f64,
    pub completed: u64,
    pub per_second: f64,
    pub errors: u64,
    pub error_samples: Vec<String>,
    pub latencies: Vec<Latency>,
    /// CPU the server process used, in cores (1.0 = one core busy all the time).
    pub server_cpu_cores: f64,
    /// CPU the load generator used, in cores.
    pub loadgen_cpu_cores: f64,
    /// CPU the database server used, in cores (PostgreSQL; SQLite runs inside the server).
    pub database_cpu_cores: Option<f64>,
    /// SQLite: the busy share (0–1) of the server's busiest database thread — the writer's, since
    /// every API write goes through one connection.
    pub busiest_sqlite_thread: Option<f64>,
    /// The whole machine's busy share of all its cores (0–1).
    pub machine_busy: f64,
    /// The server's largest resident set seen during the phase (sampled every 100 ms), MiB.
    pub server_peak_rss_mib: f64,
    /// Write transactions per unit, where the database can count them (PostgreSQL: transaction
    /// ids assigned, which only writing transactions take).
    pub write_transactions_per_unit: Option<f64>,
}

/// The machine's raw ES256 verification speed, one core, measured in the same run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CryptoRates {
    /// RustCrypto `p256` (the backend webauthn-rs verifies with): key and signature parsed once,
    /// `verify(message, signature)` in a loop.
    pub p256_verifies_per_second: f64,
    /// `openssl speed ecdsap256`, single process; `None` without an `openssl` binary.
    pub openssl_verifies_per_second: Option<f64>,
}

/// One scenario: one database, one server, every phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub label: String,
    pub database: String,
    pub concurrency: usize,
    pub tenants: usize,
    pub users: usize,
    pub warmup_seconds: f64,
    pub crypto: CryptoRates,
    pub phases: Vec<PhaseResult>,
    /// Synchronous 4 KiB writes per second on the database's disk (SQLite runs).
    pub fsync_per_second: Option<f64>,
    /// The server's resident-set high-water mark over its whole life (`VmHWM`), MiB.
    pub server_peak_rss_mib: f64,
    pub started_at: String,
}

impl RunResult {
    pub fn phase(&self, name: &str) -> Option<&PhaseResult> {
        self.phases.iter().find(|p| p.name == name)
    }
}
