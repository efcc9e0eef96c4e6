//! A tenant's webhook endpoints: created, changed, rotated and deleted by its owners and admins
//! (or its backend's API key), each change audited. The signing secret is shown once, at
//! creation and at each rotation; at rest it is sealed with an instance key, as the worker must
//! be able to sign with it (a hash would not do).

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait},
};
use url::Url;
use uuid::Uuid;

use super::{EventType, Webhooks, events, sealed_secret};
use crate::{
    Error, Result,
    access::{Permission, TenantAccess},
    audit::{self, AuditEntry, RequestMeta},
    entities::{webhook_attempt, webhook_delivery, webhook_endpoint},
};

/// Endpoints per tenant at most.
pub const MAX_ENDPOINTS: u64 = 20;
pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_DESCRIPTION_CHARS: usize = 200;
/// The longest overlap a rotation may keep the previous secret for.
pub const MAX_OVERLAP: Duration = Duration::days(7);

/// What creating an endpoint takes.
#[derive(Debug, Clone, Default)]
pub struct NewEndpoint {
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
}

/// A change to an endpoint; `None` leaves a part as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// An endpoint as its owners see it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointView {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub enabled: bool,
    /// Why Latchkey disabled it, when it did.
    pub disabled_reason: Option<String>,
    /// Since when every delivery has failed.
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the secret before the last rotation still signs.
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<webhook_endpoint::Model> for EndpointView {
    fn from(m: webhook_endpoint::Model) -> Self {
        Self {
            id: m.id,
            url: m.url,
            description: m.description,
            events: serde_json::from_value(m.events).unwrap_or_default(),
            enabled: m.enabled,
            disabled_reason: m.disabled_reason,
            failing_since: m.failing_since,
            previous_secret_until: m.previous_until,
            created_at: m.created_at,
        }
    }
}

/// A new endpoint, with its secret (shown once).
#[derive(Debug, Clone)]
pub struct CreatedEndpoint {
    pub endpoint: EndpointView,
    pub secret: String,
}

/// One delivery as the delivery log shows it, with its attempts (newest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryView {
    pub id: Uuid,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub attempt_log: Vec<AttemptView>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptView {
    pub attempted_at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

/// Deliveries per page of the delivery log.
pub const DELIVERY_PAGE: u64 = 50;

/// Which page of the delivery log (see [`Webhooks::deliveries`]); the default is the newest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryPage {
    /// Only deliveries created strictly before this time.
    pub before: Option<DateTime<Utc>>,
    /// Continue after this delivery (the last one of the previous page).
    pub starting_after: Option<Uuid>,
}

