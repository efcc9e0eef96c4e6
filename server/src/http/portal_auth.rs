//! Portal sessions at the edge: the tower-sessions layer (cookie attributes, idle expiry) and the
//! guard that sends anonymous visitors of portal pages to `/login`.
//!
//! The guard is a convenience for browsers; the authority is the service layer, which every
//! server function reaches only with a signed-in operator (`PortalRequest::operator`).

use app::{
    PUBLIC_PAGES,
    session::{SignedIn, current_operator},
    state::AppState,
};
use axum::{
    extract::{Request, State},
    http::{Method, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use latchkey_core::{ErrorCode, sessions::DbSessionStore};
use tower_sessions::{Expiry, Session, SessionManagerLayer, cookie::SameSite};

use super::problem::Problem;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "latchkey_session";

/// Cookies are `HttpOnly` (no script reads them), `SameSite=Lax` (not sent on cross-site
/// subrequests or posts) and `Secure` when the portal is served over https. The store's expiry
/// slides with activity: the idle timeout.
pub fn session_layer(store: DbSessionStore, https: bool) -> SessionManagerLayer<DbSessionStore> {
    let idle = time::Duration::seconds(latchkey_core::sessions::IDLE_TIMEOUT.num_seconds());
    SessionManagerLayer::new(store)
        .with_name(SESSION_COOKIE)
        .with_path("/")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(https)
        .with_expiry(Expiry::OnInactivity(idle))
}

/// Paths that are not portal pages: assets, APIs, health checks, server functions (which
/// authorize themselves).
fn is_page(path: &str) -> bool {
    const NOT_PAGES: &[&str] = &[
        "/pkg/",
        "/api/",
        "/portal/api/",
        "/portal/export/",
        "/sdk/",
        "/provider-icons/",
    ];
    const FILES: &[&str] = &[
        "/favicon.svg",
        "/noscript.css",
        "/healthz",
        "/readyz",
        "/robots.txt",
    ];
    !NOT_PAGES.iter().any(|prefix| path.starts_with(prefix)) && !FILES.contains(&path)
}

/// Redirects anonymous page views to `/login?next=…`, and signed-in visits of `/login` home.
pub async fn require_operator(
    State(state): State<AppState>,
    session: Session,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if !reads || !is_page(&path) {
        return next.run(request).await;
    }
    let public = PUBLIC_PAGES.contains(&path.as_str());
    let operator = match current_operator(&session, &state.services).await {
        Ok(operator) => operator,
        Err(err) => {
            tracing::error!(error = %err, "reading the portal session failed");
            return Problem::new(ErrorCode::Internal, "Internal error").into_response();
        }
    };
    let signed_in = operator.is_some();
    let mut request = request;
    if let Some(operator) = operator {
        request.extensions_mut().insert(SignedIn(operator));
    }
    match (signed_in, public) {
        (false, false) => {
            let target = match request.uri().path_and_query() {
                Some(pq) if pq.as_str() != "/" => {
                    format!("/login?next={}", urlencode(pq.as_str()))
                }
                _ => "/login".to_owned(),
            };
            let mut response = Redirect::to(&target).into_response();
            // Per-visitor answer: no shared cache may keep it.
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            response
        }
        (true, true) if path == "/login" => Redirect::to("/").into_response(),
        _ => next.run(request).await,
    }
}

/// Percent-encodes a path for a query value (only what must be).
fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_told_apart_from_everything_else() {
        for page in ["/", "/security", "/audit", "/login", "/setup", "/nope"] {
            assert!(is_page(page), "{page}");
        }
        for other in [
            "/pkg/latchkey.wasm",
            "/api/v1/users/x",
            "/portal/api/whoami",
            "/healthz",
            "/favicon.svg",
            "/noscript.css",
        ] {
            assert!(!is_page(other), "{other}");
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            /// The `next` the guard puts in its redirect is the requested path and query, read
            /// back exactly by the sign-in page, and cannot break out of its query value: the
            /// redirect itself stays on `/login` of this origin. (Where `next` leads after
            /// sign-in is the browser's check: `navigateWithinOrigin` in `webauthn.js`.)
            #[test]
            fn the_sign_in_redirect_carries_the_requested_path_exactly(
                path_and_query in prop_oneof![
                    "/[a-zA-Z0-9/._~%!$&'()*+,;=:@?-]{0,40}",
                    "/\\PC{0,20}",
                    "//[a-z.]{1,12}(/[a-z]{0,5})?",
                ],
            ) {
                let Ok(pq) = path_and_query.parse::<axum::http::uri::PathAndQuery>() else {
                    return Ok(());
                };
                let target = format!("/login?next={}", urlencode(pq.as_str()));
                let base = url::Url::parse("https://portal.example/").map_err(|e| TestCaseError::fail(e.to_string()))?;
                let resolved = base.join(&target).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(resolved.origin(), base.origin());
                prop_assert_eq!(resolved.path(), "/login");
                prop_assert_eq!(resolved.fragment(), None);
                let next: Vec<_> = resolved.query_pairs().collect();
                prop_assert_eq!(next.len(), 1, "{}", target);
                prop_assert_eq!(next[0].0.as_ref(), "next");
                prop_assert_eq!(next[0].1.as_ref(), pq.as_str());
                prop_assert!(axum::http::HeaderValue::from_str(&target).is_ok());
            }
        }
    }
}
