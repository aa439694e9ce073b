//! Group commit for devices whose sink writes inline (files). A request
//! queues its line; the one that finds no write under way becomes the
//! writer: it yields once so that requests running alongside can queue
//! theirs, then links the whole queue into the chain and writes it with one
//! call, leaving anything queued meanwhile to a drain task. Concurrent
//! requests thus share writes instead of queueing on a lock (and the kernel's
//! file lock) one syscall at a time. Every request still waits until its line
//! was handed to the kernel (or synced, with `fsync`, on a blocking thread),
//! so fail-closed holds.

use std::sync::{Arc, Mutex};

use super::chain::{self, ChainHead};
use super::{AuditSink, POISONED};

/// The device's chain: the head and the sequence number last stored.
pub(super) struct Link {
    pub head: ChainHead,
    pub stored: u64,
}

impl Link {
    pub fn advance(&mut self, line: &[u8]) {
        self.head = self.head.next(line);
    }
}

type Done = tokio::sync::oneshot::Sender<Result<(), String>>;

struct Job {
    line: Vec<u8>,
    done: Done,
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    draining: bool,
}

/// Queues lines for one device and drains them in batches.
pub(super) struct Committer {
    queue: Mutex<Queue>,
    sink: Arc<dyn AuditSink>,
    link: Arc<Mutex<Link>>,
}

/// Lines written per call at most (bounds one batch's memory).
const MAX_BATCH: usize = 1024;

impl Committer {
    pub fn new(sink: Arc<dyn AuditSink>, link: Arc<Mutex<Link>>) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::new(Queue::default()),
            sink,
            link,
        })
    }

    /// Queues an unlinked line and waits until it is written (or failed).
    /// The request that finds no write under way writes the queue itself,
    /// one batch, and leaves whatever arrived meanwhile to a drain task.
    pub async fn submit(self: &Arc<Self>, line: Vec<u8>) -> Result<(), String> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let lead = {
            let mut q = self.queue.lock().map_err(|_| POISONED)?;
            q.jobs.push(Job { line, done });
            !std::mem::replace(&mut q.draining, true)
        };
        if lead {
            if self.sink.blocks_long() {
                // fsync: keep the async workers free while the disk syncs.
                let me = self.clone();
                drop(tokio::task::spawn_blocking(move || me.drain()));
            } else {
                // Let requests running alongside queue their lines first:
                // one write then carries them all.
                tokio::task::yield_now().await;
                let mut buf = Vec::new();
                if let Some(batch) = self.take_batch() {
                    self.write_batch(batch, &mut buf);
                    if self.take_batch_pending() {
                        let me = self.clone();
                        drop(tokio::spawn(async move { me.drain() }));
                    }
                }
            }
        }
        wait.await
            .map_err(|_| "the audit writer stopped".to_owned())?
    }

    /// The next batch, or `None` (and the drain marked over) when empty.
    fn take_batch(&self) -> Option<Vec<Job>> {
        let mut q = self.queue.lock().ok()?;
        if q.jobs.is_empty() {
            q.draining = false;
            return None;
        }
        let n = q.jobs.len().min(MAX_BATCH);
        Some(q.jobs.drain(..n).collect())
    }

    /// True when jobs wait (the drain stays marked as running); false ends it.
    fn take_batch_pending(&self) -> bool {
        let Ok(mut q) = self.queue.lock() else {
            return false;
        };
        if q.jobs.is_empty() {
            q.draining = false;
            false
        } else {
            true
        }
    }

    /// Writes batches until the queue is empty.
    fn drain(&self) {
        let mut buf: Vec<u8> = Vec::new();
        while let Some(batch) = self.take_batch() {
            self.write_batch(batch, &mut buf);
        }
    }

    /// Links and writes one batch. Only one drain runs at a time, so the
    /// head read here is still the head when the write ends; the lock is not
    /// held across the write (readers of the head see the last line written).
    fn write_batch(&self, batch: Vec<Job>, buf: &mut Vec<u8>) {
        let Ok(start) = self.link.lock().map(|l| l.head.clone()) else {
            for job in batch {
                let _ = job.done.send(Err(POISONED.into()));
            }
            return;
        };
        let mut head = start;
        buf.clear();
        let mut linked: Vec<Done> = Vec::with_capacity(batch.len());
        for mut job in batch {
            if chain::append_link(&mut job.line, &head) {
                buf.extend_from_slice(&job.line);
                head = head.next(&job.line);
                linked.push(job.done);
            } else {
                let _ = job
                    .done
                    .send(Err("entry did not serialize to an object".into()));
            }
        }
        let result = if buf.is_empty() {
            Ok(())
        } else {
            self.sink.write_inline(buf)
        };
        // On failure nothing of this batch counts as written: the next line
        // links to the last one that was.
        if result.is_ok()
            && let Ok(mut link) = self.link.lock()
        {
            link.head = head;
        }
        for done in linked {
            let _ = done.send(result.clone());
        }
    }
}
