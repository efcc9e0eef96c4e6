//! The machine's physical limits, measured in the same run as the load: how many ES256
//! signatures one core verifies per second, with the crypto crate webauthn-rs uses (RustCrypto
//! `p256`) and with OpenSSL for comparison; and how many synchronous writes its disk completes.

use std::time::{Duration, Instant};

use latchkey_core::testing::verification::{RawEs256, openssl_verify_rate};

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
    fn the_reference_loop_verifies() {
        let rate = p256_verify_rate(Duration::from_millis(50));
        assert!(rate.is_ok_and(|r| r > 0.0));
    }
}
