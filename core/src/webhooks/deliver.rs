//! The delivery worker: claims due deliveries with a lease, signs and POSTs them, records each
//! attempt, and schedules the next with exponential backoff and jitter until the retry period
//! ends. Deliveries about one user go out in order: one waits while an earlier one for the same
//! endpoint and user is still pending. An endpoint whose every delivery has failed for
//! [`DISABLE_AFTER`] is disabled, with the reason for its owners.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use futures_util::StreamExt;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, Query},
};
use uuid::Uuid;

use super::{Webhooks, sealed_secret, signing};
use crate::{
    Result,
    audit::{self, Actor, AuditEntry},
    entities::{webhook_attempt, webhook_delivery, webhook_endpoint},
    outbound::{FetchError, Posted},
};

/// How long a claimed delivery is an instance's alone: well past the request's timeout.
pub const LEASE: Duration = Duration::seconds(60);
/// An endpoint whose deliveries have all failed for this long is disabled.
pub const DISABLE_AFTER: Duration = Duration::days(5);
/// Deliveries claimed per run.
const CLAIM: u64 = 64;
/// POSTs in flight at once: a receiver is not hit by a whole round at once.
const IN_FLIGHT: usize = 16;
const FIRST_RETRY: Duration = Duration::seconds(5);
const LONGEST_RETRY: Duration = Duration::hours(1);
const EXCERPT_CHARS: usize = 1024;
/// What `last_error` and `disabled_reason` hold at most.
const MAX_ERROR_CHARS: usize = 500;

