//! High availability: one active node, standbys that forward to it.
//!
//! The node competes for leadership only while unsealed. Winning runs the
//! same setup an unseal runs on a single node (mount tables, tokens,
//! policies, leases, audit devices) from an emptied storage cache; losing
//! drops all of it, so a standby holds nothing but its keys. Storage fences
//! every write with the leadership epoch, so a node that lost leadership
//! without noticing still cannot write. This module is the state machine;
//! the backend's [`HaLock`] does the locking.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffer_storage::ha::Attempt;
pub use coffer_storage::ha::{Advertise, HaLock, Leader, Node};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::core::Core;
use crate::logical::LogicalError;
use crate::secret::SecretBytes;

/// How often a standby tries for leadership and re-reads the leader.
const STANDBY_POLL: Duration = Duration::from_millis(200);
/// How often a node reports itself for `sys/ha-status`.
const ECHO_EVERY: Duration = Duration::from_secs(2);
/// After `sys/step-down`, the node leaves leadership to others this long (Vault's 10 s).
const STEP_DOWN_PAUSE: Duration = Duration::from_secs(10);
/// How long a graceful hand-over waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(10);
/// Where the key authenticating forwarded requests lives (behind the barrier).
pub(crate) const FORWARDING_KEY_PATH: &str = "core/cluster/forwarding-key";
/// A forwarded request's signature is accepted this long after it was made.
const FORWARD_SKEW_SECS: i64 = 60;

/// This node's place in its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HaRole {
    /// Not serving: sealed (or unsealed but not yet past its first attempt).
    Sealed,
    /// Unsealed, forwarding to `leader` (none known yet: requests wait for one).
    Standby(Option<Leader>),
    /// The active node since this time (unix milliseconds).
    Active { since_ms: i64 },
}

/// HA settings of a core.
pub struct HaConfig {
    /// The backend's leadership lock.
    pub lock: Arc<dyn HaLock>,
    /// What this node advertises.
    pub advertise: Advertise,
}

/// Until when this node knows it leads: the lease cannot have run out
/// before then (counted from the start of the last renewal that succeeded,
/// less a margin). Checked before anything with effects outside storage
/// (a request, a lease revocation, scheduled engine work), which fencing
/// alone would not stop: a node resumed after a pause must not drop a
/// database user the new active node has just renewed.
#[derive(Default)]
pub(crate) struct Leadership {
    until: Mutex<Option<Instant>>,
}

impl Leadership {
    /// Whether leadership is confirmed for now.
    pub(crate) fn holds(&self) -> bool {
        self.until().is_some_and(|u| Instant::now() < u)
    }

    fn until(&self) -> Option<Instant> {
        self.until.lock().ok().and_then(|u| *u)
    }

    fn confirm(&self, until: Instant) {
        if let Ok(mut u) = self.until.lock() {
            *u = Some(until);
        }
    }

    fn clear(&self) {
        if let Ok(mut u) = self.until.lock() {
            *u = None;
        }
    }
}

pub(crate) struct HaNode {
    lock: Arc<dyn HaLock>,
    pub(crate) leadership: Arc<Leadership>,
    advertise: Advertise,
    pub(crate) role: tokio::sync::watch::Sender<HaRole>,
    step_down: tokio::sync::Notify,
    forwarding_key: Mutex<Option<Arc<SecretBytes>>>,
    /// Set when leaving leadership on purpose: no competing until then.
    pause_until: Mutex<Option<Instant>>,
    /// Serialises becoming active and standing down.
    pub(crate) transition: tokio::sync::Mutex<()>,
    /// The cluster's id, as an unsealed standby reports it (read once).
    cluster_id: std::sync::OnceLock<String>,
    /// When this node last reported itself.
    last_echo: Mutex<Option<Instant>>,
    /// The epoch this node leads under (0 while it does not).
    pub(crate) term: std::sync::atomic::AtomicI64,
    /// A standby's copy of the state for serving reads.
    pub(crate) replica: crate::replica::Replica,
}

