//! Fan-out: reads the audit seals in order, once, and writes a delivery for every endpoint that
//! wants each event (see the module docs of [`super`]). Several instances take turns (a named
//! lock); the cursor moves in the transaction that writes the deliveries.

use std::collections::HashMap;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::OnConflict,
};
use uuid::Uuid;

use super::events::{self, EventType};
use crate::{
    Clock, Result,
    audit::{AuditRecord, chain::INSTANCE_CHAIN},
    entities::{
        audit_event, audit_link, audit_seal, webhook_cursor, webhook_delivery, webhook_endpoint,
    },
};

const CURSOR: &str = "dispatch";
/// Seals read per run.
const SEALS_PER_RUN: u64 = 20;
/// Deliveries written per statement.
const INSERT_CHUNK: usize = 200;
/// A tenant's `audit.checkpoint` goes out at most this often per endpoint.
pub const CHECKPOINT_EVERY: chrono::Duration = chrono::Duration::hours(1);

/// Fans out the events of the seals not read yet; answers how many deliveries it wrote.
pub async fn dispatch(writer: &DatabaseConnection, clock: &dyn Clock) -> Result<u64> {
    let mut written = 0;
    loop {
        let (n, more) = dispatch_batch(writer, clock).await?;
        written += n;
        if !more {
            return Ok(written);
        }
    }
}

async fn dispatch_batch(writer: &DatabaseConnection, clock: &dyn Clock) -> Result<(u64, bool)> {
    // Looked at before taking the write lock: most runs find no new seal.
    let read = webhook_cursor::Entity::find_by_id(CURSOR)
        .one(writer)
        .await?
        .map_or(0, |c| c.seal_id);
    let newest = audit_seal::Entity::find()
        .select_only()
        .column_as(audit_seal::Column::Id.max(), "max")
        .into_tuple::<Option<i64>>()
        .one(writer)
        .await?
        .flatten();
    if newest.is_none_or(|n| n <= read) {
        return Ok((0, false));
    }
    let txn = crate::db::begin_write(writer).await?;
    crate::db::lock_named(&txn, "webhook-dispatch").await?;
    let cursor = webhook_cursor::Entity::find_by_id(CURSOR)
        .one(&txn)
        .await?
        .map_or(0, |c| c.seal_id);
    // No endpoint anywhere (most instances, most of the time): nothing to fan out, so the
    // seals' links are not read at all; the cursor just moves past them.
    let any_endpoint = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .one(&txn)
        .await?
        .is_some();
    if !any_endpoint {
        if let Some(newest) = newest.filter(|n| *n > cursor) {
            move_cursor(&txn, newest).await?;
        }
        txn.commit().await?;
        return Ok((0, false));
    }
    let seals = audit_seal::Entity::find()
        .filter(audit_seal::Column::Id.gt(cursor))
        .order_by_asc(audit_seal::Column::Id)
        .limit(SEALS_PER_RUN)
        .all(&txn)
        .await?;
    let Some(last_seal) = seals.last().map(|s| s.id) else {
        return Ok((0, false));
    };
    let more = seals.len() as u64 == SEALS_PER_RUN;
    let links = audit_link::Entity::find()
        .filter(audit_link::Column::SealId.gte(seals[0].id))
        .filter(audit_link::Column::SealId.lte(last_seal))
        .filter(audit_link::Column::Chain.ne(INSTANCE_CHAIN))
        .order_by_asc(audit_link::Column::SealId)
        .order_by_asc(audit_link::Column::Chain)
        .order_by_asc(audit_link::Column::Seq)
        .all(&txn)
        .await?;
    let tenants: Vec<Uuid> = {
        let mut t: Vec<Uuid> = links.iter().filter_map(|l| l.chain.parse().ok()).collect();
        t.sort_unstable();
        t.dedup();
        t
    };
    let mut endpoints: HashMap<Uuid, Vec<(webhook_endpoint::Model, Vec<String>)>> = HashMap::new();
    if !tenants.is_empty() {
        for e in webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::TenantId.is_in(tenants))
            .filter(webhook_endpoint::Column::Enabled.eq(true))
            .all(&txn)
            .await?
        {
            let wants: Vec<String> = serde_json::from_value(e.events.clone()).unwrap_or_default();
            endpoints.entry(e.tenant_id).or_default().push((e, wants));
        }
    }
    let now = clock.now();
    let mut deliveries = Vec::new();
    if !endpoints.is_empty() {
        // Only the events of tenants with endpoints are read.
        let wanted: Vec<i64> = links
            .iter()
            .filter(|l| {
                l.chain
                    .parse::<Uuid>()
                    .is_ok_and(|t| endpoints.contains_key(&t))
            })
            .map(|l| l.event_id)
            .collect();
        let mut records: HashMap<i64, AuditRecord> = HashMap::new();
        for chunk in wanted.chunks(500) {
            for e in audit_event::Entity::find()
                .filter(audit_event::Column::Id.is_in(chunk.iter().copied()))
                .all(&txn)
                .await?
            {
                records.insert(e.id, e.into());
            }
        }
        let mut heads: HashMap<Uuid, (i64, i64, String)> = HashMap::new();
        for link in &links {
            let Some(record) = records.get(&link.event_id) else {
                continue;
            };
            let Some(tenant_id) = record.tenant_id else {
                continue;
            };
            heads.insert(tenant_id, (link.seal_id, link.seq, link.hash.clone()));
            let Some(targets) = endpoints.get(&tenant_id) else {
                continue;
            };
            for (n, event) in events::from_audit(record).into_iter().enumerate() {
                let event_id = events::event_id(record.id, n);
                let payload = events::body(
                    event_id,
                    event.event_type,
                    record.occurred_at,
                    tenant_id,
                    &event.data,
                );
                for (endpoint, wants) in targets {
                    // An endpoint hears of what happened after it was created, and what it asked for.
                    if endpoint.created_at > record.occurred_at
                        || !wants.iter().any(|w| w == event.event_type.as_str())
                    {
                        continue;
                    }
                    deliveries.push(delivery(
                        endpoint,
                        event_id,
                        Some(record.id),
                        event.event_type,
                        payload.clone(),
                        event.user_id.clone(),
                        // Several events of one audit event keep their order too.
                        link.seq * 16 + n as i64,
                        now,
                    ));
                }
            }
        }
        deliveries.extend(checkpoints(&txn, &endpoints, &heads, &seals, now).await?);
    }
    let written = deliveries.len() as u64;
    for chunk in deliveries.chunks(INSERT_CHUNK) {
        webhook_delivery::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    move_cursor(&txn, last_seal).await?;
    txn.commit().await?;
    Ok((written, more))
}

