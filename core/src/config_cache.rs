//! Per-instance cache of tenants' passkey configurations, read by every ceremony.
//!
//! A change made through this instance replaces its entry at once. Another instance's change
//! is seen when the entry ages out: entries live [`CONFIG_CACHE_TTL`] by the injected clock, so a
//! stale configuration survives at most that long anywhere (design invariant 6, the "version
//! check" variant: the reload reads the row, version included). PostgreSQL LISTEN/NOTIFY could
//! shorten this further; a few seconds is within the design's bound without it.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::passkey_config::PasskeyConfig;

/// How long a cached configuration may be served without re-reading the database.
pub const CONFIG_CACHE_TTL: Duration = Duration::seconds(2);

struct Entry {
    loaded_at: DateTime<Utc>,
    config: Arc<PasskeyConfig>,
}

#[derive(Default)]
pub struct ConfigCache {
    // Held only for a map lookup or insert, never across an await.
    entries: RwLock<HashMap<Uuid, Entry>>,
}

impl ConfigCache {
    pub fn get(&self, tenant_id: Uuid, now: DateTime<Utc>) -> Option<Arc<PasskeyConfig>> {
        let entries = self.entries.read().ok()?;
        entries
            .get(&tenant_id)
            .filter(|e| now - e.loaded_at < CONFIG_CACHE_TTL)
            .map(|e| e.config.clone())
    }

    /// Stores `config` unless a newer version is already cached.
    pub fn put(&self, tenant_id: Uuid, config: Arc<PasskeyConfig>, now: DateTime<Utc>) {
        if let Ok(mut entries) = self.entries.write() {
            let newer = entries
                .get(&tenant_id)
                .is_some_and(|e| e.config.version > config.version);
            if !newer {
                entries.insert(
                    tenant_id,
                    Entry {
                        loaded_at: now,
                        config,
                    },
                );
            }
        }
    }

    pub fn forget(&self, tenant_id: Uuid) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(&tenant_id);
        }
    }
}
