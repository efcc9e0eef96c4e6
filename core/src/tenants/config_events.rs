//! Configuration changes announced to every instance on one PostgreSQL database.
//!
//! The transaction that changes a tenant's configuration (or creates or deletes the tenant)
//! also runs `pg_notify` on [`CHANNEL`] with the tenant's id: PostgreSQL delivers it when, and
//! only if, the transaction commits. Each instance keeps one connection listening
//! ([`spawn_listener`]) and drops the tenant's cached configuration on arrival, so the next
//! ceremony anywhere reads the new row. While that connection is down the cache falls back to
//! its short expiry ([`super::config_cache`]); on reconnecting it forgets everything, since
//! notifications sent meanwhile are lost.
//!
//! `LISTEN/NOTIFY` rather than polling a version table: it costs nothing while nothing changes
//! and arrives within milliseconds, and PostgreSQL ties it to the commit. SQLite has no
//! equivalent and needs none: its instance is the only one, and the command line's changes are
//! seen within the short expiry.

use std::{sync::Weak, time::Duration};

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};
use uuid::Uuid;

use super::config_cache::ConfigCache;
use crate::Result;

/// The notification channel (one per database: instances of one deployment share it).
pub const CHANNEL: &str = "latchkey_tenant_config";

/// The listening connection's `application_name` prefix, followed by the process id: what an
/// operator sees in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "latchkey-config-listener";

/// Waits between reconnection attempts: doubling from the first to the last.
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_LAST: Duration = Duration::from_secs(10);

/// Announces, within `txn`, that `tenant_id`'s configuration changed (nothing on SQLite).
pub(crate) async fn announce(txn: &impl ConnectionTrait, tenant_id: Uuid) -> Result<()> {
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [CHANNEL.into(), tenant_id.to_string().into()],
        ))
        .await?;
    }
    Ok(())
}

/// Listens for announced changes on PostgreSQL for as long as `cache` lives, reconnecting when
/// the connection is lost; `None` on SQLite.
pub fn spawn_listener(
    db: &DatabaseConnection,
    cache: Weak<ConfigCache>,
) -> Option<tokio::task::JoinHandle<()>> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return None;
    }
    // Its own connection, outside the pool the requests share: it is held for good.
    let options = (*db.get_postgres_connection_pool().connect_options())
        .clone()
        .application_name(&format!("{APPLICATION_NAME}-{}", std::process::id()));
    let pool = sea_orm::sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(options);
    Some(tokio::spawn(async move {
        let mut wait = RECONNECT_FIRST;
        loop {
            let mut listening = false;
            let outcome = listen(&pool, &cache, &mut listening).await;
            let Some(live) = cache.upgrade() else {
                return;
            };
            live.set_notified(false);
            drop(live);
            let error = match outcome {
                Ok(true) => return, // the services were dropped
                Ok(false) => "connection lost".to_owned(),
                Err(err) => err.to_string(),
            };
            tracing::warn!(
                error,
                "the configuration listener is not listening; cached configurations expire \
                 after {} s until it is back",
                super::config_cache::CONFIG_CACHE_TTL.num_seconds()
            );
            if listening {
                wait = RECONNECT_FIRST;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RECONNECT_LAST);
        }
    }))
}

/// Listens until the connection is lost (`Ok(false)`) or the cache is dropped (`Ok(true)`);
/// sets `listening` once notifications are being received.
async fn listen(
    pool: &sea_orm::sqlx::PgPool,
    cache: &Weak<ConfigCache>,
    listening: &mut bool,
) -> std::result::Result<bool, sea_orm::sqlx::Error> {
    let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(pool).await?;
    // Report a lost connection at once: reconnecting is the caller's job, so that the cache is
    // on its short expiry for the whole time nothing is heard.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    {
        let Some(cache) = cache.upgrade() else {
            return Ok(true);
        };
        // Whatever changed before this point was not heard.
        cache.forget_all();
        cache.set_notified(true);
    }
    *listening = true;
    tracing::info!("listening for configuration changes made by other instances");
    while let Some(notification) = listener.try_recv().await? {
        let Some(cache) = cache.upgrade() else {
            return Ok(true);
        };
        match notification.payload().parse::<Uuid>() {
            Ok(tenant_id) => cache.forget(tenant_id),
            // Not ours to read: forgetting everything is always safe.
            Err(_) => cache.forget_all(),
        }
    }
    Ok(false)
}
