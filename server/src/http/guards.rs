//! Cross-cutting protections: response security headers and the cross-origin request guard for
//! the portal's state-changing endpoints.

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderName, HeaderValue, Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use latchkey_core::ErrorCode;

use super::problem::Problem;

/// Headers every response carries unless the handler set its own. Portal pages set a
/// nonce-based Content-Security-Policy while rendering; anything else (JSON, assets, errors)
/// gets a policy that allows nothing, since none of it is meant to run as a document.
pub fn default_headers(https: bool) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = vec![
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            // Setup and invitation links carry a secret in their query: never send it onwards.
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        (
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(
                "publickey-credentials-create=(self), publickey-credentials-get=(self), \
                 camera=(), microphone=(), geolocation=(), payment=()",
            ),
        ),
    ];
    if https {
        headers.push((
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    headers
}

/// Refuses writes to the portal's endpoints (its server functions under `/portal/api/`, and its
/// plain routes under `/portal/`, such as the metadata upload) that a browser sent on behalf of
/// another site (cross-site request forgery). Browsers label every request with `Sec-Fetch-Site`; older
/// ones at least send `Origin` on cross-origin writes, which must then name this host. A request
/// with neither did not come from a browser page and cannot ride on an operator's cookie.
/// Where every portal endpoint lives (server functions: [`app::api::SERVER_FN_PREFIX`]).
const PORTAL_PREFIX: &str = "/portal/";

pub async fn same_origin_only(request: Request, next: Next) -> Response {
    let guarded = request.uri().path().starts_with(PORTAL_PREFIX);
    if guarded && is_cross_origin(request.method(), request.headers()) {
        tracing::warn!(
            path = %request.uri().path(),
            "cross-origin request to a portal endpoint refused"
        );
        return Problem::new(
            ErrorCode::Forbidden,
            "Cross-origin requests to the portal are not allowed.",
        )
        .into_response();
    }
    next.run(request).await
}

fn is_cross_origin(method: &Method, headers: &HeaderMap) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        // `none` is a user-initiated navigation (typed URL, bookmark).
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| url::Url::parse(o).ok())
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(port) => format!("{h}:{port}"),
                None => h.to_owned(),
            })
        });
    origin_host.is_none() || origin_host.as_deref() != host
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    /// A named request shape and whether the guard must refuse it.
    type Case<'a> = (
        &'a str,
        &'a Method,
        &'a [(&'static str, &'static str)],
        bool,
    );

    #[test]
    fn cross_origin_matrix() {
        let post = Method::POST;
        let cases: &[Case] = &[
            (
                "same-origin fetch",
                &post,
                &[("sec-fetch-site", "same-origin")],
                false,
            ),
            (
                "typed navigation",
                &post,
                &[("sec-fetch-site", "none")],
                false,
            ),
            (
                "other site",
                &post,
                &[("sec-fetch-site", "cross-site")],
                true,
            ),
            (
                "sibling subdomain",
                &post,
                &[("sec-fetch-site", "same-site")],
                true,
            ),
            (
                "old browser, same host",
                &post,
                &[
                    ("origin", "http://localhost:3000"),
                    ("host", "localhost:3000"),
                ],
                false,
            ),
            (
                "old browser, other host",
                &post,
                &[
                    ("origin", "https://evil.example"),
                    ("host", "localhost:3000"),
                ],
                true,
            ),
            (
                "opaque origin",
                &post,
                &[("origin", "null"), ("host", "localhost:3000")],
                true,
            ),
            ("no browser headers (curl)", &post, &[], false),
            (
                "reads are harmless",
                &Method::GET,
                &[("sec-fetch-site", "cross-site")],
                false,
            ),
        ];
        for (name, method, pairs, refused) in cases {
            assert_eq!(is_cross_origin(method, &headers(pairs)), *refused, "{name}");
        }
    }
}
