//! The expiration manager: every secret an engine hands out with a lifetime
//! becomes a lease, stored behind the barrier, indexed by the token that
//! created it, and revoked through its engine when it ends. A revocation that
//! fails is kept and retried with backoff; nothing is dropped silently.

mod entry;
mod schedule;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::backend::LeaseRequest;
use crate::barrier::{Barrier, BarrierOp};
use crate::clock::{after_secs, ceil_secs, now_ms, secs_left};
use crate::core::{Mounted, find_mount_index};
use crate::logical::{LeaseSpec, LogicalError};

pub use entry::LeaseEntry;
use schedule::{Due, Schedule};

const LEASE_PREFIX: &str = "sys/expire/id/";
const TOKEN_PREFIX: &str = "sys/expire/token/";
/// Failed revocations after which a lease is reported as irrevocable (it is
/// still retried, at the longest backoff).
pub const IRREVOCABLE_AFTER: u32 = 6;
/// Longest wait between revocation attempts, seconds.
const MAX_BACKOFF: i64 = 600;
/// Revocations run at once by the background loop.
const PARALLEL_REVOCATIONS: usize = 8;
/// Entries read at once while loading leases after an unseal.
const PARALLEL_LOADS: usize = 64;
/// Revocations run at once by `revoke-prefix` (and unmounting).
const PARALLEL_PREFIX_REVOCATIONS: usize = 32;

/// The secret mount table, shared with the core so revocation finds engines.
pub(crate) type SharedMounts = Arc<RwLock<Arc<Vec<Mounted>>>>;

#[derive(Clone, Copy)]
enum EngineCall {
    Renew,
    Revoke,
}

/// The mount a secret came from: its lease settings and identity.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MountTtls<'a> {
    pub default_ttl: u64,
    pub max_ttl: u64,
    /// Kept with the lease, so it reaches its engine after a move too.
    pub mount_uuid: &'a str,
}

/// Counters reported by `sys/leases/count` and the health of revocation.
#[derive(Debug, Clone, Default)]
pub struct LeaseStats {
    /// Leases stored (known once the start-up load finished).
    pub total: u64,
    /// Leases whose last revocation failed, with the error.
    pub failing: BTreeMap<String, String>,
    /// Whether the start-up load has finished.
    pub loaded: bool,
    /// How long the start-up load took, milliseconds.
    pub load_ms: u64,
}

/// Owns the lease records and the revocation loop of one unsealed period.
pub(crate) struct Expiration {
    barrier: Arc<Barrier>,
    mounts: SharedMounts,
    schedule: Schedule,
    stopped: AtomicBool,
    /// Serialises renew/revoke of one lease (striped by id).
    locks: Vec<tokio::sync::Mutex<()>>,
    failing: std::sync::Mutex<BTreeMap<String, (u32, String)>>,
    total: AtomicU64,
    loaded: AtomicBool,
    load_ms: AtomicU64,
    /// The token store, to check tokens whose expiry should revoke leases.
    tokens: std::sync::OnceLock<std::sync::Weak<crate::token::TokenStore>>,
    /// Tokens with a pending expiry check in the schedule.
    watched: std::sync::Mutex<std::collections::HashSet<String>>,
    /// With HA: the leadership that must hold before a revocation.
    guard: std::sync::OnceLock<Arc<crate::ha::Leadership>>,
    /// Where the prints of leased values go (the active node's index).
    leak: std::sync::OnceLock<Arc<crate::leak::LeakIndex>>,
}

fn internal(e: impl std::fmt::Display) -> LogicalError {
    LogicalError::Internal(e.to_string())
}

fn token_key(token_hash: &str, lease_id: &str) -> String {
    let h = Sha256::digest(lease_id.as_bytes());
    format!("{TOKEN_PREFIX}{token_hash}/{}", hex::encode(&h[..16]))
}

