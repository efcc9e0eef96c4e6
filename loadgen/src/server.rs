//! The system under test: a fresh database, tenants and API keys made with the `latchkey` CLI
//! (as an operator would script it), and `latchkey serve` as a child process whose CPU time and
//! memory are read from `/proc`.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use uuid::Uuid;

/// Which database a run uses.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A fresh SQLite file with this `synchronous` mode (`normal` or `full`).
    Sqlite { synchronous: String },
    /// A fresh database created on this PostgreSQL server (an URL whose user may create
    /// databases), dropped afterwards. `young`: the load generator does not `ANALYZE` after
    /// seeding, so the run shows what Latchkey's own statistics refresh achieves on a database
    /// on its first day.
    Postgres { admin_url: String, young: bool },
}

/// A database made for one run; [`Self::remove`] drops it.
pub struct BenchDb {
    pub url: String,
    pub label: String,
    pub synchronous: Option<String>,
    /// Whether the load generator leaves planner statistics to Latchkey (see [`Backend`]).
    pub young: bool,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl BenchDb {
    pub async fn create(backend: &Backend) -> Result<Self, String> {
        match backend {
            Backend::Sqlite { synchronous } => {
                let dir = tempfile::Builder::new()
                    .prefix("latchkey-bench-")
                    .tempdir()
                    .map_err(|e| format!("temporary directory: {e}"))?;
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("bench.db").display()
                );
                Ok(Self {
                    url,
                    label: format!("SQLite (synchronous={synchronous})"),
                    synchronous: Some(synchronous.clone()),
                    young: false,
                    _dir: Some(dir),
                    postgres: None,
                })
            }
            Backend::Postgres { admin_url, young } => {
                let name = format!("latchkey_bench_{}", Uuid::new_v4().simple());
                let admin = connect(admin_url).await?;
                admin
                    .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                    .await
                    .map_err(|e| format!("creating {name}: {e}"))?;
                let _ = admin.close().await;
                let mut url =
                    reqwest::Url::parse(admin_url).map_err(|e| format!("PostgreSQL URL: {e}"))?;
                url.set_path(&format!("/{name}"));
                Ok(Self {
                    url: url.to_string(),
                    label: if *young {
                        "PostgreSQL (young: no ANALYZE after seeding)".into()
                    } else {
                        "PostgreSQL".into()
                    },
                    synchronous: None,
                    young: *young,
                    _dir: None,
                    postgres: Some((admin_url.clone(), name)),
                })
            }
        }
    }

    /// The directory of a SQLite database file.
    pub fn directory(&self) -> Option<&Path> {
        self._dir.as_ref().map(tempfile::TempDir::path)
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// Fresh planner statistics, as a database in use has them (PostgreSQL's autovacuum analyzes
    /// after enough changes; a benchmark's young tables would otherwise be planned as empty).
    pub async fn analyze(&self) -> Result<(), String> {
        let conn = connect(&self.url).await?;
        conn.execute_unprepared("ANALYZE")
            .await
            .map_err(|e| format!("ANALYZE: {e}"))?;
        let _ = conn.close().await;
        Ok(())
    }

    /// The database engine's own version string.
    pub async fn version(&self) -> Result<String, String> {
        let conn = connect(&self.url).await?;
        let sql = if self.is_postgres() {
            "SELECT current_setting('server_version') AS v"
        } else {
            "SELECT sqlite_version() AS v"
        };
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                conn.get_database_backend(),
                sql,
            ))
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no version row")?;
        let version: String = row.try_get("", "v").map_err(|e| e.to_string())?;
        let _ = conn.close().await;
        Ok(version)
    }

    pub async fn remove(self) {
        if let Some((admin_url, name)) = &self.postgres
            && let Ok(admin) = connect(admin_url).await
        {
            if let Err(e) = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await
            {
                eprintln!("loadgen: could not drop {name}: {e}");
            }
            let _ = admin.close().await;
        }
    }
}

