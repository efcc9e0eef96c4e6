//! Sealing: links the events recorded since the last run into their chains, and chains the run
//! itself, a moment after they commit. Recording an event stays one plain insert; only the
//! sealer is serialised (by a named lock, so several instances take turns).
//!
//! Which events a run takes: on PostgreSQL an event with a smaller id can commit after one with
//! a larger id, so a run takes every event not yet linked (within [`LOOKBACK_IDS`] of the
//! newest linked one), in id order, and a chain's order is its link order, not id order. A run
//! that takes every pending event moves the floor up to [`SETTLE`] before now: an unlinked event
//! that occurred before the floor is never linked later, and the verifier reports it as
//! inserted after the fact. So every event is sealed within one interval of its commit, and an
//! event slipped into the past is found.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, SubsecRound};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::Query,
};

use super::{
    AuditRecord,
    chain::{GENESIS, Head, chain_of, document, link_hash, seal_document},
};
use crate::{
    Clock, Result,
    entities::{audit_event, audit_link, audit_seal},
};

/// An event whose transaction takes longer than this to commit after it was stamped is reported
/// as inserted after the fact.
pub const SETTLE: Duration = Duration::seconds(60);
/// How far below the newest linked event a run looks for ones that committed late.
pub const LOOKBACK_IDS: i64 = 10_000;
/// Events linked by one run at most.
const BATCH: u64 = 2_000;

/// What one run sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub seal_id: i64,
    pub events: u64,
    pub hash: String,
}

/// Links pending events into their chains, a batch at a time, until none is left. `None` when
/// there was nothing to seal.
pub async fn seal_pending(db: &DatabaseConnection, clock: &dyn Clock) -> Result<Option<Sealed>> {
    let mut last = None;
    loop {
        match seal_batch(db, clock).await? {
            Some((sealed, drained)) => {
                last = Some(Sealed {
                    events: last.as_ref().map_or(0, |l: &Sealed| l.events) + sealed.events,
                    ..sealed
                });
                if drained {
                    return Ok(last);
                }
            }
            None => return Ok(last),
        }
    }
}

/// The newest seal and up to `limit` events it has not linked yet, oldest first.
async fn pending(
    conn: &impl ConnectionTrait,
    limit: u64,
) -> Result<(Option<audit_seal::Model>, Vec<audit_event::Model>)> {
    let latest = audit_seal::Entity::find()
        .order_by_desc(audit_seal::Column::Id)
        .one(conn)
        .await?;
    let floor = latest.as_ref().map_or(DateTime::UNIX_EPOCH, |s| s.floor);
    let newest_linked: Option<i64> = audit_link::Entity::find()
        .select_only()
        .column_as(audit_link::Column::EventId.max(), "max")
        .into_tuple::<Option<i64>>()
        .one(conn)
        .await?
        .flatten();
    let low = newest_linked.map_or(i64::MIN, |n| n.saturating_sub(LOOKBACK_IDS));
    let pending = audit_event::Entity::find()
        .filter(audit_event::Column::Id.gt(low))
        .filter(audit_event::Column::OccurredAt.gte(floor))
        .filter(
            audit_event::Column::Id.not_in_subquery(
                Query::select()
                    .column(audit_link::Column::EventId)
                    .from(audit_link::Entity)
                    .and_where(audit_link::Column::EventId.gt(low))
                    .to_owned(),
            ),
        )
        .order_by_asc(audit_event::Column::Id)
        .limit(limit)
        .all(conn)
        .await?;
    Ok((latest, pending))
}

/// A run worked out: the links and the seal to write, and the seal they follow.
struct Prepared {
    /// The newest seal when the run was worked out (`None`: no seal yet).
    after: Option<i64>,
    links: Vec<audit_link::ActiveModel>,
    seal: audit_seal::ActiveModel,
    sealed: Sealed,
    drained: bool,
}

