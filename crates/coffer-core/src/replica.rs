//! Standby reads: an HA standby answers requests that change nothing
//! (KV reads, transit crypto, token lookups, policy and capability reads)
//! from its own read-only copy of the active node's state, instead of
//! forwarding them.
//!
//! The copy stays coherent through the active node's change log: the
//! standby follows it (over the cluster listener) and, for every key the
//! active node wrote, drops what it cached of that key in storage's cache
//! and in the structures built from it (tokens, policies, engines' parsed
//! keys and metadata); a changed mount table, audit table or keyring
//! rebuilds the copy. A standby that cannot follow (the active node went
//! quiet, the log overran it, the leader changed) serves nothing locally
//! until it started over from an empty cache.
//!
//! Positions in the log are `term << 32 | index`, the term being the
//! leadership epoch: a new active node's positions are above any of its
//! predecessor's, so read-your-writes (`X-Vault-Index`) holds across a
//! failover.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::core::{Active, Core};
use crate::logical::{LogicalError, Operation, Request, Response};
use crate::mounts::MountKind;

/// A standby that heard nothing from the active node for this long stops
/// serving reads (the active node answers a follower at least every second).
const QUIET_LIMIT: Duration = Duration::from_secs(2);
/// The most `X-Vault-Index` values one request may carry that are checked.
const MAX_INDEXES: usize = 16;
/// How long the active node gathers writes before it answers a follower.
const COALESCE: Duration = Duration::from_millis(3);
/// The most writes one answer to a follower carries.
const BATCH: usize = 4096;

/// Keys whose change rebuilds a standby's whole copy.
const REBUILD_KEYS: &[&str] = &[
    crate::mounts::MOUNT_TABLE_PATH,
    crate::mounts::AUTH_TABLE_PATH,
    "core/token-mount",
    "core/audit",
    crate::barrier::KEYRING_PATH,
];

/// What the active node answers a follower.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChangeBatch {
    /// The active node's term (leadership epoch).
    pub epoch: i64,
    /// The index the follower is at once it applied `keys`.
    pub head: u64,
    /// Keys written after the index asked for.
    pub keys: Vec<String>,
    /// The follower missed writes: it must drop everything it cached.
    pub gap: bool,
}

/// A standby's copy of the active state and how far it follows the log.
#[derive(Default)]
pub(crate) struct Replica {
    state: RwLock<Option<Arc<Active>>>,
    /// `(term, index)` applied, while following.
    applied: Mutex<Option<(i64, u64)>>,
    heard: Mutex<Option<Instant>>,
    /// Resets and applications one at a time.
    apply: tokio::sync::Mutex<()>,
    moved: tokio::sync::Notify,
    /// The last `X-Vault-Index` made, by position.
    last_index: Mutex<Option<(u64, String)>>,
}

/// A log position as one number.
fn position(term: i64, index: u64) -> u64 {
    (u64::try_from(term).unwrap_or(0) << 32) | (index & 0xffff_ffff)
}

impl Replica {
    /// Drops the signed index kept for reuse (the key signing it changed).
    pub(crate) fn forget_index(&self) {
        if let Ok(mut last) = self.last_index.lock() {
            *last = None;
        }
    }

    fn state(&self) -> Option<Arc<Active>> {
        self.state.read().ok().and_then(|s| s.clone())
    }

    fn set_state(&self, s: Option<Arc<Active>>) {
        if let Ok(mut slot) = self.state.write() {
            *slot = s;
        }
    }

    fn set_applied(&self, at: Option<(i64, u64)>) {
        if let Ok(mut a) = self.applied.lock() {
            *a = at;
        }
        if let Ok(mut h) = self.heard.lock() {
            *h = at.map(|_| Instant::now());
        }
        self.moved.notify_waiters();
    }

