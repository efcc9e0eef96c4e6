//! Running a phase: N concurrent clients loop over one kind of work; what starts during the
//! warm-up is done but not counted; the measured window is timed, and the server's CPU, memory
//! and (on PostgreSQL) write transactions are read at its edges.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::time::sleep_until;

use crate::{
    flows::{self, SimUser, Target},
    server::{self, WriteCounter},
    stats::{PhaseResult, Recorder},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Complete sign-ins of the worker's users, round robin.
    SignIn,
    /// Complete enrollments of new users.
    Enroll,
    /// Enrollment tokens for new users, alone.
    Issue,
}

impl Work {
    pub fn name(self) -> &'static str {
        match self {
            Self::SignIn => "sign-in",
            Self::Enroll => "enrollment",
            Self::Issue => "token issuance",
        }
    }

    /// The request kind whose count is the phase's throughput.
    fn unit(self) -> &'static str {
        match self {
            Self::SignIn => flows::SIGN_IN,
            Self::Enroll => flows::ENROLLMENT,
            Self::Issue => flows::ISSUE,
        }
    }
}

/// One simulated client: its users and a counter for naming new ones.
pub struct Worker {
    pub index: usize,
    pub users: Vec<SimUser>,
    next: usize,
    made: u64,
}

impl Worker {
    pub fn new(index: usize) -> Self {
        Self {
            index,
            users: Vec::new(),
            next: 0,
            made: 0,
        }
    }

    fn new_user_id(&mut self, what: &str) -> String {
        self.made += 1;
        format!("{what}-{}-{}", self.index, self.made)
    }

    async fn step(
        &mut self,
        target: &Target,
        work: Work,
        rec: &mut Recorder,
    ) -> Result<(), String> {
        let tenants = target.tenants.len();
        match work {
            Work::SignIn => {
                let count = self.users.len();
                let user = self
                    .users
                    .get_mut(self.next % count.max(1))
                    .ok_or("this client has no users")?;
                self.next += 1;
                target.sign_in(user, rec).await
            }
            Work::Enroll => {
                let id = self.new_user_id("enrolled");
                let tenant = (self.index + self.made as usize) % tenants;
                target.enroll(tenant, id, rec).await.map(drop)
            }
            Work::Issue => {
                let id = self.new_user_id("issued");
                let tenant = &target.tenants[(self.index + self.made as usize) % tenants];
                target.issue(tenant, &id, rec).await.map(drop)
            }
        }
    }
}

/// Enrolls `per_worker` users for each worker (the sign-in pool), spread over the tenants. Not
/// measured; any failure stops the run.
pub async fn seed_users(
    target: Arc<Target>,
    workers: Vec<Worker>,
    per_worker: usize,
) -> Result<Vec<Worker>, String> {
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut worker| {
            let target = target.clone();
            tokio::spawn(async move {
                let mut rec = Recorder::default();
                for n in 0..per_worker {
                    let tenant = (worker.index + n) % target.tenants.len();
                    let id = format!("user-{}-{n}", worker.index);
                    worker
                        .users
                        .push(target.enroll(tenant, id, &mut rec).await?);
                }
                Ok::<_, String>(worker)
            })
        })
        .collect();
    let mut seeded = Vec::new();
    for task in tasks {
        seeded.push(task.await.map_err(|e| e.to_string())??);
    }
    Ok(seeded)
}

/// The name prefix of the server's threads that run SQLite statements (sqlx gives each connection
/// a thread of its own); the busiest of them is the writer.
const SQLITE_THREADS: &str = "latchkey-sqlite";

pub struct Window {
    pub warmup: Duration,
    pub duration: Duration,
}

