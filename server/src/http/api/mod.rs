//! The HTTP APIs under `/api`: the Server API (tenant backends), the Client API (browsers), the
//! OpenAPI 3.1 document generated from the handlers, and an offline reference page. Every 4xx
//! and 5xx is problem+json with the spec's code.

mod auth;
mod client_api;
mod cors;
mod extract;
mod origins_api;
mod policy_api;
pub mod rate_limit;
mod reference;
mod server_api;
mod webhook_events_doc;
mod webhooks_api;

use std::sync::Arc;

use axum::{
    Router,
    extract::{DefaultBodyLimit, FromRef},
    response::{Html, IntoResponse},
    routing::{any, get},
};
use latchkey_core::{ErrorCode, Services};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_axum::router::OpenApiRouter;

use super::{anonymous_limit::AnonymousLimiter, problem::Problem};
pub use cors::name_origin;
pub use extract::{BODY_LIMIT, source_address};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Latchkey",
        description = "Passkeys for your users. The **Server API** is for your backend \
            (`Authorization: Bearer lk_sk_…`, an API key from the portal); the **Client API** is \
            for your users' browsers and apps (CORS limited to your tenant's web origins). \
            Every error is `application/problem+json` with a stable `code`.",
        license(name = "Apache-2.0"),
    ),
    modifiers(&SecuritySchemes),
    components(schemas(Problem)),
    tags(
        (name = "Server API", description = "For your backend, with an API key."),
        (name = "Client API", description = "For your users' browsers and apps."),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("lk_sk_…")
                    .description(Some("A Server API key from the portal's API keys page."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "enrollment_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("lk_enr_…")
                    .description(Some(
                        "An enrollment token your backend issued for the user.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Both APIs and their document, as one router; `limiter` bounds the Client API's requests.
pub fn router<S>(services: Services, limiter: Arc<AnonymousLimiter>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Services: FromRef<S>,
{
    let (api, document) = documented().split_for_parts();
    // Both rendered once, at start-up: the document never changes while the process runs.
    let reference = Arc::new(reference::render(&document));
    let json = Arc::new(document_json(&document).to_string());
    let api = api
        .route(
            "/api/openapi.json",
            get(move || {
                let json = json.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        json.as_ref().clone(),
                    )
                }
            }),
        )
        .route(
            "/api/reference",
            get(move || {
                let page = reference.clone();
                async move {
                    // Inline styles only; nothing else may load or run.
                    (
                        [(
                            axum::http::header::CONTENT_SECURITY_POLICY,
                            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
                        )],
                        Html(page.as_ref().clone()),
                    )
                }
            }),
        )
        // Unknown API paths answer as an API would (problem+json), not with the portal's page.
        .route("/api/{*rest}", any(not_found))
        .method_not_allowed_fallback(method_not_allowed);
    // Layers after the fallbacks, so that they wrap them too (a CORS preflight is an OPTIONS
    // request no route serves). Each acts on `/api/client/` only; outermost first: the
    // source's budget (before any database work), CORS (unknown tenants end here), the
    // tenant's budget.
    api.layer(axum::middleware::from_fn(
        super::anonymous_limit::limit_client_tenant,
    ))
    .layer(axum::middleware::from_fn_with_state(
        services,
        cors::client_cors,
    ))
    .layer(axum::middleware::from_fn(
        super::anonymous_limit::limit_client_source,
    ))
    .layer(axum::Extension(Arc::new(
        rate_limit::FailedAuthLimiter::for_share(limiter.instances()),
    )))
    .layer(axum::Extension(limiter))
    .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

/// The OpenAPI document (for tests and tooling), without its `webhooks` section.
pub fn document() -> utoipa::openapi::OpenApi {
    documented::<Services>().split_for_parts().1
}

/// The OpenAPI document as served: [`document`] with the `webhooks` section (the events
/// Latchkey POSTs to a tenant's endpoints).
pub fn served_document() -> serde_json::Value {
    document_json(&document())
}

fn document_json(document: &utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut json = serde_json::to_value(document).unwrap_or_default();
    if let Some(root) = json.as_object_mut() {
        root.insert("webhooks".to_owned(), webhook_events_doc::section());
    }
    json
}

/// Both APIs' routes with their document: one registration serves and documents each.
fn documented<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Services: FromRef<S>,
{
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(server_api::router())
        .merge(policy_api::router())
        .merge(origins_api::router())
        .merge(webhooks_api::router())
        .merge(client_api::router())
}

async fn not_found() -> impl IntoResponse {
    Problem::new(ErrorCode::NotFound, "No such API endpoint.")
}

async fn method_not_allowed(method: axum::http::Method) -> impl IntoResponse {
    Problem::new(
        ErrorCode::InvalidRequest,
        format!("This endpoint does not accept {method}; see /api/reference."),
    )
    .with_status(axum::http::StatusCode::METHOD_NOT_ALLOWED)
}