    /// The position applied, while the copy is current enough to serve.
    fn current(&self) -> Option<u64> {
        let fresh = self
            .heard
            .lock()
            .ok()
            .and_then(|h| *h)
            .is_some_and(|t| t.elapsed() < QUIET_LIMIT);
        let at = self.applied.lock().ok().and_then(|a| *a)?;
        (fresh && self.state().is_some()).then(|| position(at.0, at.1))
    }
}

impl Core {
    fn replica(&self) -> Option<&Replica> {
        self.ha().map(|h| &h.replica)
    }

    /// The log position this standby serves reads at; `None` when it serves
    /// none (not a following standby, or behind).
    pub fn standby_position(&self) -> Option<u64> {
        self.replica()?.current()
    }

    /// Waits up to `wait` for this standby to reach `pos`; answers whether it did.
    pub async fn standby_reach(&self, pos: u64, wait: Duration) -> bool {
        let Some(r) = self.replica() else {
            return false;
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = r.moved.notified();
            match r.current() {
                Some(at) if at >= pos => return true,
                None => return false,
                Some(_) => {}
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// The active node's current log position (what a response's
    /// `X-Vault-Index` says); `None` unless this is the active HA node.
    pub fn active_position(&self) -> Option<u64> {
        let ha = self.ha()?;
        if !matches!(*ha.role.borrow(), crate::ha::HaRole::Active { .. }) {
            return None;
        }
        let term = ha.term.load(std::sync::atomic::Ordering::Acquire);
        Some(position(term, self.storage().changes()?.head()))
    }

    /// Drops this standby's copy: it serves no reads until it starts over.
    pub fn follow_stop(&self) {
        if let Some(r) = self.replica() {
            r.set_applied(None);
            r.set_state(None);
            self.storage().set_caching(false);
        }
    }

    /// Starts over at `(epoch, head)` of the active node's log: an empty
    /// cache and a fresh copy of the state.
    pub async fn follow_reset(&self, epoch: i64, head: u64) -> Result<(), LogicalError> {
        let Some(r) = self.replica() else {
            return Ok(());
        };
        let _one = r.apply.lock().await;
        // Not while this node becomes active: that stops following first,
        // and must find nothing installed after it.
        let Some(_no_transition) = self.standby_transition().await else {
            return Ok(());
        };
        r.set_applied(None);
        r.set_state(None);
        // Off empties the cache; every value read after this is at least as
        // new as `head` (the active node logs a write after it committed).
        self.storage().set_caching(false);
        self.barrier.reload().await?;
        let state = self.load_state().await?;
        self.audit.unseal(&self.barrier).await?;
        self.storage().set_caching(true);
        r.set_state(Some(Arc::new(state)));
        r.set_applied(Some((epoch, head)));
        tracing::info!(epoch, head, "HA: following the active node; serving reads");
        Ok(())
    }

    /// Applies the active node's writes after the current position, up to
    /// `head`; an unexpected position starts over.
    pub async fn follow_apply(&self, batch: ChangeBatch) -> Result<(), LogicalError> {
        let Some(r) = self.replica() else {
            return Ok(());
        };
        let at = r.applied.lock().ok().and_then(|a| *a);
        if batch.gap || at.is_none_or(|(term, _)| term != batch.epoch) {
            return self.follow_reset(batch.epoch, batch.head).await;
        }
        let _one = r.apply.lock().await;
        let Some(state) = r.state() else {
            return Ok(());
        };
        let mut rebuild = false;
        for key in &batch.keys {
            // Storage first: a structure refilled after this reads the new value.
            self.storage().invalidate(key).await;
            rebuild |= REBUILD_KEYS.contains(&key.as_str());
            self.invalidate_derived(&state, key).await;
        }
        if rebuild {
            let Some(_no_transition) = self.standby_transition().await else {
                return Ok(());
            };
            // The old copy serves until the new one is ready.
            self.barrier.reload().await?;
            let state = self.load_state().await?;
            self.audit.unseal(&self.barrier).await?;
            r.set_state(Some(Arc::new(state)));
        }
        r.set_applied(Some((batch.epoch, batch.head)));
        Ok(())
    }

    /// Drops what the copy built from `key` (tokens, policies, an engine's).
    async fn invalidate_derived(&self, state: &Active, key: &str) {
        if let Some(hash) = key.strip_prefix(crate::token::ID_PREFIX) {
            state.tokens.invalidate(hash).await;
        } else if let Some(name) = key.strip_prefix(crate::policy::store::PREFIX) {
            state.policies.invalidate(name);
        } else if key == crate::ha::FORWARDING_KEY_PATH {
            if let Some(ha) = self.ha() {
                ha.forget_forwarding_key();
            }
        } else {
            for kind in [MountKind::Secret, MountKind::Auth] {
                let Some(rest) = key.strip_prefix(kind.view_root()) else {
                    continue;
                };
                let Ok(mounts) = self.mounts(state, kind) else {
                    return;
                };
                for m in mounts.iter() {
                    if let Some(rel) = rest
                        .strip_prefix(m.entry.uuid.as_str())
                        .and_then(|r| r.strip_prefix('/'))
                    {
                        m.backend.invalidate(rel).await;
                    }
                }
            }
        }
    }

    /// Holds off becoming active (or standing down) while this standby
    /// installs a copy; `None` when it is not a standby any more.
    async fn standby_transition(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        let ha = self.ha()?;
        let guard = ha.transition.lock().await;
        matches!(*ha.role.borrow(), crate::ha::HaRole::Standby(_)).then_some(guard)
    }

    /// What this active node wrote after `after` (a position a follower
    /// holds), waiting up to `wait` for something when there is nothing yet.
    pub async fn changes_after(
        &self,
        epoch: i64,
        after: u64,
        wait: Duration,
    ) -> Result<ChangeBatch, LogicalError> {
        let ha = self.ha().ok_or_else(|| {
            LogicalError::BadRequest("this node is not part of an HA cluster".into())
        })?;
        let not_active = || LogicalError::Unavailable("this node is not the active node".into());
        if !matches!(*ha.role.borrow(), crate::ha::HaRole::Active { .. }) {
            return Err(not_active());
        }
        let term = ha.term.load(std::sync::atomic::Ordering::Acquire);
        let log = self.storage().changes().ok_or_else(not_active)?;
        if epoch != term {
            return Ok(ChangeBatch {
                epoch: term,
                head: log.head(),
                keys: Vec::new(),
                gap: true,
            });
        }
        let mut moved = log.subscribe();
        if log.head() == after && tokio::time::timeout(wait, moved.changed()).await.is_ok() {
            // Writes come in bursts: gathering a little more makes one answer
            // of many, which costs the active node less than the delay costs
            // a reader waiting on its X-Vault-Index.
            tokio::time::sleep(COALESCE).await;
        }
        Ok(match log.since(after, BATCH) {
            coffer_storage::Since::Keys { head, keys } => ChangeBatch {
                epoch: term,
                head,
                keys,
                gap: false,
            },
            coffer_storage::Since::Gap { head } => ChangeBatch {
                epoch: term,
                head,
                keys: Vec::new(),
                gap: true,
            },
        })
    }

    /// Whether this standby may answer `req` itself: it is following, and
    /// the request only reads. Anything else goes to the active node.
    pub fn standby_may_serve(&self, req: &Request) -> bool {
        let Some(state) = self.replica().and_then(|r| r.state()) else {
            return false;
        };
        if req.wrap_ttl.is_some_and(|t| t > 0) {
            return false;
        }
        let path = req.path.as_str();
        let reading = matches!(req.operation, Operation::Read | Operation::List);
        if let Some(rest) = path.strip_prefix("sys/") {
            let read_only = [
                "policy",
                "policies/acl",
                "mounts",
                "auth",
                "internal/ui/mounts",
            ];
            return match req.operation {
                Operation::Read | Operation::List => read_only.iter().any(|p| {
                    rest.strip_prefix(p)
                        .is_some_and(|r| r.is_empty() || r.starts_with('/'))
                }),
                Operation::Update => matches!(
                    rest,
                    "capabilities" | "capabilities-self" | "capabilities-accessor"
                ),
                _ => false,
            };
        }
        if let Some(rest) = path.strip_prefix("auth/token/") {
            return matches!(req.operation, Operation::Read | Operation::Update)
                && matches!(rest, "lookup" | "lookup-self" | "lookup-accessor");
        }
        let Ok(Some(found)) = self.locate(&state, path) else {
            return false;
        };
        let m = found.mount();
        match (m.entry.kind.as_str(), path.starts_with("auth/")) {
            ("kv", false) => reading,
            ("transit", false) => {
                reading || {
                    let op = found.rel.split('/').next().unwrap_or_default();
                    req.operation == Operation::Update
                        && matches!(
                            op,
                            "encrypt"
                                | "decrypt"
                                | "rewrap"
                                | "sign"
                                | "verify"
                                | "hmac"
                                | "datakey"
                                | "random"
                                | "hash"
                        )
                }
            }
            _ => false,
        }
    }

    /// Runs a request [`Core::standby_may_serve`] accepted on this standby's
    /// copy. [`LogicalError::NotActive`] means it needs the active node after
    /// all (it would write: a token with limited uses, an expired token, a
    /// transit key to create); nothing was done, so forward it.
    pub async fn handle_on_standby(&self, req: Request) -> Result<Response, LogicalError> {
        let state = self
            .replica()
            .and_then(|r| r.state())
            .ok_or(LogicalError::NotActive)?;
        self.serve(&state, req, true).await
    }

    // ---- X-Vault-Index ----

    fn index_mac(key: &crate::secret::SecretBytes, body: &str) -> String {
        hex::encode(crate::ha::cluster_mac(
            key,
            &format!("coffer-index\n{body}"),
        ))
    }

    /// `X-Vault-Index` for a position: the Vault client's replication-state
    /// shape, signed with the cluster's key so a client cannot make one up.
    pub async fn index_header(&self, pos: u64) -> Option<String> {
        let ha = self.ha()?;
        // Reads repeat the same position: sign it once.
        if let Some((at, v)) = ha.replica.last_index.lock().ok()?.as_ref()
            && *at == pos
        {
            return Some(v.clone());
        }
        let key = self.forwarding_key().await.ok()?;
        // Read once per unsealed node, active or standby.
        let cluster = self.standby_cluster_id().await?;
        let body = format!("v1:{cluster}:{pos}:0");
        let mac = Self::index_mac(&key, &body);
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{body}:{mac}"));
        if let Ok(mut last) = ha.replica.last_index.lock() {
            *last = Some((pos, v.clone()));
        }
        Some(v)
    }

    /// The highest position among `X-Vault-Index` values genuinely from this
    /// cluster (others, and forged ones, are ignored as Vault ignores them).
    pub async fn parse_index_headers(&self, values: &[String]) -> Option<u64> {
        let key = self.forwarding_key().await.ok()?;
        let mut best = None;
        // A client merges one index per cluster it saw; more than a few is
        // not a client, and each costs an HMAC.
        for one in values.iter().flat_map(|v| v.split(',')).take(MAX_INDEXES) {
            let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(one.trim()) else {
                continue;
            };
            let Ok(text) = String::from_utf8(raw) else {
                continue;
            };
            let Some((body, mac)) = text.rsplit_once(':') else {
                continue;
            };
            let want = Self::index_mac(&key, body);
            if !bool::from(subtle::ConstantTimeEq::ct_eq(
                want.as_bytes(),
                mac.as_bytes(),
            )) {
                continue;
            }
            let pos = body.split(':').nth(2).and_then(|p| p.parse::<u64>().ok());
            best = best.max(pos);
        }
        best
    }
}
