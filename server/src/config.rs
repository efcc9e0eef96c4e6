//! Typed configuration: command-line flags, each mirrored by a `LATCHKEY_*` environment variable
//! (the spec's contract), with the spec's defaults.

use std::{net::SocketAddr, num::NonZeroU32, path::PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use latchkey_core::{
    abuse::{AbuseLimits, TrustedProxies},
    db::{DatabaseUrl, DbOptions, SqliteDurability},
};
use url::Url;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/latchkey.db?mode=rwc";

/// Self-hosted, multi-tenant passkey (WebAuthn) service with a browser admin portal.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version, propagate_version = true)]
#[command(next_display_order = None)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Subcommand, PartialEq, Eq)]
pub enum Command {
    /// Migrate the database, then serve the portal and the APIs (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage portal operators.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage tenants' Server API keys.
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
    /// Write a tenant's users and passkeys as JSON Lines (to move it to another instance, or to
    /// leave); no secrets of Latchkey's. Counts go to stderr.
    Export {
        /// The tenant's id.
        #[arg(long)]
        tenant: String,
        /// The file to write (it must not exist); standard output without it.
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// Import an export as a new tenant with the same id: all or nothing. Prints
    /// `{"tenant_id": …, "users": n, "passkeys": n}`.
    Import {
        /// The export file.
        #[arg(long)]
        from: PathBuf,
        /// An existing operator who becomes the tenant's owner.
        #[arg(long)]
        owner: Option<String>,
    },
    /// The audit log's retention.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// FIDO Metadata Service BLOBs (attestation trust).
    #[command(subcommand)]
    Mds(MdsCommand),
    /// Copy the SQLite database to a new file while instances serve from it (a consistent
    /// snapshot); print `{"backup": path, "bytes": n}`. For PostgreSQL use pg_dump.
    Backup {
        /// The file to write; it must not exist.
        #[arg(long)]
        to: PathBuf,
    },
}

#[derive(Debug, Clone, Subcommand, PartialEq, Eq)]
pub enum MdsCommand {
    /// Verify a BLOB downloaded from https://mds.fidoalliance.org/ against the FIDO root
    /// certificate this binary ships, and make it current if it is newer than the current one
    /// (a BLOB that does not verify changes nothing). Print
    /// `{"serial": n, "next_update": "YYYY-MM-DD", "models": n, "flagged_passkeys": n}`.
    Import {
        /// The BLOB file (a JWT).
        file: PathBuf,
    },
}

#[derive(Debug, Clone, Subcommand, PartialEq, Eq)]
pub enum AuditCommand {
    /// Write the audit events older than N days to a new JSON Lines file, then delete them from
    /// the log (one transaction; the purge is audited with the file's SHA-256). Print
    /// `{"deleted": n, "export": path, "export_sha256": …}`.
    Purge {
        /// Events that occurred more than this many days ago are purged.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=36_500))]
        older_than_days: u32,
        /// The export file to write (it must not exist).
        #[arg(long)]
        export_to: PathBuf,
    },
    /// Seal the audit events recorded since the last sealing run now (a running server seals
    /// every few seconds). Print `{"seal": n, "events": n, "hash": …}`, or `{"seal": null}`.
    Seal,
    /// Recompute the audit log's hash chains and seals, and name every event that does not
    /// match. Print a JSON report on stdout; exit 1 when anything does not match. Read-only.
    Verify {
        /// Verify only this tenant's chain (and its heads in the seals).
        #[arg(long)]
        tenant: Option<String>,
        /// A seal kept outside Latchkey (`SEAL:HASH`, e.g. from an `audit.checkpoint`): the
        /// seals must still lead to it.
        #[arg(long)]
        checkpoint: Option<String>,
    },
}

#[derive(Debug, Clone, Subcommand, PartialEq, Eq)]
pub enum ApiKeyCommand {
    /// Create an API key and print `{"api_key": "lk_sk_…"}` on stdout (shown once, stored hashed).
    Create {
        /// The tenant's id (as `latchkey tenant create` printed it).
        #[arg(long)]
        tenant: String,
        /// A name that says where the key is used (e.g. "checkout backend").
        #[arg(long)]
        name: String,
    },
}

#[derive(Debug, Clone, Subcommand, PartialEq, Eq)]
pub enum TenantCommand {
    /// Create a tenant and print `{"tenant_id": …}` on stdout. Same rules as the portal.
    Create {
        /// The tenant's name.
        #[arg(long)]
        name: String,
        /// The Relying Party ID: the domain its users sign in on (e.g. example.com).
        #[arg(long)]
        rp_id: Option<String>,
        /// An expected origin (`https://…` or `android:apk-key-hash:…`); repeat for several.
        #[arg(long = "origin")]
        origins: Vec<String>,
        /// Turn passkeys on (needs --rp-id and at least one --origin).
        #[arg(long)]
        enable_passkeys: bool,
        /// An existing operator who becomes the tenant's owner; without it, no one sees the
        /// tenant in the portal until an owner is added.
        #[arg(long)]
        owner: Option<String>,
    },
}

#[derive(Debug, Clone, Subcommand, PartialEq, Eq)]
pub enum OperatorCommand {
    /// Print a single-use invitation URL (valid 24 h) for a new operator on stdout.
    Invite {
        /// The invited operator's email address; only this address can accept.
        #[arg(long)]
        email: String,
        /// Make the new operator an instance admin (may create tenants and invite operators).
        #[arg(long)]
        instance_admin: bool,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Database URL: `sqlite://PATH?mode=rwc` (embedded, the default) or `postgres://…`.
    #[arg(
        long,
        env = "LATCHKEY_DATABASE_URL", hide_env_values = true,
        default_value = DEFAULT_DATABASE_URL,
        global = true
    )]
    pub database_url: DatabaseUrl,

    /// Address to listen on.
    #[arg(
        long,
        env = "LATCHKEY_BIND",
        hide_env_values = true,
        default_value = "127.0.0.1:3000",
        global = true
    )]
    pub bind: SocketAddr,

    /// Address to serve Prometheus metrics on (`GET /metrics`), e.g. `127.0.0.1:9090`: its own
    /// listener, so that the metrics are never public by accident. Unset: no metrics.
    #[arg(
        long,
        env = "LATCHKEY_METRICS_BIND",
        hide_env_values = true,
        global = true
    )]
    pub metrics_bind: Option<SocketAddr>,

    /// The portal's own origin as browsers reach it; its host is the portal's RP ID.
    #[arg(
        long,
        env = "LATCHKEY_PUBLIC_URL", hide_env_values = true,
        default_value = "http://localhost:3000",
        value_parser = parse_public_url,
        global = true
    )]
    pub public_url: Url,

    /// Directory holding the built portal assets (`pkg/latchkey.js`, `.wasm`, `.css`).
    /// Default: `site` next to the executable, then `../site` (the cargo-leptos layout).
    #[arg(
        long,
        env = "LATCHKEY_SITE_ROOT",
        hide_env_values = true,
        global = true
    )]
    pub site_root: Option<PathBuf>,

    /// SQLite commit durability: `full` fsyncs every commit; `normal` is faster but may lose the
    /// last commits on power loss (never on a process crash).
    #[arg(
        long,
        env = "LATCHKEY_SQLITE_SYNCHRONOUS",
        hide_env_values = true,
        default_value = "full",
        global = true
    )]
    pub sqlite_synchronous: SqliteDurability,

    /// Maximum pooled database connections.
    #[arg(
        long,
        env = "LATCHKEY_DATABASE_MAX_CONNECTIONS", hide_env_values = true,
        default_value_t = DbOptions::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u32).range(1..=1000),
        global = true
    )]
    pub database_max_connections: u32,

    /// Log line format. The level comes from `RUST_LOG` (default `info`).
    #[arg(
        long,
        env = "LATCHKEY_LOG_FORMAT", hide_env_values = true,
        value_enum,
        default_value_t = LogFormat::Text,
        global = true
    )]
    pub log_format: LogFormat,

    /// The reverse proxies in front, as a comma-separated list of addresses and CIDR networks
    /// (`10.0.0.0/8,192.0.2.1`). A request from one of them is attributed to the client its
    /// `X-Forwarded-For` names (the right-most address that is not itself a trusted proxy), in
    /// the audit log and the rate limits. Empty: the header is ignored.
    #[arg(
        long,
        env = "LATCHKEY_TRUSTED_PROXIES", hide_env_values = true,
        default_value = "",
        value_parser = TrustedProxies::parse,
        global = true
    )]
    pub trusted_proxies: TrustedProxies,

    /// Client API requests per second allowed per tenant and source address (bursts of twice
    /// that); beyond, `429 rate_limited` with `Retry-After`. 0 turns the limit off.
    #[arg(
        long,
        env = "LATCHKEY_CLIENT_RATE_LIMIT",
        default_value_t = 20,
        global = true
    )]
    pub client_rate_limit: u32,

    /// Requests per second allowed per source address (an IPv6 /64) on all anonymous endpoints
    /// together: every tenant's Client API and the portal's sign-in and setup (bursts of twice
    /// that). 0 turns the limit off.
    #[arg(
        long,
        env = "LATCHKEY_SOURCE_RATE_LIMIT",
        default_value_t = 50,
        global = true
    )]
    pub source_rate_limit: u32,

    /// How many instances serve this deployment behind one load balancer. The request limits
    /// above (and the failed API-key limit) are per deployment: each instance enforces its
    /// share, the limit divided by this, so a source never gets more than the limit in all, and
    /// gets all of it when the balancer spreads its requests over the instances.
    #[arg(
        long,
        env = "LATCHKEY_INSTANCES",
        default_value_t = NonZeroU32::MIN,
        value_parser = instances,
        global = true
    )]
    pub instances: NonZeroU32,

    /// Unfinished ceremonies (sign-ins and registrations started, not finished, not expired)
    /// one source address may hold; beyond, options answer `rate_limited`. 0 turns it off.
    #[arg(
        long,
        env = "LATCHKEY_OPEN_CEREMONIES_PER_ADDRESS",
        default_value_t = AbuseLimits::DEFAULT_OPEN_CEREMONIES_PER_SOURCE,
        global = true
    )]
    pub open_ceremonies_per_address: u32,

    /// Seconds a passkey verification (sign-in or "Confirm with your passkey") counts for the
    /// portal actions that need step-up: adding a passkey, inviting an operator or adding a
    /// member, creating an API key, changing a tenant's Relying Party ID.
    #[arg(
        long,
        env = "LATCHKEY_STEP_UP_SECONDS",
        default_value_t = 300,
        value_parser = clap::value_parser!(u32).range(1..=86_400),
        global = true
    )]
    pub step_up_seconds: u32,

    /// Seconds between SIGTERM and closing the listener: `/readyz` answers 503 at once while
    /// requests are still accepted, so a load balancer stops routing here before connections
    /// are refused. In-flight requests are always finished, whatever this is.
    #[arg(
        long,
        env = "LATCHKEY_SHUTDOWN_DELAY_SECONDS",
        default_value_t = 0,
        value_parser = clap::value_parser!(u32).range(0..=300),
        global = true
    )]
    pub shutdown_delay_seconds: u32,

    /// Hours a failing webhook delivery is retried (exponential backoff with jitter) before it
    /// is marked failed.
    #[arg(
        long,
        env = "LATCHKEY_WEBHOOK_RETRY_HOURS",
        default_value_t = 72,
        value_parser = clap::value_parser!(u32).range(1..=720),
        global = true
    )]
    pub webhook_retry_hours: u32,

    /// Let the origin doctor fetch from, and webhooks deliver to, private, loopback and
    /// link-local addresses (a tenant's site on the local network, development, tests; webhook
    /// URLs may then also be plain `http://localhost`). Off: such addresses are refused at
    /// connection time, so a tenant's configuration cannot make the instance probe its own
    /// network.
    #[arg(
        long,
        env = "LATCHKEY_OUTBOUND_ALLOW_PRIVATE",
        default_value_t = false,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub outbound_allow_private: bool,
}

