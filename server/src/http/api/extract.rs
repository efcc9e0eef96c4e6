//! Request extractors of the APIs. Each refuses with problem+json and the spec's code: a body
//! over the limit is `payload_too_large`; a body that is not the expected JSON (unknown member,
//! wrong type, missing member) is `invalid_request` naming the field.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request, rejection::BytesRejection},
    http::{StatusCode, header, request::Parts},
};
use latchkey_core::{ErrorCode, audit::RequestMeta};
use serde::de::DeserializeOwned;

use crate::http::problem::Problem;

/// The most any API request body may weigh.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON body, parsed with the offending field named on failure. An empty body is `{}`.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let declared_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| {
                let essence = v.split(';').next().unwrap_or_default().trim();
                essence.eq_ignore_ascii_case("application/json")
                    || essence.to_ascii_lowercase().ends_with("+json")
            });
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(body_rejection)?;
        if !declared_json {
            return Err(Problem::new(
                ErrorCode::InvalidRequest,
                "The request body must be JSON (Content-Type: application/json).",
            ));
        }
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        parse(bytes).map(Self)
    }
}

fn body_rejection(rejection: BytesRejection) -> Problem {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            ErrorCode::PayloadTooLarge,
            format!("The request body is larger than {} KiB.", BODY_LIMIT / 1024),
        )
    } else {
        Problem::new(
            ErrorCode::InvalidRequest,
            "The request body could not be read.",
        )
    }
}

/// Parses `bytes` as `T`, naming the field a failure is about.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        // The path names the member at fault, an unknown one included (`.` is the body).
        let field = if path == "." { String::new() } else { path };
        let detail = match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "The request body is not valid JSON.".to_owned()
            }
            _ if field.is_empty() => format!("The request body is not valid: {}.", clean(&message)),
            _ => format!("`{field}`: {}.", clean(&message)),
        };
        let mut problem = Problem::new(ErrorCode::InvalidRequest, detail);
        problem.field = (!field.is_empty()).then_some(field);
        problem
    })
}

/// serde's message without its " at line 1 column 12" suffix.
fn clean(message: &str) -> &str {
    message
        .split(" at line ")
        .next()
        .unwrap_or(message)
        .trim_end_matches('.')
}

/// A path segment (percent-decoded), with a problem+json refusal.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|_| Problem::new(ErrorCode::NotFound, "No such resource."))
    }
}

/// The query string, with a problem+json refusal naming what is wrong.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|e| {
                let message = e.body_text();
                Problem::new(
                    ErrorCode::InvalidRequest,
                    format!("The query string is not valid: {}.", clean(&message)),
                )
            })
    }
}

/// The audit facts of the request (source address, user agent).
pub struct Meta(pub RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(app::session::request_meta(parts)))
    }
}

/// The request's source address for rate limits (the trusted proxy's report, else the peer).
pub fn source_address(parts: &Parts) -> std::net::IpAddr {
    app::session::request_meta(parts)
        .ip()
        .and_then(|ip| ip.parse().ok())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]))
}

/// The bearer credential of the request, if it sent one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    bearer_of(&parts.headers)
}

/// The bearer credential in `headers`, if any.
pub fn bearer_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}