impl Webhooks<'_> {
    /// Creates an endpoint; answers it with its signing secret (shown once).
    pub async fn create(
        &self,
        access: &TenantAccess,
        new: NewEndpoint,
        meta: RequestMeta,
    ) -> Result<CreatedEndpoint> {
        access.require(Permission::ManageWebhooks)?;
        access.require_step_up()?;
        let url = self.checked_url(&new.url)?;
        let description = checked_description(&new.description)?;
        let events = checked_events(&new.events)?;
        let tenant_id = access.tenant_id();
        let id = Uuid::new_v4();
        let secret = super::signing::new_secret()?;
        let sealed = sealed_secret::seal(&self.key().await?, tenant_id, id, &secret)?;
        let now = self.clock.now();
        let txn = crate::db::begin_write(self.writer).await?;
        // The cap is decided under the tenant's lock, so concurrent creations cannot pass it.
        crate::db::lock_named(&txn, &format!("webhook-endpoints/{tenant_id}")).await?;
        let count = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::TenantId.eq(tenant_id))
            .count(&txn)
            .await?;
        if count >= MAX_ENDPOINTS {
            return Err(Error::invalid(
                "url",
                format!("A tenant has at most {MAX_ENDPOINTS} webhook endpoints."),
            ));
        }
        let row = webhook_endpoint::Model {
            id,
            tenant_id,
            url: url.to_string(),
            description,
            events: serde_json::json!(events),
            enabled: true,
            disabled_reason: None,
            secret: sealed,
            previous_secret: None,
            previous_until: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        webhook_endpoint::Entity::insert(webhook_endpoint::ActiveModel::from(row.clone()))
            .exec_without_returning(&txn)
            .await?;
        self.audit(
            &txn,
            access,
            "webhook.endpoint_created",
            id,
            serde_json::json!({ "url": row.url, "events": events }),
            meta,
        )
        .await?;
        txn.commit().await?;
        Ok(CreatedEndpoint {
            endpoint: row.into(),
            secret,
        })
    }

    pub async fn list(&self, access: &TenantAccess) -> Result<Vec<EndpointView>> {
        access.require(Permission::ManageWebhooks)?;
        Ok(webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::TenantId.eq(access.tenant_id()))
            .order_by_asc(webhook_endpoint::Column::CreatedAt)
            .all(self.db)
            .await?
            .into_iter()
            .map(EndpointView::from)
            .collect())
    }

    pub async fn get(&self, access: &TenantAccess, id: Uuid) -> Result<EndpointView> {
        access.require(Permission::ManageWebhooks)?;
        Ok(self.row(access, id).await?.into())
    }

    async fn row(&self, access: &TenantAccess, id: Uuid) -> Result<webhook_endpoint::Model> {
        webhook_endpoint::Entity::find_by_id(id)
            .filter(webhook_endpoint::Column::TenantId.eq(access.tenant_id()))
            .one(self.db)
            .await?
            .ok_or(Error::NotFound)
    }

    /// Changes an endpoint. Enabling it again clears why it was disabled.
    pub async fn update(
        &self,
        access: &TenantAccess,
        id: Uuid,
        change: EndpointChange,
        meta: RequestMeta,
    ) -> Result<EndpointView> {
        access.require(Permission::ManageWebhooks)?;
        let url = change
            .url
            .as_deref()
            .map(|u| self.checked_url(u))
            .transpose()?;
        if url.is_some() {
            // Where the events go is as sensitive as a new endpoint.
            access.require_step_up()?;
        }
        let description = change
            .description
            .as_deref()
            .map(checked_description)
            .transpose()?;
        let events = change.events.as_deref().map(checked_events).transpose()?;
        let current = self.row(access, id).await?;
        let mut row: webhook_endpoint::ActiveModel = current.clone().into();
        if let Some(url) = &url {
            row.url = Set(url.to_string());
        }
        if let Some(description) = description {
            row.description = Set(description);
        }
        if let Some(events) = &events {
            row.events = Set(serde_json::json!(events));
        }
        if let Some(enabled) = change.enabled {
            row.enabled = Set(enabled);
            if enabled {
                row.disabled_reason = Set(None);
                row.failing_since = Set(None);
            }
        }
        row.updated_at = Set(self.clock.now());
        let txn = crate::db::begin_write(self.writer).await?;
        let updated = webhook_endpoint::Entity::update(row).exec(&txn).await?;
        self.audit(
            &txn,
            access,
            "webhook.endpoint_changed",
            id,
            serde_json::json!({
                "url": url.map(|u| serde_json::json!({ "from": current.url, "to": u.to_string() })),
                "events": events,
                "enabled": change.enabled,
            }),
            meta,
        )
        .await?;
        txn.commit().await?;
        Ok(updated.into())
    }

    /// Deletes an endpoint with its deliveries and their log.
    pub async fn delete(&self, access: &TenantAccess, id: Uuid, meta: RequestMeta) -> Result<()> {
        access.require(Permission::ManageWebhooks)?;
        let current = self.row(access, id).await?;
        let txn = crate::db::begin_write(self.writer).await?;
        webhook_endpoint::Entity::delete_many()
            .filter(webhook_endpoint::Column::Id.eq(id))
            .filter(webhook_endpoint::Column::TenantId.eq(access.tenant_id()))
            .exec(&txn)
            .await?;
        self.audit(
            &txn,
            access,
            "webhook.endpoint_deleted",
            id,
            serde_json::json!({ "url": current.url }),
            meta,
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// A new signing secret (shown once); the previous one keeps signing beside it for
    /// `overlap`, so receivers can switch without losing a delivery.
    pub async fn rotate_secret(
        &self,
        access: &TenantAccess,
        id: Uuid,
        overlap: Duration,
        meta: RequestMeta,
    ) -> Result<String> {
        access.require(Permission::ManageWebhooks)?;
        access.require_step_up()?;
        if overlap < Duration::zero() || overlap > MAX_OVERLAP {
            return Err(Error::invalid(
                "overlap_hours",
                format!(
                    "Keep the previous secret for 0 to {} hours.",
                    MAX_OVERLAP.num_hours()
                ),
            ));
        }
        let current = self.row(access, id).await?;
        let secret = super::signing::new_secret()?;
        let sealed = sealed_secret::seal(&self.key().await?, access.tenant_id(), id, &secret)?;
        let now = self.clock.now();
        let txn = crate::db::begin_write(self.writer).await?;
        webhook_endpoint::Entity::update_many()
            .col_expr(webhook_endpoint::Column::Secret, Expr::value(sealed))
            .col_expr(
                webhook_endpoint::Column::PreviousSecret,
                Expr::value((overlap > Duration::zero()).then_some(current.secret)),
            )
            .col_expr(
                webhook_endpoint::Column::PreviousUntil,
                Expr::value((overlap > Duration::zero()).then_some(now + overlap)),
            )
            .col_expr(webhook_endpoint::Column::UpdatedAt, Expr::value(now))
            .filter(webhook_endpoint::Column::Id.eq(id))
            .filter(webhook_endpoint::Column::TenantId.eq(access.tenant_id()))
            .exec(&txn)
            .await?;
        self.audit(
            &txn,
            access,
            "webhook.secret_rotated",
            id,
            serde_json::json!({ "overlap_hours": overlap.num_hours() }),
            meta,
        )
        .await?;
        txn.commit().await?;
        Ok(secret)
    }

    /// The endpoint's deliveries, newest first, `DELIVERY_PAGE` at a time.
    ///
    /// `page.starting_after` (a delivery of this endpoint, the last one shown) continues after it:
    /// the order is `(created_at, seq, id)`, which no two deliveries share, so pages neither repeat
    /// nor skip. One dispatch writes all its deliveries at one `created_at`, so a time alone
    /// (`page.before`, deliveries created strictly earlier) would skip the rest of a batch cut by a
    /// page's end; it stays as a time bound.
    pub async fn deliveries(
        &self,
        access: &TenantAccess,
        id: Uuid,
        page: DeliveryPage,
    ) -> Result<Vec<DeliveryView>> {
        access.require(Permission::ManageWebhooks)?;
        self.row(access, id).await?;
        let of_endpoint = || {
            webhook_delivery::Entity::find()
                .filter(webhook_delivery::Column::EndpointId.eq(id))
                .filter(webhook_delivery::Column::TenantId.eq(access.tenant_id()))
        };
        let mut query = of_endpoint();
        if let Some(before) = page.before {
            query = query.filter(webhook_delivery::Column::CreatedAt.lt(before));
        }
        if let Some(after) = page.starting_after {
            let last = of_endpoint()
                .filter(webhook_delivery::Column::Id.eq(after))
                .one(self.db)
                .await?
                .ok_or_else(|| {
                    Error::invalid(
                        "starting_after",
                        "No delivery of this endpoint has that id (it may have been purged).",
                    )
                })?;
            // The first bound alone is a range the log's index serves; the tuple decides ties.
            query = query
                .filter(webhook_delivery::Column::CreatedAt.lte(last.created_at))
                .filter(
                    Expr::tuple([
                        Expr::col(webhook_delivery::Column::CreatedAt),
                        Expr::col(webhook_delivery::Column::Seq),
                        Expr::col(webhook_delivery::Column::Id),
                    ])
                    .lt(Expr::tuple([
                        Expr::value(last.created_at),
                        Expr::value(last.seq),
                        Expr::value(last.id),
                    ])),
                );
        }
        let rows = query
            .order_by_desc(webhook_delivery::Column::CreatedAt)
            .order_by_desc(webhook_delivery::Column::Seq)
            .order_by_desc(webhook_delivery::Column::Id)
            .limit(DELIVERY_PAGE)
            .all(self.db)
            .await?;
        let mut attempts = webhook_attempt::Entity::find()
            .filter(webhook_attempt::Column::DeliveryId.is_in(rows.iter().map(|r| r.id)))
            .order_by_desc(webhook_attempt::Column::AttemptedAt)
            .all(self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|d| {
                let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut attempts)
                    .into_iter()
                    .partition(|a| a.delivery_id == d.id);
                attempts = rest;
                delivery_view(d, mine)
            })
            .collect())
    }

    /// Sends the delivery's event again, as a new delivery with the same event id and body.
    pub async fn redeliver(
        &self,
        access: &TenantAccess,
        endpoint_id: Uuid,
        delivery_id: Uuid,
        meta: RequestMeta,
    ) -> Result<DeliveryView> {
        access.require(Permission::ManageWebhooks)?;
        self.row(access, endpoint_id).await?;
        let original = webhook_delivery::Entity::find_by_id(delivery_id)
            .filter(webhook_delivery::Column::EndpointId.eq(endpoint_id))
            .filter(webhook_delivery::Column::TenantId.eq(access.tenant_id()))
            .one(self.db)
            .await?
            .ok_or(Error::NotFound)?;
        let copy = webhook_delivery::Model {
            id: Uuid::new_v4(),
            status: "pending".into(),
            attempts: 0,
            next_attempt_at: self.clock.now(),
            lease_until: None,
            lease_token: None,
            last_status: None,
            last_error: None,
            created_at: self.clock.now(),
            finished_at: None,
            // Redelivered on its own: it does not hold up the user's newer events.
            ordering_key: None,
            ..original
        };
        self.enqueue(access, copy, "webhook.redelivered", meta)
            .await
    }

    /// Sends a `webhook.test` event to the endpoint now.
    pub async fn send_test(
        &self,
        access: &TenantAccess,
        endpoint_id: Uuid,
        meta: RequestMeta,
    ) -> Result<DeliveryView> {
        access.require(Permission::ManageWebhooks)?;
        self.row(access, endpoint_id).await?;
        let now = self.clock.now();
        let event_id = Uuid::new_v4();
        let payload = events::body(
            event_id,
            EventType::WebhookTest,
            now,
            access.tenant_id(),
            &serde_json::json!({ "message": "A test event from Latchkey." }),
        );
        let delivery = webhook_delivery::Model {
            id: Uuid::new_v4(),
            tenant_id: access.tenant_id(),
            endpoint_id,
            event_id,
            audit_event_id: None,
            event_type: EventType::WebhookTest.as_str().into(),
            payload,
            ordering_key: None,
            seq: 0,
            status: "pending".into(),
            attempts: 0,
            next_attempt_at: now,
            lease_until: None,
            lease_token: None,
            last_status: None,
            last_error: None,
            created_at: now,
            finished_at: None,
        };
        self.enqueue(access, delivery, "webhook.test_sent", meta)
            .await
    }

    async fn enqueue(
        &self,
        access: &TenantAccess,
        delivery: webhook_delivery::Model,
        action: &'static str,
        meta: RequestMeta,
    ) -> Result<DeliveryView> {
        let txn = crate::db::begin_write(self.writer).await?;
        webhook_delivery::Entity::insert(webhook_delivery::ActiveModel::from(delivery.clone()))
            .exec_without_returning(&txn)
            .await?;
        self.audit(
            &txn,
            access,
            action,
            delivery.endpoint_id,
            serde_json::json!({
                "event_type": delivery.event_type,
                "event_id": format!("evt_{}", delivery.event_id.simple()),
            }),
            meta,
        )
        .await?;
        txn.commit().await?;
        self.notify.notify_one();
        Ok(delivery_view(delivery, Vec::new()))
    }

    /// Records an operator's or backend's change to an endpoint, in its transaction.
    async fn audit(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        access: &TenantAccess,
        action: &'static str,
        endpoint_id: Uuid,
        details: serde_json::Value,
        meta: RequestMeta,
    ) -> Result<()> {
        audit::record_in(
            txn,
            self.clock,
            AuditEntry::new(access.actor(), action)
                .tenant(access.tenant_id())
                .target("webhook_endpoint", endpoint_id.to_string())
                .details(details)
                .meta(meta),
        )
        .await
    }

    /// HTTPS only; plain HTTP to this machine (`localhost`, `127.0.0.1`, `[::1]`) only where the
    /// instance allows private addresses (development and tests). Where it resolves to is
    /// checked again at every delivery.
    fn checked_url(&self, raw: &str) -> Result<Url> {
        let bad = |message: &str| Error::invalid("url", message);
        let raw = raw.trim();
        if raw.chars().count() > MAX_URL_CHARS {
            return Err(bad("A URL has at most 2048 characters."));
        }
        let url = Url::parse(raw).map_err(|_| bad("Enter an absolute https:// URL."))?;
        let local = matches!(
            url.host(),
            Some(url::Host::Domain("localhost"))
                | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
                | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
        );
        match url.scheme() {
            "https" => {}
            "http" if local && self.outbound.allows_private() => {}
            _ => return Err(bad("Enter an https:// URL.")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("A URL cannot hold a user name or password."));
        }
        if url.fragment().is_some() {
            return Err(bad("A URL cannot have a #fragment."));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("Enter an absolute https:// URL."));
        }
        // As stored: parsing percent-encodes what is not ASCII, which can make it much longer.
        if url.as_str().len() > MAX_URL_CHARS {
            return Err(bad("A URL has at most 2048 characters."));
        }
        Ok(url)
    }
}

