//! `latchkey audit verify`: recomputes every chain link and every seal from the database and
//! names each event that does not match. Read-only: an auditor's check never writes.
//!
//! What it finds (see `docs/audit.md`): an event edited after it was sealed (its link no longer
//! matches), a sealed event deleted (outside a retention purge), an event inserted into the
//! sealed past (unlinked and older than the floor), links removed or rewritten (the chain or a
//! seal's heads no longer match), and seals rewritten (the seal chain, or an outside checkpoint,
//! no longer matches).

use std::collections::{BTreeMap, HashMap};

use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Query,
};
use uuid::Uuid;

use super::{
    chain::{GENESIS, Head, chain_of, document, link_hash, seal_document},
    seal::LOOKBACK_IDS,
};
use crate::{
    Result,
    entities::{audit_event, audit_link, audit_retention_run, audit_seal},
};

const BATCH: u64 = 1_000;
/// Seals checked per read (their links are read with them).
const SEAL_BATCH: u64 = 100;

/// What a verification found wrong with one event, link or seal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The event differs from what was sealed.
    Altered,
    /// A sealed event is gone, and no retention purge covers it.
    Deleted,
    /// An event that was never sealed although it is older than what sealing has covered.
    Inserted,
    /// Links are missing from the chain (the positions before this one).
    LinksMissing { from_seq: i64 },
    /// The link does not follow the one before it.
    LinkBroken,
    /// The seal does not match its predecessor, its contents or the chains' links.
    SealBroken { seal_id: i64 },
    /// The given checkpoint does not match the seal of that number.
    CheckpointMismatch { seal_id: i64 },
}

/// One finding: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub chain: String,
    pub event_id: Option<i64>,
    pub seq: Option<i64>,
    pub problem: Problem,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let event = self
            .event_id
            .map_or_else(String::new, |id| format!("event {id} "));
        let at = self
            .seq
            .map_or_else(String::new, |seq| format!(" at position {seq}"));
        let chain = &self.chain;
        match &self.problem {
            Problem::Altered => write!(
                f,
                "{event}(chain {chain}{at}) was altered: it no longer matches its seal"
            ),
            Problem::Deleted => write!(
                f,
                "{event}(chain {chain}{at}) was deleted, and no retention purge covers it"
            ),
            Problem::Inserted => write!(
                f,
                "{event}(chain {chain}) was inserted after the fact: it was never sealed, \
                 although it is older than what sealing has covered"
            ),
            Problem::LinksMissing { from_seq } => write!(
                f,
                "chain {chain}: the links from position {from_seq}{at} (exclusive) are missing"
            ),
            Problem::LinkBroken => write!(
                f,
                "{event}(chain {chain}{at}): its link does not follow the one before it"
            ),
            Problem::SealBroken { seal_id } => write!(
                f,
                "seal {seal_id} does not match its predecessor, its contents or its chains' links"
            ),
            Problem::CheckpointMismatch { seal_id } => write!(
                f,
                "seal {seal_id} does not match the checkpoint given (or does not exist)"
            ),
        }
    }
}

/// A verified chain's newest link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    pub chain: String,
    /// Events whose link was recomputed.
    pub verified: u64,
    /// Links whose events a retention purge removed (their hashes are taken as recorded).
    pub purged: u64,
    pub head: Head,
}

/// The newest seal: the checkpoint to keep outside Latchkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealSummary {
    pub id: i64,
    pub hash: String,
    pub sealed_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub chains: Vec<ChainSummary>,
    pub seals: u64,
    pub latest_seal: Option<SealSummary>,
    /// Events recorded but not sealed yet (sealing runs every few seconds).
    pub pending: u64,
    /// First found, first listed: a chain's findings in chain order.
    pub findings: Vec<Finding>,
}

