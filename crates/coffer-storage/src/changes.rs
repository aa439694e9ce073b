//! The keys an HA active node has written, in order, so standbys can drop
//! what they cached of them.
//!
//! Each write (a put, a delete or a batch) gets the next index. The log
//! keeps the most recent entries only: a standby that asks for older ones
//! is told it missed some and starts over with an empty cache. Writes are
//! recorded whether or not the backend acknowledged them: a commit whose
//! answer was lost still changed the key, and a needless invalidation
//! costs one read.

use std::collections::VecDeque;
use std::sync::Mutex;

/// What a standby asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Since {
    /// The keys written after the index asked for, up to `head`.
    Keys { head: u64, keys: Vec<String> },
    /// The log no longer holds (or never held) what came after the index:
    /// everything cached must go. `head` is where to continue from.
    Gap { head: u64 },
}

struct Ring {
    /// `(index, key)`, oldest first.
    entries: VecDeque<(u64, String)>,
}

/// A bounded, ordered log of written keys.
pub struct ChangeLog {
    ring: Mutex<Ring>,
    capacity: usize,
    /// The last index recorded; changed only under `ring`'s lock, so it
    /// never goes back and always covers what the ring holds.
    head: tokio::sync::watch::Sender<u64>,
}

impl ChangeLog {
    /// A log keeping the last `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        Self {
            ring: Mutex::new(Ring {
                entries: VecDeque::new(),
            }),
            capacity: capacity.max(1),
            head: tokio::sync::watch::Sender::new(0),
        }
    }

    /// Records one write of `keys` under the next index (a write of no
    /// key takes none: every index has keys, so a follower can reach it).
    pub fn record<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let mut keys = keys.into_iter().peekable();
        if keys.peek().is_none() {
            return;
        }
        let Ok(mut ring) = self.ring.lock() else {
            return;
        };
        let index = *self.head.borrow() + 1;
        for k in keys {
            if ring.entries.len() == self.capacity {
                ring.entries.pop_front();
            }
            ring.entries.push_back((index, k.to_owned()));
        }
        self.head.send_replace(index);
    }

    /// The index of the last write recorded (every answer of the active
    /// node asks, so not through the writers' lock).
    pub fn head(&self) -> u64 {
        *self.head.borrow()
    }

    /// Starts over at index 0 (a new term of leadership).
    pub fn reset(&self) {
        if let Ok(mut ring) = self.ring.lock() {
            ring.entries.clear();
            self.head.send_replace(0);
        }
    }

    /// The keys written after `after`, at most `max` writes' worth.
    pub fn since(&self, after: u64, max: usize) -> Since {
        let Ok(ring) = self.ring.lock() else {
            return Since::Gap { head: 0 };
        };
        let head = *self.head.borrow();
        if after > head {
            return Since::Gap { head };
        }
        if after == head {
            return Since::Keys {
                head: after,
                keys: Vec::new(),
            };
        }
        // Every index after `after` must still be here, in full: the
        // oldest index held may have lost some of its keys to the bound.
        let complete_from = match ring.entries.front() {
            Some((first, _)) if ring.entries.len() < self.capacity => *first,
            Some((first, _)) => first + 1,
            None => head + 1,
        };
        if after + 1 < complete_from {
            return Since::Gap { head };
        }
        let start = ring.entries.partition_point(|(i, _)| *i <= after);
        let mut keys = Vec::new();
        let mut head = after;
        for (i, k) in ring.entries.iter().skip(start) {
            if *i != head && head - after >= max as u64 {
                break;
            }
            head = *i;
            keys.push(k.clone());
        }
        Since::Keys { head, keys }
    }

    /// Wakes when the head moves.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.head.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_keys_in_order_and_gaps_when_overrun() {
        let log = ChangeLog::new(4);
        assert_eq!(
            log.since(0, 10),
            Since::Keys {
                head: 0,
                keys: vec![]
            }
        );
        log.record(["a"]);
        log.record(std::iter::empty());
        log.record(["b", "c"]);
        assert_eq!(
            log.since(0, 10),
            Since::Keys {
                head: 2,
                keys: vec!["a".into(), "b".into(), "c".into()]
            }
        );
        assert_eq!(
            log.since(1, 10),
            Since::Keys {
                head: 2,
                keys: vec!["b".into(), "c".into()]
            }
        );
        // At most one write's worth: the batch stays whole.
        assert_eq!(
            log.since(0, 1),
            Since::Keys {
                head: 1,
                keys: vec!["a".into()]
            }
        );
        log.record(["d", "e"]);
        // "a" fell out, and with the ring full its oldest index may be
        // partial: only what follows it is served.
        assert_eq!(log.since(0, 10), Since::Gap { head: 3 });
        assert_eq!(log.since(1, 10), Since::Gap { head: 3 });
        assert_eq!(
            log.since(2, 10),
            Since::Keys {
                head: 3,
                keys: vec!["d".into(), "e".into()]
            }
        );
        // An index from another term of leadership.
        assert_eq!(log.since(9, 10), Since::Gap { head: 3 });
        log.reset();
        assert_eq!(log.head(), 0);
    }
}
