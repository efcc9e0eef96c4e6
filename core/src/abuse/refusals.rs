//! Refusals that carry nothing real, counted in memory and written as aggregated audit events.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::SourceKey;
use crate::{Clock, ErrorCode, Result, access::Actor, audit::AuditEntry};

/// Distinct (tenant, action, code, target) counted between two flushes; beyond, refusals are only
/// counted in the log line of the flush (tenants are few; this bounds memory, not real use).
const MAX_KEYS: usize = 10_000;
/// Distinct sources remembered per key; beyond, counted as "other sources".
const MAX_SOURCES_PER_KEY: usize = 1_000;
/// Sources named in an aggregated event, busiest first.
const SOURCES_SHOWN: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    tenant_id: Option<Uuid>,
    action: &'static str,
    code: ErrorCode,
    /// Only ever a real object (the user of a token that was found): support still sees who
    /// was refused, in one event per minute instead of one per attempt.
    target: Option<(&'static str, String)>,
}

#[derive(Debug)]
struct Tally {
    count: u64,
    first_at: DateTime<Utc>,
    last_at: DateTime<Utc>,
    by_source: HashMap<Option<SourceKey>, u64>,
    other_sources: u64,
}

#[derive(Debug, Default)]
struct Counts {
    by_key: HashMap<Key, Tally>,
    dropped: u64,
}

/// Counts of refusals not worth a row each (see the module above), until the next flush.
#[derive(Debug, Default)]
pub struct RefusalTally {
    // Held for a map operation only, never across an await.
    counts: Mutex<Counts>,
}

impl RefusalTally {
    /// Counts a refusal that `entry` would have recorded, by its tenant, action and `code`.
    pub(crate) fn count(&self, entry: &AuditEntry, code: ErrorCode, now: DateTime<Utc>) {
        let source = SourceKey::of_request(&entry.meta);
        let key = Key {
            tenant_id: entry.tenant_id,
            action: entry.action,
            code,
            target: entry.target.clone(),
        };
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let full = counts.by_key.len() >= MAX_KEYS;
        let tally = match counts.by_key.get_mut(&key) {
            Some(tally) => tally,
            None if full => {
                counts.dropped += 1;
                return;
            }
            None => counts.by_key.entry(key).or_insert(Tally {
                count: 0,
                first_at: now,
                last_at: now,
                by_source: HashMap::new(),
                other_sources: 0,
            }),
        };
        tally.count += 1;
        tally.last_at = now;
        if let Some(n) = tally.by_source.get_mut(&source) {
            *n += 1;
        } else if tally.by_source.len() < MAX_SOURCES_PER_KEY {
            tally.by_source.insert(source, 1);
        } else {
            tally.other_sources += 1;
        }
    }