pub async fn run(
    target: Arc<Target>,
    workers: Vec<Worker>,
    work: Work,
    window: &Window,
    server_pids: &[u32],
    writes: Option<&WriteCounter>,
) -> Result<(Vec<Worker>, PhaseResult), String> {
    let begin = Instant::now();
    let measure_from = begin + window.warmup;
    let end = measure_from + window.duration;
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|mut worker| {
            let target = target.clone();
            tokio::spawn(async move {
                let mut warm = Recorder::default();
                let mut measured = Recorder::default();
                loop {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    let rec = if now >= measure_from {
                        &mut measured
                    } else {
                        &mut warm
                    };
                    if let Err(e) = worker.step(&target, work, rec).await {
                        rec.error(e);
                    }
                }
                (worker, warm, measured)
            })
        })
        .collect();

    sleep_until(measure_from.into()).await;
    // Another process's CPU can be read only when its pid is known (an external server's may
    // not be). Several instances count together.
    let pids: Vec<String> = server_pids.iter().map(u32::to_string).collect();
    let server_cpu = || {
        (!pids.is_empty())
            .then(|| {
                pids.iter()
                    .map(|p| server::cpu_seconds(p))
                    .sum::<Option<f64>>()
            })
            .flatten()
    };
    let first_pid = server_pids.first().copied();
    let threads =
        |prefix| first_pid.map_or_else(Default::default, |p| server::thread_cpu_seconds(p, prefix));
    let postgres = writes.is_some();
    let db_cpu = || postgres.then(server::postgres_cpu_seconds).flatten();
    let cpu_before = (server_cpu(), server::cpu_seconds("self"), db_cpu());
    // SQLite's connections each run on a thread of their own; the busiest is the writer.
    let db_threads_before = threads(SQLITE_THREADS);
    let ticks_before = server::machine_ticks();
    let xid_before = match writes {
        Some(counter) => Some(counter.read().await?),
        None => None,
    };
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        let pids = server_pids.to_vec();
        tokio::spawn(async move {
            let mut peak = 0f64;
            while sampling.load(Ordering::Relaxed) {
                // All instances together: what the deployment holds.
                let rss: f64 = pids.iter().filter_map(|&p| server::rss_mib(p)).sum();
                peak = peak.max(rss);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        })
    };
    sleep_until(end.into()).await;
    let cpu_after = (server_cpu(), server::cpu_seconds("self"), db_cpu());
    let db_threads_after = threads(SQLITE_THREADS);
    let ticks_after = server::machine_ticks();
    sampling.store(false, Ordering::Relaxed);

    let mut all = Recorder::default();
    let mut warm_errors = Recorder::default();
    let mut back = Vec::new();
    for task in tasks {
        let (worker, warm, measured) = task.await.map_err(|e| e.to_string())?;
        all.merge(measured);
        warm_errors.merge(warm);
        back.push(worker);
    }
    // Read after the last request finished, so in-flight writes are counted.
    let xid_after = match writes {
        Some(counter) => Some(counter.read().await?),
        None => None,
    };
    let peak = sampler.await.map_err(|e| e.to_string())?;
    let seconds = window.duration.as_secs_f64();
    let completed = all.count(work.unit());
    let cores = |before: Option<f64>, after: Option<f64>| match (before, after) {
        (Some(b), Some(a)) => (a - b) / seconds,
        _ => f64::NAN,
    };
    let machine_busy = match (ticks_before, ticks_after) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => (b1 - b0) as f64 / (t1 - t0) as f64,
        _ => f64::NAN,
    };
    let write_transactions_per_unit = match (xid_before, xid_after) {
        // Each reading takes one id: the one after is not the phase's.
        (Some(b), Some(a)) if completed > 0 => Some((a - b - 1) as f64 / completed as f64),
        _ => None,
    };
    let busiest_sqlite_thread = db_threads_after
        .iter()
        .filter_map(|(tid, after)| Some((after - db_threads_before.get(tid)?) / seconds))
        .reduce(f64::max);
    let mut error_samples = all.error_samples.clone();
    error_samples.extend(warm_errors.error_samples.iter().take(2).cloned());
    Ok((
        back,
        PhaseResult {
            name: work.name().to_owned(),
            unit: work.unit().to_owned(),
            seconds,
            completed,
            per_second: completed as f64 / seconds,
            errors: all.errors + warm_errors.errors,
            error_samples,
            latencies: all.latencies(),
            server_cpu_cores: cores(cpu_before.0, cpu_after.0),
            loadgen_cpu_cores: cores(cpu_before.1, cpu_after.1),
            database_cpu_cores: cpu_before.2.map(|_| cores(cpu_before.2, cpu_after.2)),
            busiest_sqlite_thread,
            machine_busy,
            server_peak_rss_mib: peak,
            write_transactions_per_unit,
        },
    ))
}
