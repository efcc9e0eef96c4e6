//! Throttling of failed API-key authentications per source address: after
//! [`MAX_FAILURES`] failures within [`WINDOW`], the address gets `rate_limited` (with
//! `Retry-After`) until the window ends, before its key is even looked at.
//!
//! Hand-written rather than `governor`: only *failures* count, and a request must be refused on
//! a peek at the count without spending anything — a keyed GCRA limiter charges on every check.
//! The counts live in this instance's memory: behind a load balancer each instance throttles
//! on its own, which bounds guessing to instances × limit (still hopeless against 256-bit keys;
//! the limit is about noise and log spam).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

pub const MAX_FAILURES: u32 = 20;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Beyond this many tracked addresses, finished windows are swept on the next failure.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Default)]
pub struct FailedAuthLimiter {
    // Held for a map operation only, never across an await.
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailedAuthLimiter {
    /// `Some(seconds to wait)` while `source` is over the limit.
    pub fn blocked_for(&self, source: IpAddr, now: Instant) -> Option<u64> {
        let windows = self.windows.lock().ok()?;
        let (started, failures) = windows.get(&source)?;
        let ends = *started + WINDOW;
        (*failures >= MAX_FAILURES && ends > now)
            .then(|| (ends - now).as_secs_f64().ceil().max(1.0) as u64)
    }

    /// Counts a failed authentication from `source`.
    pub fn record_failure(&self, source: IpAddr, now: Instant) {
        let Ok(mut windows) = self.windows.lock() else {
            return;
        };
        if windows.len() > SWEEP_ABOVE {
            windows.retain(|_, (started, _)| *started + WINDOW > now);
        }
        let entry = windows.entry(source).or_insert((now, 0));
        if entry.0 + WINDOW <= now {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_the_limit_until_its_window_ends() {
        let limiter = FailedAuthLimiter::default();
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let start = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            limiter.record_failure(a, start);
        }
        assert_eq!(limiter.blocked_for(a, start), None);
        limiter.record_failure(a, start);
        assert_eq!(limiter.blocked_for(a, start), Some(WINDOW.as_secs()));
        assert_eq!(limiter.blocked_for(b, start), None);
        let later = start + WINDOW;
        assert_eq!(limiter.blocked_for(a, later), None);
        limiter.record_failure(a, later);
        assert_eq!(limiter.blocked_for(a, later), None);
    }
}
