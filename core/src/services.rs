use std::sync::Arc;

use sea_orm::DatabaseConnection;
use url::Url;
use uuid::Uuid;

use crate::outbound::Outbound;
use crate::{
    Clock, Result, SystemClock,
    abuse::{AbuseControls, AbuseLimits},
    access::step_up::StepUp,
    access::{OperatorIdentity, TenantAccess},
    audit::AuditLog,
    db::BackendKind,
    instance::Instance,
    metadata::{Metadata, TrustRoots},
    operators::Operators,
    sessions::DbSessionStore,
    tenants::Tenants,
    webauthn::PortalRelyingParty,
};

/// See [`Services::database_gauges`].
#[derive(Debug, Clone, Copy)]
pub struct DatabaseGauges {
    pub pool: Option<crate::db::PoolGauge>,
    pub writer_pool: Option<crate::db::PoolGauge>,
    pub step_queue: Option<usize>,
}

/// The portal's public URL when none is configured (the spec's default).
pub const DEFAULT_PUBLIC_URL: &str = "http://localhost:3000";

/// The handle every edge holds: the database pool, the clock and the portal's relying party,
/// with one accessor per service. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    db: DatabaseConnection,
    /// Where the Server and Client APIs write (see [`crate::db::writer_for`]).
    writer: DatabaseConnection,
    /// Where the hot write steps go (see [`crate::db::steps`]).
    steps: crate::db::steps::StepWriter,
    clock: Arc<dyn Clock>,
    portal: Arc<PortalRelyingParty>,
    configs: Arc<crate::tenants::config_cache::ConfigCache>,
    relying_parties: Arc<crate::end_users::RelyingParties>,
    keys: Arc<crate::instance_keys::InstanceKeys>,
    abuse: AbuseControls,
    /// How long a passkey verification counts for step-up (see [`crate::access::step_up`]).
    step_up_window: chrono::Duration,
    /// What FIDO metadata BLOBs must be signed under (see [`crate::metadata`]).
    metadata_roots: Arc<TrustRoots>,
    /// Requests to other sites (the origin doctor), guarded (see [`crate::outbound`]).
    outbound: Outbound,
    origin_checks: Arc<crate::tenants::doctor::CheckThrottle>,
    /// Wakes the webhook worker (see [`crate::webhooks`]).
    webhook_wake: Arc<tokio::sync::Notify>,
    /// How long a failing webhook delivery is retried.
    webhook_retry_period: chrono::Duration,
}

impl Services {
    /// Services for the portal at `public_url` (its host is the portal's RP ID).
    pub fn new(db: DatabaseConnection, public_url: &Url) -> Result<Self> {
        Self::with_clock(db, public_url, Arc::new(SystemClock))
    }

    pub fn with_clock(
        db: DatabaseConnection,
        public_url: &Url,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        Ok(Self {
            writer: crate::db::writer_for(&db),
            steps: crate::db::steps::StepWriter::for_pool(&db, Default::default()),
            db,
            clock,
            portal: Arc::new(PortalRelyingParty::new(public_url)?),
            configs: Arc::default(),
            relying_parties: Arc::default(),
            keys: Arc::default(),
            abuse: AbuseControls::default(),
            step_up_window: crate::access::step_up::DEFAULT_WINDOW,
            metadata_roots: Arc::new(TrustRoots::fido()),
            outbound: Outbound::new(false)?,
            origin_checks: Arc::default(),
            webhook_wake: Arc::default(),
            webhook_retry_period: crate::webhooks::DEFAULT_RETRY_PERIOD,
        })
    }

    /// The same services, retrying a failing webhook delivery for `period`
    /// (`LATCHKEY_WEBHOOK_RETRY_HOURS`).
    pub fn with_webhook_retry_period(mut self, period: chrono::Duration) -> Self {
        self.webhook_retry_period = period;
        self
    }

