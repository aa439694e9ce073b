//! Bounded heavy work: password hashing (argon2id takes 19 MiB and tens of
//! milliseconds per call), password generation, key generation. At most one
//! job per core runs, on blocking threads, so memory stays flat and the async
//! workers keep serving whatever the request rate; a bounded queue waits for
//! a slot, and past it callers are told to come back later (429).

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::logical::LogicalError;

/// Callers allowed to wait for a slot, per slot.
const QUEUE_PER_SLOT: usize = 256;
/// Longest wait for a slot.
const MAX_WAIT: Duration = Duration::from_secs(10);

struct Pool {
    slots: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
}

static POOL: LazyLock<Pool> = LazyLock::new(|| {
    let n = std::thread::available_parallelism().map_or(2, |n| n.get());
    Pool {
        slots: Semaphore::new(n),
        waiting: AtomicUsize::new(0),
        max_waiting: n * QUEUE_PER_SLOT,
    }
});

/// Decrements the waiting count however the wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs `f` on a blocking thread once a slot is free. `what` names the work
/// in the error a caller gets when the server is saturated.
pub async fn run<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, LogicalError> {
    let pool = &*POOL;
    let busy = || {
        crate::metrics::HEAVY_REFUSALS.inc();
        LogicalError::TooManyRequests(format!(
            "too many {what} requests in progress; retry shortly"
        ))
    };
    if pool.waiting.fetch_add(1, Ordering::AcqRel) >= pool.max_waiting {
        pool.waiting.fetch_sub(1, Ordering::AcqRel);
        return Err(busy());
    }
    let waiting = Waiting(&pool.waiting);
    let permit = match tokio::time::timeout(MAX_WAIT, pool.slots.acquire()).await {
        Ok(Ok(p)) => p,
        Ok(Err(_)) => return Err(LogicalError::Internal("heavy work pool closed".into())),
        Err(_) => return Err(busy()),
    };
    drop(waiting);
    // The permit travels with the job: a caller that goes away (the client
    // hung up) does not free the slot while the job still runs.
    tokio::task::spawn_blocking(move || {
        let out = f();
        drop(permit);
        out
    })
    .await
    .map_err(|e| LogicalError::Internal(format!("{what} task failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_more_jobs_than_slots() {
        static RUNNING: AtomicUsize = AtomicUsize::new(0);
        static PEAK: AtomicUsize = AtomicUsize::new(0);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..40 {
            set.spawn(run("test", || {
                let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
                PEAK.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                RUNNING.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
        let slots = std::thread::available_parallelism().map_or(2, |n| n.get());
        assert!(PEAK.load(Ordering::SeqCst) <= slots);
    }
}