/// The wait before attempt `n + 1` after `n` failures: 5 s doubling up to an hour, with ±20 %
/// jitter so that a recovering receiver is not hit by every retry at once.
pub fn backoff(failures: i32) -> Duration {
    let exponent = failures.clamp(1, 20) - 1;
    let base = (FIRST_RETRY * 2i32.pow(exponent as u32)).min(LONGEST_RETRY);
    let mut byte = [0u8; 1];
    let jitter = if getrandom::fill(&mut byte).is_ok() {
        f64::from(byte[0]) / 255.0 * 0.4 - 0.2
    } else {
        0.0
    };
    let millis = base.num_milliseconds() as f64 * (1.0 + jitter);
    Duration::milliseconds(millis as i64)
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Run {
    pub delivered: u64,
    pub failed_attempts: u64,
}

impl Webhooks<'_> {
    /// Sends what is due now, once; answers what happened.
    pub async fn deliver_due(&self) -> Result<Run> {
        let now = self.clock.now();
        let candidates = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::Status.eq("pending"))
            .filter(webhook_delivery::Column::NextAttemptAt.lte(now))
            .filter(
                Condition::any()
                    .add(webhook_delivery::Column::LeaseUntil.is_null())
                    .add(webhook_delivery::Column::LeaseUntil.lt(now)),
            )
            // Neither a disabled endpoint's deliveries nor those waiting behind an earlier one
            // about the same user: in SQL, so that they never crowd out what can go now. The
            // check reads the partial index of pending deliveries (migration 000020), not the
            // endpoint's finished history; `'pending'` stays literal so that SQLite can use it.
            .filter(
                webhook_delivery::Column::EndpointId.in_subquery(
                    Query::select()
                        .column(webhook_endpoint::Column::Id)
                        .from(webhook_endpoint::Entity)
                        .and_where(webhook_endpoint::Column::Enabled.eq(true))
                        .to_owned(),
                ),
            )
            .filter(Expr::cust(
                "NOT EXISTS (SELECT 1 FROM webhook_deliveries earlier \
                 WHERE earlier.endpoint_id = webhook_deliveries.endpoint_id \
                 AND earlier.ordering_key = webhook_deliveries.ordering_key \
                 AND earlier.status = 'pending' AND earlier.seq < webhook_deliveries.seq)",
            ))
            .order_by_asc(webhook_delivery::Column::NextAttemptAt)
            .order_by_asc(webhook_delivery::Column::Seq)
            .limit(CLAIM * 4)
            .all(self.db)
            .await?;
        if candidates.is_empty() {
            return Ok(Run::default());
        }
        let endpoints: HashMap<Uuid, webhook_endpoint::Model> = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::Id.is_in(candidates.iter().map(|c| c.endpoint_id)))
            .all(self.db)
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
        let key = self.key().await?;
        let mut chosen = Vec::new();
        let mut lines: HashSet<(Uuid, String)> = HashSet::new();
        for c in candidates {
            if chosen.len() as u64 >= CLAIM {
                break;
            }
            if !endpoints.get(&c.endpoint_id).is_some_and(|e| e.enabled) {
                continue;
            }
            if let Some(user) = &c.ordering_key
                && !lines.insert((c.endpoint_id, user.clone()))
            {
                // One delivery per endpoint and user at a time, the earliest first.
                continue;
            }
            chosen.push(c.id);
        }
        if chosen.is_empty() {
            return Ok(Run::default());
        }
        // One statement claims the round, and one read answers which rows it won: another
        // instance may have taken some meanwhile. Claiming row by row cost a write transaction
        // each, and SQLite's one writer is the sign-ins' too.
        let token = Uuid::new_v4();
        webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::LeaseUntil,
                Expr::value(now + LEASE),
            )
            .col_expr(webhook_delivery::Column::LeaseToken, Expr::value(token))
            .filter(webhook_delivery::Column::Id.is_in(chosen))
            .filter(webhook_delivery::Column::Status.eq("pending"))
            .filter(
                Condition::any()
                    .add(webhook_delivery::Column::LeaseUntil.is_null())
                    .add(webhook_delivery::Column::LeaseUntil.lt(now)),
            )
            .exec(self.writer)
            .await?;
        let claimed = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::LeaseToken.eq(token))
            .all(self.writer)
            .await?;
        let sends = claimed.into_iter().filter_map(|delivery| {
            let endpoint = endpoints.get(&delivery.endpoint_id)?.clone();
            let key = &key;
            Some(async move {
                let sent = self.send(key, &endpoint, &delivery).await;
                Sent {
                    delivery,
                    endpoint,
                    result: sent.0,
                    latency_ms: sent.1,
                }
            })
        });
        let round: Vec<Sent> = futures_util::stream::iter(sends)
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let mut run = Run::default();
        for sent in &round {
            if sent.ok() {
                run.delivered += 1;
            } else {
                run.failed_attempts += 1;
            }
        }
        self.record(token, round).await?;
        Ok(run)
    }

    /// One signed POST; the latency in milliseconds beside it.
    async fn send(
        &self,
        key: &[u8; 32],
        endpoint: &webhook_endpoint::Model,
        d: &webhook_delivery::Model,
    ) -> (std::result::Result<Posted, FetchError>, i32) {
        let now = self.clock.now();
        let msg_id = format!("evt_{}", d.event_id.simple());
        let timestamp = now.timestamp();
        let mut secrets = vec![endpoint.secret.as_str()];
        if let (Some(previous), Some(until)) = (&endpoint.previous_secret, endpoint.previous_until)
            && until > now
        {
            secrets.push(previous);
        }
        let signatures: Vec<String> = secrets
            .into_iter()
            .filter_map(|s| sealed_secret::open(key, endpoint.tenant_id, endpoint.id, s).ok())
            .filter_map(|s| signing::sign(&s, &msg_id, timestamp, d.payload.as_bytes()))
            .collect();
        if signatures.is_empty() {
            tracing::error!(endpoint = %endpoint.id, "webhook secret does not open");
            return (
                Err(FetchError::Refused(
                    "the endpoint's secret could not be read".into(),
                )),
                0,
            );
        }
        let Ok(url) = reqwest::Url::parse(&endpoint.url) else {
            return (Err(FetchError::Refused("not a URL".into())), 0);
        };
        let started = std::time::Instant::now();
        let posted = self
            .outbound
            .post_json(
                &url,
                &[
                    ("webhook-id", msg_id),
                    ("webhook-timestamp", timestamp.to_string()),
                    ("webhook-signature", signatures.join(" ")),
                ],
                d.payload.clone().into_bytes(),
            )
            .await;
        let latency = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        (posted, latency)
    }

    /// Records a round's attempts, and what comes next for each delivery whose lease is still
    /// this round's, in one transaction.
    async fn record(&self, token: Uuid, round: Vec<Sent>) -> Result<()> {
        if round.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let txn = crate::db::begin_write(self.writer).await?;
        let mut attempts = Vec::with_capacity(round.len());
        // Per endpoint: whether any of its deliveries succeeded, and the last error otherwise.
        let mut outcomes: HashMap<Uuid, (&webhook_endpoint::Model, bool, Option<String>)> =
            HashMap::new();
        for sent in &round {
            let d = &sent.delivery;
            let (status_code, excerpt, error) = match &sent.result {
                Ok(p) => (
                    Some(i32::from(p.status)),
                    Some(p.excerpt.chars().take(EXCERPT_CHARS).collect::<String>()),
                    (!(200..300).contains(&p.status)).then(|| format!("HTTP {}", p.status)),
                ),
                Err(e) => (None, None, Some(e.to_string())),
            };
            // The columns hold 500 characters; an error names a host, which can be long.
            let error = error.map(|e| e.chars().take(MAX_ERROR_CHARS).collect::<String>());
            let ok = error.is_none();
            let attempt_count = d.attempts.saturating_add(1);
            let give_up = !ok && now - d.created_at >= self.retry_period;
            let mut update = webhook_delivery::Entity::update_many()
                .col_expr(
                    webhook_delivery::Column::Attempts,
                    Expr::value(attempt_count),
                )
                .col_expr(
                    webhook_delivery::Column::LeaseUntil,
                    Expr::value(None::<DateTime<Utc>>),
                )
                .col_expr(
                    webhook_delivery::Column::LeaseToken,
                    Expr::value(None::<Uuid>),
                )
                .col_expr(
                    webhook_delivery::Column::LastStatus,
                    Expr::value(status_code),
                )
                .col_expr(
                    webhook_delivery::Column::LastError,
                    Expr::value(error.clone()),
                );
            update = if ok || give_up {
                update
                    .col_expr(
                        webhook_delivery::Column::Status,
                        Expr::value(if ok { "delivered" } else { "failed" }),
                    )
                    .col_expr(webhook_delivery::Column::FinishedAt, Expr::value(now))
            } else {
                update.col_expr(
                    webhook_delivery::Column::NextAttemptAt,
                    Expr::value(now + backoff(attempt_count)),
                )
            };
            let mine = update
                .filter(webhook_delivery::Column::Id.eq(d.id))
                .filter(webhook_delivery::Column::LeaseToken.eq(token))
                .exec(&txn)
                .await?;
            if mine.rows_affected != 1 {
                // The lease ran out and another instance took the delivery over: its record
                // counts.
                continue;
            }
            attempts.push(webhook_attempt::ActiveModel {
                id: Set(Uuid::new_v4()),
                tenant_id: Set(d.tenant_id),
                endpoint_id: Set(d.endpoint_id),
                delivery_id: Set(d.id),
                attempted_at: Set(now),
                status_code: Set(status_code),
                latency_ms: Set(sent.latency_ms),
                response_excerpt: Set(excerpt),
                error: Set(error.clone()),
            });
            let outcome = outcomes
                .entry(sent.endpoint.id)
                .or_insert((&sent.endpoint, false, None));
            outcome.1 |= ok;
            if error.is_some() {
                outcome.2 = error;
            }
        }
        crate::db::insert_all(&txn, attempts).await?;
        for (endpoint, any_ok, error) in outcomes.into_values() {
            self.record_endpoint_health(&txn, now, endpoint, any_ok, error)
                .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// An endpoint that answered is healthy again; one whose every delivery has failed since
    /// `failing_since` for [`DISABLE_AFTER`] is disabled, with the reason for its owners.
    async fn record_endpoint_health(
        &self,
        txn: &sea_orm::DatabaseTransaction,
        now: DateTime<Utc>,
        endpoint: &webhook_endpoint::Model,
        any_ok: bool,
        error: Option<String>,
    ) -> Result<()> {
        if any_ok {
            webhook_endpoint::Entity::update_many()
                .col_expr(
                    webhook_endpoint::Column::FailingSince,
                    Expr::value(None::<DateTime<Utc>>),
                )
                .filter(webhook_endpoint::Column::Id.eq(endpoint.id))
                .filter(webhook_endpoint::Column::FailingSince.is_not_null())
                .exec(txn)
                .await?;
            return Ok(());
        }
        webhook_endpoint::Entity::update_many()
            .col_expr(webhook_endpoint::Column::FailingSince, Expr::value(now))
            .filter(webhook_endpoint::Column::Id.eq(endpoint.id))
            .filter(webhook_endpoint::Column::FailingSince.is_null())
            .exec(txn)
            .await?;
        let reason = format!(
            "Disabled by Latchkey: every delivery failed for {} days (the last: {}).",
            DISABLE_AFTER.num_days(),
            error.as_deref().unwrap_or("an error")
        )
        .chars()
        .take(MAX_ERROR_CHARS)
        .collect::<String>();
        let disabled = webhook_endpoint::Entity::update_many()
            .col_expr(webhook_endpoint::Column::Enabled, Expr::value(false))
            .col_expr(
                webhook_endpoint::Column::DisabledReason,
                Expr::value(reason.clone()),
            )
            .col_expr(webhook_endpoint::Column::UpdatedAt, Expr::value(now))
            .filter(webhook_endpoint::Column::Id.eq(endpoint.id))
            .filter(webhook_endpoint::Column::Enabled.eq(true))
            .filter(webhook_endpoint::Column::FailingSince.lte(now - DISABLE_AFTER))
            .exec(txn)
            .await?;
        if disabled.rows_affected == 1 {
            audit::record_in(
                txn,
                self.clock,
                AuditEntry::new(Actor::System, "webhook.endpoint_disabled")
                    .tenant(endpoint.tenant_id)
                    .target("webhook_endpoint", endpoint.id.to_string())
                    .details(serde_json::json!({ "url": endpoint.url, "reason": reason })),
            )
            .await?;
        }
        Ok(())
    }
}

/// One POST of a round, as sent.
struct Sent {
    delivery: webhook_delivery::Model,
    endpoint: webhook_endpoint::Model,
    result: std::result::Result<Posted, FetchError>,
    latency_ms: i32,
}

impl Sent {
    fn ok(&self) -> bool {
        self.result
            .as_ref()
            .is_ok_and(|p| (200..300).contains(&p.status))
    }
}

/// Finished deliveries (and their attempts) are kept this long for the delivery log.
pub const KEEP_FINISHED: Duration = Duration::days(30);

impl Webhooks<'_> {
    /// Housekeeping: forgets deliveries finished more than [`KEEP_FINISHED`] ago, with their
    /// attempts. Returns how many.
    pub async fn purge_finished(&self) -> Result<u64> {
        let cutoff = self.clock.now() - KEEP_FINISHED;
        let old = Query::select()
            .column(webhook_delivery::Column::Id)
            .from(webhook_delivery::Entity)
            .and_where(webhook_delivery::Column::Status.ne("pending"))
            .and_where(webhook_delivery::Column::FinishedAt.lt(cutoff))
            .to_owned();
        let txn = crate::db::begin_write(self.writer).await?;
        webhook_attempt::Entity::delete_many()
            .filter(webhook_attempt::Column::DeliveryId.in_subquery(old.clone()))
            .exec(&txn)
            .await?;
        let deleted = webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::Id.in_subquery(old))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(deleted.rows_affected)
    }
}