    /// Webhook endpoints and their deliveries (see [`crate::webhooks`]).
    pub fn webhooks(&self) -> crate::webhooks::Webhooks<'_> {
        crate::webhooks::Webhooks {
            db: &self.db,
            writer: &self.writer,
            clock: self.clock.as_ref(),
            keys: &self.keys,
            outbound: &self.outbound,
            retry_period: self.webhook_retry_period,
            notify: &self.webhook_wake,
        }
    }

    /// One round of the webhook pipeline: seals pending audit events, fans the sealed ones out
    /// to the endpoints that want them, and sends what is due. The server runs it every few
    /// seconds; tests call it to move on.
    pub async fn run_webhooks(&self) -> Result<crate::webhooks::deliver::Run> {
        self.seal_audit().await?;
        self.dispatch_webhooks().await?;
        self.webhooks().deliver_due().await
    }

    /// Fans the events of new audit seals out to webhook deliveries (see
    /// [`crate::webhooks::dispatch`]); answers how many it wrote, and wakes the worker if any.
    pub async fn dispatch_webhooks(&self) -> Result<u64> {
        let written =
            crate::webhooks::dispatch::dispatch(&self.writer, self.clock.as_ref()).await?;
        if written > 0 {
            self.webhook_wake.notify_one();
        }
        Ok(written)
    }

    /// Resolves when something may be due for the webhook worker now.
    pub async fn webhook_work_arrived(&self) {
        self.webhook_wake.notified().await;
    }

    /// The same services, fetching from private and loopback addresses too
    /// (`LATCHKEY_OUTBOUND_ALLOW_PRIVATE`: development and tests).
    pub fn with_private_outbound(mut self, allow: bool) -> Result<Self> {
        self.outbound = Outbound::new(allow)?;
        Ok(self)
    }

    /// Runs the origin doctor for the tenant (see [`crate::tenants::doctor`]).
    pub async fn check_origins(
        &self,
        access: &crate::access::TenantAccess,
    ) -> Result<crate::tenants::doctor::DoctorReport> {
        self.tenants()
            .check_origins(access, &self.outbound, &self.origin_checks)
            .await
    }

    /// The same services with other bounds on anonymous writes (configuration).
    pub fn with_limits(mut self, limits: AbuseLimits) -> Self {
        self.abuse.limits = limits;
        self
    }

    /// The same services for a SQLite database opened with `durability` (the write steps' own
    /// connection must flush as the pool's do; see [`crate::db::connect`]).
    pub fn with_sqlite_durability(mut self, durability: crate::db::SqliteDurability) -> Self {
        self.steps = crate::db::steps::StepWriter::for_pool(&self.db, durability);
        self
    }

    /// The same services trusting BLOBs signed under other roots: only tests sign BLOBs.
    #[cfg(feature = "testing")]
    pub fn with_metadata_roots(mut self, roots: TrustRoots) -> Self {
        self.metadata_roots = Arc::new(roots);
        self
    }

    /// The same services with another step-up window (configuration).
    pub fn with_step_up_window(mut self, window: chrono::Duration) -> Self {
        self.step_up_window = window;
        self
    }

    /// Judges, now, whether `operator` verified a passkey recently enough for the actions that
    /// need step-up. `verified_at` is what their session recorded (see [`crate::access::step_up`]).
    pub fn step_up<'a>(
        &self,
        operator: &'a OperatorIdentity,
        verified_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> StepUp<'a> {
        StepUp::judge(operator, verified_at, self.clock.now(), self.step_up_window)
    }

    /// The operator's access to `tenant_id`: their membership and role, read now (a removed
    /// member loses access with their next request). A tenant they are not a member of is
    /// `not_found`, never `forbidden` (no existence oracle). The only way, with an API key's
    /// [`crate::tenants::api_keys::ApiKeyPrincipal::access`] and [`Services::tenant_for_host`],
    /// to reach a tenant-scoped operation.
    pub async fn tenant(
        &self,
        operator: &OperatorIdentity,
        tenant_id: Uuid,
    ) -> Result<TenantAccess> {
        match crate::access::role_in(&self.db, operator.id, tenant_id).await? {
            Some(role) => Ok(TenantAccess::member(tenant_id, operator.clone(), role)),
            None => Err(crate::Error::NotFound),
        }
    }

    /// Access to `tenant_id` for the command line (the host's access: any existing tenant).
    pub async fn tenant_for_host(&self, tenant_id: Uuid) -> Result<TenantAccess> {
        use sea_orm::EntityTrait;
        match crate::entities::tenant::Entity::find_by_id(tenant_id)
            .one(&self.db)
            .await?
        {
            Some(_) => Ok(TenantAccess::host(tenant_id)),
            None => Err(crate::Error::invalid("tenant", "No tenant has this id.")),
        }
    }

    pub fn backend(&self) -> BackendKind {
        crate::db::backend_of(&self.db)
    }

    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// The portal's public URL (origin), as configured.
    pub fn public_url(&self) -> &Url {
        self.portal.origin()
    }

    pub fn instance(&self) -> Instance<'_> {
        Instance::new(&self.db, self.clock.as_ref())
    }

    pub fn metadata(&self) -> Metadata<'_> {
        Metadata::new(&self.db, self.clock.as_ref(), &self.metadata_roots)
    }

    pub fn audit(&self) -> AuditLog<'_> {
        AuditLog::new(&self.db, self.clock.as_ref())
    }

    /// The audit log of `scope` as a download (see [`crate::audit::export`]): authorized and
    /// its first batch read before this answers.
    pub async fn export_audit(
        &self,
        scope: crate::audit::AuditScope,
        filter: crate::audit::AuditFilter,
        format: crate::audit::export::ExportFormat,
    ) -> Result<crate::audit::export::AuditExport> {
        crate::audit::export::start(self.db.clone(), self.clock.clone(), scope, filter, format)
            .await
    }

    /// Links the audit events recorded since the last run into their chains and seals them
    /// (see [`crate::audit::seal`]); `None` when nothing was pending. Several instances take
    /// turns.
    pub async fn seal_audit(&self) -> Result<Option<crate::audit::seal::Sealed>> {
        crate::audit::seal::seal_pending(&self.writer, self.clock.as_ref()).await
    }

    /// Recomputes the audit log's chains and seals (see [`crate::audit::verify`]): every chain,
    /// or `tenant`'s; with `checkpoint` (a seal's number and hash), also that the seals lead
    /// to it. The command line's; read-only.
    pub async fn verify_audit(
        &self,
        tenant: Option<Uuid>,
        checkpoint: Option<(i64, String)>,
    ) -> Result<crate::audit::verify::Verification> {
        crate::audit::verify::verify(&self.db, tenant, checkpoint).await
    }

    pub fn dashboards(&self) -> crate::tenants::dashboard::Dashboards<'_> {
        crate::tenants::dashboard::Dashboards::new(&self.db, self.clock.as_ref())
    }

    pub fn operators(&self) -> Operators<'_> {
        Operators::new(&self.db, self.clock.as_ref(), &self.portal, &self.abuse)
    }

    pub fn api_keys(&self) -> crate::tenants::api_keys::ApiKeys<'_> {
        crate::tenants::api_keys::ApiKeys::new(
            &self.db,
            &self.writer,
            &self.steps,
            self.clock.as_ref(),
        )
    }

    /// Tenants' end users: enrollment and validation tokens, registration, sign-in, revocation.
    pub fn end_users(&self) -> crate::end_users::EndUsers<'_> {
        crate::end_users::EndUsers::new(
            &self.db,
            &self.writer,
            &self.steps,
            self.clock.as_ref(),
            &self.configs,
            &self.relying_parties,
            &self.keys,
            &self.abuse,
        )
    }

    pub fn tenants(&self) -> Tenants<'_> {
        Tenants::new(&self.db, self.clock.as_ref(), &self.configs)
    }

    /// The portal's session store (for the `tower-sessions` layer and operator sign-out).
    pub fn sessions(&self) -> DbSessionStore {
        DbSessionStore::new(self.db.clone(), self.clock.clone())
    }

    /// Housekeeping: forgets ceremonies that expired over an hour ago. Returns how many.
    pub async fn purge_expired_ceremonies(&self) -> Result<u64> {
        crate::webauthn::ceremonies::purge_expired(
            &self.db,
            self.clock.as_ref(),
            chrono::Duration::hours(1),
        )
        .await
    }

    /// Housekeeping: forgets expired enrollment and validation tokens (recording enrollment
    /// tokens that expired unused). Returns how many.
    pub async fn purge_expired_tokens(&self) -> Result<u64> {
        let users = self.end_users();
        Ok(users.purge_expired_enrollment_tokens().await?
            + users.purge_expired_validation_tokens().await?)
    }

    /// Keeps the query planner's statistics fresh while the task runs (see [`crate::db::statistics`]).
    /// Through the writer: analyzing writes the statistics tables, which on SQLite takes the
    /// write lock.
    pub fn spawn_statistics_refresh(&self) -> tokio::task::JoinHandle<()> {
        crate::db::statistics::spawn_refresh(self.writer.clone())
    }

    /// On PostgreSQL, listens for configuration changes made by other instances (see
    /// [`crate::tenants::config_events`]) until aborted; `None` on SQLite.
    pub fn spawn_config_listener(&self) -> Option<tokio::task::JoinHandle<()>> {
        crate::tenants::config_events::spawn_listener(&self.db, Arc::downgrade(&self.configs))
    }

    /// Closes the pool (graceful shutdown). Clones still held elsewhere see a closed pool.
    /// Writes the refusals counted since the last flush as aggregated audit events (see
    /// [`crate::abuse`]); answers how many refusals they hold.
    pub async fn flush_refusals(&self) -> Result<u64> {
        crate::abuse::record_tally(&self.writer, self.clock.as_ref(), &self.abuse.refusals).await
    }

    /// The database side of the metrics: the pools' occupancy (the writer's where it is a pool
    /// of its own, SQLite) and the depth of SQLite's step queue.
    pub fn database_gauges(&self) -> DatabaseGauges {
        let step_queue = self.steps.queue_depth();
        DatabaseGauges {
            pool: crate::db::PoolGauge::of(&self.db),
            // A SQLite file (the one case with a step queue) has a writer pool of its own.
            writer_pool: step_queue.and_then(|_| crate::db::PoolGauge::of(&self.writer)),
            step_queue,
        }
    }

    /// Writes the tenant's users and passkeys to `out` as JSON Lines (the command line; see
    /// [`crate::tenants::portability`]).
    pub async fn export_tenant(
        &self,
        tenant_id: Uuid,
        out: &mut impl std::io::Write,
    ) -> Result<crate::tenants::portability::Counts> {
        crate::tenants::portability::export(&self.db, self.clock.as_ref(), tenant_id, out).await
    }

    /// Imports an export as a new tenant, owned by the operator with `owner_email` when given;
    /// all or nothing (see [`crate::tenants::portability`]).
    pub async fn import_tenant(
        &self,
        input: impl std::io::BufRead,
        owner_email: Option<&str>,
    ) -> Result<(Uuid, crate::tenants::portability::Counts)> {
        let owner = match owner_email {
            Some(email) => Some(self.tenants().owner_by_email(email).await?),
            None => None,
        };
        crate::tenants::portability::import(&self.db, self.clock.as_ref(), input, owner).await
    }

    /// The command line's audit retention run: exports the events older than `older_than` to
    /// `export_to`, then deletes them (see [`crate::audit::retention`]).
    pub async fn purge_audit(
        &self,
        older_than: chrono::Duration,
        export_to: &std::path::Path,
    ) -> Result<crate::audit::retention::Purged> {
        crate::audit::retention::purge(&self.db, self.clock.as_ref(), older_than, export_to).await
    }

    /// Refusals counted and not yet written.
    pub fn refusals_pending(&self) -> u64 {
        self.abuse.refusals.pending()
    }

    pub async fn close(&self) -> crate::Result<()> {
        self.writer.close_by_ref().await?;
        Ok(self.db.close_by_ref().await?)
    }
}