async fn connect(url: &str) -> Result<DatabaseConnection, String> {
    let mut options = sea_orm::ConnectOptions::new(url);
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options)
        .await
        .map_err(|e| format!("connecting to the database: {e}"))
}

/// Counts write transactions on PostgreSQL: every transaction that writes is assigned a
/// transaction id, read-only ones are not, so the growth of the id counter over a phase is the
/// number of writing transactions in it (plus one for each reading of the counter).
pub struct WriteCounter {
    conn: DatabaseConnection,
}

impl WriteCounter {
    pub async fn open(db: &BenchDb) -> Result<Option<Self>, String> {
        if !db.is_postgres() {
            return Ok(None);
        }
        Ok(Some(Self {
            conn: connect(&db.url).await?,
        }))
    }

    /// The next transaction id (this reading takes one).
    pub async fn read(&self) -> Result<i64, String> {
        let row = self
            .conn
            .query_one_raw(sea_orm::Statement::from_string(
                self.conn.get_database_backend(),
                "SELECT txid_current() AS x",
            ))
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no txid row")?;
        row.try_get("", "x").map_err(|e| e.to_string())
    }
}

/// A tenant made for the run.
#[derive(Debug, Clone)]
pub struct BenchTenant {
    pub id: Uuid,
    pub api_key: String,
    pub origin: String,
}

fn cli(bin: &Path, db: &BenchDb, args: &[&str]) -> Result<serde_json::Value, String> {
    let out = std::process::Command::new(bin)
        .args(args)
        .env("LATCHKEY_DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", bin.display()))?;
    if !out.status.success() {
        return Err(format!(
            "latchkey {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("latchkey {}: {e}", args.join(" ")))
}

/// `count` tenants with passkeys on (ES256, the defaults otherwise) and an API key each, made
/// through the CLI.
pub fn seed_tenants(bin: &Path, db: &BenchDb, count: usize) -> Result<Vec<BenchTenant>, String> {
    (0..count)
        .map(|i| {
            let rp_id = format!("t{i}.bench.example.com");
            let origin = format!("https://{rp_id}");
            let created = cli(
                bin,
                db,
                &[
                    "tenant",
                    "create",
                    "--name",
                    &format!("Bench {i}"),
                    "--rp-id",
                    &rp_id,
                    "--origin",
                    &origin,
                    "--enable-passkeys",
                ],
            )?;
            let id = created["tenant_id"]
                .as_str()
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or("tenant create printed no tenant_id")?;
            let key = cli(
                bin,
                db,
                &[
                    "api-key",
                    "create",
                    "--tenant",
                    &id.to_string(),
                    "--name",
                    "loadgen",
                ],
            )?;
            let api_key = key["api_key"]
                .as_str()
                .ok_or("api-key create printed no api_key")?
                .to_owned();
            Ok(BenchTenant {
                id,
                api_key,
                origin,
            })
        })
        .collect()
}

/// A running `latchkey serve`.
pub struct Server {
    child: tokio::process::Child,
    pub pid: u32,
    pub base_url: String,
    pub log: PathBuf,
}

impl Server {
    /// Instance `instance` of `instances` on `db` (its log is `server-<instance>.log`).
    pub async fn start(
        bin: &Path,
        db: &BenchDb,
        log_dir: &Path,
        instance: usize,
        instances: usize,
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let port = free_port()?;
        let mut command = tokio::process::Command::new(bin);
        command
            .arg("serve")
            .env("LATCHKEY_DATABASE_URL", &db.url)
            .env("LATCHKEY_BIND", format!("127.0.0.1:{port}"))
            // Every client comes from 127.0.0.1: the limiter still runs on every request, with a
            // rate no run reaches.
            .env("LATCHKEY_CLIENT_RATE_LIMIT", "0")
            .env("LATCHKEY_SOURCE_RATE_LIMIT", "0")
            .env("LATCHKEY_INSTANCES", instances.to_string())
            .envs(env.iter().copied());
        if let Some(sync) = &db.synchronous {
            command.env("LATCHKEY_SQLITE_SYNCHRONOUS", sync);
        }
        Self::spawn(
            command,
            port,
            &log_dir.join(format!("server-{instance}.log")),
        )
        .await
    }

    /// The reference peer (`../shared/peers/simplewebauthn-node`: Express +
    /// `@simplewebauthn/server`, state in memory), from a copy of its folder where `npm ci` has
    /// run; it serves one tenant, made up here.
    pub async fn start_peer(dir: &Path, log_dir: &Path) -> Result<(Self, BenchTenant), String> {
        let port = free_port()?;
        let tenant = BenchTenant {
            id: Uuid::new_v4(),
            api_key: format!("lk_sk_peer{}", Uuid::new_v4().simple()),
            origin: "http://localhost:5173".into(),
        };
        let mut command = tokio::process::Command::new("node");
        command
            .arg("server.js")
            .current_dir(dir)
            .env("PEER_TENANT_ID", tenant.id.to_string())
            .env("PEER_API_KEY", &tenant.api_key)
            .env("PEER_RP_ID", "localhost")
            .env("PEER_ORIGIN", &tenant.origin)
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1");
        Ok((
            Self::spawn(command, port, &log_dir.join("server.log")).await?,
            tenant,
        ))
    }

    async fn spawn(
        mut command: tokio::process::Command,
        port: u16,
        log: &Path,
    ) -> Result<Self, String> {
        let log = log.to_path_buf();
        let file = std::fs::File::create(&log).map_err(|e| format!("server log: {e}"))?;
        let err = file.try_clone().map_err(|e| format!("server log: {e}"))?;
        command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(|e| format!("starting {:?}: {e}", command.as_std().get_program()))?;
        let pid = child.id().ok_or("the server exited at once")?;
        let server = Self {
            child,
            pid,
            base_url: format!("http://127.0.0.1:{port}"),
            log,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&self) -> Result<(), String> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(res) = http.get(format!("{}/readyz", self.base_url)).send().await
                && res.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "the server did not become ready; see {}",
            self.log.display()
        ))
    }

    /// Stops the server as an orchestrator would (SIGTERM: graceful shutdown).
    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// User plus system CPU time of a process (all its threads, finished ones included), seconds.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux architecture's user-space ABI.
    Some(ticks / 100.0)
}