/// Works a run out from what `conn` shows: at most [`BATCH`] pending events linked onto their
/// chains' heads, and the seal over them. `None` when nothing is pending.
async fn prepare(conn: &impl ConnectionTrait, clock: &dyn Clock) -> Result<Option<Prepared>> {
    // The newest seal is read first: a run that commits after it changes it, so comparing it
    // under the lock tells whether everything read here is still current.
    let (latest, pending) = pending(conn, BATCH).await?;
    let floor = latest.as_ref().map_or(DateTime::UNIX_EPOCH, |s| s.floor);
    if pending.is_empty() {
        return Ok(None);
    }
    let drained = (pending.len() as u64) < BATCH;
    let mut heads: HashMap<String, Head> = HashMap::new();
    for chain in pending
        .iter()
        .map(|e| chain_of(e.tenant_id))
        .collect::<std::collections::BTreeSet<_>>()
    {
        let head = audit_link::Entity::find()
            .filter(audit_link::Column::Chain.eq(&chain))
            .order_by_desc(audit_link::Column::Seq)
            .one(conn)
            .await?
            .map_or_else(
                || Head {
                    seq: 0,
                    hash: GENESIS.to_owned(),
                },
                |l| Head {
                    seq: l.seq,
                    hash: l.hash,
                },
            );
        heads.insert(chain, head);
    }
    let now = clock.now().trunc_subsecs(6);
    let after = latest.as_ref().map(|s| s.id);
    let seal_id = after.map_or(1, |id| id + 1);
    let prev_seal = latest.map_or_else(|| GENESIS.to_owned(), |s| s.hash);
    let next_floor = if drained {
        floor.max(now - SETTLE)
    } else {
        floor
    };
    let events = i64::try_from(pending.len()).unwrap_or(i64::MAX);
    // Hashing a batch is CPU work: off the async runtime, in one of the CPU slots.
    let (links, seal, hash) = crate::cpu::off_runtime(move || {
        let mut links = Vec::with_capacity(pending.len());
        for event in pending {
            let chain = chain_of(event.tenant_id);
            let record = AuditRecord::from(event);
            let Some(head) = heads.get_mut(&chain) else {
                continue;
            };
            let hash = link_hash(&head.hash, &document(&record));
            let prev = std::mem::replace(&mut head.hash, hash.clone());
            head.seq += 1;
            links.push(audit_link::ActiveModel {
                event_id: Set(record.id),
                chain: Set(chain),
                seq: Set(head.seq),
                prev_hash: Set(prev),
                hash: Set(hash),
                seal_id: Set(seal_id),
            });
        }
        let heads: BTreeMap<String, Head> = heads.into_iter().collect();
        let heads = serde_json::to_value(heads).unwrap_or_default();
        let hash = link_hash(
            &prev_seal,
            &seal_document(seal_id, &now, &next_floor, events, &heads),
        );
        let seal = audit_seal::ActiveModel {
            id: Set(seal_id),
            sealed_at: Set(now),
            floor: Set(next_floor),
            events: Set(events),
            heads: Set(heads),
            prev_hash: Set(prev_seal),
            hash: Set(hash.clone()),
        };
        Ok((links, seal, hash))
    })
    .await?;
    Ok(Some(Prepared {
        after,
        links,
        seal,
        sealed: Sealed {
            seal_id,
            events: u64::try_from(events).unwrap_or(0),
            hash,
        },
        drained,
    }))
}

/// One run: at most [`BATCH`] events. Says whether it took every pending event.
///
/// The run is worked out before the write lock is taken, from plain reads: SQLite's one writer
/// is the sign-ins' too, and reading and hashing a batch held it for tens of milliseconds. Under
/// the lock only the newest seal is read again; if another run sealed meanwhile, the work is
/// redone under the lock.
async fn seal_batch(db: &DatabaseConnection, clock: &dyn Clock) -> Result<Option<(Sealed, bool)>> {
    let Some(mut run) = prepare(db, clock).await? else {
        return Ok(None);
    };
    let txn = crate::db::begin_write(db).await?;
    crate::db::lock_named(&txn, "audit-seal").await?;
    let newest = audit_seal::Entity::find()
        .select_only()
        .column_as(audit_seal::Column::Id.max(), "max")
        .into_tuple::<Option<i64>>()
        .one(&txn)
        .await?
        .flatten();
    if newest != run.after {
        match prepare(&txn, clock).await? {
            Some(again) => run = again,
            None => return Ok(None),
        }
    }
    let Prepared {
        links,
        seal,
        sealed,
        drained,
        ..
    } = run;
    audit_seal::Entity::insert(seal)
        .exec_without_returning(&txn)
        .await?;
    crate::db::insert_all(&txn, links).await?;
    txn.commit().await?;
    Ok(Some((sealed, drained)))
}
