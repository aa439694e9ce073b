//! High availability: which node of a cluster may write.
//!
//! One node holds leadership and writes; the others are standbys. Every
//! leadership term has an epoch, and a backend given a [`Fence`] checks the
//! epoch inside each write transaction, so a node that lost leadership
//! (paused, partitioned, slow) cannot write once another took over.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::StorageError;

/// The epoch a node may write under; 0 means it may not write at all.
#[derive(Debug, Default)]
pub struct Fence {
    epoch: AtomicI64,
}

impl Fence {
    /// The current epoch (0: not the active node).
    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Allows writes under `epoch`.
    pub fn arm(&self, epoch: i64) {
        self.epoch.store(epoch, Ordering::Release);
    }

    /// Refuses every write from now on.
    pub fn disarm(&self) {
        self.epoch.store(0, Ordering::Release);
    }
}

/// What a node tells the others about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertise {
    /// Where clients reach the node's API (`api_addr`).
    pub api_addr: String,
    /// Where other nodes reach its cluster listener (`cluster_addr`).
    pub cluster_addr: String,
    /// The host name, for `sys/ha-status`.
    pub hostname: String,
    /// The node's version, for `sys/ha-status`.
    pub version: String,
}

/// The node holding leadership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// The leader's node id.
    pub node_id: String,
    /// Its advertised addresses.
    pub api_addr: String,
    /// Its cluster listener.
    pub cluster_addr: String,
    /// When it became active (unix milliseconds, database clock).
    pub since_ms: i64,
    /// Its leadership epoch.
    pub epoch: i64,
}

/// A node that reported itself recently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The node id.
    pub node_id: String,
    /// What it advertised.
    pub advertise: Advertise,
    /// Its last report (unix milliseconds, database clock).
    pub last_echo_ms: i64,
}

/// The outcome of one attempt to become the active node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// This node is now active under this epoch (its fence is armed).
    Acquired(i64),
    /// Another node holds leadership (or nobody does yet, but it cannot be taken).
    Held(Option<Leader>),
}

/// Leadership over a shared backend.
#[async_trait]
pub trait HaLock: Send + Sync + 'static {
    /// This node's id (random per process).
    fn node_id(&self) -> &str;
    /// How long leadership lasts without renewal.
    fn lease_ttl(&self) -> Duration;
    /// Tries once to become active; never waits for the current holder.
    async fn try_acquire(&self, me: &Advertise) -> Result<Attempt, StorageError>;
    /// Extends leadership. `Ok(false)`: it was lost (the fence is disarmed).
    async fn renew(&self) -> Result<bool, StorageError>;
    /// Gives leadership up at once (disarms the fence first).
    async fn release(&self) -> Result<(), StorageError>;
    /// Drops leadership locally without telling the backend (it was lost).
    fn forfeit(&self);
    /// The current leader, as the backend records it.
    async fn leader(&self) -> Result<Option<Leader>, StorageError>;
    /// Records that this node is alive (for `sys/ha-status`).
    async fn echo(&self, me: &Advertise) -> Result<(), StorageError>;
    /// Nodes that reported within the last `within`.
    async fn nodes(&self, within: Duration) -> Result<Vec<Node>, StorageError>;
    /// Removes this node's report (at shutdown).
    async fn leave(&self) -> Result<(), StorageError>;
    /// A counter bumped whenever the lock's connection to the backend was
    /// lost: leadership may be gone from that instant.
    fn connection_losses(&self) -> tokio::sync::watch::Receiver<u64>;
}
