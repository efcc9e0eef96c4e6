//! Rate limits on the Client API, per tenant and source address (`rate_limited` with
//! `Retry-After`). Registration calls, whose tenant is only known from the token, share one
//! bucket per address. GCRA from `governor`: a steady rate with a burst of twice the rate.
//!
//! Counted per instance, in memory: with several instances behind a load balancer an address
//! gets the rate once per instance it reaches.

use std::{net::IpAddr, num::NonZeroU32, sync::Arc};

use axum::{
    extract::Request,
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock as _};
use latchkey_core::ErrorCode;
use uuid::Uuid;

use crate::http::problem::Problem;

/// Above this many tracked keys, idle ones are forgotten.
const SWEEP_ABOVE: usize = 50_000;

pub struct ClientLimiter {
    limiter: DefaultKeyedRateLimiter<(Uuid, IpAddr)>,
}

impl ClientLimiter {
    /// `per_second` requests per second per (tenant, address), bursts of twice that; `None`
    /// for 0 (no limit).
    pub fn new(per_second: u32) -> Option<Arc<Self>> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
        Some(Arc::new(Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        }))
    }

    /// `Err(seconds to wait)` when the key is over its rate.
    fn check(&self, key: (Uuid, IpAddr)) -> Result<(), u64> {
        if self.limiter.len() > SWEEP_ABOVE {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            wait.as_secs_f64().ceil().max(1.0) as u64
        })
    }
}

fn tenant_in(path: &str) -> Uuid {
    path.strip_prefix("/api/client/v1/tenants/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|id| Uuid::parse_str(id).ok())
        .unwrap_or(Uuid::nil())
}

pub async fn limit(request: Request, next: Next) -> Response {
    let limiter = request
        .uri()
        .path()
        .starts_with("/api/client/")
        .then(|| request.extensions().get::<Arc<ClientLimiter>>().cloned())
        .flatten();
    let Some(limiter) = limiter else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    // IPv6 per /64, as one client controls a whole /64.
    let source = super::rate_limit::source_bucket(super::extract::source_address(&parts));
    let request = Request::from_parts(parts, body);
    match limiter.check((tenant_in(request.uri().path()), source)) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let mut response = Problem::new(
                ErrorCode::RateLimited,
                "Too many requests from this address. Try again shortly.",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_its_burst_then_waits_and_others_are_unaffected() {
        let limiter = ClientLimiter::new(5).unwrap_or_else(|| panic!("a limit"));
        let tenant = Uuid::new_v4();
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        for _ in 0..10 {
            assert_eq!(limiter.check((tenant, a)), Ok(()));
        }
        assert_eq!(limiter.check((tenant, a)), Err(1));
        assert_eq!(limiter.check((tenant, b)), Ok(()));
        assert_eq!(limiter.check((Uuid::new_v4(), a)), Ok(()));
        assert!(ClientLimiter::new(0).is_none());
    }
}
