//! The verification step of a sign-in alone — parse the browser's response JSON, read the stored
//! credential, verify the ES256 assertion — against the raw ES256 verify rate of the crypto
//! backend it uses (RustCrypto `p256`), both measured by criterion in the same run, plus
//! `openssl speed ecdsap256` as the machine's limit.
//!
//! `cargo bench -p latchkey-core --bench verification`. Prints verifies/s for both and their
//! ratio, and writes `verification.json` (read by `latchkey-loadgen suite` for BENCHMARKS.md)
//! into `LATCHKEY_BENCH_DIR` (default: the system's temporary directory, `latchkey-bench/`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the bench failing

use std::{path::Path, time::Duration};

use criterion::{Criterion, Throughput};
use latchkey_core::testing::verification::{RawEs256, VerificationStep, openssl_verify_rate};

const GROUP: &str = "es256";
const RAW: &str = "p256_verify";
const STEP: &str = "verification_step";

/// Mean nanoseconds per iteration, from criterion's saved estimate.
fn mean_ns(criterion_dir: &Path, function: &str) -> f64 {
    let file = criterion_dir
        .join(GROUP)
        .join(function)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let json: serde_json::Value = serde_json::from_str(&text).expect("criterion's estimates");
    json["mean"]["point_estimate"]
        .as_f64()
        .expect("a mean estimate")
}

/// Verifies per second of the step and of the raw verify, measured in 200 alternating slices of
/// 20 operations each.
fn interleaved(step: &VerificationStep, raw: &RawEs256) -> (f64, f64) {
    use std::time::Instant;
    let (mut step_time, mut raw_time) = (Duration::ZERO, Duration::ZERO);
    const SLICE: u32 = 20;
    const SLICES: u32 = 200;
    for _ in 0..SLICES {
        let started = Instant::now();
        for _ in 0..SLICE {
            assert!(raw.verify());
        }
        raw_time += started.elapsed();
        let started = Instant::now();
        for _ in 0..SLICE {
            step.run().expect("verifies");
        }
        step_time += started.elapsed();
    }
    let ops = f64::from(SLICE * SLICES);
    (ops / step_time.as_secs_f64(), ops / raw_time.as_secs_f64())
}

fn main() {
    let dir = std::env::var_os("LATCHKEY_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("latchkey-bench"));
    let criterion_dir = dir.join("criterion");
    std::fs::create_dir_all(&criterion_dir).expect("bench directory");

    let step = VerificationStep::es256().expect("a verification fixture");
    step.run().expect("the fixture's assertion verifies");
    assert!(
        step.run_tampered().is_err(),
        "a tampered signature must fail"
    );
    let raw = RawEs256::new().expect("a reference signature");
    assert!(raw.verify());

    let mut c = Criterion::default()
        .output_directory(&criterion_dir)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    let mut group = c.benchmark_group(GROUP);
    // Throughput in elements: criterion prints verifies per second.
    group.throughput(Throughput::Elements(1));
    group.bench_function(RAW, |b| b.iter(|| raw.verify()));
    group.bench_function(STEP, |b| b.iter(|| step.run()));
    group.finish();
    c.final_summary();

    // `cargo test --benches` runs this in test mode, which measures nothing.
    if !criterion_dir.join(GROUP).join(STEP).join("new").exists() {
        return;
    }
    let raw_rate = 1e9 / mean_ns(&criterion_dir, RAW);
    let step_rate = 1e9 / mean_ns(&criterion_dir, STEP);
    // Criterion measures one function after the other; on a shared VM the CPU's speed drifts
    // between them by more than the difference sought. The ratio is therefore also measured
    // interleaved: short alternating slices of both, so that drift hits both alike.
    let (step_share, raw_share) = interleaved(&step, &raw);
    let ratio = step_share / raw_share;
    let openssl = openssl_verify_rate(2);
    println!(
        "\nES256, one core (criterion): p256 verify {raw_rate:.0}/s; Latchkey's verification step \
         {step_rate:.0}/s; interleaved: the step runs at {:.1} % of the raw rate (target ≥ 75 %){}",
        ratio * 100.0,
        openssl.map_or(String::new(), |o| format!(
            "; OpenSSL {o:.0}/s (the step is {:.1} % of it)",
            step_rate / o * 100.0
        ))
    );
    let summary = serde_json::json!({
        "step_per_second": step_rate,
        "raw_p256_per_second": raw_rate,
        "interleaved_ratio": ratio,
        "interleaved_step_per_second": step_share,
        "interleaved_raw_p256_per_second": raw_share,
        "openssl_per_second": openssl,
    });
    let file = dir.join("verification.json");
    std::fs::write(&file, summary.to_string()).expect("summary written");
    println!("summary: {}", file.display());
}