/// Seconds to wait after the `n`th failed attempt: 1, 2, 4 ... 600.
fn backoff(n: u32) -> i64 {
    1i64.checked_shl(n.saturating_sub(1))
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

impl Expiration {
    pub(crate) fn new(barrier: Arc<Barrier>, mounts: SharedMounts) -> Arc<Self> {
        Arc::new(Self {
            barrier,
            mounts,
            schedule: Schedule::default(),
            stopped: AtomicBool::new(false),
            locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
            failing: std::sync::Mutex::new(BTreeMap::new()),
            total: AtomicU64::new(0),
            loaded: AtomicBool::new(false),
            load_ms: AtomicU64::new(0),
            tokens: std::sync::OnceLock::new(),
            watched: std::sync::Mutex::new(std::collections::HashSet::new()),
            guard: std::sync::OnceLock::new(),
            leak: std::sync::OnceLock::new(),
        })
    }

    /// Indexes the prints of leased values (and unindexes them at revocation).
    pub(crate) fn index_leaks(&self, index: Arc<crate::leak::LeakIndex>) {
        let _ = self.leak.set(index);
    }

    fn index(&self, e: &LeaseEntry) {
        if let Some(ix) = self.leak.get()
            && !e.prints.is_empty()
        {
            let prints: Vec<_> = e
                .prints
                .iter()
                .filter_map(|p| crate::leak::Print::from_hex(p))
                .collect();
            ix.set("", crate::leak::LeakKind::Lease, &e.id, &prints);
        }
    }

    fn unindex(&self, id: &str) {
        if let Some(ix) = self.leak.get() {
            ix.remove("", crate::leak::LeakKind::Lease, id);
        }
    }

    /// HA: revoke only while this node's leadership is confirmed.
    pub(crate) fn guard_with(&self, leadership: Arc<crate::ha::Leadership>) {
        let _ = self.guard.set(leadership);
    }

    fn may_act(&self) -> bool {
        self.guard.get().is_none_or(|g| g.holds())
    }

    /// Lets token expiry revoke leases (the token store is built after this).
    pub(crate) fn watch_tokens(&self, tokens: &Arc<crate::token::TokenStore>) {
        let _ = self.tokens.set(Arc::downgrade(tokens));
    }

    /// Schedules a check of `token_hash` at `at` unless one is pending.
    pub(crate) fn watch_token(&self, token_hash: &str, at: i64) {
        let fresh = self
            .watched
            .lock()
            .map(|mut w| w.insert(token_hash.to_owned()))
            .unwrap_or(false);
        if fresh {
            self.schedule
                .push_due(at, Due::Token(token_hash.to_owned()));
        }
    }

    /// A token's check came due: when it is no longer valid (expired, or
    /// below an expired or revoked parent) it is revoked with its tree and
    /// leases; otherwise look again when it would expire next.
    async fn check_token(&self, hash: &str) {
        if !self.may_act() {
            // Checked again shortly (by whichever node leads by then).
            self.schedule
                .push_due(now_ms() + 1000, Due::Token(hash.to_owned()));
            return;
        }
        if let Ok(mut w) = self.watched.lock() {
            w.remove(hash);
        }
        let Some(tokens) = self.tokens.get().and_then(std::sync::Weak::upgrade) else {
            return;
        };
        match tokens.lookup_hash(hash).await {
            Ok(Some(t)) if t.entry.expire_time > 0 => self.watch_token(hash, t.entry.expire_time),
            Ok(Some(_)) => {}
            Ok(None) => {
                if let Err(e) = tokens.revoke_tree(hash).await {
                    tracing::warn!(error = %e, "revoking an expired token failed; retrying");
                    self.watch_token(hash, now_ms() + 5000);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "checking a token's expiry failed; retrying");
                self.watch_token(hash, now_ms() + 5000);
            }
        }
    }

    /// Starts loading stored leases and the revocation loop, in the background:
    /// serving does not wait for either.
    pub(crate) fn start(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            match me.load_all().await {
                Ok(n) => {
                    let ms = started.elapsed().as_millis() as u64;
                    me.load_ms.store(ms, Ordering::Relaxed);
                    me.loaded.store(true, Ordering::Release);
                    tracing::info!(leases = n, ms, "leases loaded");
                }
                Err(e) if me.stopped.load(Ordering::Acquire) => {
                    tracing::debug!(error = %e, "lease load stopped by seal");
                }
                Err(e) => {
                    tracing::error!(error = %e, "loading leases failed; expiry of stored leases waits for the next unseal")
                }
            }
        });
        let me = self.clone();
        tokio::spawn(async move { me.run().await });
        let me = self.clone();
        tokio::spawn(async move {
            match me.load_tokens().await {
                Ok(n) => tracing::debug!(tokens = n, "token expiries scheduled"),
                Err(e) if me.stopped.load(Ordering::Acquire) => {
                    tracing::debug!(error = %e, "token load stopped by seal");
                }
                Err(e) => {
                    tracing::error!(error = %e, "scheduling token expiry failed; expired tokens are refused on use and removed by tidy")
                }
            }
        });
    }

    /// Schedules every stored token that expires, so a token and its
    /// children are revoked when it expires, not when next used.
    async fn load_tokens(&self) -> Result<usize, LogicalError> {
        let Some(tokens) = self.tokens.get().and_then(std::sync::Weak::upgrade) else {
            return Ok(0);
        };
        let expiring = tokens.expiring().await?;
        for (hash, at) in &expiring {
            self.watch_token(hash, *at);
        }
        Ok(expiring.len())
    }

    /// Ends the loop (the server is sealing).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.schedule.wake();
    }

    fn lock(&self, id: &str) -> &tokio::sync::Mutex<()> {
        let h = Sha256::digest(id.as_bytes());
        &self.locks[usize::from(h[0]) % self.locks.len()]
    }

    /// Walks every stored lease (depth first over the id hierarchy) and
    /// schedules it, reading many entries at once; returns the count.
    async fn load_all(self: &Arc<Self>) -> Result<u64, LogicalError> {
        let mut n = 0u64;
        let mut dirs = vec![String::new()];
        let mut set = tokio::task::JoinSet::new();
        let mut settle = |r: Result<Result<bool, LogicalError>, tokio::task::JoinError>| match r {
            Ok(Ok(true)) => {
                n += 1;
                Ok(())
            }
            Ok(Ok(false)) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(internal(e)),
        };
        while let Some(dir) = dirs.pop() {
            if self.stopped.load(Ordering::Acquire) {
                return Err(LogicalError::Sealed);
            }
            for k in self.barrier.list(&format!("{LEASE_PREFIX}{dir}")).await? {
                let id = format!("{dir}{k}");
                if k.ends_with('/') {
                    dirs.push(id);
                    continue;
                }
                if set.len() >= PARALLEL_LOADS
                    && let Some(r) = set.join_next().await
                {
                    settle(r)?;
                }
                let me = self.clone();
                set.spawn(async move {
                    let Some(e) = me.read_indexed(&id).await? else {
                        return Ok(false);
                    };
                    if e.revoke_attempts > 0 {
                        me.note_failure(&e);
                    }
                    if let Some(t) = &e.token_hash {
                        me.watch_token(t, now_ms());
                    }
                    me.schedule.push(e.due(), id);
                    Ok(true)
                });
            }
        }
        while let Some(r) = set.join_next().await {
            settle(r)?;
        }
        self.total.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }

    /// Reads a lease and indexes its prints, under its lock so that a
    /// revocation cannot slip between the two and leave an entry behind.
    async fn read_indexed(&self, id: &str) -> Result<Option<LeaseEntry>, LogicalError> {
        let _g = self.lock(id).lock().await;
        let e = self.read(id).await?;
        if let Some(e) = &e {
            self.index(e);
        }
        Ok(e)
    }

    async fn read(&self, id: &str) -> Result<Option<LeaseEntry>, LogicalError> {
        match self.barrier.get(&format!("{LEASE_PREFIX}{id}")).await? {
            None => Ok(None),
            Some(b) => serde_json::from_slice::<LeaseEntry>(b.expose())
                .map(|mut e| {
                    e.upgrade();
                    Some(e)
                })
                .map_err(|e| internal(format!("lease {id} is corrupt: {e}"))),
        }
    }

    async fn write(&self, e: &LeaseEntry) -> Result<(), LogicalError> {
        let bytes = zeroize::Zeroizing::new(serde_json::to_vec(e).map_err(internal)?);
        Ok(self
            .barrier
            .put(&format!("{LEASE_PREFIX}{}", e.id), &bytes)
            .await?)
    }

    /// Records a lease for a secret just issued at `path`; returns the entry.
    pub(crate) async fn register(
        &self,
        path: &str,
        token_hash: Option<&str>,
        token_expires: Option<i64>,
        spec: &LeaseSpec,
        ttls: MountTtls<'_>,
        prints: Vec<String>,
    ) -> Result<LeaseEntry, LogicalError> {
        let now = now_ms();
        let max = match spec.max_ttl {
            0 => ttls.max_ttl,
            m => m.min(ttls.max_ttl),
        };
        let ttl = match spec.ttl {
            0 => ttls.default_ttl,
            t => t,
        }
        .min(max);
        let id = format!(
            "{}/{}",
            path.trim_end_matches('/'),
            crate::token::random_base62(24)?
        );
        let entry = LeaseEntry {
            id: id.clone(),
            internal: spec.internal.clone(),
            token_hash: token_hash.map(str::to_owned),
            issue_time: now,
            expire_time: after_secs(now, ttl),
            max_expire_time: after_secs(now, max),
            last_renewal: None,
            renewable: spec.renewable,
            ttl,
            revoke_attempts: 0,
            last_error: None,
            next_attempt: None,
            legacy_secs: false,
            mount_uuid: Some(ttls.mount_uuid.to_owned()),
            prints,
        };
        let bytes = zeroize::Zeroizing::new(serde_json::to_vec(&entry).map_err(internal)?);
        let mut ops = vec![BarrierOp::Put(
            format!("{LEASE_PREFIX}{id}"),
            bytes.to_vec(),
        )];
        if let Some(t) = token_hash {
            ops.push(BarrierOp::Put(token_key(t, &id), id.clone().into_bytes()));
        }
        self.barrier.batch(ops).await?;
        self.index(&entry);
        self.total.fetch_add(1, Ordering::Relaxed);
        self.schedule.push(entry.expire_time, id);
        if let Some((t, expires)) = token_hash.zip(token_expires).filter(|(_, at)| *at > 0) {
            self.watch_token(t, expires);
        }
        Ok(entry)
    }

    /// The stored lease, if any.
    pub(crate) async fn lookup(&self, id: &str) -> Result<Option<LeaseEntry>, LogicalError> {
        self.read(id).await
    }

    /// Extends a lease by `increment` seconds from now (0: its original TTL),
    /// never past its maximum; the engine is asked first.
    pub(crate) async fn renew(
        &self,
        id: &str,
        increment: u64,
    ) -> Result<(LeaseEntry, Option<String>), LogicalError> {
        let _g = self.lock(id).lock().await;
        let mut e = self
            .read(id)
            .await?
            .ok_or_else(|| LogicalError::BadRequest("lease not found".into()))?;
        let now = now_ms();
        if e.expire_time <= now || e.revoke_attempts > 0 {
            return Err(LogicalError::BadRequest("lease expired".into()));
        }
        if !e.renewable {
            return Err(LogicalError::BadRequest("lease is not renewable".into()));
        }
        let wanted = if increment == 0 { e.ttl } else { increment };
        let mut until = after_secs(now, wanted);
        let mut warning = None;
        if until > e.max_expire_time {
            until = e.max_expire_time;
            warning = Some(format!(
                "TTL of {wanted}s exceeded the effective max_ttl; TTL value is capped to {}s",
                secs_left(until, now)
            ));
        }
        self.call_engine(&e, EngineCall::Renew, until).await?;
        e.expire_time = until;
        e.last_renewal = Some(now);
        e.ttl = secs_left(until, now);
        self.write(&e).await?;
        self.schedule.push(e.expire_time, id.to_owned());
        Ok((e, warning))
    }

    /// Asks the engine owning lease `e` to renew it to `expire` or revoke it.
    async fn call_engine(
        &self,
        e: &LeaseEntry,
        call: EngineCall,
        expire: i64,
    ) -> Result<(), LogicalError> {
        let mounts = self
            .mounts
            .read()
            .map_err(|_| internal("mount table lock poisoned"))?
            .clone();
        let by_uuid = e
            .mount_uuid
            .as_deref()
            .and_then(|u| mounts.iter().position(|m| m.entry.uuid == u));
        let idx = by_uuid
            .or_else(|| find_mount_index(&mounts, &e.id))
            .ok_or_else(|| {
                LogicalError::BadRequest(format!(
                    "no secret engine is mounted where lease {} was issued",
                    e.id
                ))
            })?;
        let m = &mounts[idx];
        let req = LeaseRequest {
            lease_id: &e.id,
            internal: &e.internal,
            storage: &m.view,
            mount: &m.entry,
            expire_time: ceil_secs(expire),
        };
        match call {
            EngineCall::Renew => m.backend.renew_lease(req).await,
            EngineCall::Revoke => {
                m.backend.revoke_lease(req).await?;
                // The secret's path: the lease id without the mount and the
                // random last segment (`database/creds/app` for its leases).
                let rel = e.id.strip_prefix(m.entry.path.as_str()).unwrap_or(&e.id);
                let rel = rel.rsplit_once('/').map_or("", |(p, _)| p);
                m.view.publish(
                    "lease/revoke",
                    rel,
                    Some(rel),
                    &[("lease_id", e.id.clone())],
                );
                Ok(())
            }
        }
    }

    /// Revokes one lease now. `force` drops the record even when the engine
    /// fails. Answers false when there was no such lease.
    pub(crate) async fn revoke(&self, id: &str, force: bool) -> Result<bool, LogicalError> {
        let _g = self.lock(id).lock().await;
        let Some(e) = self.read(id).await? else {
            return Ok(false);
        };
        let outcome = self
            .call_engine(&e, EngineCall::Revoke, e.expire_time)
            .await;
        match outcome {
            Ok(()) => {}
            Err(err) if force => {
                tracing::warn!(lease = %id, error = %err, "lease record dropped by revoke-force although the engine failed");
            }
            Err(err) => {
                self.failed(e, &err).await?;
                return Err(LogicalError::Internal(format!(
                    "failed to revoke lease {id}: {err}; it stays pending and is retried"
                )));
            }
        }
        let mut ops = vec![BarrierOp::Delete(format!("{LEASE_PREFIX}{id}"))];
        if let Some(t) = &e.token_hash {
            ops.push(BarrierOp::Delete(token_key(t, id)));
        }
        self.barrier.batch(ops).await?;
        self.unindex(id);
        let _ = self
            .total
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
        if let Ok(mut f) = self.failing.lock() {
            f.remove(id);
        }
        tracing::debug!(lease = %id, "lease revoked");
        Ok(true)
    }

    /// Records a failed revocation and schedules the next attempt.
    async fn failed(&self, mut e: LeaseEntry, err: &LogicalError) -> Result<(), LogicalError> {
        e.revoke_attempts += 1;
        e.last_error = Some(err.to_string());
        crate::metrics::REVOCATION_FAILURES.inc();
        let next = after_secs(now_ms(), backoff(e.revoke_attempts).unsigned_abs());
        e.next_attempt = Some(next);
        self.write(&e).await?;
        self.note_failure(&e);
        if e.revoke_attempts == IRREVOCABLE_AFTER {
            tracing::error!(lease = %e.id, attempts = e.revoke_attempts, error = %err, "lease could not be revoked; still retrying");
        } else {
            tracing::warn!(lease = %e.id, attempts = e.revoke_attempts, retry_in_s = secs_left(next, now_ms()), error = %err, "lease revocation failed");
        }
        self.schedule.push(next, e.id);
        Ok(())
    }

    fn note_failure(&self, e: &LeaseEntry) {
        if let Ok(mut f) = self.failing.lock() {
            f.insert(
                e.id.clone(),
                (e.revoke_attempts, e.last_error.clone().unwrap_or_default()),
            );
        }
    }

    /// Gives every lease under the mount path `from` the id it would have
    /// under `to` (a moved mount); answers how many moved. Each lease moves
    /// under its lock, record and token index in one batch.
    pub(crate) async fn move_prefix(&self, from: &str, to: &str) -> Result<usize, LogicalError> {
        let mut moved = 0;
        for id in self.ids_under(from).await? {
            let Some(rest) = id.strip_prefix(from) else {
                continue;
            };
            let new_id = format!("{to}{rest}");
            let _g = self.lock(&id).lock().await;
            let Some(old) = self.read(&id).await? else {
                continue;
            };
            let mut e = old.clone();
            e.id = new_id.clone();
            let bytes = zeroize::Zeroizing::new(serde_json::to_vec(&e).map_err(internal)?);
            let mut ops = vec![
                BarrierOp::Put(format!("{LEASE_PREFIX}{new_id}"), bytes.to_vec()),
                BarrierOp::Delete(format!("{LEASE_PREFIX}{id}")),
            ];
            if let Some(t) = &e.token_hash {
                ops.push(BarrierOp::Delete(token_key(t, &id)));
                ops.push(BarrierOp::Put(
                    token_key(t, &new_id),
                    new_id.clone().into_bytes(),
                ));
            }
            self.barrier.batch(ops).await?;
            self.unindex(&id);
            self.index(&e);
            if let Ok(mut f) = self.failing.lock()
                && let Some(v) = f.remove(&id)
            {
                f.insert(new_id.clone(), v);
            }
            self.schedule.push(e.due(), new_id);
            moved += 1;
        }
        Ok(moved)
    }

    /// Every lease id below `prefix` (`prefix` may end in `/` or be a lease id).
    pub(crate) async fn ids_under(&self, prefix: &str) -> Result<Vec<String>, LogicalError> {
        let mut out = Vec::new();
        if !prefix.ends_with('/') && self.read(prefix).await?.is_some() {
            out.push(prefix.to_owned());
        }
        let mut dirs = vec![format!("{}/", prefix.trim_end_matches('/'))];
        if prefix.is_empty() {
            dirs = vec![String::new()];
        }
        while let Some(dir) = dirs.pop() {
            for k in self.barrier.list(&format!("{LEASE_PREFIX}{dir}")).await? {
                let id = format!("{dir}{k}");
                if k.ends_with('/') {
                    dirs.push(id);
                } else {
                    out.push(id);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Revokes every lease under `prefix`, [`PARALLEL_PREFIX_REVOCATIONS`]
    /// at a time; with `force` engine failures are ignored.
    pub(crate) async fn revoke_prefix(
        self: &Arc<Self>,
        prefix: &str,
        force: bool,
    ) -> Result<usize, LogicalError> {
        let ids = self.ids_under(prefix).await?;
        let mut done = 0;
        let mut first_error = None;
        let mut tally = |r: Result<Result<bool, LogicalError>, tokio::task::JoinError>| match r {
            Ok(Ok(true)) => done += 1,
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(internal(e));
            }
        };
        let mut set = tokio::task::JoinSet::new();
        for id in ids {
            if set.len() >= PARALLEL_PREFIX_REVOCATIONS
                && let Some(r) = set.join_next().await
            {
                tally(r);
            }
            let me = self.clone();
            set.spawn(async move { me.revoke(&id, force).await });
        }
        while let Some(r) = set.join_next().await {
            tally(r);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    /// One level of lease ids below `prefix`, as `sys/leases/lookup/` lists them.
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<String>, LogicalError> {
        Ok(self
            .barrier
            .list(&format!("{LEASE_PREFIX}{prefix}"))
            .await?)
    }

    /// Revokes the leases a token created (the token is being revoked). A
    /// failing revocation leaves its lease pending and retried; it does not
    /// stop the token's revocation.
    pub(crate) async fn revoke_for_token(&self, token_hash: &str) -> Result<(), LogicalError> {
        let dir = format!("{TOKEN_PREFIX}{token_hash}/");
        for k in self.barrier.list(&dir).await? {
            let key = format!("{dir}{k}");
            if let Some(id) = self.barrier.get(&key).await? {
                let id = String::from_utf8_lossy(id.expose()).into_owned();
                if let Err(e) = self.revoke(&id, false).await {
                    tracing::warn!(lease = %id, error = %e, "lease of a revoked token stays pending");
                }
            }
            self.barrier.delete(&key).await?;
        }
        Ok(())
    }

    /// Removes token-index entries whose lease is gone and revokes leases
    /// whose token no longer exists; returns (index entries removed, leases revoked).
    pub(crate) async fn tidy(
        &self,
        tokens: &crate::token::TokenStore,
    ) -> Result<(usize, usize), LogicalError> {
        let (mut removed, mut revoked) = (0, 0);
        for t in self.barrier.list(TOKEN_PREFIX).await? {
            let hash = t.trim_end_matches('/').to_owned();
            let alive = tokens.exists_hash(&hash).await?;
            let dir = format!("{TOKEN_PREFIX}{t}");
            for k in self.barrier.list(&dir).await? {
                let key = format!("{dir}{k}");
                let Some(id) = self.barrier.get(&key).await? else {
                    continue;
                };
                let id = String::from_utf8_lossy(id.expose()).into_owned();
                if self.read(&id).await?.is_none() {
                    self.barrier.delete(&key).await?;
                    removed += 1;
                } else if !alive && self.revoke(&id, false).await.unwrap_or(false) {
                    revoked += 1;
                }
            }
        }
        Ok((removed, revoked))
    }

    /// Counters for `sys/leases/count`, `sys/leases` and health.
    pub(crate) fn stats(&self) -> LeaseStats {
        LeaseStats {
            total: self.total.load(Ordering::Relaxed),
            failing: self
                .failing
                .lock()
                .map(|f| f.iter().map(|(k, (_, e))| (k.clone(), e.clone())).collect())
                .unwrap_or_default(),
            loaded: self.loaded.load(Ordering::Acquire),
            load_ms: self.load_ms.load(Ordering::Relaxed),
        }
    }

    /// Leases that failed [`IRREVOCABLE_AFTER`] times or more, with their errors.
    pub(crate) fn irrevocable(&self) -> Vec<(String, u32, String)> {
        self.failing
            .lock()
            .map(|f| {
                f.iter()
                    .filter(|(_, (n, _))| *n >= IRREVOCABLE_AFTER)
                    .map(|(k, (n, e))| (k.clone(), *n, e.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The revocation loop: waits for the earliest due lease, revokes it
    /// (up to [`PARALLEL_REVOCATIONS`] at once) and goes on until stopped.
    async fn run(self: Arc<Self>) {
        let slots = Arc::new(tokio::sync::Semaphore::new(PARALLEL_REVOCATIONS));
        while !self.stopped.load(Ordering::Acquire) {
            let Some(due) = self.schedule.next_due(&self.stopped).await else {
                break;
            };
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let me = self.clone();
            tokio::spawn(async move {
                match due {
                    Due::Lease(id) => me.expire(&id).await,
                    Due::Token(hash) => me.check_token(&hash).await,
                }
                drop(permit);
            });
        }
    }

    /// Handles a schedule entry that came due: revoke, or reschedule when
    /// the lease was renewed meanwhile.
    async fn expire(&self, id: &str) {
        if !self.may_act() {
            // Not sure this node still leads: the active node (this one
            // again, or the next) revokes it.
            self.schedule.push(now_ms() + 1000, id.to_owned());
            return;
        }
        let entry = match self.read(id).await {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(e) => {
                if !self.stopped.load(Ordering::Acquire) {
                    tracing::warn!(lease = %id, error = %e, "reading an expiring lease failed; retrying");
                    self.schedule.push(now_ms() + 5000, id.to_owned());
                }
                return;
            }
        };
        let due = entry.due();
        if due > now_ms() {
            self.schedule.push(due, id.to_owned());
            return;
        }
        // On failure `revoke` has recorded the error and rescheduled the lease.
        if self.revoke(id, false).await.is_ok() {
            tracing::info!(lease = %id, "lease expired and revoked");
        }
    }
}

/// A lease as `sys/leases/lookup` answers it.
pub(crate) fn lookup_data(e: &LeaseEntry) -> Map<String, Value> {
    e.to_api(now_ms())
}
