//! Webhooks: a tenant's backend hears about passkeys registered, revoked, renamed and flagged,
//! users created, enrollment tokens issued and (opt-in) sign-ins, signed the Standard Webhooks
//! way (`docs/webhooks.md`).
//!
//! Nothing is lost, and the hot path pays nothing for it:
//! - **The audit log is the outbox** ([`events`]): each reported change already writes its
//!   audit event in its own transaction.
//! - **Fan-out follows the seals** ([`dispatch`]): sealing ([`crate::audit::seal`]) orders
//!   events in one serial sequence a moment after commit, so the dispatcher reads each seal
//!   once, in order, and writes its deliveries and its cursor in one transaction. A crash
//!   anywhere before that commit leaves the seal unread; after it, the deliveries are stored.
//! - **Delivery at least once** ([`deliver`]): each delivery is claimed with a lease by one
//!   instance at a time, retried with exponential backoff and jitter for the retry period, in
//!   order per user; a crash mid-send leaves the lease to expire and the delivery to be sent
//!   again (receivers drop duplicates by `webhook-id`).

pub mod deliver;
pub mod dispatch;
pub mod endpoints;
pub mod events;
mod sealed_secret;
mod signing;

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

pub use endpoints::{
    AttemptView, CreatedEndpoint, DeliveryPage, DeliveryView, EndpointChange, EndpointView,
    NewEndpoint,
};
pub use events::EventType;

use crate::{Clock, Result, instance_keys::InstanceKeys, outbound::Outbound};

/// How long a failing delivery is retried before it is marked failed (the default).
pub const DEFAULT_RETRY_PERIOD: chrono::Duration = chrono::Duration::hours(72);

/// The webhook service: endpoints, and the dispatcher and worker (see the module).
pub struct Webhooks<'a> {
    pub(crate) db: &'a DatabaseConnection,
    pub(crate) writer: &'a DatabaseConnection,
    pub(crate) clock: &'a dyn Clock,
    pub(crate) keys: &'a InstanceKeys,
    pub(crate) outbound: &'a Outbound,
    pub(crate) retry_period: chrono::Duration,
    /// Wakes the worker when something is due now (a test event, a redelivery, a fan-out).
    pub(crate) notify: &'a Arc<Notify>,
}

impl Webhooks<'_> {
    async fn key(&self) -> Result<[u8; 32]> {
        self.keys
            .sealing(crate::instance_keys::KeyStore {
                db: self.db,
                writer: self.writer,
                clock: self.clock,
            })
            .await
    }
}
