//! Per-instance cache of tenants' passkey configurations, read by every ceremony.
//!
//! A change made through this instance replaces its entry at once. Another instance's change
//! arrives as a PostgreSQL notification ([`super::config_events`]) sent by the committing
//! transaction, which drops the entry here at once. While that notification connection is up an
//! entry may live [`CONFIG_CACHE_TTL_NOTIFIED`]; while it is down (SQLite, or PostgreSQL with the
//! listener reconnecting) only [`CONFIG_CACHE_TTL`], so a lost notification costs at most that
//! much staleness, never more (design invariant 6, the "version check" variant: the reload reads
//! the row, version included). The long bound also caps a connection that died without anyone
//! noticing (no FIN, no error): nothing is served stale for longer than it.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::tenants::config::PasskeyConfig;

/// How long a cached configuration may be served without re-reading the database, when changes
/// made elsewhere are not announced (SQLite; a lost notification connection).
pub const CONFIG_CACHE_TTL: Duration = Duration::seconds(2);

/// The same while this instance listens for changes: every change is announced, so the bound
/// only matters if the listening connection died silently.
pub const CONFIG_CACHE_TTL_NOTIFIED: Duration = Duration::seconds(60);

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
    /// Whether changes made elsewhere are announced to this instance right now.
    notified: AtomicBool,
    /// Bumped by every invalidation. A reader notes it before reading the database and stores
    /// what it read only if no invalidation came meanwhile: a notification that arrives between
    /// the read and the store must not be undone by the store.
    generation: AtomicU64,
}

struct WebOrigins {
    loaded_at: DateTime<Utc>,
    origins: HashSet<String>,
}

impl ConfigCache {
    /// How long an entry is served now (see the module's documentation).
    pub fn ttl(&self) -> Duration {
        match self.notified.load(Ordering::Acquire) {
            true => CONFIG_CACHE_TTL_NOTIFIED,
            false => CONFIG_CACHE_TTL,
        }
    }

    pub fn get(&self, tenant_id: Uuid, now: DateTime<Utc>) -> Option<Arc<PasskeyConfig>> {
        let ttl = self.ttl();
        let entries = self.entries.read().ok()?;
        entries
            .get(&tenant_id)
            .filter(|e| now - e.loaded_at < ttl)
            .map(|e| e.config.clone())
    }

    /// The invalidation count, to pass to [`Self::put`] for what is read after this call.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores `config`, read from the database after [`Self::generation`] answered `generation`,
    /// unless an invalidation came since or a newer version is already cached.
    pub fn put(
        &self,
        tenant_id: Uuid,
        config: Arc<PasskeyConfig>,
        now: DateTime<Utc>,
        generation: u64,
    ) {
        if let Ok(mut entries) = self.entries.write() {
            // Checked under the lock an invalidation also takes after bumping the count: either
            // it bumped first (nothing stored) or it removes what this stores.
            if self.generation() != generation {
                return;
            }
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

    /// Drops the tenant's entry: its configuration changed (here or elsewhere) or it is gone.
    pub fn forget(&self, tenant_id: Uuid) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(&tenant_id);
        }
        self.forget_web_origins();
    }

    /// Drops every entry: changes may have been made unannounced (the listener reconnected).
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
        self.forget_web_origins();
    }

    /// Whether changes made elsewhere are announced from now on (see the module's
    /// documentation). Turning it on is only right after [`Self::forget_all`].
    pub fn set_notified(&self, notified: bool) {
        self.notified.store(notified, Ordering::Release);
    }

    /// Whether some tenant with passkeys on lists the web origin `origin`, when the cached set
    /// can tell at `now` (`None`: read the set again). A listed origin is believed for the
    /// configuration TTL, an unlisted one for [`UNLISTED_ORIGIN_RECHECK`].
    pub fn web_origin_listed(&self, origin: &str, now: DateTime<Utc>) -> Option<bool> {
        let cached = self.web_origins.read().ok()?;
        let cached = cached.as_ref()?;
        let age = now - cached.loaded_at;
        match cached.origins.contains(origin) {
            true if age < self.ttl() => Some(true),
            false if age < UNLISTED_ORIGIN_RECHECK => Some(false),
            _ => None,
        }
    }

    /// Stores the set read after [`Self::generation`] answered `generation` (see [`Self::put`]).
    pub fn put_web_origins(&self, origins: HashSet<String>, now: DateTime<Utc>, generation: u64) {
        if let Ok(mut cached) = self.web_origins.write() {
            if self.generation() != generation {
                return;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(version: i64) -> Arc<PasskeyConfig> {
        let input = crate::tenants::config::PasskeyConfigInput {
            enabled: true,
            rp_id: "shop.example".into(),
            rp_name: String::new(),
            origins: "https://shop.example".into(),
            related_origins: String::new(),
            ios_app_ids: String::new(),
            attestation: crate::tenants::config::Attestation::None,
            user_verification: crate::tenants::config::Requirement::Preferred,
            resident_key: crate::tenants::config::Requirement::Preferred,
            attachment: crate::tenants::config::Attachment::Any,
            algorithms: vec![crate::tenants::config::Algorithm::Es256],
            timeout_seconds: 300,
            confirm_rp_id_change: false,
        };
        Arc::new(input.validate(version).expect("valid configuration"))
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::seconds(seconds)
    }

    #[test]
    fn entries_live_longer_only_while_changes_are_announced() {
        let cache = ConfigCache::default();
        let tenant = Uuid::new_v4();
        cache.put(tenant, config(1), at(0), cache.generation());
        assert!(cache.get(tenant, at(1)).is_some());
        assert!(
            cache.get(tenant, at(3)).is_none(),
            "2 s without notifications"
        );

        cache.forget_all();
        cache.set_notified(true);
        cache.put(tenant, config(1), at(0), cache.generation());
        assert!(cache.get(tenant, at(30)).is_some(), "announced: kept");
        assert!(cache.get(tenant, at(61)).is_none(), "capped even so");

        // The connection is lost: the same entry falls back to the short bound at once.
        cache.set_notified(false);
        assert!(cache.get(tenant, at(3)).is_none());
    }

    #[test]
    fn a_read_overtaken_by_an_invalidation_is_not_stored() {
        let cache = ConfigCache::default();
        let tenant = Uuid::new_v4();
        let before_read = cache.generation();
        // The change elsewhere is announced while this instance reads the old row.
        cache.forget(tenant);
        cache.put(tenant, config(1), at(0), before_read);
        assert!(cache.get(tenant, at(0)).is_none());
        cache.put_web_origins(
            HashSet::from(["https://shop.example".into()]),
            at(0),
            before_read,
        );
        assert_eq!(cache.web_origin_listed("https://shop.example", at(0)), None);

        // A read that started after it is stored.
        cache.put(tenant, config(2), at(0), cache.generation());
        assert_eq!(cache.get(tenant, at(0)).map(|c| c.version), Some(2));
        // And an older version never replaces a newer one.
        cache.put(tenant, config(1), at(0), cache.generation());
        assert_eq!(cache.get(tenant, at(0)).map(|c| c.version), Some(2));
    }
}
