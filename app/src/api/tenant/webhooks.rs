//! The webhooks page: a tenant's endpoints (owners and admins), their delivery log, redelivery
//! and test events. The webhook service decides what the operator may do.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::PortalError;
#[cfg(feature = "ssr")]
use crate::api::{display_time, parse_id};

/// The event types, as the create form offers them: (name, what it means).
pub const WEBHOOK_EVENTS: [(&str, &str); 8] = [
    ("passkey.registered", "a passkey was registered"),
    (
        "passkey.revoked",
        "a passkey was revoked (by whom, and why)",
    ),
    ("passkey.renamed", "a passkey was renamed"),
    (
        "passkey.flagged",
        "a passkey was flagged (its counter went backwards, its backup state changed, or FIDO metadata refuses its model)",
    ),
    (
        "user.created",
        "a user was first named by an enrollment token",
    ),
    ("enrollment_token.issued", "an enrollment token was issued"),
    ("user.signed_in", "a user signed in (one per sign-in)"),
    ("audit.checkpoint", "the audit chain's head, at most hourly"),
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRow {
    pub id: String,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEndpointSecret {
    pub secret: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRow {
    pub at: String,
    /// `HTTP 200`, or why there was no answer.
    pub outcome: String,
    pub latency_ms: i32,
    pub excerpt: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRow {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub created_at: String,
    pub next_attempt_at: Option<String>,
    pub attempt_log: Vec<AttemptRow>,
}

#[cfg(feature = "ssr")]
impl From<latchkey_core::webhooks::EndpointView> for EndpointRow {
    fn from(e: latchkey_core::webhooks::EndpointView) -> Self {
        Self {
            id: e.id.to_string(),
            url: e.url,
            description: e.description,
            events: e.events,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since.map(display_time),
            created_at: display_time(e.created_at),
        }
    }
}

#[cfg(feature = "ssr")]
impl From<latchkey_core::webhooks::DeliveryView> for DeliveryRow {
    fn from(d: latchkey_core::webhooks::DeliveryView) -> Self {
        Self {
            id: d.id.to_string(),
            event_id: d.event_id,
            event_type: d.event_type,
            status: d.status,
            attempts: d.attempts,
            created_at: display_time(d.created_at),
            next_attempt_at: d.next_attempt_at.map(display_time),
            attempt_log: d
                .attempt_log
                .into_iter()
                .map(|a| AttemptRow {
                    at: display_time(a.attempted_at),
                    outcome: match (a.status_code, a.error) {
                        (Some(code), _) => format!("HTTP {code}"),
                        (None, Some(error)) => error,
                        (None, None) => "no answer".to_owned(),
                    },
                    latency_ms: a.latency_ms,
                    excerpt: a.response_excerpt,
                })
                .collect(),
        }
    }
}

#[server(prefix = "/portal/api", endpoint = "list_webhooks")]
pub async fn list_webhooks(id: String) -> Result<Vec<EndpointRow>, PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let endpoints = request.services.webhooks().list(&access).await?;
    Ok(endpoints.into_iter().map(EndpointRow::from).collect())
}

#[server(prefix = "/portal/api", endpoint = "create_webhook")]
pub async fn create_webhook(
    id: String,
    url: String,
    description: String,
    events: Vec<String>,
) -> Result<NewEndpointSecret, PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let created = request
        .services
        .webhooks()
        .create(
            &access,
            latchkey_core::webhooks::NewEndpoint {
                url,
                description,
                events,
            },
            request.meta.clone(),
        )
        .await?;
    Ok(NewEndpointSecret {
        secret: created.secret,
        url: created.endpoint.url,
    })
}

#[server(prefix = "/portal/api", endpoint = "set_webhook_enabled")]
pub async fn set_webhook_enabled(
    id: String,
    endpoint: String,
    enabled: bool,
) -> Result<(), PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let endpoint = parse_id("endpoint", &endpoint)?;
    request
        .services
        .webhooks()
        .update(
            &access,
            endpoint,
            latchkey_core::webhooks::EndpointChange {
                enabled: Some(enabled),
                ..Default::default()
            },
            request.meta.clone(),
        )
        .await?;
    Ok(())
}

#[server(prefix = "/portal/api", endpoint = "delete_webhook")]
pub async fn delete_webhook(id: String, endpoint: String) -> Result<(), PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let endpoint = parse_id("endpoint", &endpoint)?;
    Ok(request
        .services
        .webhooks()
        .delete(&access, endpoint, request.meta.clone())
        .await?)
}

#[server(prefix = "/portal/api", endpoint = "rotate_webhook_secret")]
pub async fn rotate_webhook_secret(id: String, endpoint: String) -> Result<String, PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let endpoint = parse_id("endpoint", &endpoint)?;
    Ok(request
        .services
        .webhooks()
        .rotate_secret(
            &access,
            endpoint,
            chrono::Duration::hours(24),
            request.meta.clone(),
        )
        .await?)
}

#[server(prefix = "/portal/api", endpoint = "send_webhook_test")]
pub async fn send_webhook_test(id: String, endpoint: String) -> Result<(), PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let endpoint = parse_id("endpoint", &endpoint)?;
    request
        .services
        .webhooks()
        .send_test(&access, endpoint, request.meta.clone())
        .await?;
    Ok(())
}

#[server(prefix = "/portal/api", endpoint = "webhook_deliveries")]
pub async fn webhook_deliveries(
    id: String,
    endpoint: String,
) -> Result<Vec<DeliveryRow>, PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let endpoint = parse_id("endpoint", &endpoint)?;
    let deliveries = request
        .services
        .webhooks()
        .deliveries(&access, endpoint, Default::default())
        .await?;
    Ok(deliveries.into_iter().map(DeliveryRow::from).collect())
}

#[server(prefix = "/portal/api", endpoint = "redeliver_webhook")]
pub async fn redeliver_webhook(
    id: String,
    endpoint: String,
    delivery: String,
) -> Result<(), PortalError> {
    let (request, access) = crate::state::tenant_request(&id).await?;
    let endpoint = parse_id("endpoint", &endpoint)?;
    let delivery = parse_id("delivery", &delivery)?;
    request
        .services
        .webhooks()
        .redeliver(&access, endpoint, delivery, request.meta.clone())
        .await?;
    Ok(())
}