impl HaNode {
    pub(crate) fn new(cfg: HaConfig) -> Self {
        let (role, _) = tokio::sync::watch::channel(HaRole::Sealed);
        Self {
            lock: cfg.lock,
            leadership: Arc::new(Leadership::default()),
            advertise: cfg.advertise,
            role,
            step_down: tokio::sync::Notify::new(),
            forwarding_key: Mutex::new(None),
            pause_until: Mutex::new(None),
            transition: tokio::sync::Mutex::new(()),
            cluster_id: std::sync::OnceLock::new(),
            last_echo: Mutex::new(None),
            term: std::sync::atomic::AtomicI64::new(0),
            replica: crate::replica::Replica::default(),
        }
    }

    pub(crate) fn forget_forwarding_key(&self) {
        if let Ok(mut k) = self.forwarding_key.lock() {
            *k = None;
        }
        self.replica.forget_index();
    }

    fn set_role(&self, r: HaRole) {
        self.role.send_if_modified(|cur| {
            let changed = *cur != r;
            *cur = r;
            changed
        });
    }

    /// Takes leadership for initialising the store; refused while another
    /// node leads (the store is then initialised already).
    pub(crate) async fn lead_for_init(&self) -> Result<(), LogicalError> {
        match self.lock.try_acquire(&self.advertise).await {
            Ok(Attempt::Acquired(_)) => Ok(()),
            Ok(Attempt::Held(_)) => Err(LogicalError::BadRequest(
                "another node of this cluster is active: the store is initialised already".into(),
            )),
            Err(e) => Err(LogicalError::Unavailable(format!(
                "cannot take the HA lock to initialise: {e}"
            ))),
        }
    }

    /// Lets any node (this one too) take leadership once it is unsealed.
    pub(crate) async fn release_after_init(&self) {
        if let Err(e) = self.lock.release().await {
            tracing::warn!(error = %e, "HA: releasing the lock after initialising failed");
        }
    }

    fn paused(&self) -> bool {
        self.pause_until
            .lock()
            .ok()
            .and_then(|p| *p)
            .is_some_and(|t| Instant::now() < t)
    }
}

impl Core {
    pub(crate) fn ha(&self) -> Option<&HaNode> {
        self.ha.as_deref()
    }

    /// Whether this node may act as the active node right now: always
    /// without HA; with HA only while its leadership is confirmed.
    pub(crate) fn leading(&self) -> bool {
        self.ha().is_none_or(|h| h.leadership.holds())
    }

    /// An unsealed standby's cluster id (what `sys/seal-status` and
    /// `sys/health` show on every unsealed node of the cluster).
    pub(crate) async fn standby_cluster_id(&self) -> Option<String> {
        let ha = self.ha()?;
        if !self.barrier.is_unsealed() {
            return None;
        }
        if let Some(id) = ha.cluster_id.get() {
            return Some(id.clone());
        }
        let id = self.barrier.get("core/cluster-id").await.ok()??;
        let id = String::from_utf8_lossy(id.expose()).into_owned();
        Some(ha.cluster_id.get_or_init(|| id).clone())
    }

    /// Whether this node runs in an HA cluster.
    pub fn ha_enabled(&self) -> bool {
        self.ha.is_some()
    }

    /// This node's role; `None` without HA.
    pub fn ha_role(&self) -> Option<HaRole> {
        self.ha().map(|h| h.role.borrow().clone())
    }

    /// Changes of this node's role, for the standby's follower; `None` without HA.
    pub fn ha_role_changes(&self) -> Option<tokio::sync::watch::Receiver<HaRole>> {
        self.ha().map(|h| h.role.subscribe())
    }

