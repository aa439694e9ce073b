//! In-memory backend for dev mode and tests: nothing survives a restart.

use std::collections::BTreeMap;
use std::ops::Bound;

use async_trait::async_trait;
use tokio::sync::RwLock;

use crate::listing::list_level;
use crate::{Op, Storage, StorageError};

/// A sorted map in memory.
#[derive(Default)]
pub struct MemoryStorage {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.map.read().await.get(key).cloned())
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        self.map.write().await.insert(key.to_owned(), value);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.map.write().await.remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let map = self.map.read().await;
        list_level(prefix, |start| {
            Ok(map
                .range::<str, _>((Bound::Included(start), Bound::Unbounded))
                .next()
                .map(|(k, _)| k.clone()))
        })
    }

    async fn batch(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        let mut map = self.map.write().await;
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    map.insert(k, v);
                }
                Op::Delete(k) => {
                    map.remove(&k);
                }
            }
        }
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "inmem"
    }
}
