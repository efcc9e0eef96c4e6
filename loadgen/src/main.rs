//! `latchkey-loadgen`: drives a running Latchkey over HTTP like real clients and reports
//! throughput, latency per request kind, errors, server CPU and memory, and — measured in the
//! same run — the machine's raw ES256 verify rate, so results read as ratios that survive noisy
//! machines.
//!
//! - `run`: one scenario (one database) → JSON;
//! - `suite`: SQLite (`synchronous=normal`, then `full`) and PostgreSQL back to back, then the
//!   report spliced into BENCHMARKS.md (`scripts/bench.sh` runs it);
//! - `drive`: a server that is already running (anything that speaks the contract) → JSON;
//! - `report`: the report from earlier JSON results;
//! - `crypto`: the raw verify rates alone.

mod flows;
mod machine_rates;
mod phase;
mod report;
mod server;
mod sink;
mod stats;

use std::{path::PathBuf, sync::Arc, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    phase::{Window, Work, Worker},
    server::{Backend, BenchDb, Server, WriteCounter},
    stats::RunResult,
};

#[derive(Debug, Parser)]
#[command(name = "latchkey-loadgen", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One scenario: a fresh database, a server, every phase; prints the result as JSON.
    Run {
        #[command(flatten)]
        load: Load,
        /// The database.
        #[arg(long, value_enum, default_value_t = Db::SqliteNormal)]
        database: Db,
        /// Also write the JSON result here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// SQLite (synchronous=normal), SQLite (synchronous=full) and PostgreSQL back to back; writes
    /// each result as JSON and the report into the BENCHMARKS.md section between its markers.
    Suite {
        #[command(flatten)]
        load: Load,
        /// Where the JSON results go.
        #[arg(long, default_value = "target/bench")]
        results: PathBuf,
        /// The report file to update.
        #[arg(long, default_value = "BENCHMARKS.md")]
        write: PathBuf,
        /// The verification micro-benchmark's summary (`cargo bench -p latchkey-core --bench
        /// verification` writes it), included in the report when present.
        #[arg(long)]
        verification: Option<PathBuf>,
        /// Also measure the reference peer (a copy of `../shared/peers/simplewebauthn-node`
        /// where `npm ci` has run), after Latchkey's runs, by the same clients.
        #[arg(long)]
        peer: Option<PathBuf>,
    },
    /// Drives a server that is already running and speaks the contract (Latchkey elsewhere, or
    /// another implementation) with one tenant's API key; prints the result as JSON.
    Drive {
        #[command(flatten)]
        load: Load,
        /// Where it listens, e.g. `http://127.0.0.1:3000`.
        #[arg(long)]
        base_url: String,
        /// The tenant's Server API key (`lk_sk_…`).
        #[arg(long, env = "LATCHKEY_BENCH_API_KEY")]
        api_key: String,
        #[arg(long)]
        tenant_id: uuid::Uuid,
        /// The web origin the tenant's relying party expects (`Origin` and `clientDataJSON`).
        #[arg(long)]
        origin: String,
        /// Its process on this machine, for CPU and memory (left out: not reported).
        #[arg(long)]
        pid: Option<u32>,
        /// The name the result is reported under.
        #[arg(long, default_value = "external server")]
        label: String,
        /// Also write the JSON result here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Renders the report from JSON results (and the micro-benchmark summary) to stdout.
    Report {
        results: Vec<PathBuf>,
        #[arg(long)]
        verification: Option<PathBuf>,
        /// Replace the generated section of this file instead of printing it.
        #[arg(long)]
        write: Option<PathBuf>,
        /// The load settings the results were taken with, for the report's text.
        #[arg(long, default_value = "(as saved)")]
        load: String,
    },
    /// The machine's raw single-core ES256 verify rates (p256 and OpenSSL).
    Crypto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Db {
    SqliteNormal,
    SqliteFull,
    Postgres,
    /// PostgreSQL without the load generator's `ANALYZE` after seeding: a database on its first
    /// day, whose statistics only Latchkey itself (or autovacuum) can bring up to date.
    PostgresYoung,
}

#[derive(Debug, Clone, Args)]
struct Load {
    /// The `latchkey` binary (a release build); by default the one beside this program.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// A PostgreSQL URL whose user may create databases (a fresh one is made per run).
    #[arg(
        long,
        env = "LATCHKEY_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
    )]
    postgres_url: String,
    /// Concurrent clients (each one request at a time).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Measured seconds per phase.
    #[arg(long, default_value_t = 15)]
    duration: u64,
    /// Warm-up seconds before each phase's measurement (done, not counted).
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Tenants (each with its relying party and API key).
    #[arg(long, default_value_t = 4)]
    tenants: usize,
    /// Users with a passkey, enrolled before the sign-in phase (spread over clients and tenants).
    #[arg(long, default_value_t = 1024)]
    users: usize,
    /// Latchkey instances on the one database (PostgreSQL only above 1); requests go to them in
    /// turn, as through a round-robin load balancer.
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// Give each tenant a webhook endpoint for these events (comma-separated, e.g.
    /// `user.signed_in`), delivered to a sink in this program that answers 200: what the
    /// deliveries cost the server. The endpoints are made once the users are seeded, so the
    /// measured phases deliver only their own events.
    #[arg(long, value_delimiter = ',')]
    webhook_events: Vec<String>,
}