    /// Where a request to this node must go: `Ok(None)` serve it here,
    /// `Ok(Some(leader))` forward it. A standby that knows no leader waits up
    /// to `wait` for one (a hand-over in progress), then answers 503.
    pub async fn forward_target(&self, wait: Duration) -> Result<Option<Leader>, LogicalError> {
        let Some(ha) = self.ha() else {
            return Ok(None);
        };
        let mut rx = ha.role.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let role = rx.borrow_and_update().clone();
            match role {
                HaRole::Active { .. } => return Ok(None),
                HaRole::Standby(Some(l)) => return Ok(Some(l)),
                HaRole::Sealed if !self.barrier.is_unsealed() => return Err(LogicalError::Sealed),
                HaRole::Sealed | HaRole::Standby(None) => {}
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return Err(LogicalError::Unavailable(
                    "no active node: leadership is changing hands or no node is unsealed; retry"
                        .into(),
                ));
            }
        }
    }

    /// `sys/leader`'s facts: `(is_self, leader, active since)`.
    pub fn leader_view(&self) -> Option<(bool, Option<Leader>, Option<i64>)> {
        let ha = self.ha()?;
        Some(match ha.role.borrow().clone() {
            HaRole::Active { since_ms } => (
                true,
                Some(Leader {
                    node_id: ha.lock.node_id().to_owned(),
                    api_addr: ha.advertise.api_addr.clone(),
                    cluster_addr: ha.advertise.cluster_addr.clone(),
                    since_ms,
                    epoch: 0,
                }),
                Some(since_ms),
            ),
            HaRole::Standby(l) => {
                let since = l.as_ref().map(|l| l.since_ms);
                (false, l, since)
            }
            HaRole::Sealed => (false, None, None),
        })
    }

    /// The nodes that reported recently, for `sys/ha-status`.
    pub(crate) async fn ha_nodes(&self) -> Result<(Vec<Node>, Option<String>), LogicalError> {
        let ha = self.ha().ok_or_else(|| {
            LogicalError::BadRequest("this node is not part of an HA cluster".into())
        })?;
        let nodes = ha
            .lock
            .nodes(ECHO_EVERY * 10)
            .await
            .map_err(|e| LogicalError::Unavailable(e.to_string()))?;
        let leader = ha
            .lock
            .leader()
            .await
            .map_err(|e| LogicalError::Unavailable(e.to_string()))?;
        Ok((nodes, leader.map(|l| l.node_id)))
    }

    /// `sys/ha-status`: every node heard from recently (Vault's shape, its
    /// `Nodes` key at the top level as the Go client reads it).
    pub(crate) async fn ha_status(&self) -> Result<crate::logical::Response, LogicalError> {
        let (nodes, leader) = self.ha_nodes().await?;
        let list: Vec<serde_json::Value> = nodes
            .iter()
            .map(|n| {
                let active = leader.as_deref() == Some(n.node_id.as_str());
                serde_json::json!({
                    "hostname": n.advertise.hostname,
                    "api_address": n.advertise.api_addr,
                    "cluster_address": n.advertise.cluster_addr,
                    "active_node": active,
                    "last_echo": if active {
                        serde_json::Value::Null
                    } else {
                        crate::clock::rfc3339_ms(n.last_echo_ms)
                    },
                    "version": n.advertise.version,
                    "echo_duration_ms": 0,
                    "clock_skew_ms": 0,
                    "replication_primary_canary_age_ms": 0,
                })
            })
            .collect();
        let mut data = serde_json::Map::new();
        data.insert("nodes".into(), serde_json::Value::Array(list));
        Ok(crate::sys::top_level(crate::logical::Response::data(data)))
    }

    /// Asks the active node to give up leadership (`sys/step-down`).
    pub(crate) fn request_step_down(&self) -> Result<(), LogicalError> {
        let ha = self.ha().ok_or_else(|| {
            LogicalError::BadRequest("this node is not part of an HA cluster".into())
        })?;
        ha.step_down.notify_one();
        Ok(())
    }

    pub(crate) async fn forwarding_key(&self) -> Result<Arc<SecretBytes>, LogicalError> {
        let ha = self.ha().ok_or(LogicalError::Sealed)?;
        if let Some(k) = ha.forwarding_key.lock().ok().and_then(|k| k.clone()) {
            return Ok(k);
        }
        let key = match self.barrier.get(FORWARDING_KEY_PATH).await? {
            Some(k) => k,
            None => {
                return Err(LogicalError::Unavailable(
                    "the cluster's forwarding key is not there yet".into(),
                ));
            }
        };
        let key = Arc::new(key);
        if let Ok(mut slot) = ha.forwarding_key.lock() {
            *slot = Some(key.clone());
        }
        Ok(key)
    }

    fn forwarding_mac(key: &SecretBytes, ts: i64, method: &str, target: &str) -> Vec<u8> {
        cluster_mac(key, &format!("coffer-forward\n{ts}\n{method}\n{target}"))
    }

    /// The value of the header that authenticates a request this standby
    /// forwards (`method` and path-and-query as sent).
    pub async fn sign_forwarded(&self, method: &str, target: &str) -> Result<String, LogicalError> {
        let key = self.forwarding_key().await?;
        let ts = crate::clock::now_ms() / 1000;
        Ok(format!(
            "{ts}.{}",
            hex::encode(Self::forwarding_mac(&key, ts, method, target))
        ))
    }

    /// Whether a forwarded request's header is genuine and fresh.
    pub async fn verify_forwarded(&self, header: &str, method: &str, target: &str) -> bool {
        let Some((ts, mac)) = header.split_once('.') else {
            return false;
        };
        let (Ok(ts), Ok(mac)) = (ts.parse::<i64>(), hex::decode(mac)) else {
            return false;
        };
        // A signature is 32 bytes; anything else (an empty one included) is refused outright.
        if mac.len() != 32 || (crate::clock::now_ms() / 1000 - ts).abs() > FORWARD_SKEW_SECS {
            return false;
        }
        let Ok(key) = self.forwarding_key().await else {
            return false;
        };
        let want = Self::forwarding_mac(&key, ts, method, target);
        bool::from(subtle::ConstantTimeEq::ct_eq(
            want.as_slice(),
            mac.as_slice(),
        ))
    }

    /// Runs this node's part in the cluster until `shutdown` resolves, then
    /// hands leadership over (if held) and leaves.
    pub async fn run_ha(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        let Some(ha) = self.ha() else {
            return;
        };
        let mut losses = ha.lock.connection_losses();
        tokio::pin!(shutdown);
        loop {
            self.echo_if_due().await;
            let active = matches!(*ha.role.borrow(), HaRole::Active { .. });
            let tick = if active {
                self.hold_leadership(&mut losses, &mut shutdown).await
            } else {
                self.standby_tick(&mut shutdown).await
            };
            if tick == Tick::Shutdown {
                break;
            }
        }
        self.stand_down(StandDown::Handover { drain: true }).await;
        if let Err(e) = ha.lock.leave().await {
            tracing::debug!(error = %e, "HA: removing this node's report failed");
        }
    }

    /// Reports this node for `sys/ha-status` every [`ECHO_EVERY`] while unsealed.
    async fn echo_if_due(&self) {
        let Some(ha) = self.ha() else {
            return;
        };
        if !self.barrier.is_unsealed() {
            return;
        }
        let due = ha
            .last_echo
            .lock()
            .map(|mut last| {
                let due = last.is_none_or(|t| t.elapsed() >= ECHO_EVERY);
                if due {
                    *last = Some(Instant::now());
                }
                due
            })
            .unwrap_or(false);
        if due && let Err(e) = ha.lock.echo(&ha.advertise).await {
            tracing::debug!(error = %e, "HA: reporting this node failed");
        }
    }

    async fn standby_tick(
        self: &Arc<Self>,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Tick {
        let Some(ha) = self.ha() else {
            return Tick::Shutdown;
        };
        if !self.barrier.is_unsealed() {
            ha.set_role(HaRole::Sealed);
        } else {
            let started = Instant::now();
            let attempt = if ha.paused() {
                ha.lock.leader().await.map(Attempt::Held)
            } else {
                ha.lock.try_acquire(&ha.advertise).await
            };
            match attempt {
                Ok(Attempt::Acquired(epoch)) => {
                    let ttl = ha.lock.lease_ttl();
                    ha.leadership.confirm(started + ttl - ttl / 4);
                    if let Err(e) = self.become_active(epoch).await {
                        tracing::error!(error = %e, "HA: setting up as the active node failed; giving leadership up");
                        self.stand_down(StandDown::Handover { drain: false }).await;
                    }
                    return Tick::Again;
                }
                Ok(Attempt::Held(leader)) => {
                    let leader = leader.filter(|l| l.node_id != ha.lock.node_id());
                    ha.set_role(HaRole::Standby(leader));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "HA: cannot reach the lock; still a standby");
                    ha.set_role(HaRole::Standby(None));
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(STANDBY_POLL) => Tick::Again,
            _ = shutdown => Tick::Shutdown,
        }
    }

    /// While active: renew, and stand down when leadership is lost, cannot
    /// be confirmed before it would run out, or is handed over on request.
    async fn hold_leadership(
        self: &Arc<Self>,
        losses: &mut tokio::sync::watch::Receiver<u64>,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Tick {
        let Some(ha) = self.ha() else {
            return Tick::Shutdown;
        };
        let ttl = ha.lock.lease_ttl();
        let renew_every = ttl / 6;
        losses.borrow_and_update();
        loop {
            // Serving stops before the lease could run out, counted from the
            // start of the attempt or renewal that last confirmed it (the
            // lease ran from later), not from when this loop began.
            let Some(deadline) = ha.leadership.until() else {
                self.stand_down(StandDown::Lost).await;
                return Tick::Again;
            };
            tokio::select! {
                _ = tokio::time::sleep(renew_every) => {}
                _ = tokio::time::sleep_until(deadline.into()) => {
                    tracing::error!("HA: leadership could not be renewed in time; standing down");
                    ha.lock.forfeit();
                    self.stand_down(StandDown::Lost).await;
                    return Tick::Again;
                }
                _ = losses.changed() => {
                    tracing::error!("HA: the lock's connection was lost; standing down");
                    ha.lock.forfeit();
                    self.stand_down(StandDown::Lost).await;
                    return Tick::Again;
                }
                _ = ha.step_down.notified() => {
                    tracing::info!("HA: stepping down on request");
                    if let Ok(mut p) = ha.pause_until.lock() {
                        *p = Some(Instant::now() + STEP_DOWN_PAUSE);
                    }
                    self.stand_down(StandDown::Handover { drain: true }).await;
                    return Tick::Again;
                }
                _ = &mut *shutdown => return Tick::Shutdown,
            }
            let started = Instant::now();
            // The deadline holds during the renewal too: a silent network
            // must not keep this node serving past it.
            let renewed = tokio::select! {
                r = ha.lock.renew() => r,
                _ = tokio::time::sleep_until(deadline.into()) => {
                    tracing::error!("HA: leadership could not be renewed in time; standing down");
                    ha.lock.forfeit();
                    self.stand_down(StandDown::Lost).await;
                    return Tick::Again;
                }
            };
            match renewed {
                Ok(true) => {
                    ha.leadership.confirm(started + ttl - ttl / 4);
                    // The active node reports itself too, or it would drop
                    // out of `sys/ha-status` while it leads.
                    self.echo_if_due().await;
                }
                Ok(false) => {
                    tracing::error!("HA: another node took leadership; standing down");
                    self.stand_down(StandDown::Lost).await;
                    return Tick::Again;
                }
                Err(e) => tracing::warn!(error = %e, "HA: renewing leadership failed; retrying"),
            }
        }
    }

    async fn become_active(self: &Arc<Self>, epoch: i64) -> Result<(), LogicalError> {
        let Some(ha) = self.ha() else {
            return Ok(());
        };
        let _one = ha.transition.lock().await;
        // The standby's copy goes first (its requests finish on it).
        self.follow_stop();
        // Cached from here on: this node is the only writer now; standbys
        // follow what it writes from index 0 of this term.
        self.storage().set_caching(true);
        ha.term.store(epoch, std::sync::atomic::Ordering::Release);
        self.storage().record_changes(true);
        self.barrier.reload().await?;
        self.post_unseal().await?;
        if self.barrier.get(FORWARDING_KEY_PATH).await?.is_none() {
            let key = crate::secret::random_bytes(32)
                .map_err(|e| LogicalError::Internal(format!("random source failed: {e}")))?;
            self.barrier.put(FORWARDING_KEY_PATH, &key).await?;
        }
        if let Ok(mut k) = ha.forwarding_key.lock() {
            *k = None;
        }
        ha.set_role(HaRole::Active {
            since_ms: crate::clock::now_ms(),
        });
        tracing::info!(epoch, "HA: this node is now the active node");
        Ok(())
    }

    /// Stops serving as the active node. `Lost`: leadership is gone, write
    /// nothing more. `Handover`: it is still held, so the audit heads are
    /// stored (after requests in flight finished, with `drain`) before it is
    /// released for another node to take at once.
    pub(crate) async fn stand_down(&self, how: StandDown) {
        let graceful = how != StandDown::Lost;
        let Some(ha) = self.ha() else {
            return;
        };
        let _one = ha.transition.lock().await;
        // New requests wait for (and go to) the next active node from here.
        if how == StandDown::Lost {
            ha.leadership.clear();
        }
        ha.set_role(if self.barrier.is_unsealed() {
            HaRole::Standby(None)
        } else {
            HaRole::Sealed
        });
        self.storage().set_caching(false);
        self.storage().record_changes(false);
        ha.term.store(0, std::sync::atomic::Ordering::Release);
        let old = self.active.write().ok().and_then(|mut a| a.take());
        self.leak.close();
        let Some(old) = old else {
            ha.leadership.clear();
            if graceful && let Err(e) = ha.lock.release().await {
                tracing::warn!(error = %e, "HA: releasing leadership failed");
            }
            return;
        };
        old.expiration.stop();
        if how == (StandDown::Handover { drain: true }) {
            // New requests already find no active state; let the admitted
            // ones finish while leadership (and so their writes) still holds.
            let start = Instant::now();
            while self.in_flight.load(std::sync::atomic::Ordering::Acquire) > 0
                && start.elapsed() < DRAIN
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        drop(old);
        if graceful {
            self.audit.seal(&self.barrier).await;
        } else {
            // Fenced: storing the heads would fail; each file's last line
            // carries the chain on when this node leads again.
            self.audit.close();
        }
        ha.leadership.clear();
        if graceful {
            if let Err(e) = ha.lock.release().await {
                tracing::warn!(error = %e, "HA: releasing leadership failed");
            }
            tracing::info!("HA: handed leadership over");
        } else {
            ha.lock.forfeit();
        }
    }
}

/// HMAC-SHA256 of `message` under the cluster's key (`message` starts with
/// what it is for, so a forwarding signature never passes as an index).
pub(crate) fn cluster_mac(key: &SecretBytes, message: &str) -> Vec<u8> {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key.expose()) else {
        return Vec::new();
    };
    mac.update(message.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// How a node leaves the active role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StandDown {
    /// Leadership is already gone.
    Lost,
    /// Leadership is given up on purpose.
    Handover { drain: bool },
}

#[derive(Debug, PartialEq, Eq)]
enum Tick {
    Again,
    Shutdown,
}
