//! The storage layer of coffer: a narrow async key/value trait and its backends.
//!
//! Everything that reaches this crate is already ciphertext (the barrier in
//! `coffer-core` sits above it), so backends only move opaque bytes.

mod cache;
mod changes;
mod error;
mod listing;
mod memory;
mod postgres;
mod postgres_ha;
mod redb_file;

pub mod conformance;
pub mod ha;

use std::sync::Arc;

use async_trait::async_trait;

pub use cache::CachedStorage;
pub use changes::{ChangeLog, Since};
pub use error::StorageError;
pub use memory::MemoryStorage;
pub use postgres::{PostgresConfig, PostgresFencing, PostgresStorage};
pub use postgres_ha::{PostgresHa, PostgresHaConfig};
pub use redb_file::FileStorage;

/// One write in a batch.
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    /// Store `value` at the key.
    Put(String, Vec<u8>),
    /// Remove the key (no error if it is absent).
    Delete(String),
}

impl std::fmt::Debug for Op {
    // Values are ciphertext, but even so there is no reason to print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Put(k, v) => write!(f, "Put({k:?}, {} bytes)", v.len()),
            Op::Delete(k) => write!(f, "Delete({k:?})"),
        }
    }
}

/// A key/value store for opaque bytes, keyed by `/`-separated paths.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Reads one key.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;
    /// Writes one key; durable once this returns.
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError>;
    /// Removes one key; removing an absent key is not an error.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// Lists the immediate children of `prefix`, sorted; sub-folders end in `/`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
    /// Applies all operations atomically: all of them or none.
    async fn batch(&self, ops: Vec<Op>) -> Result<(), StorageError>;
    /// The backend's name as `sys/seal-status` reports it (`inmem`, `file`, `postgresql`).
    fn kind(&self) -> &'static str;
    /// Turns caching on or off (an HA standby reads what another node
    /// writes, so it must not cache). Backends without a cache ignore it.
    fn set_caching(&self, _on: bool) {}
    /// Drops what a cache holds for `key` (another node changed it).
    async fn invalidate(&self, _key: &str) {}
    /// Starts (from index 0) or stops recording written keys in [`Storage::changes`].
    fn record_changes(&self, _on: bool) {}
    /// The log of written keys, for backends that keep one.
    fn changes(&self) -> Option<&ChangeLog> {
        None
    }
}

/// A shared, dynamically chosen backend.
pub type DynStorage = Arc<dyn Storage>;