fn status_kib(pid: &str, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU seconds of each of the server's threads whose name starts with `prefix`, by thread id.
pub fn thread_cpu_seconds(pid: u32, prefix: &str) -> std::collections::HashMap<String, f64> {
    let mut out = std::collections::HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let tid = task.file_name().to_string_lossy().into_owned();
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        if let Some(cpu) = cpu_seconds(&format!("{pid}/task/{tid}")) {
            out.insert(tid, cpu);
        }
    }
    out
}

/// CPU time of every PostgreSQL process on the machine (its backends serve this run), seconds.
pub fn postgres_cpu_seconds() -> Option<f64> {
    let mut total = None;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = entry.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "postgres"
            && let Some(cpu) = cpu_seconds(pid)
        {
            total = Some(total.unwrap_or(0.0) + cpu);
        }
    }
    total
}

/// Resident set size now, MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    status_kib(&pid.to_string(), "VmRSS").map(|k| k / 1024.0)
}

/// Resident set high-water mark over the process's life, MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    status_kib(&pid.to_string(), "VmHWM").map(|k| k / 1024.0)
}

/// (busy, total) jiffies of the whole machine, from `/proc/stat`.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4)?;
    Some((total - idle, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        assert!(cpu_seconds("self").is_some());
        assert!(rss_mib(std::process::id()).is_some_and(|m| m > 0.0));
        assert!(peak_rss_mib(std::process::id()).is_some_and(|m| m > 0.0));
        let (busy, total) = machine_ticks().unwrap_or_default();
        assert!(total > 0 && busy <= total);
    }
}
