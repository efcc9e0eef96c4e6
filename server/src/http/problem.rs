//! RFC 9457 problem details: the one shape of every 4xx/5xx answer under `/api`.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use latchkey_core::{Error, ErrorCode};
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem: `code` is the stable, documented part; `detail` is for people.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"type": "https://latchkey.dev/problems/invalid_request",
    "title": "The request is not valid", "status": 400,
    "detail": "`ttl_seconds`: ttl_seconds must be between 60 and 3600.",
    "code": "invalid_request", "field": "ttl_seconds"}))]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    #[schema(value_type = String)]
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// The spec's stable error code: `invalid_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `passkeys_disabled`, `token_invalid`, `token_expired`, `token_used`,
    /// `scope_required`, `ceremony_invalid`, `ceremony_expired`, `origin_mismatch`,
    /// `rp_id_mismatch`, `challenge_mismatch`, `user_verification_required`,
    /// `credential_unknown`, `credential_revoked`, `credential_exists`, `counter_regressed`,
    /// `payload_too_large`, `rate_limited`, `internal`.
    #[schema(value_type = String)]
    pub code: ErrorCode,
    /// The request member at fault (`invalid_request`), e.g. `ttl_seconds` or `scopes[0]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub field: Option<String>,
    /// The request's ID (also in the `X-Request-Id` header and the server's log line for the
    /// request): quote it to whoever runs the instance.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "5f1c0a9e-1a")]
    pub request_id: Option<String>,
    /// `credential_unknown` at sign-in: `true` when the tenant has no credential with this ID
    /// at all, so the browser may be told to forget it
    /// (`PublicKeyCredential.signalUnknownCredential`). Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub signal_unknown_credential: Option<bool>,
}

impl Problem {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("https://latchkey.dev/problems/{code}"),
            title: code.title(),
            status: code.http_status(),
            detail: detail.into(),
            code,
            field: None,
            request_id: super::request_id::current(),
            signal_unknown_credential: None,
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status.as_u16();
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(&self)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        // For the metrics: the outcome of a ceremony step is its problem code.
        response.extensions_mut().insert(self.code);
        response
    }
}

/// The HTTP face of a domain error. Internal errors are logged here, with their detail, and
/// answered without it.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        Self(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.0.is_internal() {
            tracing::error!(error = %self.0, "request failed");
        }
        if self.0.code() == ErrorCode::RateLimited {
            // The only limit the services decide: unfinished ceremonies per source.
            crate::metrics::rate_limited("open_ceremonies");
        }
        let mut problem = Problem::new(self.0.code(), self.0.public_message());
        problem.field = self.0.field().map(str::to_owned);
        problem.signal_unknown_credential = self.0.signals_unknown_credential().then_some(true);
        let mut response = problem.into_response();
        if let Some(seconds) = self.0.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
