//! The Server API's authentication: `Authorization: Bearer lk_sk_…`, looked up by hash on every
//! request (a revoked key is refused at once, on every instance), with failed attempts
//! throttled per source address (a valid key is always served).

use std::{sync::Arc, time::Instant};

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{HeaderValue, header, request::Parts},
    response::{IntoResponse, Response},
};
use latchkey_core::{Error, ErrorCode, Services, tenants::api_keys::ApiKeyPrincipal};

use super::{
    extract::{bearer, source_address},
    rate_limit::FailedAuthLimiter,
};
use crate::http::problem::{ApiError, Problem};

/// The tenant backend behind the request's API key.
pub struct BackendKey(pub ApiKeyPrincipal);

impl<S> FromRequestParts<S> for BackendKey
where
    S: Send + Sync,
    Services: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let limiter = parts.extensions.get::<Arc<FailedAuthLimiter>>().cloned();
        let source = source_address(parts);
        let services = Services::from_ref(state);
        let presented = bearer(parts).unwrap_or_default();
        // The key is looked at first: a valid key is served whatever else came from its
        // address (one indexed read; a malformed key costs none). Only failures are throttled.
        match services.api_keys().authenticate(presented).await {
            Ok(principal) => Ok(Self(principal)),
            Err(err) => {
                if err.code() == ErrorCode::Unauthorized
                    && let Some(limiter) = limiter
                {
                    if let Some(wait) = limiter.blocked_for(source, Instant::now()) {
                        crate::metrics::rate_limited("failed_auth");
                        let mut response = Problem::new(
                            ErrorCode::RateLimited,
                            "Too many failed authentications from this address. Try again later.",
                        )
                        .into_response();
                        response
                            .headers_mut()
                            .insert(header::RETRY_AFTER, HeaderValue::from(wait));
                        return Err(response);
                    }
                    limiter.record_failure(source, Instant::now());
                }
                let err = match err {
                    Error::Unauthorized => Error::refused(
                        ErrorCode::Unauthorized,
                        "Send a valid API key: Authorization: Bearer lk_sk_…",
                    ),
                    other => other,
                };
                let mut response = ApiError(err).into_response();
                if response.status() == axum::http::StatusCode::UNAUTHORIZED {
                    response.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"latchkey\""),
                    );
                }
                Err(response)
            }
        }
    }
}
