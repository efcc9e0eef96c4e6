//! Prometheus metrics, served on their own listen address (`LATCHKEY_METRICS_BIND`, off by
//! default) so that they are never public by accident.
//!
//! The `metrics` facade with `metrics-exporter-prometheus` rendering the text format: the
//! recorder is process-wide (one per process, whatever number of servers a test starts), and
//! the server's request middleware is only installed when metrics are on, so a server without
//! them pays nothing.
//!
//! Label cardinality is bounded by construction: `route` is the matched route template (never
//! the path: tenant and user ids are in paths), `method` one of the standard methods or
//! `other`, `status` an HTTP status, `code` one of the contract's error codes. There are no
//! per-tenant labels: tenants are unbounded (anyone with an admin account makes more), and a
//! tenant's own figures are on its dashboard in the portal.

use std::{
    future::IntoFuture,
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use latchkey_core::{ErrorCode, Services};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Request latency buckets, in seconds: from a cached read to a slow sign-up.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// How often histograms are drained into their buckets between scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first call; `None` if it cannot be (logged).
pub fn recorder() -> Option<PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_duration_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(err) => {
                    tracing::error!(error = %err, "metrics recorder not installed");
                    None
                }
            }
        })
        .clone()
}

fn describe() {
    describe_gauge!(
        "latchkey_build_info",
        "Always 1; the version label is the running release."
    );
    describe_counter!(
        "latchkey_http_requests_total",
        "HTTP requests answered, by route template, method and status."
    );
    describe_histogram!(
        "latchkey_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to the response's head, by route template and method."
    );
    describe_counter!(
        "latchkey_ceremonies_total",
        "Client API ceremony steps by kind (registration, authentication), step (options, \
         verify) and outcome (ok or the problem code)."
    );
    describe_counter!(
        "latchkey_enrollment_tokens_issued_total",
        "Enrollment tokens issued through the Server API."
    );
    describe_counter!(
        "latchkey_token_validations_total",
        "Validation tokens checked through the Server API, by outcome (valid or the reason)."
    );
    describe_counter!(
        "latchkey_rate_limited_total",
        "Requests refused by a rate limit, by limit."
    );
    describe_gauge!(
        "latchkey_db_pool_connections",
        "Database connections by pool (main, writer) and state (in_use, idle, max)."
    );
    describe_gauge!(
        "latchkey_sqlite_step_queue_depth",
        "Write steps and reads waiting for SQLite's step thread."
    );
    describe_gauge!(
        "latchkey_refusals_pending",
        "Refused anonymous attempts counted and not yet written to the audit log."
    );
    gauge!("latchkey_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Counts a refusal by one of the rate limits (`source`, `tenant_source`, `portal`,
/// `failed_auth`, `open_ceremonies`).
pub fn rate_limited(limit: &'static str) {
    counter!("latchkey_rate_limited_total", "limit" => limit).increment(1);
}

/// The metrics endpoint, bound to `addr`, until the task is aborted.
pub async fn serve(
    addr: SocketAddr,
    handle: PrometheusHandle,
    services: Services,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let upkeep = handle.clone();
    let router = Router::new()
        .route("/metrics", get(render))
        .with_state(Arc::new((handle, services)));
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        let served = axum::serve(listener, router).into_future();
        tokio::pin!(served);
        loop {
            tokio::select! {
                result = &mut served => {
                    if let Err(err) = result {
                        tracing::error!(error = %err, "the metrics listener failed");
                    }
                    return;
                }
                _ = tick.tick() => upkeep.run_upkeep(),
            }
        }
    });
    Ok((bound, task))
}

async fn render(State(state): State<Arc<(PrometheusHandle, Services)>>) -> Response {
    let (handle, services) = &*state;
    let db = services.database_gauges();
    for (name, pool) in [("main", db.pool), ("writer", db.writer_pool)] {
        if let Some(pool) = pool {
            for (state, value) in [
                ("in_use", pool.in_use()),
                ("idle", pool.idle),
                ("max", pool.max),
            ] {
                gauge!("latchkey_db_pool_connections", "pool" => name, "state" => state)
                    .set(f64::from(value));
            }
        }
    }
    if let Some(depth) = db.step_queue {
        gauge!("latchkey_sqlite_step_queue_depth").set(depth as f64);
    }
    gauge!("latchkey_refusals_pending").set(services.refusals_pending() as f64);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        handle.render(),
    )
        .into_response()
}

/// Counts and times every request by its route template; for the Client API's ceremonies, also
/// their outcome.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let method = method_label(request.method());
    let response = next.run(request).await;
    let status = response.status();
    histogram!("latchkey_http_request_duration_seconds", "route" => route.clone(), "method" => method)
        .record(started.elapsed().as_secs_f64());
    if let Some((kind, step)) = ceremony_step(&route) {
        let outcome = match response.extensions().get::<ErrorCode>() {
            Some(code) => code.as_str(),
            None if status.is_success() => "ok",
            None => "error",
        };
        counter!("latchkey_ceremonies_total", "kind" => kind, "step" => step, "outcome" => outcome)
            .increment(1);
    }
    counter!(
        "latchkey_http_requests_total",
        "route" => route,
        "method" => method,
        "status" => status.as_str().to_owned()
    )
    .increment(1);
    response
}

/// A standard method's name; anything else is `other` (a client may send any token).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The Client API ceremony a route template is a step of.
fn ceremony_step(route: &str) -> Option<(&'static str, &'static str)> {
    let rest = route.strip_prefix("/api/client/v1/")?;
    let kind = if rest.starts_with("registration/") {
        "registration"
    } else if rest.contains("/authentication/") {
        "authentication"
    } else {
        return None;
    };
    let step = if rest.ends_with("/options") {
        "options"
    } else if rest.ends_with("/verify") {
        "verify"
    } else {
        return None;
    };
    Some((kind, step))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ceremony_routes_have_ceremony_labels() {
        assert_eq!(
            ceremony_step("/api/client/v1/registration/options"),
            Some(("registration", "options"))
        );
        assert_eq!(
            ceremony_step("/api/client/v1/tenants/{tenant_id}/authentication/verify"),
            Some(("authentication", "verify"))
        );
        assert_eq!(ceremony_step("/api/v1/tokens/validate"), None);
        assert_eq!(
            ceremony_step("/api/client/v1/tenants/{tenant_id}/config"),
            None
        );
        assert_eq!(
            method_label(&Method::from_bytes(b"BREW").expect("a token")),
            "other"
        );
    }
}
