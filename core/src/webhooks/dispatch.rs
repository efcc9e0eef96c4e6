//! Fan-out: reads the audit seals in order, once, and writes a delivery for every endpoint that
//! wants each event (see the module docs of [`super`]). Several instances take turns (a named
//! lock); the cursor moves in the transaction that writes the deliveries.

use std::collections::HashMap;

use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
    sea_query::{Expr, OnConflict, Query},
};
use uuid::Uuid;

use super::events::{self, EventType};
use crate::{
    Clock, Result,
    audit::{
        AuditRecord,
        chain::{Head, INSTANCE_CHAIN},
    },
    entities::{
        audit_event, audit_link, audit_seal, webhook_cursor, webhook_delivery, webhook_endpoint,
    },
};

const CURSOR: &str = "dispatch";
/// Seals read per run.
const SEALS_PER_RUN: u64 = 20;
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

/// One run over at most [`SEALS_PER_RUN`] seals. It is worked out from plain reads before the
/// write lock is taken (SQLite's one writer is the sign-ins' too, and reading a run's events
/// held it for tens of milliseconds); under the lock only the cursor is read again, and a run
/// that finds it moved (another instance fanned these seals out) writes nothing.
async fn dispatch_batch(writer: &DatabaseConnection, clock: &dyn Clock) -> Result<(u64, bool)> {
    let read = cursor(writer).await?;
    let newest = audit_seal::Entity::find()
        .select_only()
        .column_as(audit_seal::Column::Id.max(), "max")
        .into_tuple::<Option<i64>>()
        .one(writer)
        .await?
        .flatten();
    let Some(newest) = newest.filter(|n| *n > read) else {
        return Ok((0, false));
    };
    let mut endpoints: HashMap<Uuid, Vec<(webhook_endpoint::Model, Vec<String>)>> = HashMap::new();
    for e in webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .all(writer)
        .await?
    {
        let wants: Vec<String> = serde_json::from_value(e.events.clone()).unwrap_or_default();
        endpoints.entry(e.tenant_id).or_default().push((e, wants));
    }
    // No endpoint anywhere (most instances, most of the time): nothing to fan out, so nothing
    // is read; the cursor just moves past the seals.
    let (last_seal, more, deliveries) = if endpoints.is_empty() {
        (newest, false, Vec::new())
    } else {
        let seals = audit_seal::Entity::find()
            .filter(audit_seal::Column::Id.gt(read))
            .order_by_asc(audit_seal::Column::Id)
            .limit(SEALS_PER_RUN)
            .all(writer)
            .await?;
        let (Some(first), Some(last)) = (seals.first(), seals.last()) else {
            return Ok((0, false));
        };
        let more = seals.len() as u64 == SEALS_PER_RUN;
        let deliveries = fan_out(writer, clock, &endpoints, (first.id, last.id), &seals).await?;
        (last.id, more, deliveries)
    };
    let txn = crate::db::begin_write(writer).await?;
    crate::db::lock_named(&txn, "webhook-dispatch").await?;
    if cursor(&txn).await? != read {
        // Another instance took these seals meanwhile: look again.
        return Ok((0, true));
    }
    let written = deliveries.len() as u64;
    crate::db::insert_all(&txn, deliveries).await?;
    move_cursor(&txn, last_seal).await?;
    txn.commit().await?;
    Ok((written, more))
}

/// The seal the dispatcher has fanned out up to.
async fn cursor(conn: &impl ConnectionTrait) -> Result<i64> {
    Ok(webhook_cursor::Entity::find_by_id(CURSOR)
        .one(conn)
        .await?
        .map_or(0, |c| c.seal_id))
}

/// The deliveries for the events of seals `range` that some endpoint wants, and the
/// checkpoints due. Reads only the events of tenants with endpoints whose actions (and error
/// codes) report a wanted type ([`EventType::sources`]).
async fn fan_out(
    conn: &DatabaseConnection,
    clock: &dyn Clock,
    endpoints: &HashMap<Uuid, Vec<(webhook_endpoint::Model, Vec<String>)>>,
    range: (i64, i64),
    seals: &[audit_seal::Model],
) -> Result<Vec<webhook_delivery::ActiveModel>> {
    let now = clock.now();
    let mut sources = Condition::any();
    let mut any_source = false;
    for wanted in endpoints
        .values()
        .flatten()
        .flat_map(|(_, wants)| wants.iter())
        .filter_map(|w| EventType::parse(w))
        .collect::<std::collections::HashSet<_>>()
    {
        for (action, code) in wanted.sources() {
            let mut source = Condition::all().add(audit_event::Column::Action.eq(*action));
            if let Some(code) = code {
                source = source.add(audit_event::Column::ErrorCode.eq(*code));
            }
            sources = sources.add(source);
            any_source = true;
        }
    }
    let records: Vec<AuditRecord> = if any_source {
        audit_event::Entity::find()
            .filter(
                audit_event::Column::Id.in_subquery(
                    Query::select()
                        .column(audit_link::Column::EventId)
                        .from(audit_link::Entity)
                        .and_where(audit_link::Column::SealId.gte(range.0))
                        .and_where(audit_link::Column::SealId.lte(range.1))
                        .and_where(audit_link::Column::Chain.ne(INSTANCE_CHAIN))
                        .to_owned(),
                ),
            )
            .filter(audit_event::Column::TenantId.is_in(endpoints.keys().copied()))
            .filter(sources)
            .all(conn)
            .await?
            .into_iter()
            .map(AuditRecord::from)
            .collect()
    } else {
        Vec::new()
    };
    // Each event's position in its chain: deliveries about one user go out in that order.
    let mut positions: HashMap<i64, i64> = HashMap::new();
    let ids: Vec<i64> = records.iter().map(|r| r.id).collect();
    for chunk in ids.chunks(500) {
        for (event_id, seq) in audit_link::Entity::find()
            .select_only()
            .column(audit_link::Column::EventId)
            .column(audit_link::Column::Seq)
            .filter(audit_link::Column::EventId.is_in(chunk.iter().copied()))
            .into_tuple::<(i64, i64)>()
            .all(conn)
            .await?
        {
            positions.insert(event_id, seq);
        }
    }
    let mut deliveries = Vec::new();
    for record in &records {
        let (Some(tenant_id), Some(seq)) = (record.tenant_id, positions.get(&record.id)) else {
            continue;
        };
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
                    seq * 16 + n as i64,
                    now,
                ));
            }
        }
    }
    // The newest head of each tenant chain the seals advanced, as the seals record them.
    let mut heads: HashMap<Uuid, (i64, i64, String)> = HashMap::new();
    for seal in seals {
        let Ok(advanced) = serde_json::from_value::<HashMap<String, Head>>(seal.heads.clone())
        else {
            continue;
        };
        for (chain, head) in advanced {
            if let Ok(tenant_id) = chain.parse::<Uuid>()
                && endpoints.contains_key(&tenant_id)
            {
                heads.insert(tenant_id, (seal.id, head.seq, head.hash));
            }
        }
    }
    deliveries.extend(checkpoints(conn, endpoints, &heads, seals, now).await?);
    Ok(deliveries)
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
    conn: &impl ConnectionTrait,
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
                // Literal, not a parameter: SQLite uses a partial index only for a condition it
                // can read in the SQL (`webhook_deliveries_checkpoints`, migration 000020).
                .filter(Expr::cust(format!(
                    "event_type = '{}'",
                    EventType::AuditCheckpoint.as_str()
                )))
                .filter(webhook_delivery::Column::CreatedAt.gt(now - CHECKPOINT_EVERY))
                .one(conn)
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
