//! CPU-bound work (signature verification, hashing, parsing large documents) off the async
//! runtime, and how much of it runs at once.

use crate::{Error, Result};

/// How many CPU-bound tasks run at once: one per core.
///
/// Tokio's blocking pool starts a new thread for every task that finds none idle (up to 512), so
/// 32 concurrent sign-ins kept about 30 threads verifying on a 2-core machine. Each thread keeps
/// its own allocator heap with the memory it freed; under sustained sign-ins the server's RSS
/// rose to ~215 MiB with 50 threads and fell to ~108 MiB once the idle ones exited
/// (`BENCHMARKS.md`, issue 23). More threads than cores verify no faster: the rest wait here, as
/// futures, not threads.
static CPU_SLOTS: std::sync::LazyLock<std::sync::Arc<tokio::sync::Semaphore>> =
    std::sync::LazyLock::new(|| {
        std::sync::Arc::new(tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        ))
    });

/// Runs CPU-bound work (signature verification, hashing a batch) on the blocking pool, at most
/// one task per core at a time (see [`CPU_SLOTS`]).
pub(crate) async fn off_runtime<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let slot = CPU_SLOTS
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| Error::Internal(format!("CPU slots closed: {e}")))?;
    tokio::task::spawn_blocking(move || {
        // Held until the work ends, even if the caller stops waiting for it.
        let _slot = slot;
        work()
    })
    .await
    .map_err(|e| Error::Internal(format!("CPU-bound task failed: {e}")))?
}