/// Every variable the binary reads; anything else starting with `LATCHKEY_` is most likely a typo
/// and is reported at start-up.
pub const KNOWN_ENV_VARS: &[&str] = &[
    "LATCHKEY_DATABASE_URL",
    "LATCHKEY_BIND",
    "LATCHKEY_METRICS_BIND",
    "LATCHKEY_PUBLIC_URL",
    "LATCHKEY_SITE_ROOT",
    "LATCHKEY_SQLITE_SYNCHRONOUS",
    "LATCHKEY_DATABASE_MAX_CONNECTIONS",
    "LATCHKEY_LOG_FORMAT",
    "LATCHKEY_TRUSTED_PROXIES",
    "LATCHKEY_CLIENT_RATE_LIMIT",
    "LATCHKEY_SOURCE_RATE_LIMIT",
    "LATCHKEY_INSTANCES",
    "LATCHKEY_OPEN_CEREMONIES_PER_ADDRESS",
    "LATCHKEY_STEP_UP_SECONDS",
    "LATCHKEY_SHUTDOWN_DELAY_SECONDS",
    "LATCHKEY_OUTBOUND_ALLOW_PRIVATE",
    "LATCHKEY_WEBHOOK_RETRY_HOURS",
];

pub fn unknown_env_vars() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(key, _)| key.into_string().ok())
        .filter(|key| key.starts_with("LATCHKEY_") && !KNOWN_ENV_VARS.contains(&key.as_str()))
        // Test-only knobs of the test suites, not of the binary.
        .filter(|key| !key.starts_with("LATCHKEY_TEST_"))
        .collect()
}