fn checked_description(raw: &str) -> Result<String> {
    let description = raw.trim();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(
            "description",
            "A description has at most 200 characters.",
        ));
    }
    if description.chars().any(char::is_control) {
        return Err(Error::invalid(
            "description",
            "A description cannot contain control characters.",
        ));
    }
    Ok(description.to_owned())
}

fn checked_events(raw: &[String]) -> Result<Vec<String>> {
    if raw.is_empty() || raw.len() > EventType::SUBSCRIBABLE.len() * 2 {
        return Err(Error::invalid("events", "Choose at least one event type."));
    }
    let mut events = Vec::new();
    for name in raw {
        let Some(event) = EventType::parse(name.trim()) else {
            let known: Vec<&str> = EventType::SUBSCRIBABLE.iter().map(|e| e.as_str()).collect();
            return Err(Error::invalid(
                "events",
                format!("Unknown event type; choose from {}.", known.join(", ")),
            ));
        };
        if !events.contains(&event.as_str().to_owned()) {
            events.push(event.as_str().to_owned());
        }
    }
    Ok(events)
}

fn delivery_view(
    d: webhook_delivery::Model,
    attempts: Vec<webhook_attempt::Model>,
) -> DeliveryView {
    DeliveryView {
        id: d.id,
        event_id: format!("evt_{}", d.event_id.simple()),
        event_type: d.event_type,
        next_attempt_at: (d.status == "pending").then_some(d.next_attempt_at),
        status: d.status,
        attempts: d.attempts,
        last_status: d.last_status,
        last_error: d.last_error,
        created_at: d.created_at,
        finished_at: d.finished_at,
        attempt_log: attempts
            .into_iter()
            .map(|a| AttemptView {
                attempted_at: a.attempted_at,
                status_code: a.status_code,
                latency_ms: a.latency_ms,
                response_excerpt: a.response_excerpt,
                error: a.error,
            })
            .collect(),
    }
}
