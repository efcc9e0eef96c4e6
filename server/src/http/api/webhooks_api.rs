//! The Server API's webhook endpoints: a tenant's backend manages where its events go, reads
//! the delivery log, redelivers and sends test events. The rules are the webhook service's.

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use latchkey_core::{
    Services,
    webhooks::{
        AttemptView, DeliveryPage, DeliveryView, EndpointChange, EndpointView, NewEndpoint,
    },
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::BackendKey,
    extract::{ApiJson, ApiPath, ApiQuery, Meta},
};
use crate::http::problem::{ApiError, Problem};

pub fn router<S>() -> OpenApiRouter<S>
where
    S: Clone + Send + Sync + 'static,
    Services: axum::extract::FromRef<S>,
{
    OpenApiRouter::new()
        .routes(routes!(list_endpoints, create_endpoint))
        .routes(routes!(get_endpoint, update_endpoint, delete_endpoint))
        .routes(routes!(rotate_secret))
        .routes(routes!(send_test_event))
        .routes(routes!(list_deliveries))
        .routes(routes!(redeliver))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpointRequest {
    /// Where events are POSTed: `https://…` (plain `http://localhost` only on instances that
    /// allow private addresses). At most 2048 characters.
    pub url: String,
    /// For people: what receives these events. At most 200 characters.
    #[serde(default)]
    pub description: String,
    /// The event types to send, e.g. `["passkey.registered", "passkey.revoked"]`.
    pub events: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEndpointRequest {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<Vec<String>>,
    /// `true` enables it again (clearing why Latchkey disabled it).
    pub enabled: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointResponse {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub enabled: bool,
    /// Why Latchkey disabled it (every delivery failed for days), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub disabled_reason: Option<String>,
    /// Since when every delivery has failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the secret before the last rotation still signs beside the new one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<EndpointView> for EndpointResponse {
    fn from(e: EndpointView) -> Self {
        Self {
            id: e.id,
            url: e.url,
            description: e.description,
            events: e.events,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since,
            previous_secret_until: e.previous_secret_until,
            created_at: e.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEndpointResponse {
    pub endpoint: EndpointResponse,
    /// The signing secret (`whsec_…`), shown this once. Verify deliveries with any Standard
    /// Webhooks library.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointsResponse {
    pub endpoints: Vec<EndpointResponse>,
}

/// List webhook endpoints
#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    tag = "Server API",
    responses(
        (status = 200, body = EndpointsResponse),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn list_endpoints(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
) -> Result<Json<EndpointsResponse>, ApiError> {
    let endpoints = services.webhooks().list(&key.access()).await?;
    Ok(Json(EndpointsResponse {
        endpoints: endpoints.into_iter().map(Into::into).collect(),
    }))
}

/// Create a webhook endpoint
///
/// Answers the endpoint with its signing secret, shown this once. Events that happen from now
/// on are delivered (see `docs/webhooks.md`). A tenant has at most 20 endpoints.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    tag = "Server API",
    request_body = CreateEndpointRequest,
    responses(
        (status = 201, body = CreatedEndpointResponse),
        (status = 400, description = "`invalid_request`: a URL that is not https, an unknown event type, too many endpoints", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn create_endpoint(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<CreateEndpointRequest>,
) -> Result<(StatusCode, Json<CreatedEndpointResponse>), ApiError> {
    let created = services
        .webhooks()
        .create(
            &key.access(),
            NewEndpoint {
                url: body.url,
                description: body.description,
                events: body.events,
            },
            meta,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedEndpointResponse {
            endpoint: created.endpoint.into(),
            secret: created.secret,
        }),
    ))
}

/// Get a webhook endpoint
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{endpoint_id}",
    tag = "Server API",
    params(("endpoint_id" = Uuid, Path, description = "The endpoint's `id`")),
    responses(
        (status = 200, body = EndpointResponse),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn get_endpoint(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
    ApiPath(endpoint_id): ApiPath<Uuid>,
) -> Result<Json<EndpointResponse>, ApiError> {
    Ok(Json(
        services
            .webhooks()
            .get(&key.access(), endpoint_id)
            .await?
            .into(),
    ))
}

/// Change a webhook endpoint
///
/// Only the members given change. `{"enabled": true}` enables an endpoint Latchkey disabled.
#[utoipa::path(
    patch,
    path = "/api/v1/webhooks/{endpoint_id}",
    tag = "Server API",
    params(("endpoint_id" = Uuid, Path, description = "The endpoint's `id`")),
    request_body = UpdateEndpointRequest,
    responses(
        (status = 200, body = EndpointResponse),
        (status = 400, description = "`invalid_request`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn update_endpoint(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
    ApiPath(endpoint_id): ApiPath<Uuid>,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<UpdateEndpointRequest>,
) -> Result<Json<EndpointResponse>, ApiError> {
    let change = EndpointChange {
        url: body.url,
        description: body.description,
        events: body.events,
        enabled: body.enabled,
    };
    Ok(Json(
        services
            .webhooks()
            .update(&key.access(), endpoint_id, change, meta)
            .await?
            .into(),
    ))
}

/// Delete a webhook endpoint
///
/// Its pending deliveries and its delivery log go with it.
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{endpoint_id}",
    tag = "Server API",
    params(("endpoint_id" = Uuid, Path, description = "The endpoint's `id`")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn delete_endpoint(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
    ApiPath(endpoint_id): ApiPath<Uuid>,
    Meta(meta): Meta,
) -> Result<StatusCode, ApiError> {
    services
        .webhooks()
        .delete(&key.access(), endpoint_id, meta)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecretRequest {
    /// How long the previous secret keeps signing beside the new one: 0 to 168 hours
    /// (default 24).
    #[serde(default = "default_overlap")]
    pub overlap_hours: i64,
}

fn default_overlap() -> i64 {
    24
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecretResponse {
    /// The new signing secret, shown this once.
    pub secret: String,
}

/// Rotate an endpoint's signing secret
///
/// Deliveries carry both signatures (space-separated in `webhook-signature`) until the overlap
/// ends, so a receiver can switch to the new secret without losing one.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{endpoint_id}/rotate-secret",
    tag = "Server API",
    params(("endpoint_id" = Uuid, Path, description = "The endpoint's `id`")),
    request_body = RotateSecretRequest,
    responses(
        (status = 200, body = RotatedSecretResponse),
        (status = 400, description = "`invalid_request`: an overlap out of range", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn rotate_secret(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
    ApiPath(endpoint_id): ApiPath<Uuid>,
    Meta(meta): Meta,
    ApiJson(body): ApiJson<RotateSecretRequest>,
) -> Result<Json<RotatedSecretResponse>, ApiError> {
    let overlap = chrono::Duration::try_hours(body.overlap_hours).ok_or_else(|| {
        latchkey_core::Error::invalid(
            "overlap_hours",
            "Keep the previous secret for 0 to 168 hours.",
        )
    })?;
    let secret = services
        .webhooks()
        .rotate_secret(&key.access(), endpoint_id, overlap, meta)
        .await?;
    Ok(Json(RotatedSecretResponse { secret }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptResponse {
    pub attempted_at: DateTime<Utc>,
    /// The receiver's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    /// The start of the receiver's answer (at most 1024 characters).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub response_excerpt: Option<String>,
    /// Why the attempt failed, when it did (`HTTP 500`, `no answer within 5 seconds`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryResponse {
    pub id: Uuid,
    /// The event's id, as `webhook-id` carries it.
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed` (retried for the retry period, then given up).
    pub status: String,
    pub attempts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Newest first.
    pub attempt_log: Vec<AttemptResponse>,
}

impl From<DeliveryView> for DeliveryResponse {
    fn from(d: DeliveryView) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            created_at: d.created_at,
            finished_at: d.finished_at,
            attempt_log: d
                .attempt_log
                .into_iter()
                .map(|a: AttemptView| AttemptResponse {
                    attempted_at: a.attempted_at,
                    status_code: a.status_code,
                    latency_ms: a.latency_ms,
                    response_excerpt: a.response_excerpt,
                    error: a.error,
                })
                .collect(),
        }
    }
}

/// Send a test event
///
/// Queues a `webhook.test` event for the endpoint, sent at once; its delivery appears in the
/// log like any other.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{endpoint_id}/test",
    tag = "Server API",
    params(("endpoint_id" = Uuid, Path, description = "The endpoint's `id`")),
    responses(
        (status = 202, body = DeliveryResponse),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn send_test_event(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
    ApiPath(endpoint_id): ApiPath<Uuid>,
    Meta(meta): Meta,
) -> Result<(StatusCode, Json<DeliveryResponse>), ApiError> {
    let delivery = services
        .webhooks()
        .send_test(&key.access(), endpoint_id, meta)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(delivery.into())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// The `id` of the last delivery of the previous page: the next page starts after it. Pages
    /// neither repeat nor skip.
    pub starting_after: Option<Uuid>,
    /// Only deliveries created strictly before this time. Not a page cursor: many deliveries can
    /// share one `created_at`; use `starting_after` to page.
    pub before: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveriesResponse {
    /// Newest first, 50 at most.
    pub deliveries: Vec<DeliveryResponse>,
}

/// List an endpoint's deliveries
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{endpoint_id}/deliveries",
    tag = "Server API",
    params(("endpoint_id" = Uuid, Path, description = "The endpoint's `id`"), DeliveriesQuery),
    responses(
        (status = 200, body = DeliveriesResponse),
        (status = 400, description = "`invalid_request`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn list_deliveries(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
    ApiPath(endpoint_id): ApiPath<Uuid>,
    ApiQuery(query): ApiQuery<DeliveriesQuery>,
) -> Result<Json<DeliveriesResponse>, ApiError> {
    let deliveries = services
        .webhooks()
        .deliveries(
            &key.access(),
            endpoint_id,
            DeliveryPage {
                before: query.before,
                starting_after: query.starting_after,
            },
        )
        .await?;
    Ok(Json(DeliveriesResponse {
        deliveries: deliveries.into_iter().map(Into::into).collect(),
    }))
}

/// Redeliver an event
///
/// Sends the delivery's event again, with the same `webhook-id` and body, as a new delivery.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    tag = "Server API",
    params(
        ("endpoint_id" = Uuid, Path, description = "The endpoint's `id`"),
        ("delivery_id" = Uuid, Path, description = "The delivery's `id`"),
    ),
    responses(
        (status = 202, body = DeliveryResponse),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []))
)]
async fn redeliver(
    State(services): State<Services>,
    BackendKey(key): BackendKey,
    ApiPath((endpoint_id, delivery_id)): ApiPath<(Uuid, Uuid)>,
    Meta(meta): Meta,
) -> Result<(StatusCode, Json<DeliveryResponse>), ApiError> {
    let delivery = services
        .webhooks()
        .redeliver(&key.access(), endpoint_id, delivery_id, meta)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(delivery.into())))
}
