//! The server's lifecycle: open the database, migrate, bind, serve, shut down gracefully.

use std::{future::Future, net::SocketAddr, path::Path};

use app::state::AppState;
use axum::serve::ListenerExt;
use latchkey_core::{Services, db};
use leptos::config::{Env, LeptosOptions};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] db::DbOpenError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Backup(#[from] db::backup::BackupError),
    /// `latchkey audit verify` found events, links or seals that do not match (listed on
    /// stdout); the first one.
    #[error("the audit log does not verify: {0}")]
    AuditMismatch(String),
    /// A refused or failed domain operation (a CLI command's input, say).
    #[error("{}", describe(.0))]
    Domain(#[from] latchkey_core::Error),
}

/// A domain error as one line for the terminal, naming the flag when a field was at fault.
fn describe(err: &latchkey_core::Error) -> String {
    match err.field() {
        // The service's field names, as the command line spells them.
        Some("origins") => format!("--origin: {err}"),
        // An import's lines are in the file `--from` names.
        Some("file") => format!("--from: {err}"),
        Some(field) => format!("--{}: {err}", field.replace('_', "-")),
        None => err.to_string(),
    }
}

/// Opens the configured database and applies pending migrations.
pub async fn open_database(config: &Config) -> Result<Services, StartupError> {
    let conn = db::connect(&config.db_options()).await?;
    db::migrate(&conn).await?;
    Ok(Services::new(conn, &config.public_url)?)
}

/// On an instance without operators, logs the one-time setup link (a fresh one at every start;
/// earlier links stop working).
pub async fn announce_setup(config: &Config, services: &Services) -> Result<(), StartupError> {
    if let Some(issued) = services.operators().issue_setup_token().await? {
        tracing::warn!(
            "no operator exists yet: open {} to create the first one (single use, valid 24 h)",
            issued.url(&config.public_url)
        );
    }
    Ok(())
}

/// How often expired sessions and ceremonies are deleted.
const HOUSEKEEPING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Deletes expired sessions and ceremonies periodically, for as long as the server runs. Expired
/// rows are already refused on read; this only keeps the tables small.
fn spawn_housekeeping(services: Services) -> JoinHandle<()> {
    use tower_sessions_core::session_store::ExpiredDeletion;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HOUSEKEEPING_INTERVAL);
        loop {
            tick.tick().await;
            if let Err(err) = services.sessions().delete_expired().await {
                tracing::warn!(error = %err, "deleting expired sessions failed");
            }
            match services.purge_expired_ceremonies().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(ceremonies = n, "expired ceremonies deleted"),
                Err(err) => tracing::warn!(error = %err, "deleting expired ceremonies failed"),
            }
            match services.purge_expired_tokens().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(tokens = n, "expired tokens deleted"),
                Err(err) => tracing::warn!(error = %err, "deleting expired tokens failed"),
            }
            match services.webhooks().purge_finished().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(deliveries = n, "old webhook deliveries deleted"),
                Err(err) => tracing::warn!(error = %err, "deleting old webhook deliveries failed"),
            }
        }
    })
}

/// How often the audit events recorded meanwhile are sealed into their chains (and then fanned
/// out to webhooks): with the sealer's settle time, the bound on how long an event stays
/// unsealed (`docs/audit.md`), and most of a webhook's delay.
const AUDIT_SEAL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

fn spawn_audit_sealer(services: Services) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(AUDIT_SEAL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            seal_audit(&services).await;
            if let Err(err) = services.dispatch_webhooks().await {
                tracing::warn!(error = %err, "fanning out webhook events failed");
            }
        }
    })
}

/// How often the webhook worker looks for retries that came due (it is woken at once for new
/// deliveries).
const WEBHOOK_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

fn spawn_webhook_worker(services: Services) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match services.webhooks().deliver_due().await {
                // A full run may have left more due: go on at once.
                Ok(run) if run.delivered + run.failed_attempts > 0 => continue,
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "delivering webhooks failed"),
            }
            tokio::select! {
                () = services.webhook_work_arrived() => {}
                () = tokio::time::sleep(WEBHOOK_POLL_INTERVAL) => {}
            }
        }
    })
}

async fn seal_audit(services: &Services) {
    match services.seal_audit().await {
        Ok(None) => {}
        Ok(Some(sealed)) => tracing::debug!(
            seal = sealed.seal_id,
            events = sealed.events,
            "audit events sealed"
        ),
        Err(err) => tracing::warn!(error = %err, "sealing the audit log failed"),
    }
}

/// How often counted refusals are written as aggregated audit events (`latchkey_core::abuse`).
const REFUSAL_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

fn spawn_refusal_flush(services: Services) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REFUSAL_FLUSH_INTERVAL);
        tick.tick().await;
        loop {
            tick.tick().await;
            flush_refusals(&services).await;
        }
    })
}

async fn flush_refusals(services: &Services) {
    match services.flush_refusals().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            refusals = n,
            "refused anonymous attempts audited in aggregate"
        ),
        Err(err) => tracing::warn!(error = %err, "auditing counted refusals failed"),
    }
}

/// A server accepting connections in the background.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// Where the metrics are served, when they are.
    pub metrics_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), StartupError>>,
}