impl Load {
    fn server_bin(&self) -> Result<PathBuf, String> {
        if let Some(bin) = &self.server_bin {
            return Ok(bin.clone());
        }
        let me = std::env::current_exe().map_err(|e| e.to_string())?;
        Ok(me.with_file_name("latchkey"))
    }
}

fn backend(db: Db, load: &Load) -> Backend {
    match db {
        Db::SqliteNormal => Backend::Sqlite {
            synchronous: "normal".into(),
        },
        Db::SqliteFull => Backend::Sqlite {
            synchronous: "full".into(),
        },
        Db::Postgres | Db::PostgresYoung => Backend::Postgres {
            admin_url: load.postgres_url.clone(),
            young: db == Db::PostgresYoung,
        },
    }
}

/// The machine's raw verify rates, measured now (before a run, while the machine is idle).
async fn crypto_rates() -> Result<stats::CryptoRates, String> {
    eprintln!("loadgen: measuring the raw ES256 verify rate (machine idle)");
    tokio::task::spawn_blocking(machine_rates::measure)
        .await
        .map_err(|e| e.to_string())?
}

async fn run(load: &Load, backend: Backend) -> Result<RunResult, String> {
    let bin = load.server_bin()?;
    if load.concurrency == 0 || load.tenants == 0 || load.instances == 0 {
        return Err("--concurrency, --tenants and --instances must be at least 1".into());
    }
    if load.instances > 1 && !matches!(backend, Backend::Postgres { .. }) {
        return Err("several --instances need PostgreSQL (SQLite serves one)".into());
    }
    let crypto = crypto_rates().await?;
    let db = BenchDb::create(&backend).await?;
    let result = run_on(load, &bin, &db, crypto).await;
    db.remove().await;
    result
}

async fn run_on(
    load: &Load,
    bin: &std::path::Path,
    db: &BenchDb,
    crypto: stats::CryptoRates,
) -> Result<RunResult, String> {
    eprintln!("loadgen: {}: seeding {} tenants", db.label, load.tenants);
    let tenants = server::seed_tenants(bin, db, load.tenants)?;
    let logs = tempfile::tempdir().map_err(|e| e.to_string())?;
    let sink = if load.webhook_events.is_empty() {
        None
    } else {
        Some(sink::start().await?)
    };
    // The sink is on 127.0.0.1: the servers may deliver there only when allowed.
    let env: &[(&str, &str)] = if sink.is_some() {
        &[("LATCHKEY_OUTBOUND_ALLOW_PRIVATE", "true")]
    } else {
        &[]
    };
    let mut servers = Vec::new();
    for instance in 0..load.instances {
        servers.push(Server::start(bin, db, logs.path(), instance, load.instances, env).await?);
    }
    let label = match load.instances {
        1 => db.label.clone(),
        n => format!("{}, {n} instances", db.label),
    };
    let subject = Subject {
        label,
        base_urls: servers.iter().map(|s| s.base_url.clone()).collect(),
        pids: servers.iter().map(|s| s.pid).collect(),
        tenants,
        db: Some(db),
        sink: sink.as_ref(),
    };
    let result = measure_child(load, subject, servers, logs, crypto).await;
    if let Some(sink) = sink {
        eprintln!(
            "loadgen: the webhook sink received {} deliveries",
            sink.received()
        );
    }
    result
}

