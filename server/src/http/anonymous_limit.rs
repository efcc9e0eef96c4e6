//! Request limits on anonymous endpoints (`rate_limited` with `Retry-After`), per source
//! ([`SourceKey`]: an IPv4 address or an IPv6 /64):
//! - per source across everything anonymous: the whole Client API of every tenant and the
//!   portal's sign-in and setup functions together, so that many tenants do not multiply what
//!   one address may send. Counted first, before any database work (made-up tenant IDs count);
//! - per tenant and source on the Client API, counted only for tenants that exist
//!   (registration calls, whose tenant is only known from the token, share one bucket per
//!   source).
//!
//! GCRA from `governor`: a steady rate with a burst of twice the rate. Counted per instance, in
//! memory, each instance enforcing its share — the rate divided by the configured number of
//! instances (`LATCHKEY_INSTANCES`) — so that across a deployment a source never gets more than
//! the configured rate, and gets all of it when the load balancer spreads its requests (see the
//! README's "Several instances"). Shared counting in the database would cost a write per
//! anonymous request, which is what these limits exist to avoid. What the requests may write is
//! bounded separately, in the database (`latchkey_core::abuse`).

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

/// Requests per second across the deployment; 0 turns a limit off.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    pub per_source: u32,
    pub per_tenant_and_source: u32,
    /// The instances sharing the rates: each enforces `1 / instances` of them.
    pub instances: NonZeroU32,
}

impl Default for Rates {
    fn default() -> Self {
        Self {
            per_source: 0,
            per_tenant_and_source: 0,
            instances: NonZeroU32::MIN,
        }
    }
}

pub struct AnonymousLimiter {
    per_source: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_tenant: Option<DefaultKeyedRateLimiter<(Uuid, IpAddr)>>,
    instances: NonZeroU32,
}

/// This instance's share of `per_second` (a burst of twice the rate): the rate divided by
/// `instances`, the burst too, rounded up to at least one request.
fn share(per_second: u32, instances: NonZeroU32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    let period =
        std::time::Duration::from_secs_f64(f64::from(instances.get()) / f64::from(rate.get()));
    let burst = NonZeroU32::new(rate.get().saturating_mul(2).div_ceil(instances.get()))
        .unwrap_or(NonZeroU32::MIN);
    Some(Quota::with_period(period)?.allow_burst(burst))
}

fn keyed<K: std::hash::Hash + Eq + Clone>(
    per_second: u32,
    instances: NonZeroU32,
) -> Option<DefaultKeyedRateLimiter<K>> {
    share(per_second, instances).map(RateLimiter::keyed)
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
            per_source: keyed(rates.per_source, rates.instances),
            per_tenant: keyed(rates.per_tenant_and_source, rates.instances),
            instances: rates.instances,
        })
    }

    /// The instances the limits are shared by.
    pub fn instances(&self) -> NonZeroU32 {
        self.instances
    }

    /// The source's budget for everything anonymous.
    fn check_source(&self, source: SourceKey) -> Result<(), u64> {
        check(&self.per_source, source.address())
    }

    /// The source's budget at one tenant's Client API.
    fn check_tenant(&self, tenant: Uuid, source: SourceKey) -> Result<(), u64> {
        check(&self.per_tenant, (tenant, source.address()))
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

const CLIENT_PREFIX: &str = "/api/client/";

/// The source's budget on the Client API: outermost, before CORS looks anything up, so that a
/// flood costs no database work. Its refusal names the request's origin whatever it is (it
/// says nothing but "slow down"), so that a page's script can read it.
pub async fn limit_client_source(request: Request, next: Next) -> Response {
    let Some(limiter) = limiter_for(&request, |path| path.starts_with(CLIENT_PREFIX)) else {
        return next.run(request).await;
    };
    let origin = request.headers().get(header::ORIGIN).cloned();
    let (request, source) = with_source(request);
    match limiter.check_source(source) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            crate::metrics::rate_limited("source");
            let mut response = with_retry_after(
                Problem::new(ErrorCode::RateLimited, MESSAGE).into_response(),
                wait,
            );
            if let Some(origin) = origin {
                super::api::name_origin(&mut response, origin);
            }
            response
        }
    }
}

/// The source's budget at the tenant of the path (registration calls: one shared bucket).
/// Inside the CORS layer: counted only for tenants that exist, and the refusal names the
/// tenant's origin.
pub async fn limit_client_tenant(request: Request, next: Next) -> Response {
    let Some(limiter) = limiter_for(&request, |path| path.starts_with(CLIENT_PREFIX)) else {
        return next.run(request).await;
    };
    let tenant = tenant_in(request.uri().path());
    let (request, source) = with_source(request);
    match limiter.check_tenant(tenant, source) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            crate::metrics::rate_limited("tenant_source");
            with_retry_after(
                Problem::new(ErrorCode::RateLimited, MESSAGE).into_response(),
                wait,
            )
        }
    }
}

/// The portal's anonymous functions; refused the way a server function fails (its JSON error),
/// so the page shows the message.
pub async fn limit_portal(request: Request, next: Next) -> Response {
    let Some(limiter) = limiter_for(&request, |path| PORTAL_ANONYMOUS.contains(&path)) else {
        return next.run(request).await;
    };
    let (request, source) = with_source(request);
    match limiter.check_source(source) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            crate::metrics::rate_limited("portal");
            let error = app::PortalError::new(ErrorCode::RateLimited.as_str(), MESSAGE);
            let response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(error)).into_response();
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
            ..Rates::default()
        });
        let tenant = Uuid::new_v4();
        for _ in 0..10 {
            assert_eq!(limiter.check_tenant(tenant, source(1)), Ok(()));
        }
        assert_eq!(limiter.check_tenant(tenant, source(1)), Err(1));
        assert_eq!(limiter.check_tenant(tenant, source(2)), Ok(()));
        assert_eq!(limiter.check_tenant(Uuid::new_v4(), source(1)), Ok(()));
        assert_eq!(limiter.check_source(source(1)), Ok(()), "no source limit");
    }

    #[test]
    fn one_source_has_one_budget() {
        let limiter = AnonymousLimiter::new(Rates {
            per_source: 5,
            per_tenant_and_source: 0,
            ..Rates::default()
        });
        for _ in 0..10 {
            assert_eq!(limiter.check_source(source(1)), Ok(()));
        }
        assert_eq!(limiter.check_source(source(1)), Err(1));
        assert_eq!(limiter.check_source(source(2)), Ok(()));
        assert_eq!(limiter.check_tenant(Uuid::new_v4(), source(1)), Ok(()));
    }

    #[test]
    fn each_of_several_instances_enforces_its_share() {
        let instances = NonZeroU32::new(2).expect("two");
        let limiter = AnonymousLimiter::new(Rates {
            per_source: 5,
            per_tenant_and_source: 0,
            instances,
        });
        // Half of the burst of 10 here; the other instance allows the other half.
        for _ in 0..5 {
            assert_eq!(limiter.check_source(source(1)), Ok(()));
        }
        assert!(limiter.check_source(source(1)).is_err());
        // Refilled at half the rate: one request every 0.4 s.
        let quota = share(5, instances).expect("a limit");
        assert_eq!(
            quota.replenish_interval(),
            std::time::Duration::from_millis(400)
        );
        // A rate smaller than the instances still lets one request through each.
        let tiny = share(1, NonZeroU32::new(3).expect("three")).expect("a limit");
        assert_eq!(tiny.burst_size(), NonZeroU32::MIN);
        assert_eq!(share(0, instances), None, "0 is off");
    }
}