impl RunningServer {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish, closes the pool.
    pub async fn shutdown(mut self) -> Result<(), StartupError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.wait().await
    }

    /// Waits until the server has stopped (after its shutdown signal).
    pub async fn wait(self) -> Result<(), StartupError> {
        match self.task.await {
            Ok(result) => result,
            Err(join) => Err(StartupError::Serve(std::io::Error::other(join))),
        }
    }
}

fn leptos_options(config: &Config, site_root: &Path) -> LeptosOptions {
    let env = match std::env::var("LEPTOS_ENV").as_deref() {
        Ok("DEV") | Ok("dev") => Env::DEV,
        _ => Env::PROD,
    };
    LeptosOptions::builder()
        .output_name("latchkey")
        .site_root(site_root.to_string_lossy().as_ref())
        .site_pkg_dir("pkg")
        .site_addr(config.bind)
        .env(env)
        .build()
}

/// Binds the configured address and serves until `shutdown` completes (or [`RunningServer::shutdown`]
/// is called), then drains in-flight requests and closes the database pool.
pub async fn start(
    config: &Config,
    services: Services,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunningServer, StartupError> {
    let site_root = config.resolve_site_root();
    if !site_root.join("pkg").join("latchkey.js").is_file() {
        tracing::warn!(
            site_root = %site_root.display(),
            "portal assets not found: pages render but will not be interactive; \
             build them with `cargo leptos build` or set LATCHKEY_SITE_ROOT"
        );
    }
    let services = services
        .with_limits(config.abuse_limits())
        .with_sqlite_durability(config.sqlite_synchronous)
        .with_step_up_window(config.step_up_window())
        .with_private_outbound(config.outbound_allow_private)?
        .with_webhook_retry_period(chrono::Duration::hours(i64::from(
            config.webhook_retry_hours,
        )));
    let state = AppState {
        leptos_options: leptos_options(config, &site_root),
        services: services.clone(),
    };
    let draining = crate::http::health::Draining::default();
    let router = crate::http::router(
        state,
        crate::http::EdgeOptions {
            draining: draining.clone(),
            metrics: config.metrics_bind.is_some(),
            https: config.public_url.scheme() == "https",
            trusted_proxies: config.trusted_proxies.clone(),
            rates: crate::http::anonymous_limit::Rates {
                per_source: config.source_rate_limit,
                per_tenant_and_source: config.client_rate_limit,
                instances: config.instances,
            },
        },
    );

    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|source| StartupError::Bind {
            addr: config.bind,
            source,
        })?;
    let addr = listener.local_addr().map_err(StartupError::Serve)?;
    tracing::info!(
        %addr,
        public_url = %config.public_origin(),
        database = %config.database_url,
        site_root = %site_root.display(),
        "latchkey is listening"
    );

    // The recorder is installed only when metrics are on: without one every count is a no-op.
    let recorder = config.metrics_bind.and_then(|_| crate::metrics::recorder());
    let metrics = match (config.metrics_bind, recorder) {
        (Some(addr), Some(handle)) => {
            let (bound, task) = crate::metrics::serve(addr, handle, services.clone())
                .await
                .map_err(|source| StartupError::Bind { addr, source })?;
            tracing::info!(addr = %bound, "metrics are served on /metrics");
            Some((bound, task))
        }
        _ => None,
    };
    let metrics_addr = metrics.as_ref().map(|(bound, _)| *bound);

    let delay = std::time::Duration::from_secs(u64::from(config.shutdown_delay_seconds));
    let (stop, stopped) = oneshot::channel::<()>();
    let housekeeping = spawn_housekeeping(services.clone());
    let statistics = services.spawn_statistics_refresh();
    let refusals = spawn_refusal_flush(services.clone());
    let sealer = spawn_audit_sealer(services.clone());
    let webhook_worker = spawn_webhook_worker(services.clone());
    let config_listener = services.spawn_config_listener();
    let task = tokio::spawn(async move {
        let signal = async move {
            tokio::select! {
                _ = shutdown => {}
                _ = stopped => {}
            }
            draining.start();
            if !delay.is_zero() {
                tracing::info!(
                    seconds = delay.as_secs(),
                    "shutting down: not ready, still accepting requests"
                );
                tokio::time::sleep(delay).await;
            }
            tracing::info!("shutting down: finishing in-flight requests");
        };
        // Pages stream in several writes: without TCP_NODELAY the last one can wait for the
        // client's delayed ACK (~40 ms on Linux) — measured on every portal page.
        let listener = listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(error = %err, "TCP_NODELAY not set");
            }
        });
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .await;
        housekeeping.abort();
        statistics.abort();
        refusals.abort();
        sealer.abort();
        webhook_worker.abort();
        if let Some(listener) = config_listener {
            listener.abort();
        }
        if let Some((_, metrics)) = metrics {
            metrics.abort();
        }
        flush_refusals(&services).await;
        seal_audit(&services).await;
        if let Err(err) = services.close().await {
            tracing::warn!(error = %err, "closing the database pool failed");
        }
        tracing::info!("stopped");
        served.map_err(StartupError::Serve)
    });

    Ok(RunningServer {
        addr,
        metrics_addr,
        stop: Some(stop),
        task,
    })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn os_shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