/// The reference peer from a copy of its folder where `npm ci` has run (see `--peer`).
async fn run_peer(load: &Load, dir: &std::path::Path) -> Result<RunResult, String> {
    let crypto = crypto_rates().await?;
    let logs = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (server, tenant) = Server::start_peer(dir, logs.path()).await?;
    let subject = Subject {
        label: PEER_LABEL.into(),
        base_urls: vec![server.base_url.clone()],
        pids: vec![server.pid],
        tenants: vec![tenant],
        db: None,
        sink: None,
    };
    measure_child(load, subject, vec![server], logs, crypto).await
}

pub(crate) const PEER_LABEL: &str = "Node peer (Express + @simplewebauthn/server, in memory)";

/// Measures servers this program started, then stops them (their logs are kept if the run
/// failed).
async fn measure_child(
    load: &Load,
    subject: Subject<'_>,
    servers: Vec<Server>,
    logs: tempfile::TempDir,
    crypto: stats::CryptoRates,
) -> Result<RunResult, String> {
    let outcome = drive(load, subject, crypto).await;
    // All instances together: what the deployment holds.
    let peak = servers
        .iter()
        .map(|s| server::peak_rss_mib(s.pid))
        .sum::<Option<f64>>()
        .unwrap_or(f64::NAN);
    if outcome.is_err() {
        eprintln!(
            "loadgen: the servers' logs are in {} (kept)",
            logs.path().display()
        );
        let _ = logs.keep();
    }
    for server in servers {
        server.stop().await;
    }
    let mut result = outcome?;
    result.server_peak_rss_mib = peak;
    Ok(result)
}

/// What a run measures: a server that speaks the contract, with its tenants.
struct Subject<'a> {
    label: String,
    /// One base URL per instance.
    base_urls: Vec<String>,
    /// Its processes, when they run on this machine (CPU and memory are read from `/proc`).
    pids: Vec<u32>,
    tenants: Vec<server::BenchTenant>,
    /// Latchkey's database, when the load generator made it (statistics, write counts).
    db: Option<&'a BenchDb>,
    /// The webhook sink the tenants subscribe to once their users are seeded: subscribing
    /// before would make the measured phases deliver the seeding's events too.
    sink: Option<&'a sink::Sink>,
}

async fn drive(
    load: &Load,
    subject: Subject<'_>,
    crypto: stats::CryptoRates,
) -> Result<RunResult, String> {
    let label = subject.label.clone();
    let tenants = subject.tenants.clone();
    let target = Arc::new(flows::Target::new(
        subject.base_urls.clone(),
        subject.tenants,
        load.concurrency,
    )?);
    let per_worker = load.users.div_ceil(load.concurrency).max(1);
    eprintln!(
        "loadgen: {label}: enrolling {} users",
        per_worker * load.concurrency
    );
    let workers = (0..load.concurrency).map(Worker::new).collect();
    let mut workers = phase::seed_users(target.clone(), workers, per_worker).await?;
    if let (Some(sink), Some(base_url)) = (subject.sink, subject.base_urls.first()) {
        sink.subscribe(base_url, &tenants, &load.webhook_events)
            .await?;
    }
    let writes = match subject.db {
        Some(db) => {
            if !db.young {
                db.analyze().await?;
            }
            WriteCounter::open(db).await?
        }
        None => None,
    };
    let window = Window {
        warmup: Duration::from_secs(load.warmup),
        duration: Duration::from_secs(load.duration),
    };
    let mut phases = Vec::new();
    for work in [Work::SignIn, Work::Enroll, Work::Issue] {
        eprintln!(
            "loadgen: {label}: {} ({} s warm-up, {} s measured, {} clients)",
            work.name(),
            load.warmup,
            load.duration,
            load.concurrency
        );
        let (back, result) = phase::run(
            target.clone(),
            workers,
            work,
            &window,
            &subject.pids,
            writes.as_ref(),
        )
        .await?;
        workers = back;
        eprintln!(
            "loadgen:   {:.0}/s, {} errors, server CPU {:.2} cores",
            result.per_second, result.errors, result.server_cpu_cores
        );
        phases.push(result);
    }
    let (fsync_per_second, database) = match subject.db {
        Some(db) => (
            db.directory()
                .map(|dir| machine_rates::fsync_rate(dir, Duration::from_secs(2)))
                .transpose()?,
            db.version().await.map_or(label.clone(), |v| {
                format!("{} {v}", label.split(' ').next().unwrap_or_default())
            }),
        ),
        None => (None, label.clone()),
    };
    Ok(RunResult {
        fsync_per_second,
        label,
        database,
        concurrency: load.concurrency,
        tenants: target.tenants.len(),
        users: per_worker * load.concurrency,
        warmup_seconds: load.warmup as f64,
        crypto,
        phases,
        server_peak_rss_mib: f64::NAN,
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

fn write_json(path: &std::path::Path, result: &RunResult) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let json = serde_json::to_string_pretty(result).map_err(|e| e.to_string())?;
    std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))
}