    /// Everything counted since the last call, as one audit entry per (tenant, action, code,
    /// target),
    /// and how many refusals could not be kept apart (the key cap).
    pub(crate) fn take(&self) -> (Vec<AuditEntry>, u64) {
        let counts = {
            let mut counts = self
                .counts
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            std::mem::take(&mut *counts)
        };
        let mut entries: Vec<AuditEntry> = counts
            .by_key
            .into_iter()
            .map(|(key, tally)| aggregated(key, tally))
            .collect();
        // Stable order, so that a flush reads the same however the map iterated.
        entries.sort_by(|a, b| {
            let key = |e: &AuditEntry| {
                (
                    e.tenant_id,
                    e.action,
                    e.outcome_code().map(ErrorCode::as_str),
                    e.target.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        (entries, counts.dropped)
    }

    /// Refusals counted and not yet taken.
    pub fn pending(&self) -> u64 {
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        counts.by_key.values().map(|t| t.count).sum::<u64>() + counts.dropped
    }
}

fn aggregated(key: Key, tally: Tally) -> AuditEntry {
    let mut sources: Vec<(Option<SourceKey>, u64)> = tally.by_source.into_iter().collect();
    sources.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let shown_total: u64 = sources.iter().take(SOURCES_SHOWN).map(|(_, n)| n).sum();
    let shown: Vec<serde_json::Value> = sources
        .iter()
        .take(SOURCES_SHOWN)
        .map(|(source, n)| {
            serde_json::json!({
                "source": source.map(|s| s.to_string()),
                "count": n,
            })
        })
        .collect();
    let mut entry = AuditEntry::new(Actor::Anonymous, key.action)
        .failed(key.code)
        .details(serde_json::json!({
            "aggregated": true,
            "count": tally.count,
            "first_at": tally.first_at.to_rfc3339(),
            "last_at": tally.last_at.to_rfc3339(),
            "sources": shown,
            "distinct_sources": sources.len() as u64 + u64::from(tally.other_sources > 0),
            "other_sources_count": tally.count - shown_total,
        }));
    entry.tenant_id = key.tenant_id;
    entry.target = key.target;
    entry
}

/// Writes what `tally` counted since its last flush, one aggregated event per key, in one
/// transaction; answers how many refusals they hold.
pub(crate) async fn record_tally(
    db: &sea_orm::DatabaseConnection,
    clock: &dyn Clock,
    tally: &RefusalTally,
) -> Result<u64> {
    let (entries, dropped) = tally.take();
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "refusals beyond the tally's key cap were counted only here"
        );
    }
    if entries.is_empty() {
        return Ok(0);
    }
    let counted = entries
        .iter()
        .filter_map(|e| e.details.as_ref()?.get("count")?.as_u64())
        .sum();
    let txn = crate::db::begin_write(db).await?;
    for entry in entries {
        crate::audit::record_in(&txn, clock, entry).await?;
    }
    txn.commit().await?;
    Ok(counted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::RequestMeta;

    fn refusal(ip: &str) -> AuditEntry {
        AuditEntry::new(Actor::Anonymous, "user.signed_in")
            .tenant(Uuid::nil())
            .meta(RequestMeta::new(Some(ip.into()), None))
    }

    #[test]
    fn many_refusals_become_one_entry_naming_the_busiest_sources() {
        let tally = RefusalTally::default();
        let now = Utc::now();
        for i in 0..1000 {
            let ip = if i % 10 == 0 {
                "192.0.2.2"
            } else {
                "192.0.2.1"
            };
            tally.count(&refusal(ip), ErrorCode::CeremonyInvalid, now);
        }
        tally.count(&refusal("192.0.2.1"), ErrorCode::InvalidRequest, now);
        assert_eq!(tally.pending(), 1001);
        let (entries, dropped) = tally.take();
        assert_eq!((entries.len(), dropped), (2, 0));
        let details = entries
            .iter()
            .find(|e| e.outcome_code() == Some(ErrorCode::CeremonyInvalid))
            .and_then(|e| e.details.clone())
            .unwrap_or_default();
        assert_eq!(details["count"], 1000);
        assert_eq!(details["sources"][0]["source"], "192.0.2.1");
        assert_eq!(details["sources"][0]["count"], 900);
        assert_eq!(details["distinct_sources"], 2);
        assert_eq!(tally.pending(), 0);
        assert!(tally.take().0.is_empty());
    }

    #[test]
    fn memory_is_bounded_by_keys_and_sources() {
        let tally = RefusalTally::default();
        let now = Utc::now();
        for i in 0..(MAX_SOURCES_PER_KEY as u32 + 50) {
            let ip = std::net::Ipv4Addr::from(i).to_string();
            tally.count(&refusal(&ip), ErrorCode::CeremonyInvalid, now);
        }
        let (entries, _) = tally.take();
        let details = entries[0].details.clone().unwrap_or_default();
        assert_eq!(details["count"], MAX_SOURCES_PER_KEY as u64 + 50);
        assert_eq!(
            details["sources"].as_array().map(Vec::len),
            Some(SOURCES_SHOWN)
        );
        for _ in 0..MAX_KEYS + 5 {
            let entry = refusal("192.0.2.1").tenant(Uuid::new_v4());
            tally.count(&entry, ErrorCode::CeremonyInvalid, now);
        }
        let (entries, dropped) = tally.take();
        assert_eq!((entries.len(), dropped), (MAX_KEYS, 5));
    }
}
