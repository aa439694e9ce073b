//! When each lease is next due: a min-heap of (unix millisecond, lease id). A
//! renewal pushes a new entry and leaves the old one, which is recognised as
//! stale when it comes up (the stored lease says when it is really due).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use crate::clock::now_ms;

/// What comes due: a lease to expire, or a token whose expiry takes its
/// leases with it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Due {
    Lease(String),
    Token(String),
}

#[derive(Default)]
pub(super) struct Schedule {
    heap: std::sync::Mutex<BinaryHeap<Reverse<(i64, Due)>>>,
    changed: Notify,
}

impl Schedule {
    pub(super) fn push(&self, at: i64, id: String) {
        self.push_due(at, Due::Lease(id));
    }

    pub(super) fn push_due(&self, at: i64, id: Due) {
        if let Ok(mut h) = self.heap.lock() {
            let earlier = h.peek().is_none_or(|Reverse((t, _))| at < *t);
            h.push(Reverse((at, id)));
            drop(h);
            if earlier {
                self.changed.notify_one();
            }
        }
    }

    pub(super) fn wake(&self) {
        self.changed.notify_one();
    }

    /// Waits until the earliest entry is due and takes it; `None` once stopped.
    pub(super) async fn next_due(&self, stopped: &AtomicBool) -> Option<Due> {
        loop {
            if stopped.load(Ordering::Acquire) {
                return None;
            }
            let now = now_ms();
            let wait = {
                let mut h = self.heap.lock().ok()?;
                match h.peek() {
                    Some(Reverse((t, _))) if *t <= now => {
                        return h.pop().map(|Reverse((_, id))| id);
                    }
                    Some(Reverse((t, _))) => Some(Duration::from_millis((*t - now) as u64)),
                    None => None,
                }
            };
            match wait {
                // Re-checks the stop flag at least once a minute.
                Some(d) => {
                    let d = d.min(Duration::from_secs(60));
                    let _ = tokio::time::timeout(d, self.changed.notified()).await;
                }
                None => {
                    let _ = tokio::time::timeout(Duration::from_secs(60), self.changed.notified())
                        .await;
                }
            }
        }
    }
}
