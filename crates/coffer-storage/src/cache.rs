//! A read cache in front of any backend, like Vault's physical cache.
//!
//! It holds what the backend holds (ciphertext), never plaintext. Writes go
//! through to the backend first. A miss and a write to the same key are
//! serialised by a striped lock, so a slow read can never put a value older
//! than a finished write into the cache. Only safe while this process is the
//! only writer of the backend, or while every other writer's changes reach
//! [`CachedStorage::invalidate`]: an HA active node records what it writes
//! in a [`ChangeLog`], and standbys that follow that log keep their cache
//! (and turn it off when they cannot follow it).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use quick_cache::sync::Cache;
use tokio::sync::Mutex;

use crate::changes::ChangeLog;
use crate::{DynStorage, Op, Storage, StorageError};

const STRIPES: usize = 64;
/// Larger values are not cached: the capacity counts entries, not bytes.
const MAX_CACHED_VALUE: usize = 64 * 1024;
/// Written keys an HA active node keeps for its standbys.
const CHANGE_LOG: usize = 65_536;

/// A write-through cache of up to `capacity` entries over another backend.
pub struct CachedStorage {
    inner: DynStorage,
    cache: Cache<String, Option<Arc<[u8]>>>,
    stripes: Vec<Mutex<()>>,
    /// Off: every read goes to the backend and nothing is kept.
    enabled: std::sync::atomic::AtomicBool,
    /// What this node wrote, while it is an HA active node.
    changes: ChangeLog,
    recording: std::sync::atomic::AtomicBool,
}

impl CachedStorage {
    /// Wraps `inner`, keeping at most `capacity` entries (present or known absent).
    pub fn new(inner: DynStorage, capacity: usize) -> Self {
        Self {
            inner,
            cache: Cache::new(capacity.max(1)),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            enabled: std::sync::atomic::AtomicBool::new(true),
            changes: ChangeLog::new(CHANGE_LOG),
            recording: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Notes a write (done or failed: a lost answer may hide a commit).
    fn note<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        if self.recording.load(std::sync::atomic::Ordering::Acquire) {
            self.changes.record(keys);
        }
    }

    /// Records what the backend now holds for `key` (callers hold the key's stripe).
    fn remember(&self, key: &str, value: Option<&[u8]>) {
        match value {
            Some(v) if v.len() > MAX_CACHED_VALUE => {
                self.cache.remove(key);
            }
            v => self.cache.insert(key.to_owned(), v.map(Arc::from)),
        }
    }

    fn stripe(&self, key: &str) -> usize {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() as usize) % STRIPES
    }
}

#[async_trait]
impl Storage for CachedStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        if !self.enabled.load(std::sync::atomic::Ordering::Acquire) {
            return self.inner.get(key).await;
        }
        if let Some(hit) = self.cache.get(key) {
            return Ok(hit.map(|v| v.to_vec()));
        }
        let _g = self.stripes[self.stripe(key)].lock().await;
        if let Some(hit) = self.cache.get(key) {
            return Ok(hit.map(|v| v.to_vec()));
        }
        let v = self.inner.get(key).await?;
        self.cache
            .insert(key.to_owned(), v.as_deref().map(Arc::from));
        Ok(v)
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        let _g = self.stripes[self.stripe(key)].lock().await;
        // Drop the entry first: if the write fails the cache must not claim either value.
        self.cache.remove(key);
        let copy = (value.len() <= MAX_CACHED_VALUE).then(|| value.clone());
        let done = self.inner.put(key, value).await;
        self.note([key]);
        done?;
        if let Some(v) = copy {
            self.remember(key, Some(&v));
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let _g = self.stripes[self.stripe(key)].lock().await;
        self.cache.remove(key);
        let done = self.inner.delete(key).await;
        self.note([key]);
        done?;
        self.remember(key, None);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.inner.list(prefix).await
    }

    async fn batch(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        let mut idx: Vec<usize> = ops
            .iter()
            .map(|op| match op {
                Op::Put(k, _) | Op::Delete(k) => self.stripe(k),
            })
            .collect();
        // Lock in ascending order so concurrent batches cannot deadlock.
        idx.sort_unstable();
        idx.dedup();
        let mut guards = Vec::with_capacity(idx.len());
        for i in idx {
            guards.push(self.stripes[i].lock().await);
        }
        for op in &ops {
            let (Op::Put(k, _) | Op::Delete(k)) = op;
            self.cache.remove(k.as_str());
        }
        let updates: Vec<(String, Option<Vec<u8>>)> = ops
            .iter()
            .map(|op| match op {
                Op::Put(k, v) => (k.clone(), Some(v.clone())),
                Op::Delete(k) => (k.clone(), None),
            })
            .collect();
        let done = self.inner.batch(ops).await;
        self.note(updates.iter().map(|(k, _)| k.as_str()));
        done?;
        for (k, v) in updates {
            self.remember(&k, v.as_deref());
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn set_caching(&self, on: bool) {
        self.enabled.store(on, std::sync::atomic::Ordering::Release);
        self.cache.clear();
    }

    async fn invalidate(&self, key: &str) {
        // Under the stripe: a read in progress finishes (and caches) first,
        // then its possibly older value goes.
        let _g = self.stripes[self.stripe(key)].lock().await;
        self.cache.remove(key);
    }

    fn record_changes(&self, on: bool) {
        self.changes.reset();
        self.recording
            .store(on, std::sync::atomic::Ordering::Release);
    }

    fn changes(&self) -> Option<&ChangeLog> {
        Some(&self.changes)
    }
}
