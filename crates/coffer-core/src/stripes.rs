//! Striped async locks: one mutex per slice of a key space, so every
//! read-modify-write of one stored record is serialised without a lock per
//! record or one global lock.

use std::hash::{BuildHasher, Hasher};

use tokio::sync::{Mutex, MutexGuard};

/// A fixed set of mutexes; a key always maps to the same one.
pub struct Stripes {
    locks: Vec<Mutex<()>>,
    hasher: std::hash::RandomState,
}

impl Stripes {
    /// `n` stripes (at least one).
    pub fn new(n: usize) -> Self {
        Self {
            locks: (0..n.max(1)).map(|_| Mutex::new(())).collect(),
            hasher: std::hash::RandomState::new(),
        }
    }

    fn index(&self, key: &str) -> usize {
        let mut h = self.hasher.build_hasher();
        h.write(key.as_bytes());
        (h.finish() % self.locks.len() as u64) as usize
    }

    /// Waits for the stripe of `key`.
    pub async fn lock(&self, key: &str) -> MutexGuard<'_, ()> {
        self.locks[self.index(key)].lock().await
    }
}

impl Default for Stripes {
    fn default() -> Self {
        Self::new(64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_always_takes_the_same_stripe() {
        let s = Stripes::new(8);
        assert_eq!(s.index("abc"), s.index("abc"));
        let _g = s.lock("abc").await;
        // The same key waits while held.
        let again = tokio::time::timeout(std::time::Duration::from_millis(20), s.lock("abc")).await;
        assert!(again.is_err());
    }
}
