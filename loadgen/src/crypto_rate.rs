//! The machine's physical limit for the verify step, measured in the same run as the load: how
//! many ES256 signatures one core verifies per second, with the crypto crate webauthn-rs uses
//! (RustCrypto `p256`) and with OpenSSL for comparison.

use std::time::{Duration, Instant};

use latchkey_core::testing::verification::RawEs256;

use crate::stats::CryptoRates;

/// Verifies one fixed signature in a loop on the current thread for about `budget`.
pub fn p256_verify_rate(budget: Duration) -> Result<f64, String> {
    let raw = RawEs256::new()?;
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < budget {
        for _ in 0..64 {
            if !raw.verify() {
                return Err("the reference signature did not verify".into());
            }
        }
        done += 64;
    }
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

/// `openssl speed ecdsap256` (one process), if the machine has OpenSSL's command line.
pub fn openssl_verify_rate(seconds: u32) -> Option<f64> {
    let out = std::process::Command::new("openssl")
        .args(["speed", "-seconds", &seconds.to_string(), "ecdsap256"])
        .output()
        .ok()?;
    parse_openssl_speed(&String::from_utf8_lossy(&out.stdout))
}

/// The `verify/s` column of the `nistp256` line.
fn parse_openssl_speed(out: &str) -> Option<f64> {
    out.lines()
        .find(|l| l.contains("ecdsa") && l.contains("nistp256"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

/// How many small synchronous writes (4 KiB, then `fdatasync`) the disk under `dir` completes per
/// second: the bound of a database that flushes every commit (SQLite `synchronous=full`).
pub fn fsync_rate(dir: &std::path::Path, budget: Duration) -> Result<f64, String> {
    use std::io::{Seek, SeekFrom, Write};
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).map_err(|e| e.to_string())?;
    let page = [0x5au8; 4096];
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < budget {
        file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
        file.write_all(&page).map_err(|e| e.to_string())?;
        file.sync_data().map_err(|e| e.to_string())?;
        done += 1;
    }
    let rate = done as f64 / started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    Ok(rate)
}

pub fn measure() -> Result<CryptoRates, String> {
    Ok(CryptoRates {
        p256_verifies_per_second: p256_verify_rate(Duration::from_secs(2))?,
        openssl_verifies_per_second: openssl_verify_rate(2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_speed_output_is_read() {
        let out = "version: 3.0.15\n                              sign    verify    sign/s verify/s\n 256 bits ecdsa (nistp256)   0.0000s   0.0001s  41234.5  19876.3\n";
        assert_eq!(parse_openssl_speed(out), Some(19876.3));
        assert_eq!(parse_openssl_speed("nothing here"), None);
    }

    #[test]
    fn the_reference_loop_verifies() {
        let rate = p256_verify_rate(Duration::from_millis(50));
        assert!(rate.is_ok_and(|r| r > 0.0));
    }
}
