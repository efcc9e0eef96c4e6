//! Request limits on anonymous endpoints (`rate_limited` with `Retry-After`), per source
//! ([`SourceKey`]: an IPv4 address or an IPv6 /64):
//! - per source across everything anonymous: the whole Client API of every tenant and the
//!   portal's sign-in and setup functions together, so that many tenants do not multiply what
//!   one address may send;
//! - per tenant and source on the Client API (registration calls, whose tenant is only known
//!   from the token, share one bucket per source).
//!
//! GCRA from `governor`: a steady rate with a burst of twice the rate. Counted per instance, in
//! memory: with several instances behind a load balancer a source gets the rate once per
//! instance it reaches. What the requests may write is bounded separately, in the database
//! (`latchkey_core::abuse`).

use std::{net::IpAddr, num::NonZeroU32, sync::Arc};

use axum::{
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock as _};
use latchkey_core::{ErrorCode, abuse::SourceKey};
use uuid::Uuid;

use super::problem::Problem;

/// Above this many tracked keys, idle ones are forgotten.
const SWEEP_ABOVE: usize = 50_000;

/// The portal's server functions an anonymous visitor may call (`app::api::auth`).
const PORTAL_ANONYMOUS: [&str; 5] = [
    "/portal/api/begin_sign_in",
    "/portal/api/finish_sign_in",
    "/portal/api/begin_enrollment",
    "/portal/api/finish_enrollment",
    "/portal/api/link_status",
];

/// Requests per second; 0 turns a limit off.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rates {
    pub per_source: u32,
    pub per_tenant_and_source: u32,
}

pub struct AnonymousLimiter {
    per_source: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_tenant: Option<DefaultKeyedRateLimiter<(Uuid, IpAddr)>>,
}

fn keyed<K: std::hash::Hash + Eq + Clone>(per_second: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
    Some(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)))
}

/// `Err(seconds to wait)` when `key` is over its rate.
fn check<K: std::hash::Hash + Eq + Clone>(
    limiter: &Option<DefaultKeyedRateLimiter<K>>,
    key: K,
) -> Result<(), u64> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    if limiter.len() > SWEEP_ABOVE {
        limiter.retain_recent();
    }
    limiter.check_key(&key).map_err(|not_until| {
        let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
        wait.as_secs_f64().ceil().max(1.0) as u64
    })
}

impl AnonymousLimiter {
    pub fn new(rates: Rates) -> Arc<Self> {
        Arc::new(Self {
            per_source: keyed(rates.per_source),
            per_tenant: keyed(rates.per_tenant_and_source),
        })
    }

    /// A Client API request: the source's overall budget, then its budget at this tenant.
    fn check_client(&self, tenant: Uuid, source: SourceKey) -> Result<(), u64> {
        check(&self.per_source, source.address())?;
        check(&self.per_tenant, (tenant, source.address()))
    }

    fn check_portal(&self, source: SourceKey) -> Result<(), u64> {
        check(&self.per_source, source.address())
    }
}

fn tenant_in(path: &str) -> Uuid {
    path.strip_prefix("/api/client/v1/tenants/")
        .and_then(|rest| rest.split('/').next())
        .and_then(|id| Uuid::parse_str(id).ok())
        .unwrap_or(Uuid::nil())
}

/// The request (rebuilt) and where it came from.
fn with_source(request: Request) -> (Request, SourceKey) {
    let (parts, body) = request.into_parts();
    let source = SourceKey::of(super::api::source_address(&parts));
    (Request::from_parts(parts, body), source)
}

const MESSAGE: &str = "Too many requests from this address. Try again shortly.";

/// The Client API's limits (inside its CORS layer, so a refusal still names the origin).
pub async fn limit_client_api(request: Request, next: Next) -> Response {
    let Some(limiter) = limiter_for(&request, |path| path.starts_with("/api/client/")) else {
        return next.run(request).await;
    };
    let tenant = tenant_in(request.uri().path());
    let (request, source) = with_source(request);
    match limiter.check_client(tenant, source) {
        Ok(()) => next.run(request).await,
        Err(wait) => with_retry_after(Problem::new(ErrorCode::RateLimited, MESSAGE).into_response(), wait),
    }
}

/// The portal's anonymous functions; refused the way a server function fails (its JSON error),
/// so the page shows the message.
pub async fn limit_portal(request: Request, next: Next) -> Response {
    let Some(limiter) = limiter_for(&request, |path| PORTAL_ANONYMOUS.contains(&path)) else {
        return next.run(request).await;
    };
    let (request, source) = with_source(request);
    match limiter.check_portal(source) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let error = app::PortalError::new(ErrorCode::RateLimited.as_str(), MESSAGE);
            let response = (
                StatusCode::TOO_MANY_REQUESTS,
                axum::Json(error),
            )
                .into_response();
            with_retry_after(response, wait)
        }
    }
}

fn limiter_for(request: &Request, applies: impl Fn(&str) -> bool) -> Option<Arc<AnonymousLimiter>> {
    applies(request.uri().path())
        .then(|| request.extensions().get::<Arc<AnonymousLimiter>>().cloned())
        .flatten()
}

fn with_retry_after(mut response: Response, wait: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(last: u8) -> SourceKey {
        SourceKey::of([192, 0, 2, last].into())
    }

    #[test]
    fn a_source_gets_its_burst_per_tenant_then_waits_and_others_are_unaffected() {
        let limiter = AnonymousLimiter::new(Rates {
            per_source: 0,
            per_tenant_and_source: 5,
        });
        let tenant = Uuid::new_v4();
        for _ in 0..10 {
            assert_eq!(limiter.check_client(tenant, source(1)), Ok(()));
        }
        assert_eq!(limiter.check_client(tenant, source(1)), Err(1));
        assert_eq!(limiter.check_client(tenant, source(2)), Ok(()));
        assert_eq!(limiter.check_client(Uuid::new_v4(), source(1)), Ok(()));
    }

    #[test]
    fn many_tenants_do_not_multiply_what_one_source_may_send() {
        let limiter = AnonymousLimiter::new(Rates {
            per_source: 5,
            per_tenant_and_source: 5,
        });
        // Ten requests (the burst) spread over ten tenants, then every tenant is refused…
        for _ in 0..10 {
            assert_eq!(limiter.check_client(Uuid::new_v4(), source(1)), Ok(()));
        }
        assert_eq!(limiter.check_client(Uuid::new_v4(), source(1)), Err(1));
        // … and so is the portal: one budget for everything anonymous.
        assert_eq!(limiter.check_portal(source(1)), Err(1));
        assert_eq!(limiter.check_portal(source(2)), Ok(()));
    }
}
