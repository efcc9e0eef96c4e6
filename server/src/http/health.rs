//! Liveness and readiness probes for orchestrators and load balancers.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use latchkey_core::{ErrorCode, Services};
use serde_json::json;

use super::problem::Problem;

pub fn router<S>(draining: Draining) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Services: axum::extract::FromRef<S>,
{
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(axum::Extension(draining))
}

/// Set once the instance has been told to stop: from then on it is not ready, while it goes on
/// answering (for the shutdown delay, and the requests in flight).
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The process is up and answering.
async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// The process can do useful work: it is not shutting down, and its database answers, is fully
/// migrated and takes writes.
async fn readyz(
    State(services): State<Services>,
    axum::Extension(draining): axum::Extension<Draining>,
) -> axum::response::Response {
    if draining.is_draining() {
        return Problem::new(ErrorCode::Internal, "The instance is shutting down.")
            .with_status(StatusCode::SERVICE_UNAVAILABLE)
            .into_response();
    }
    match services.instance().readiness().await {
        Ok(()) => Json(json!({
            "status": "ready",
            "database": services.backend().label(),
        }))
        .into_response(),
        Err(not_ready) => {
            tracing::warn!(reason = ?not_ready, "readiness check failed");
            Problem::new(ErrorCode::Internal, not_ready.message())
                .with_status(StatusCode::SERVICE_UNAVAILABLE)
                .into_response()
        }
    }
}
