//! The HTTP edge: one router merging the per-area routers, the portal's pages and server
//! functions, static assets, and the cross-cutting layers (request log, compression).

pub mod anonymous_limit;
pub mod api;
mod guards;
pub mod health;
mod metadata_upload;
pub mod portal_auth;
pub mod problem;
pub mod request_id;
mod support;

use std::{sync::LazyLock, time::Duration};

use app::{App, shell, state::AppState};
use axum::{
    Router,
    body::Body,
    http::{Request, Response},
};
use leptos::prelude::provide_context;
use leptos_axum::{
    AxumRouteListing, LeptosRoutes, file_and_error_handler_with_context, generate_route_list,
};
use tower_http::{
    compression::CompressionLayer, set_header::SetResponseHeaderLayer, trace::TraceLayer,
};
use tracing::Span;

/// Deployment facts the edge needs.
#[derive(Debug, Clone, Default)]
pub struct EdgeOptions {
    /// The public URL is https: browsers get Strict-Transport-Security and `Secure` cookies.
    pub https: bool,
    /// The reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: latchkey_core::abuse::TrustedProxies,
    /// Requests per second on anonymous endpoints (see [`anonymous_limit`]).
    pub rates: anonymous_limit::Rates,
    /// Set when shutdown begins (`/readyz` answers 503 from then on).
    pub draining: health::Draining,
    /// Count and time requests for the metrics endpoint (see [`crate::metrics`]).
    pub metrics: bool,
}

/// The portal's routes, listed once per process. Listing them sets a process-wide flag under
/// which a `Resource` that starts polling — in any server of the process — never wakes
/// (leptos-rs/leptos#4773, open in 0.8.23): with the list built on every `router()` call, a test
/// process running several servers saw page renders hang while another server started.
static ROUTES: LazyLock<Vec<AxumRouteListing>> = LazyLock::new(|| generate_route_list(App));

pub fn router(state: AppState, options: EdgeOptions) -> Router {
    let routes = ROUTES.clone();
    let shell_options = state.leptos_options.clone();
    let context = {
        let state = state.clone();
        move || provide_context(state.clone())
    };

    let limiter = anonymous_limit::AnonymousLimiter::new(options.rates);
    let mut router = Router::new()
        .merge(health::router(options.draining.clone()))
        .merge(support::portal_router())
        .merge(metadata_upload::portal_router())
        .leptos_routes_with_context(&state, routes, context.clone(), {
            move || shell(shell_options.clone())
        })
        .fallback(file_and_error_handler_with_context::<AppState, _>(
            context, shell,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            portal_auth::require_operator,
        ))
        .layer(portal_auth::session_layer(
            state.services.sessions(),
            options.https,
        ))
        // Before the session store: a flood of anonymous sign-in attempts is refused first.
        .layer(axum::middleware::from_fn(anonymous_limit::limit_portal))
        .layer(axum::Extension(limiter.clone()))
        // Outermost of the portal's guards: a forged cross-site request never reaches the
        // session store.
        .layer(axum::middleware::from_fn(guards::same_origin_only))
        // The APIs authenticate with bearer credentials, not the portal's session cookie: they
        // sit outside the portal's session layer and page guard.
        .merge(api::router(state.services.clone(), limiter))
        .merge(sdk_router(&state.leptos_options.site_root))
        .merge(support::public_router());
    for (name, value) in guards::default_headers(options.https) {
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    if options.metrics {
        router = router.layer(axum::middleware::from_fn(crate::metrics::track));
    }
    router = router
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_request(())
                .on_response(log_response)
                .on_failure(()),
        )
        // Outside the log span, which names the ID.
        .layer(axum::middleware::from_fn(request_id::assign));
    if !options.trusted_proxies.is_empty() {
        // Outside the request ID too: a trusted proxy's `X-Request-Id` is kept.
        router = router.layer(axum::Extension(std::sync::Arc::new(
            options.trusted_proxies.clone(),
        )));
    }
    router.layer(CompressionLayer::new()).with_state(state)
}

/// The browser SDK (`/sdk/latchkey.js` and its types), loadable as a module from any site: module
/// scripts are fetched with CORS.
fn sdk_router<S: Clone + Send + Sync + 'static>(site_root: &str) -> Router<S> {
    let files = tower::ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN,
            axum::http::HeaderValue::from_static("*"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            axum::http::HeaderName::from_static("cross-origin-resource-policy"),
            axum::http::HeaderValue::from_static("cross-origin"),
        ))
        .service(tower_http::services::ServeDir::new(
            std::path::Path::new(site_root).join("sdk"),
        ));
    Router::new().nest_service("/sdk", files)
}

/// One line per request with method, path, status and latency. The query string is left out on
/// purpose: setup and invitation links carry their secret there.
fn request_span(request: &Request<Body>) -> Span {
    let id = request
        .extensions()
        .get::<request_id::RequestId>()
        .map(|id| id.0.clone());
    tracing::info_span!(
        "http",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id.as_deref().unwrap_or_default(),
    )
}

fn log_response(response: &Response<Body>, latency: Duration, _: &Span) {
    tracing::info!(
        status = response.status().as_u16(),
        latency_ms = format_args!("{:.2}", latency.as_secs_f64() * 1000.0),
        "request"
    );
}
