//! Per-instance cache of tenants' passkey configurations, read by every ceremony.
//!
//! A change made through this instance replaces its entry at once. Another instance's change
//! is seen when the entry ages out: entries live [`CONFIG_CACHE_TTL`] by the injected clock, so a
//! stale configuration survives at most that long anywhere (design invariant 6, the "version
//! check" variant: the reload reads the row, version included). PostgreSQL LISTEN/NOTIFY could
//! shorten this further; a few seconds is within the design's bound without it.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::tenants::config::PasskeyConfig;

/// How long a cached configuration may be served without re-reading the database.
pub const CONFIG_CACHE_TTL: Duration = Duration::seconds(2);

/// How long an origin found in no tenant is believed absent before the set is read again: a
/// tenant just created elsewhere (the CLI, another instance) is allowed within this, while a
/// flood of unlisted origins costs at most one read per interval for the whole instance.
pub const UNLISTED_ORIGIN_RECHECK: Duration = Duration::milliseconds(250);

struct Entry {
    loaded_at: DateTime<Utc>,
    config: Arc<PasskeyConfig>,
}

#[derive(Default)]
pub struct ConfigCache {
    // Held only for a map lookup or insert, never across an await.
    entries: RwLock<HashMap<Uuid, Entry>>,
    /// Every web origin of a tenant with passkeys on (CORS preflights that name no tenant).
    web_origins: RwLock<Option<WebOrigins>>,
}

struct WebOrigins {
    loaded_at: DateTime<Utc>,
    origins: HashSet<String>,
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
            let cached = entries.get(&tenant_id).map(|e| e.config.version);
            if cached.is_some_and(|v| v < config.version) {
                // A changed configuration may have changed its origins.
                self.forget_web_origins();
            }
            if cached.is_none_or(|v| v <= config.version) {
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
        self.forget_web_origins();
    }

    /// Whether some tenant with passkeys on lists the web origin `origin`, when the cached set
    /// can tell at `now` (`None`: read the set again). A listed origin is believed for the
    /// configuration TTL, an unlisted one for [`UNLISTED_ORIGIN_RECHECK`].
    pub fn web_origin_listed(&self, origin: &str, now: DateTime<Utc>) -> Option<bool> {
        let cached = self.web_origins.read().ok()?;
        let cached = cached.as_ref()?;
        let age = now - cached.loaded_at;
        match cached.origins.contains(origin) {
            true if age < CONFIG_CACHE_TTL => Some(true),
            false if age < UNLISTED_ORIGIN_RECHECK => Some(false),
            _ => None,
        }
    }

    pub fn put_web_origins(&self, origins: HashSet<String>, now: DateTime<Utc>) {
        if let Ok(mut cached) = self.web_origins.write() {
            *cached = Some(WebOrigins {
                loaded_at: now,
                origins,
            });
        }
    }

    fn forget_web_origins(&self) {
        if let Ok(mut cached) = self.web_origins.write() {
            *cached = None;
        }
    }
}