/// Prints a run's result as JSON, and writes it to `json` too when asked.
fn emit(result: &RunResult, json: Option<&std::path::Path>) -> Result<(), String> {
    if let Some(path) = json {
        write_json(path, result)?;
    }
    println!(
        "{}",
        serde_json::to_string_pretty(result).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn read_json(path: &std::path::Path) -> Result<RunResult, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

async fn main_inner(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Run {
            load,
            database,
            json,
        } => {
            let result = run(&load, backend(database, &load)).await?;
            emit(&result, json.as_deref())
        }
        Command::Suite {
            load,
            results,
            write,
            verification,
            peer,
        } => {
            let mut all = Vec::new();
            for db in [
                Db::SqliteNormal,
                Db::SqliteFull,
                Db::Postgres,
                Db::PostgresYoung,
            ] {
                let result = run(&load, backend(db, &load)).await?;
                let name = match db {
                    Db::SqliteNormal => "sqlite-normal",
                    Db::SqliteFull => "sqlite-full",
                    Db::Postgres => "postgres",
                    Db::PostgresYoung => "postgres-young",
                };
                write_json(&results.join(format!("{name}.json")), &result)?;
                all.push(result);
            }
            if let Some(dir) = peer {
                let result = run_peer(&load, &dir).await?;
                write_json(&results.join("peer.json"), &result)?;
                all.push(result);
            }
            let verification = verification
                .filter(|p| p.exists())
                .map(|p| report::read_verification(&p))
                .transpose()?;
            let section = report::render(&all, verification.as_ref(), &load_summary(&load));
            report::splice(&write, &section)?;
            println!("{section}");
            eprintln!("loadgen: report written to {}", write.display());
            Ok(())
        }
        Command::Drive {
            load,
            base_url,
            api_key,
            tenant_id,
            origin,
            pid,
            label,
            json,
        } => {
            let crypto = crypto_rates().await?;
            let subject = Subject {
                label,
                base_urls: vec![base_url.trim_end_matches('/').to_owned()],
                pids: pid.into_iter().collect(),
                tenants: vec![server::BenchTenant {
                    id: tenant_id,
                    api_key,
                    origin,
                }],
                db: None,
                sink: None,
            };
            let mut result = drive(&load, subject, crypto).await?;
            result.server_peak_rss_mib = pid.and_then(server::peak_rss_mib).unwrap_or(f64::NAN);
            emit(&result, json.as_deref())
        }
        Command::Report {
            results,
            verification,
            write,
            load,
        } => {
            let all = results
                .iter()
                .map(|p| read_json(p))
                .collect::<Result<Vec<_>, _>>()?;
            let verification = verification
                .map(|p| report::read_verification(&p))
                .transpose()?;
            let section = report::render(&all, verification.as_ref(), &load);
            match write {
                Some(path) => report::splice(&path, &section)?,
                None => println!("{section}"),
            }
            Ok(())
        }
        Command::Crypto => {
            let rates = crypto_rates().await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&rates).map_err(|e| e.to_string())?
            );
            Ok(())
        }
    }
}

fn load_summary(load: &Load) -> String {
    format!(
        "{} concurrent clients, {} tenants, {} users; {} s warm-up then {} s measured per phase",
        load.concurrency, load.tenants, load.users, load.warmup, load.duration
    )
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match main_inner(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("latchkey-loadgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