impl Verification {
    pub fn is_intact(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Verifies every chain, or only `tenant`'s, and the seals; with `checkpoint` (a seal's number
/// and hash kept outside Latchkey), also that the seals still lead to it.
pub async fn verify(
    db: &DatabaseConnection,
    tenant: Option<Uuid>,
    checkpoint: Option<(i64, String)>,
) -> Result<Verification> {
    let purged_up_to: Option<i64> = audit_retention_run::Entity::find()
        .filter(audit_retention_run::Column::FinishedAt.is_not_null())
        .select_only()
        .column_as(audit_retention_run::Column::UpToId.max(), "max")
        .into_tuple::<Option<i64>>()
        .one(db)
        .await?
        .flatten();
    let chains: Vec<String> = match tenant {
        Some(t) => vec![chain_of(Some(t))],
        None => {
            audit_link::Entity::find()
                .select_only()
                .column(audit_link::Column::Chain)
                .distinct()
                .order_by_asc(audit_link::Column::Chain)
                .into_tuple::<String>()
                .all(db)
                .await?
        }
    };
    let mut findings = Vec::new();
    let mut summaries = Vec::new();
    for chain in chains {
        summaries.push(verify_chain(db, &chain, purged_up_to, &mut findings).await?);
    }
    let only = tenant.map(|t| chain_of(Some(t)));
    let (seals, latest_seal) = verify_seals(db, only.as_deref(), &mut findings).await?;
    if let Some((seal_id, hash)) = checkpoint {
        let found = audit_seal::Entity::find_by_id(seal_id).one(db).await?;
        if found.is_none_or(|s| !s.hash.eq_ignore_ascii_case(hash.trim())) {
            findings.push(Finding {
                chain: "seals".to_owned(),
                event_id: None,
                seq: None,
                problem: Problem::CheckpointMismatch { seal_id },
            });
        }
    }
    let pending = unlinked(db, tenant, latest_seal.as_ref(), &mut findings).await?;
    Ok(Verification {
        chains: summaries,
        seals,
        latest_seal: latest_seal.map(|s| SealSummary {
            id: s.id,
            hash: s.hash,
            sealed_at: s.sealed_at,
        }),
        pending,
        findings,
    })
}

async fn verify_chain(
    db: &DatabaseConnection,
    chain: &str,
    purged_up_to: Option<i64>,
    findings: &mut Vec<Finding>,
) -> Result<ChainSummary> {
    let mut head = Head {
        seq: 0,
        hash: GENESIS.to_owned(),
    };
    let (mut verified, mut purged) = (0u64, 0u64);
    loop {
        let links = audit_link::Entity::find()
            .filter(audit_link::Column::Chain.eq(chain))
            .filter(audit_link::Column::Seq.gt(head.seq))
            .order_by_asc(audit_link::Column::Seq)
            .limit(BATCH)
            .all(db)
            .await?;
        if links.is_empty() {
            break;
        }
        let mut events: HashMap<i64, audit_event::Model> = audit_event::Entity::find()
            .filter(audit_event::Column::Id.is_in(links.iter().map(|l| l.event_id)))
            .all(db)
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
        // Recomputing is CPU work: off the async runtime.
        let checked = {
            let links = links.clone();
            let mut events = std::mem::take(&mut events);
            let (mut head, chain) = (head.clone(), chain.to_owned());
            tokio::task::spawn_blocking(move || {
                let mut found = Vec::new();
                let (mut verified, mut purged) = (0u64, 0u64);
                for link in links {
                    let finding = |problem| Finding {
                        chain: chain.clone(),
                        event_id: Some(link.event_id),
                        seq: Some(link.seq),
                        problem,
                    };
                    if link.seq != head.seq + 1 {
                        found.push(Finding {
                            event_id: None,
                            ..finding(Problem::LinksMissing { from_seq: head.seq })
                        });
                    } else if link.prev_hash != head.hash {
                        found.push(finding(Problem::LinkBroken));
                    }
                    match events.remove(&link.event_id) {
                        None if purged_up_to.is_some_and(|p| link.event_id <= p) => purged += 1,
                        None => found.push(finding(Problem::Deleted)),
                        Some(event) => {
                            let moved = chain_of(event.tenant_id) != link.chain;
                            let hash = link_hash(&link.prev_hash, &document(&event.into()));
                            if moved || hash != link.hash {
                                found.push(finding(Problem::Altered));
                            }
                            verified += 1;
                        }
                    }
                    head = Head {
                        seq: link.seq,
                        hash: link.hash,
                    };
                }
                (found, verified, purged, head)
            })
            .await
            .map_err(|e| crate::Error::Internal(format!("verifying the audit log: {e}")))?
        };
        let (found, v, p, next) = checked;
        findings.extend(found);
        verified += v;
        purged += p;
        head = next;
    }
    Ok(ChainSummary {
        chain: chain.to_owned(),
        verified,
        purged,
        head,
    })
}

/// Recomputes the seal chain, and checks each seal's heads against the links it wrote (only
/// `only`'s head when one chain is verified). Returns the number of seals and the newest.
async fn verify_seals(
    db: &DatabaseConnection,
    only: Option<&str>,
    findings: &mut Vec<Finding>,
) -> Result<(u64, Option<audit_seal::Model>)> {
    let mut prev: Option<audit_seal::Model> = None;
    let mut count = 0u64;
    loop {
        let seals = audit_seal::Entity::find()
            .filter(audit_seal::Column::Id.gt(prev.as_ref().map_or(0, |s| s.id)))
            .order_by_asc(audit_seal::Column::Id)
            .limit(SEAL_BATCH)
            .all(db)
            .await?;
        if seals.is_empty() {
            break;
        }
        let mut links = audit_link::Entity::find()
            .filter(audit_link::Column::SealId.is_in(seals.iter().map(|s| s.id)));
        if let Some(chain) = only {
            links = links.filter(audit_link::Column::Chain.eq(chain));
        }
        // Per seal, per chain: the newest link it wrote, and how many it wrote.
        let mut written: HashMap<i64, (BTreeMap<String, Head>, i64)> = HashMap::new();
        for link in links.all(db).await? {
            let (heads, n) = written.entry(link.seal_id).or_default();
            *n += 1;
            let newer = heads.get(&link.chain).is_none_or(|h| h.seq < link.seq);
            if newer {
                heads.insert(
                    link.chain,
                    Head {
                        seq: link.seq,
                        hash: link.hash,
                    },
                );
            }
        }
        for seal in seals {
            count += 1;
            let prev_hash = prev.as_ref().map_or(GENESIS, |p| p.hash.as_str());
            let expected_id = prev.as_ref().map_or(1, |p| p.id + 1);
            let recomputed = link_hash(
                &seal.prev_hash,
                &seal_document(
                    seal.id,
                    &seal.sealed_at,
                    &seal.floor,
                    seal.events,
                    &seal.heads,
                ),
            );
            let claimed: BTreeMap<String, Head> =
                serde_json::from_value(seal.heads.clone()).unwrap_or_default();
            let (actual, n) = written.remove(&seal.id).unwrap_or_default();
            let heads_match = match only {
                Some(chain) => claimed.get(chain) == actual.get(chain),
                None => claimed == actual && n == seal.events,
            };
            if seal.id != expected_id
                || seal.prev_hash != prev_hash
                || recomputed != seal.hash
                || !heads_match
            {
                findings.push(Finding {
                    chain: "seals".to_owned(),
                    event_id: None,
                    seq: None,
                    problem: Problem::SealBroken { seal_id: seal.id },
                });
            }
            prev = Some(seal);
        }
    }
    Ok((count, prev))
}

/// Events never linked: pending when recent, inserted after the fact when older than the
/// newest seal's floor (or far below the newest linked event). Returns the number pending.
async fn unlinked(
    db: &DatabaseConnection,
    tenant: Option<Uuid>,
    latest_seal: Option<&audit_seal::Model>,
    findings: &mut Vec<Finding>,
) -> Result<u64> {
    let newest_linked: Option<i64> = audit_link::Entity::find()
        .select_only()
        .column_as(audit_link::Column::EventId.max(), "max")
        .into_tuple::<Option<i64>>()
        .one(db)
        .await?
        .flatten();
    let mut pending = 0u64;
    let mut after = i64::MIN;
    loop {
        let mut query = audit_event::Entity::find()
            .filter(audit_event::Column::Id.gt(after))
            .filter(
                audit_event::Column::Id.not_in_subquery(
                    Query::select()
                        .column(audit_link::Column::EventId)
                        .from(audit_link::Entity)
                        .to_owned(),
                ),
            );
        if let Some(t) = tenant {
            query = query.filter(audit_event::Column::TenantId.eq(t));
        }
        let batch = query
            .order_by_asc(audit_event::Column::Id)
            .limit(BATCH)
            .all(db)
            .await?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        for event in batch {
            let below_floor = latest_seal.is_some_and(|s| event.occurred_at < s.floor);
            let far_below =
                newest_linked.is_some_and(|n| event.id < n.saturating_sub(LOOKBACK_IDS));
            if below_floor || far_below {
                findings.push(Finding {
                    chain: chain_of(event.tenant_id),
                    event_id: Some(event.id),
                    seq: None,
                    problem: Problem::Inserted,
                });
            } else {
                pending += 1;
            }
        }
    }
    Ok(pending)
}