/// Records that the seals up to `seal_id` are fanned out.
async fn move_cursor(txn: &sea_orm::DatabaseTransaction, seal_id: i64) -> Result<()> {
    webhook_cursor::Entity::insert(webhook_cursor::ActiveModel {
        name: Set(CURSOR.to_owned()),
        seal_id: Set(seal_id),
    })
    .on_conflict(
        OnConflict::column(webhook_cursor::Column::Name)
            .update_column(webhook_cursor::Column::SealId)
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// `audit.checkpoint` for the endpoints that want it, whose tenant's chain advanced, at most
/// once per [`CHECKPOINT_EVERY`] each.
async fn checkpoints(
    txn: &sea_orm::DatabaseTransaction,
    endpoints: &HashMap<Uuid, Vec<(webhook_endpoint::Model, Vec<String>)>>,
    heads: &HashMap<Uuid, (i64, i64, String)>,
    seals: &[audit_seal::Model],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<webhook_delivery::ActiveModel>> {
    let mut out = Vec::new();
    for (tenant_id, (seal_id, seq, hash)) in heads {
        let Some(targets) = endpoints.get(tenant_id) else {
            continue;
        };
        let Some(seal) = seals.iter().find(|s| s.id == *seal_id) else {
            continue;
        };
        for (endpoint, wants) in targets {
            if !wants
                .iter()
                .any(|w| w == EventType::AuditCheckpoint.as_str())
            {
                continue;
            }
            let recent = webhook_delivery::Entity::find()
                .filter(webhook_delivery::Column::EndpointId.eq(endpoint.id))
                .filter(webhook_delivery::Column::EventType.eq(EventType::AuditCheckpoint.as_str()))
                .filter(webhook_delivery::Column::CreatedAt.gt(now - CHECKPOINT_EVERY))
                .one(txn)
                .await?;
            if recent.is_some() {
                continue;
            }
            let event_id = Uuid::new_v4();
            let payload = events::body(
                event_id,
                EventType::AuditCheckpoint,
                now,
                *tenant_id,
                &serde_json::json!({
                    "chain": tenant_id,
                    "head": { "seq": seq, "hash": hash },
                    "seal": { "id": seal.id, "hash": seal.hash, "sealed_at": seal.sealed_at },
                }),
            );
            out.push(delivery(
                endpoint,
                event_id,
                None,
                EventType::AuditCheckpoint,
                payload,
                None,
                *seq * 16 + 15,
                now,
            ));
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn delivery(
    endpoint: &webhook_endpoint::Model,
    event_id: Uuid,
    audit_event_id: Option<i64>,
    event_type: EventType,
    payload: String,
    ordering_key: Option<String>,
    seq: i64,
    now: chrono::DateTime<chrono::Utc>,
) -> webhook_delivery::ActiveModel {
    webhook_delivery::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(endpoint.tenant_id),
        endpoint_id: Set(endpoint.id),
        event_id: Set(event_id),
        audit_event_id: Set(audit_event_id),
        event_type: Set(event_type.as_str().to_owned()),
        payload: Set(payload),
        ordering_key: Set(ordering_key),
        seq: Set(seq),
        status: Set("pending".to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        lease_until: Set(None),
        lease_token: Set(None),
        last_status: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        finished_at: Set(None),
    }
}