fn instances(raw: &str) -> Result<NonZeroU32, String> {
    raw.parse::<NonZeroU32>()
        .ok()
        .filter(|n| n.get() <= 1_000)
        .ok_or_else(|| "must be a whole number from 1 to 1000".to_owned())
}

fn parse_public_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must start with http:// or https://".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("must be an origin only (no path, query or fragment)".into());
    }
    Ok(url)
}

impl Config {
    pub fn db_options(&self) -> DbOptions {
        DbOptions {
            url: self.database_url.clone(),
            max_connections: self.database_max_connections,
            sqlite_durability: self.sqlite_synchronous,
        }
    }

    /// The configured bounds on anonymous writes.
    pub fn abuse_limits(&self) -> AbuseLimits {
        AbuseLimits {
            open_ceremonies_per_source: (self.open_ceremonies_per_address > 0)
                .then_some(self.open_ceremonies_per_address),
        }
    }

    /// How long a passkey verification counts for step-up.
    pub fn step_up_window(&self) -> chrono::Duration {
        chrono::Duration::seconds(i64::from(self.step_up_seconds))
    }

    /// The portal's origin without a trailing slash, e.g. `https://auth.example.com`.
    pub fn public_origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }

    /// Where the built portal assets are: the configured directory, or the first default
    /// location that holds them.
    pub fn resolve_site_root(&self) -> PathBuf {
        if let Some(root) = &self.site_root {
            return root.clone();
        }
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(PathBuf::from));
        let mut candidates = Vec::new();
        if let Some(dir) = exe_dir {
            candidates.push(dir.join("site"));
            if let Some(parent) = dir.parent() {
                candidates.push(parent.join("site"));
            }
        }
        // The workspace's own build output, for binaries run straight from a checkout.
        candidates.push(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/site"
        )));
        candidates
            .iter()
            .find(|dir| dir.join("pkg").join("latchkey.js").is_file())
            .cloned()
            .unwrap_or_else(|| PathBuf::from("target/site"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("latchkey").chain(args.iter().copied()))
    }

    #[test]
    fn public_url_must_be_an_http_origin() {
        let cases: &[(&str, bool)] = &[
            ("http://localhost:3000", true),
            ("https://auth.example.com", true),
            ("https://auth.example.com/", true),
            ("ftp://example.com", false),
            ("https://example.com/portal", false),
            ("https://example.com/?x=1", false),
            ("not a url", false),
        ];
        for (raw, ok) in cases {
            assert_eq!(parse_public_url(raw).is_ok(), *ok, "{raw}");
        }
    }

    #[test]
    fn flags_parse_before_and_after_the_subcommand() {
        let cli = parse(&["migrate", "--database-url", "postgres://x@h/db"]).expect("parses");
        assert_eq!(cli.command, Some(Command::Migrate));
        assert_eq!(cli.config.database_url.expose(), "postgres://x@h/db");
        let cli = parse(&["--bind", "0.0.0.0:8080"]).expect("parses");
        assert_eq!(cli.command, None);
        assert_eq!(cli.config.bind.port(), 8080);
        assert_eq!(cli.config.public_origin(), "http://localhost:3000");
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            &["--database-url", "mysql://x"][..],
            &["--bind", "localhost"][..],
            &["--public-url", "https://x.example/path"][..],
            &["--sqlite-synchronous", "off"][..],
            &["--database-max-connections", "0"][..],
        ] {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }
}
