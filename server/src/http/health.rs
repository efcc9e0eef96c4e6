//! Liveness and readiness probes for orchestrators and load balancers.

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use latchkey_core::{ErrorCode, Services};
use serde_json::json;

use super::problem::Problem;

pub fn router<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Services: axum::extract::FromRef<S>,
{
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is up and answering.
async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// The process can do useful work: its database answers, is fully migrated and takes writes.
async fn readyz(State(services): State<Services>) -> axum::response::Response {
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
