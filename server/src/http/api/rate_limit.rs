//! Throttling of failed API-key authentications per source: after [`MAX_FAILURES`] failures
//! within [`WINDOW`], further *failures* from the source answer `rate_limited` (with
//! `Retry-After`) until the window ends. A valid key is always served: behind a proxy every
//! backend may share one address, and someone else's bad keys must not lock them out.
//!
//! Hand-written rather than `governor`: only failures count, and whether a source is over the
//! limit is a peek that spends nothing — a keyed GCRA limiter charges on every check.
//! The counts live in this instance's memory: behind a load balancer each instance allows its
//! share of the failures (the limit divided by `LATCHKEY_INSTANCES`, at least one), as the
//! anonymous request limits do (guessing is hopeless against 256-bit keys anyway; the limit is
//! about noise and log spam). Memory is bounded: at most [`MAX_TRACKED`] sources,
//! IPv6 counted per /64 (one subscriber's whole network, see [`source_bucket`]).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

pub const MAX_FAILURES: u32 = 20;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Sources tracked at most (about 40 bytes each). When full, finished windows are swept; if
/// none has finished, an arbitrary source is forgotten (its next failures start a new window).
pub const MAX_TRACKED: usize = 100_000;

/// What one client controls, as every per-address limit counts it
/// ([`latchkey_core::abuse::SourceKey`]: an IPv4 address or an IPv6 /64).
pub fn source_bucket(ip: IpAddr) -> IpAddr {
    latchkey_core::abuse::SourceKey::of(ip).address()
}

pub struct FailedAuthLimiter {
    // Held for a map operation only, never across an await.
    windows: Mutex<Windows>,
    /// Failures allowed per window on this instance: its share of [`MAX_FAILURES`].
    max_failures: u32,
}

impl Default for FailedAuthLimiter {
    fn default() -> Self {
        Self::for_share(std::num::NonZeroU32::MIN)
    }
}

#[derive(Default)]
struct Windows {
    by_source: HashMap<IpAddr, (Instant, u32)>,
    /// When finished windows were last swept: at most once a second, so that a flood from more
    /// sources than the cap costs a constant per failure, not a scan of the whole map.
    swept_at: Option<Instant>,
}

/// How often a full map may be swept of finished windows.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl FailedAuthLimiter {
    /// A limiter allowing this instance's share of the failures when `instances` share them.
    pub fn for_share(instances: std::num::NonZeroU32) -> Self {
        Self {
            windows: Mutex::default(),
            max_failures: MAX_FAILURES.div_ceil(instances.get()),
        }
    }

    /// `Some(seconds to wait)` while `source` is over the limit.
    pub fn blocked_for(&self, source: IpAddr, now: Instant) -> Option<u64> {
        let windows = self.windows.lock().ok()?;
        let (started, failures) = windows.by_source.get(&source_bucket(source))?;
        let ends = *started + WINDOW;
        (*failures >= self.max_failures && ends > now)
            .then(|| (ends - now).as_secs_f64().ceil().max(1.0) as u64)
    }

    /// Counts a failed authentication from `source`.
    pub fn record_failure(&self, source: IpAddr, now: Instant) {
        let Ok(mut windows) = self.windows.lock() else {
            return;
        };
        let source = source_bucket(source);
        let Windows {
            by_source,
            swept_at,
        } = &mut *windows;
        if !by_source.contains_key(&source) && by_source.len() >= MAX_TRACKED {
            if swept_at.is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY) {
                by_source.retain(|_, (started, _)| *started + WINDOW > now);
                *swept_at = Some(now);
            }
            if by_source.len() >= MAX_TRACKED
                && let Some(victim) = by_source.keys().next().copied()
            {
                by_source.remove(&victim);
            }
        }
        let entry = by_source.entry(source).or_insert((now, 0));
        if entry.0 + WINDOW <= now {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.windows
            .lock()
            .map(|w| w.by_source.len())
            .unwrap_or_default()
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

    #[test]
    fn ipv6_counts_per_64_and_memory_is_bounded() {
        let limiter = FailedAuthLimiter::default();
        let start = Instant::now();
        // One attacker's /64: every address in it shares the count.
        for i in 0..MAX_FAILURES {
            let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().expect("ip");
            limiter.record_failure(ip, start);
        }
        let other_in_same_64: IpAddr = "2001:db8:1:2:ffff::1".parse().expect("ip");
        assert!(limiter.blocked_for(other_in_same_64, start).is_some());
        let next_64: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(limiter.blocked_for(next_64, start), None);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(source_bucket(mapped), IpAddr::from([192, 0, 2, 7]));

        // A flood from more sources than the cap never grows the map past it.
        for i in 0..(MAX_TRACKED as u32 + 5_000) {
            limiter.record_failure(IpAddr::from(i.to_be_bytes()), start);
        }
        assert!(limiter.tracked() <= MAX_TRACKED);
    }
}
