//! The server core: seal state, the request pipeline and the mount router.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use base64::Engine;
use coffer_storage::{DynStorage, Op};
use tokio::sync::Mutex;

use crate::aead;
use crate::audit::EntryKind;
use crate::backend::{Backend, EngineRegistry, EngineRequest, StorageView};
use crate::barrier::Barrier;
use crate::clock::after_secs;
use crate::keyring::Keyring;
use crate::logical::LoginAuth;
use crate::logical::{LogicalError, Operation, Request, Response};
use crate::mounts::{MOUNT_TABLE_PATH, MountEntry, MountKind};
use crate::policy::{AclRequest, PolicyStore};
use crate::seal::shares;
use crate::seal::{ROOT_KEY_PATH, SEAL_CONFIG_PATH, SealConfig, SealError, SealMode};
use crate::secret::{Key32, SecretBytes, SecretString};
use crate::sys::SysPaths;
use crate::token::{Token, TokenPaths, TokenStore, is_root_protected_token_path};
use crate::token::{TokenEntry, now_unix};

/// Version reported by `sys/seal-status` and `sys/health`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Release date of this version, reported as `build_date`.
pub const BUILD_DATE: &str = "2026-11-27T00:00:00Z";

/// Server-wide settings the core needs.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// System default TTL, seconds.
    pub default_lease_ttl: u64,
    /// System maximum TTL, seconds.
    pub max_lease_ttl: u64,
    /// Reported as `cluster_name`.
    pub cluster_name: String,
}

impl Default for CoreConfig {
    fn default() -> Self {
        // Vault's built-in defaults: 32 days.
        Self {
            default_lease_ttl: 768 * 3600,
            max_lease_ttl: 768 * 3600,
            cluster_name: "coffer-cluster".into(),
        }
    }
}

/// What `sys/init` answers.
pub struct InitResult {
    /// Unseal key shares (Shamir); empty for auto seals.
    pub keys: Vec<SecretBytes>,
    /// Recovery key shares (auto seals); empty for Shamir.
    pub recovery_keys: Vec<SecretBytes>,
    /// The initial root token.
    pub root_token: SecretString,
}

/// Parameters of `sys/init`.
#[derive(Debug, Clone, Copy)]
pub struct InitParams {
    /// Shares to hand out.
    pub secret_shares: u8,
    /// Shares needed to unseal.
    pub secret_threshold: u8,
    /// Recovery shares to hand out (auto seals; 0 = none).
    pub recovery_shares: u8,
    /// Recovery shares needed to authorise an unseal.
    pub recovery_threshold: u8,
}

/// The `sys/seal-status` facts.
#[derive(Debug, Clone)]
pub struct SealStatus {
    /// Seal type.
    pub seal_type: &'static str,
    /// Whether `sys/init` has run.
    pub initialized: bool,
    /// Whether requests are refused.
    pub sealed: bool,
    /// Threshold.
    pub t: u8,
    /// Shares.
    pub n: u8,
    /// Shares entered so far.
    pub progress: u8,
    /// Identifies the current unseal attempt.
    pub nonce: String,
    /// Storage backend name.
    pub storage_type: &'static str,
    /// Set when unsealed.
    pub cluster_id: Option<String>,
    /// Set when unsealed.
    pub cluster_name: Option<String>,
    /// True for auto seals.
    pub recovery_seal: bool,
    /// Why the last automatic unseal failed, while it is being retried.
    pub auto_unseal_error: Option<String>,
}

pub(crate) struct Mounted {
    pub entry: MountEntry,
    pub backend: Arc<dyn Backend>,
    pub view: StorageView,
}

/// A request path resolved to its mount.
pub(crate) struct Located {
    mounts: Arc<Vec<Mounted>>,
    idx: usize,
    /// The path relative to the mount.
    pub rel: String,
}

impl Located {
    pub(crate) fn mount(&self) -> &Mounted {
        &self.mounts[self.idx]
    }
}

/// State that exists only while unsealed.
pub(crate) struct Active {
    /// Shared with the expiration manager, which revokes through the engines.
    pub mounts: crate::expiration::SharedMounts,
    pub auth_mounts: RwLock<Arc<Vec<Mounted>>>,
    pub tokens: Arc<TokenStore>,
    pub policies: PolicyStore,
    pub token_paths: TokenPaths,
    /// Lease settings of the built-in `auth/token` mount (`sys/auth/token/tune`).
    pub token_mount: RwLock<crate::mounts::MountConfig>,
    pub cluster_id: String,
    pub expiration: Arc<crate::expiration::Expiration>,
}

#[derive(Default)]
struct UnsealProgress {
    shares: Vec<SecretBytes>,
    nonce: String,
}

/// The transport-free server.
pub struct Core {
    pub(crate) barrier: Arc<Barrier>,
    seal: SealMode,
    pub(crate) engines: EngineRegistry,
    pub(crate) auth_methods: EngineRegistry,
    pub(crate) config: CoreConfig,
    initialized: AtomicBool,
    unseal: Mutex<UnsealProgress>,
    /// The last automatic-unseal failure, cleared by a successful unseal.
    auto_unseal_error: std::sync::Mutex<Option<String>>,
    /// Rotation health as of the last scheduled run (for `sys/health`).
    rotation_health: std::sync::Mutex<crate::sys::RotationHealth>,
    pub(crate) active: RwLock<Option<Arc<Active>>>,
    /// Serialises changes to the mount table.
    pub(crate) mount_lock: Mutex<()>,
    /// Claims on wrapped responses, by wrapping token (`sys/wrapping.rs`).
    pub(crate) wrap_claims: crate::stripes::Stripes,
    /// Change events for `sys/events/subscribe`.
    pub(crate) events: Arc<crate::events::EventBus>,
    /// Prints of the values held and handed out, for `sys/leak/check`
    /// (open only on the node that writes: single or HA active).
    pub(crate) leak: Arc<crate::leak::LeakIndex>,
    /// Read-modify-writes of `sys/` records that are not mounts (token roles).
    pub(crate) record_locks: crate::stripes::Stripes,
    sys: SysPaths,
    pub(crate) audit: crate::audit::Broker,
    /// Recent `sys/remount` moves, for their status.
    pub(crate) remounts: crate::sys::Remounts,
    /// Set when this node is one of an HA cluster.
    pub(crate) ha: Option<Box<crate::ha::HaNode>>,
    /// Requests inside `handle` now (an HA hand-over waits for them).
    pub(crate) in_flight: std::sync::atomic::AtomicUsize,
}

/// Counts a request in [`Core::in_flight`] while it lives.
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(n: &'a std::sync::atomic::AtomicUsize) -> Self {
        n.fetch_add(1, Ordering::AcqRel);
        Self(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn internal(e: impl std::fmt::Display) -> LogicalError {
    LogicalError::Internal(e.to_string())
}

/// A seal failure as an API error: the KMS being away is a 503-class
/// condition for the caller, everything else an internal error.
fn seal_failure(e: SealError) -> LogicalError {
    if e.retryable() {
        LogicalError::Unavailable(e.to_string())
    } else {
        LogicalError::Internal(e.to_string())
    }
}

/// Whether the seal decrypts `wrapped` back to `root`: checked before a
/// wrapping the seal just made is relied on.
async fn opens_to(seal: &dyn crate::seal::AutoSeal, wrapped: &[u8], root: &[u8]) -> bool {
    seal.unwrap(wrapped, ROOT_KEY_PATH.as_bytes())
        .await
        .is_ok_and(|back| bool::from(subtle::ConstantTimeEq::ct_eq(back.expose(), root)))
}

/// Why an automatic unseal did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AutoUnsealError {
    /// The seal could not unwrap the root key.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// Storage or the barrier failed.
    #[error(transparent)]
    Core(#[from] LogicalError),
}

impl AutoUnsealError {
    /// Whether a later attempt may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, AutoUnsealError::Seal(e) if e.retryable())
    }
}

impl From<AutoUnsealError> for LogicalError {
    fn from(e: AutoUnsealError) -> Self {
        match e {
            AutoUnsealError::Seal(e) => seal_failure(e),
            AutoUnsealError::Core(e) => e,
        }
    }
}

impl Core {
    /// A sealed core over `storage`.
    pub fn new(
        storage: DynStorage,
        seal: SealMode,
        engines: EngineRegistry,
        auth_methods: EngineRegistry,
        config: CoreConfig,
    ) -> Result<Self, LogicalError> {
        Ok(Self {
            barrier: Arc::new(Barrier::new(storage)),
            seal,
            engines,
            auth_methods,
            config,
            initialized: AtomicBool::new(false),
            unseal: Mutex::new(UnsealProgress::default()),
            auto_unseal_error: std::sync::Mutex::new(None),
            rotation_health: std::sync::Mutex::new(Default::default()),
            active: RwLock::new(None),
            mount_lock: Mutex::new(()),
            wrap_claims: crate::stripes::Stripes::default(),
            events: Arc::new(crate::events::EventBus::default()),
            leak: Arc::default(),
            record_locks: crate::stripes::Stripes::default(),
            sys: SysPaths::new().map_err(LogicalError::Internal)?,
            audit: crate::audit::Broker::default(),
            remounts: Default::default(),
            ha: None,
            in_flight: Default::default(),
        })
    }

    /// Makes this core a node of an HA cluster (before it is shared).
    pub fn with_ha(mut self, cfg: crate::ha::HaConfig) -> Self {
        // Another node writes while this one is a standby.
        self.storage().set_caching(false);
        self.ha = Some(Box::new(crate::ha::HaNode::new(cfg)));
        self
    }

    /// Sets the audit devices (before the core is shared or unsealed).
    pub fn with_audit(mut self, broker: crate::audit::Broker) -> Self {
        self.audit = broker;
        self
    }

    /// Reopens every audit device's destination (log rotation, SIGHUP);
    /// returns the devices that failed, with why.
    pub async fn audit_reopen(&self) -> Vec<(String, String)> {
        self.audit.reopen().await
    }

    /// Stores the audit chain heads (at shutdown; also done periodically).
    pub async fn audit_flush(&self) -> Result<(), LogicalError> {
        if self.is_sealed() {
            return Ok(());
        }
        self.audit.flush(&self.barrier).await
    }

    /// The storage backend below the barrier.
    pub fn storage(&self) -> &DynStorage {
        self.barrier.storage()
    }

    /// The barrier (for benches and tools that need raw encrypt/decrypt).
    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    pub(crate) fn active(&self) -> Result<Arc<Active>, LogicalError> {
        let active = self
            .active
            .read()
            .map_err(|_| LogicalError::Sealed)?
            .clone();
        match active {
            Some(a) => Ok(a),
            None if self.ha.is_some() && self.barrier.is_unsealed() => {
                Err(LogicalError::Unavailable(
                    "this node is a standby, not the active node; retry (requests to it are forwarded)"
                        .into(),
                ))
            }
            None => Err(LogicalError::Sealed),
        }
    }

    /// True while sealed.
    pub fn is_sealed(&self) -> bool {
        self.active().is_err()
    }

    async fn seal_config(&self) -> Result<Option<SealConfig>, LogicalError> {
        match self
            .storage()
            .get(SEAL_CONFIG_PATH)
            .await
            .map_err(internal)?
        {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| internal(format!("seal config is corrupt: {e}"))),
        }
    }

    /// Whether `sys/init` has run (cached once true).
    pub async fn is_initialized(&self) -> Result<bool, LogicalError> {
        if self.initialized.load(Ordering::Acquire) {
            return Ok(true);
        }
        let init = self.seal_config().await?.is_some();
        if init {
            self.initialized.store(true, Ordering::Release);
        }
        Ok(init)
    }

    /// Initialises storage: root key, keyring, root token and the seal's shares.
    pub async fn initialize(&self, p: InitParams) -> Result<InitResult, LogicalError> {
        let _guard = self.mount_lock.lock().await;
        if self.is_initialized().await? {
            return Err(LogicalError::BadRequest(
                "Vault is already initialized".into(),
            ));
        }
        // An HA node writes only while it leads, initialisation included.
        if let Some(ha) = self.ha() {
            ha.lead_for_init().await?;
        }
        let result = self.initialize_store(p).await;
        if let Some(ha) = self.ha() {
            ha.release_after_init().await;
        }
        result
    }

    async fn initialize_store(&self, p: InitParams) -> Result<InitResult, LogicalError> {
        let auto = matches!(self.seal, SealMode::Auto(_));
        if !auto {
            shares::validate("secret", p.secret_shares, p.secret_threshold)?;
        } else if p.recovery_shares > 0 || p.recovery_threshold > 0 {
            shares::validate("recovery", p.recovery_shares, p.recovery_threshold)?;
        }
        let root = Key32::random().map_err(internal)?;
        let data_key = Key32::random().map_err(internal)?;
        let (wrapped_root, keys, recovery_keys, config) = match &self.seal {
            SealMode::Shamir => {
                let kek = Key32::random().map_err(internal)?;
                let wrapped =
                    aead::seal(&kek, ROOT_KEY_PATH.as_bytes(), root.expose()).map_err(internal)?;
                let keys = shares::deal(kek.expose(), p.secret_shares, p.secret_threshold)?;
                let config = SealConfig {
                    seal_type: "shamir".into(),
                    secret_shares: p.secret_shares,
                    secret_threshold: p.secret_threshold,
                    recovery_shares: 0,
                    recovery_threshold: 0,
                    recovery_check: None,
                };
                (wrapped, keys, Vec::new(), config)
            }
            SealMode::Auto(s) => {
                // Asking the seal first: if its KMS is unreachable nothing is written.
                let wrapped = s
                    .wrap(root.expose(), ROOT_KEY_PATH.as_bytes())
                    .await
                    .map_err(seal_failure)?;
                if !opens_to(s.as_ref(), &wrapped, root.expose()).await {
                    return Err(internal(
                        "the seal's encryption of the root key does not decrypt to it; nothing was initialised",
                    ));
                }
                let (recovery, check) = if p.recovery_shares == 0 {
                    (Vec::new(), None)
                } else {
                    let rk = Key32::random().map_err(internal)?;
                    (
                        shares::deal(rk.expose(), p.recovery_shares, p.recovery_threshold)?,
                        Some(shares::recovery_check(rk.expose())),
                    )
                };
                let config = SealConfig {
                    seal_type: s.seal_type().into(),
                    secret_shares: 0,
                    secret_threshold: 0,
                    recovery_shares: p.recovery_shares,
                    recovery_threshold: p.recovery_threshold,
                    recovery_check: check,
                };
                (wrapped, Vec::new(), recovery, config)
            }
        };
        // The keyring first, then the records that mark the store initialised.
        self.barrier
            .initialize(root.clone(), Keyring::new(data_key))
            .await
            .map_err(LogicalError::from)?;
        let config_bytes = serde_json::to_vec(&config).map_err(internal)?;
        self.storage()
            .batch(vec![
                Op::Put(ROOT_KEY_PATH.into(), wrapped_root),
                Op::Put(SEAL_CONFIG_PATH.into(), config_bytes),
            ])
            .await
            .map_err(internal)?;
        self.initialized.store(true, Ordering::Release);

        let tokens = TokenStore::load(self.barrier.clone()).await?;
        let (root_token, _) = tokens.create(&TokenStore::root_entry()?).await?;
        self.barrier.put(MOUNT_TABLE_PATH, b"[]").await?;
        self.barrier
            .put(MountKind::Auth.table_path(), b"[]")
            .await?;
        self.barrier
            .put(
                "core/cluster-id",
                uuid::Uuid::new_v4().to_string().as_bytes(),
            )
            .await?;

        if auto && self.ha.is_some() {
            // Unsealed; the HA loop makes this node (or another) active.
        } else if auto {
            self.post_unseal().await?;
        } else {
            // Shamir: operators unseal with their shares, as with Vault.
            self.barrier.seal();
        }
        Ok(InitResult {
            keys,
            recovery_keys,
            root_token,
        })
    }

    /// Unseals with a static/KMS seal; a no-op for Shamir. A failure is
    /// remembered for `sys/seal-status` until an unseal succeeds.
    pub async fn auto_unseal(&self) -> Result<bool, AutoUnsealError> {
        let SealMode::Auto(seal) = &self.seal else {
            return Ok(false);
        };
        if !self.is_initialized().await? || self.barrier.is_unsealed() {
            return Ok(false);
        }
        let wrapped = self.wrapped_root_key().await?;
        let root = match seal.unwrap(&wrapped, ROOT_KEY_PATH.as_bytes()).await {
            Ok(root) => root,
            Err(e) => {
                tracing::warn!(error = %e, "automatic unseal failed");
                self.set_auto_unseal_error(Some(e.class()));
                return Err(AutoUnsealError::Seal(e));
            }
        };
        self.unseal_with_root(&root).await?;
        self.set_auto_unseal_error(None);
        match seal
            .refresh(&wrapped, root.expose(), ROOT_KEY_PATH.as_bytes())
            .await
        {
            Ok(None) => {}
            Ok(Some(rewrapped)) => {
                // Stored only once the seal has proved it can open it again:
                // a bad ciphertext stored here would lock the server out for good.
                if !opens_to(seal.as_ref(), &rewrapped, root.expose()).await {
                    tracing::error!(
                        "the seal's new wrapping of the root key does not decrypt to it; keeping the old wrapping"
                    );
                } else {
                    match self.storage().put(ROOT_KEY_PATH, rewrapped).await {
                        Ok(()) => tracing::info!(
                            "root key rewrapped under the seal's current key version"
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "storing the rewrapped root key failed")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "rewrapping the root key failed; the old wrapping stays")
            }
        }
        Ok(true)
    }

    fn set_auto_unseal_error(&self, e: Option<String>) {
        if let Ok(mut slot) = self.auto_unseal_error.lock() {
            *slot = e;
        }
    }

    /// Adds one unseal key share (hex or base64); unseals at the threshold.
    pub async fn unseal_share(
        &self,
        key: Option<&str>,
        reset: bool,
    ) -> Result<SealStatus, LogicalError> {
        let Some(config) = self.seal_config().await? else {
            return Err(LogicalError::BadRequest("Vault is not initialized".into()));
        };
        if reset {
            let mut progress = self.unseal.lock().await;
            *progress = UnsealProgress::default();
            drop(progress);
            return self.seal_status().await;
        }
        if self.barrier.is_unsealed() {
            return self.seal_status().await;
        }
        let auto = matches!(self.seal, SealMode::Auto(_));
        let (threshold, check) = if auto {
            let Some(check) = config.recovery_check.clone() else {
                return Err(LogicalError::BadRequest(
                    "this server was initialised without recovery keys; restart it to unseal through its seal"
                        .into(),
                ));
            };
            (config.recovery_threshold, Some(check))
        } else {
            (config.secret_threshold, None)
        };
        let key = key.ok_or_else(|| {
            LogicalError::BadRequest(
                "'key' must be specified in request body as JSON, or 'reset' set to true".into(),
            )
        })?;
        let share = decode_share(key)?;
        let expected = shares::share_len(threshold);
        if share.expose().len() != expected {
            return Err(LogicalError::BadRequest(format!(
                "unseal key has {} bytes, expected {expected}",
                share.expose().len()
            )));
        }
        let mut progress = self.unseal.lock().await;
        if progress.shares.is_empty() {
            progress.nonce = uuid::Uuid::new_v4().to_string();
        }
        if progress.shares.iter().any(|s| s.expose() == share.expose()) {
            drop(progress);
            return self.seal_status().await;
        }
        progress.shares.push(share);
        if progress.shares.len() < usize::from(threshold) {
            drop(progress);
            return self.seal_status().await;
        }
        let entered = std::mem::take(&mut progress.shares);
        progress.nonce.clear();
        drop(progress);

        let kek = shares::rebuild(entered, threshold)?;
        if let Some(check) = check {
            // Recovery keys only authorise; the auto seal still unwraps the root key.
            if !shares::recovery_matches(kek.expose(), &check) {
                return Err(LogicalError::BadRequest(
                    "unseal failed, invalid recovery key: the shares do not rebuild this server's recovery key"
                        .into(),
                ));
            }
            self.auto_unseal().await.map_err(LogicalError::from)?;
            return self.seal_status().await;
        }
        let kek = Key32::from_slice(kek.expose())
            .ok_or_else(|| internal("combined key has the wrong length"))?;
        let wrapped = self.wrapped_root_key().await?;
        let root = aead::open(&kek, ROOT_KEY_PATH.as_bytes(), &wrapped).map_err(|_| {
            LogicalError::BadRequest(
                "unseal failed, invalid key: the shares do not rebuild this server's key".into(),
            )
        })?;
        self.unseal_with_root(&root).await?;
        self.seal_status().await
    }

    /// Opens the barrier with the unwrapped root key and loads unsealed state.
    async fn unseal_with_root(&self, root: &SecretBytes) -> Result<(), LogicalError> {
        let root = Key32::from_slice(root.expose())
            .ok_or_else(|| internal("root key has the wrong length"))?;
        self.barrier.unseal(root).await?;
        if self.ha.is_some() {
            // The HA loop sets up the active state if this node wins leadership.
            tracing::info!("unsealed; competing for leadership as a standby");
            return Ok(());
        }
        self.post_unseal().await
    }

    async fn wrapped_root_key(&self) -> Result<Vec<u8>, LogicalError> {
        self.storage()
            .get(ROOT_KEY_PATH)
            .await
            .map_err(internal)?
            .ok_or_else(|| internal("root key is missing from storage"))
    }

    pub(crate) async fn post_unseal(&self) -> Result<(), LogicalError> {
        let active = self.load_state().await?;
        let expiration = active.expiration.clone();
        let mounts = active.mounts.clone();
        self.leak.open(&self.barrier).await?;
        expiration.index_leaks(self.leak.clone());
        // Devices are ready before the first request can be served.
        self.audit.unseal(&self.barrier).await?;
        if let Ok(mut a) = self.active.write() {
            *a = Some(Arc::new(active));
        }
        expiration.start();
        self.spawn_leak_reindex(mounts);
        if let Err(e) = self.record_version().await {
            tracing::warn!(error = %e, "recording this version in sys/version-history failed");
        }
        if let Err(e) = self.clear_all_retired().await {
            // Leftover ciphertext of a removed mount is waste, not a reason to stay sealed.
            tracing::warn!(error = %e, "clearing retired mount views failed; will retry at next unseal");
        }
        tracing::info!("unsealed");
        Ok(())
    }

    /// Mount tables, tokens, policies and leases as stored; starts nothing
    /// (an HA standby's copy is built the same way and never started).
    pub(crate) async fn load_state(&self) -> Result<Active, LogicalError> {
        let mounted = self.load_table(MountKind::Secret).await?;
        let mounts: crate::expiration::SharedMounts = Arc::new(RwLock::new(Arc::new(mounted)));
        let expiration = crate::expiration::Expiration::new(self.barrier.clone(), mounts.clone());
        if let Some(ha) = self.ha() {
            expiration.guard_with(ha.leadership.clone());
        }
        let tokens = Arc::new(
            TokenStore::load(self.barrier.clone())
                .await?
                .with_leases(expiration.clone()),
        );
        expiration.watch_tokens(&tokens);
        let cluster_id = match self.barrier.get("core/cluster-id").await? {
            Some(b) => String::from_utf8_lossy(b.expose()).into_owned(),
            None => String::new(),
        };
        let auth_mounted = self.load_table(MountKind::Auth).await?;
        let active = Active {
            mounts,
            auth_mounts: RwLock::new(Arc::new(auth_mounted)),
            tokens,
            policies: PolicyStore::load(self.barrier.clone()).await?,
            token_paths: TokenPaths::new().map_err(LogicalError::Internal)?,
            token_mount: RwLock::new(match self.barrier.get("core/token-mount").await? {
                Some(b) => serde_json::from_slice(b.expose())
                    .map_err(|e| internal(format!("token mount settings are corrupt: {e}")))?,
                None => crate::mounts::MountConfig::default(),
            }),
            cluster_id,
            expiration,
        };
        Ok(active)
    }

    async fn load_table(&self, kind: MountKind) -> Result<Vec<Mounted>, LogicalError> {
        let entries: Vec<MountEntry> = match self.barrier.get(kind.table_path()).await? {
            Some(b) => serde_json::from_slice(b.expose()).map_err(|e| {
                internal(format!("mount table {} is corrupt: {e}", kind.table_path()))
            })?,
            None => Vec::new(),
        };
        entries
            .into_iter()
            .map(|e| self.instantiate(e, kind))
            .collect()
    }

    pub(crate) fn instantiate(
        &self,
        entry: MountEntry,
        kind: MountKind,
    ) -> Result<Mounted, LogicalError> {
        let registry = match kind {
            MountKind::Secret => &self.engines,
            MountKind::Auth => &self.auth_methods,
        };
        let factory = registry.get(&entry.kind).ok_or_else(|| match kind {
            MountKind::Secret => {
                LogicalError::BadRequest(format!("unknown backend type: {:?}", entry.kind))
            }
            MountKind::Auth => {
                LogicalError::BadRequest(format!("unknown auth method type: {:?}", entry.kind))
            }
        })?;
        let backend = factory(&entry)?;
        let mut view = StorageView::new(self.barrier.clone(), entry.view_prefix(kind));
        if kind == MountKind::Secret {
            view = view.with_leak(crate::leak::MountLeak::new(self.leak.clone(), &entry.uuid));
            view = view.with_events(crate::events::MountEvents::new(
                self.events.clone(),
                crate::events::PluginInfo {
                    mount_class: "secret",
                    mount_accessor: entry.accessor.clone(),
                    mount_path: entry.path.clone(),
                    plugin: entry.kind.clone(),
                },
            ));
        }
        Ok(Mounted {
            entry,
            backend,
            view,
        })
    }

    /// The change-event stream.
    pub fn events(&self) -> &Arc<crate::events::EventBus> {
        &self.events
    }

    /// A subscription for `token` to the event types matching `pattern`,
    /// from now or just after `resume` (a cursor the client was given).
    /// Call it once `handle` has admitted the subscribe request: this only
    /// builds the stream, which checks the token again event by event.
    pub fn subscribe(
        self: &Arc<Self>,
        token: crate::secret::SecretString,
        pattern: &str,
        resume: Option<&str>,
    ) -> crate::events::Subscription {
        let bus = self.events.clone();
        let from = resume.and_then(|c| bus.resume_after(c));
        let mut sub = crate::events::Subscription::new(
            self.clone(),
            bus.clone(),
            token,
            pattern.to_owned(),
            from.unwrap_or_else(|| bus.head()),
        );
        if resume.is_some() && from.is_none() {
            sub.note_lost_cursor();
        }
        sub
    }

    /// Seals: forgets the keys and all unsealed state.
    pub async fn seal(&self) {
        if self.ha.is_some() {
            // Leadership is handed over at once; the keys go below.
            self.stand_down(crate::ha::StandDown::Handover { drain: false })
                .await;
        }
        if let Ok(mut a) = self.active.write()
            && let Some(old) = a.take()
        {
            old.expiration.stop();
        }
        self.leak.close();
        self.audit.seal(&self.barrier).await;
        self.barrier.seal();
        *self.unseal.lock().await = UnsealProgress::default();
        tracing::info!("sealed");
    }

    /// The `sys/seal-status` facts.
    pub async fn seal_status(&self) -> Result<SealStatus, LogicalError> {
        let config = self.seal_config().await?;
        let progress = self.unseal.lock().await;
        let active = self.active().ok();
        let auto = matches!(self.seal, SealMode::Auto(_));
        // Auto seals report their recovery shares, as Vault does.
        let (t, n) = match &config {
            None => (0, 0),
            Some(c) if auto => (c.recovery_threshold, c.recovery_shares),
            Some(c) => (c.secret_threshold, c.secret_shares),
        };
        let cluster_id = match &active {
            Some(a) => Some(a.cluster_id.clone()),
            None => self.standby_cluster_id().await,
        };
        Ok(SealStatus {
            seal_type: self.seal.type_name(),
            initialized: config.is_some(),
            sealed: if self.ha.is_some() {
                !self.barrier.is_unsealed()
            } else {
                active.is_none()
            },
            t,
            n,
            progress: u8::try_from(progress.shares.len()).unwrap_or(u8::MAX),
            nonce: progress.nonce.clone(),
            storage_type: self.storage().kind(),
            cluster_name: cluster_id
                .as_ref()
                .map(|_| self.config.cluster_name.clone()),
            cluster_id,
            recovery_seal: auto,
            auto_unseal_error: match &active {
                Some(_) => None,
                None => self.auto_unseal_error.lock().ok().and_then(|e| e.clone()),
            },
        })
    }

    /// Creates the root token with a chosen id (dev mode only).
    pub async fn set_dev_root_token(&self, id: &str) -> Result<(), LogicalError> {
        let active = self.active()?;
        active
            .tokens
            .create_with_id(
                &SecretString::new(id.to_owned()),
                &TokenStore::root_entry()?,
            )
            .await
            .map(|_| ())
    }

    /// Runs one request through the pipeline: token, ACL, audit, routing,
    /// engine, audit of the outcome.
    pub async fn handle(&self, req: Request) -> Result<Response, LogicalError> {
        let _counted = InFlight::enter(&self.in_flight);
        let active = self.active()?;
        if !self.leading() {
            return Err(LogicalError::Unavailable(
                "this node cannot confirm it still leads its cluster; retry".into(),
            ));
        }
        self.serve(&active, req, false).await
    }

    /// The pipeline on `active` (the active state, or a standby's copy with
    /// `standby`: a request that turns out to need a write stops with
    /// [`LogicalError::NotActive`] before anything is recorded where possible).
    pub(crate) async fn serve(
        &self,
        active: &Active,
        mut req: Request,
        standby: bool,
    ) -> Result<Response, LogicalError> {
        // Where the request goes, for its audit entries (only when auditing).
        let ctx = self
            .audit
            .is_active()
            .then(|| crate::audit::Context::new(self.audit_mount(active, &req.path), &req));
        let ctx = ctx.as_ref();
        let token = match self.admit(active, &mut req).await {
            // Spending a use of a limited token is a write.
            Ok(Some(t)) if standby && t.entry.num_uses > 0 => return Err(LogicalError::NotActive),
            Ok(token) => token,
            // An expired token was being revoked: the active node does it.
            Err((_, LogicalError::NotActive)) if standby => return Err(LogicalError::NotActive),
            Err((token, e)) => {
                // Refused requests are recorded too, request and outcome, as
                // OpenBao does; a device failure wins.
                for kind in [EntryKind::Request, EntryKind::Response] {
                    self.audit_entry(ctx, kind, &req, token.as_ref(), None, Some(&e))
                        .await?;
                }
                return Err(e);
            }
        };
        // Fail-closed: nothing runs unless a device recorded the request.
        self.audit_entry(ctx, EntryKind::Request, &req, token.as_ref(), None, None)
            .await?;
        let result = self.dispatch(active, &req, token.as_ref()).await;
        let (resp, error) = match &result {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e)),
        };
        self.audit_entry(ctx, EntryKind::Response, &req, token.as_ref(), resp, error)
            .await?;
        result
    }

    /// `path-help` for `path`. Any valid token may ask, as in Vault: help
    /// reads no stored data, so there is no ACL check and no audit entry.
    pub async fn help(
        &self,
        path: &str,
        token: Option<crate::secret::SecretString>,
        remote_addr: Option<std::net::SocketAddr>,
    ) -> Result<serde_json::Map<String, serde_json::Value>, LogicalError> {
        let active = self.active()?;
        check_path(path)?;
        let mut req = Request::new(Operation::Read, path);
        req.token = token;
        req.remote_addr = remote_addr;
        if self.authenticate(&active, &req).await?.is_none() {
            return Err(LogicalError::PermissionDenied);
        }
        let (rel, help) = if let Some(rest) = path.strip_prefix("sys/") {
            (rest.to_owned(), self.sys_paths().help())
        } else if let Some(rest) = path.strip_prefix("auth/token/") {
            (rest.to_owned(), active.token_paths.help())
        } else {
            let found = self
                .locate(&active, path)?
                .ok_or(LogicalError::UnsupportedPath)?;
            let help = found.mount().backend.help();
            (found.rel, help)
        };
        Ok(crate::help::answer(&rel, &help))
    }

    /// Path check, token, existence and ACL; on refusal also the token (when
    /// valid) so the refusal's audit entry names who was refused.
    async fn admit(
        &self,
        active: &Active,
        req: &mut Request,
    ) -> Result<Option<Token>, (Option<Token>, LogicalError)> {
        check_path(&req.path).map_err(|e| (None, e))?;
        let token = self
            .authenticate(active, req)
            .await
            .map_err(|e| (None, e))?;
        if req.operation == Operation::Update {
            match self.exists(active, req).await {
                Ok(false) => req.operation = Operation::Create,
                Ok(true) => {}
                Err(e) => return Err((token, e)),
            }
        }
        if let Some(t) = &token
            && let Err(e) = self.authorize(active, t, req).await
        {
            return Err((token, e));
        }
        Ok(token)
    }

    /// One audit entry; `ctx` is `None` when no device is enabled.
    async fn audit_entry(
        &self,
        ctx: Option<&crate::audit::Context>,
        kind: EntryKind,
        req: &Request,
        token: Option<&Token>,
        resp: Option<&Response>,
        error: Option<&LogicalError>,
    ) -> Result<(), LogicalError> {
        let Some(ctx) = ctx else {
            return Ok(());
        };
        self.audit
            .log(&crate::audit::EntryInput {
                kind,
                req,
                token,
                ctx,
                response: resp,
                error: error.map(LogicalError::audit_text),
            })
            .await
    }

    /// The mount an audit entry names for a request path.
    fn audit_mount(&self, active: &Active, path: &str) -> crate::audit::MountInfo {
        use crate::audit::MountInfo;
        if path.starts_with("sys/") {
            return MountInfo {
                kind: "system".into(),
                point: "sys/".into(),
                accessor: crate::mounts::system_mount().accessor,
                class: "",
            };
        }
        if path.starts_with("auth/token/") {
            return MountInfo {
                kind: "token".into(),
                point: "auth/token/".into(),
                accessor: String::new(),
                class: "auth",
            };
        }
        match self.locate(active, path) {
            Ok(Some(found)) => {
                let e = &found.mount().entry;
                let auth = path.starts_with("auth/");
                MountInfo {
                    kind: e.kind.clone(),
                    point: if auth {
                        format!("auth/{}", e.path)
                    } else {
                        e.path.clone()
                    },
                    accessor: e.accessor.clone(),
                    class: if auth { "auth" } else { "secret" },
                }
            }
            _ => MountInfo::default(),
        }
    }

    /// Token use counting, routing, the engine, and response wrapping.
    async fn dispatch(
        &self,
        active: &Active,
        req: &Request,
        token: Option<&Token>,
    ) -> Result<Response, LogicalError> {
        // Looking up a wrapping token (which the token itself may do) never
        // uses it up.
        let counted = req.path != "sys/wrapping/lookup";
        let spent = match token {
            Some(t) if t.entry.num_uses > 0 && counted => {
                let Some(after) = active.tokens.use_token(t).await? else {
                    // Another request took the last use meanwhile; for an
                    // unwrap that is a spent wrapping token, as in Vault.
                    return Err(if req.path == "sys/wrapping/unwrap" {
                        LogicalError::BadRequest(
                            "wrapping token is not valid or does not exist".into(),
                        )
                    } else {
                        LogicalError::PermissionDenied
                    });
                };
                after.num_uses < 0
            }
            _ => false,
        };
        let op = req.operation;
        let resp = if let Some(rest) = req.path.strip_prefix("sys/") {
            self.handle_sys(active, req, rest, token).await
        } else if let Some(rest) = req.path.strip_prefix("auth/token/") {
            self.handle_token(active, req, rest, token).await
        } else {
            self.route(active, req, token).await
        };
        let refused = matches!(
            resp,
            Err(LogicalError::UnsupportedPath | LogicalError::UnsupportedOperation)
        );
        match token {
            // A request nothing could serve does not cost a use.
            Some(t) if refused && counted && t.entry.num_uses > 0 => {
                active.tokens.give_back_use(t).await?;
            }
            // The last use is over: the token dies now, as in Vault.
            Some(t) if spent => active.tokens.revoke_tree(&t.hash).await?,
            _ => {}
        }
        let resp = finish(op, resp?)?;
        match req.wrap_ttl.filter(|t| *t > 0) {
            Some(ttl) if !is_empty_response(&resp) && resp.wrap_info.is_none() => {
                self.wrap_response(active, &req.path, ttl, resp).await
            }
            _ => Ok(resp),
        }
    }

    async fn authenticate(
        &self,
        active: &Active,
        req: &Request,
    ) -> Result<Option<Token>, LogicalError> {
        let token = match &req.token {
            Some(t) => active.tokens.lookup(t.expose()).await?,
            None => None,
        };
        if let Some(t) = &token
            && !crate::cidr::allows(&t.entry.bound_cidrs, req.remote_addr)?
        {
            return Err(LogicalError::PermissionDenied);
        }
        if token.is_none()
            && let Some(id) = &req.token
            && req.path == "sys/wrapping/unwrap"
        {
            // A spent or unknown wrapping token is a bad request, as in Vault.
            return Err(self.spent_wrapping_error(active, id.expose()).await);
        }
        if token.is_none() && !self.is_unauthenticated(active, &req.path)? {
            return Err(LogicalError::PermissionDenied);
        }
        Ok(token)
    }

    /// Unauthenticated `sys/` helpers and auth methods' login paths.
    fn is_unauthenticated(&self, active: &Active, path: &str) -> Result<bool, LogicalError> {
        if self.sys_paths().is_unauthenticated(path) {
            return Ok(true);
        }
        if !path.starts_with("auth/") || path.starts_with("auth/token/") {
            return Ok(false);
        }
        Ok(self
            .locate(active, path)?
            .is_some_and(|found| found.mount().backend.is_unauthenticated(&found.rel)))
    }

    /// Existence check: a write to a path with no value is a `create` for ACL purposes.
    async fn exists(&self, active: &Active, req: &Request) -> Result<bool, LogicalError> {
        if req.path.starts_with("sys/") || req.path.starts_with("auth/token/") {
            return Ok(true);
        }
        let Some(found) = self.locate(active, &req.path)? else {
            return Ok(true);
        };
        let m = found.mount();
        Ok(m.backend.exists(&found.rel, &m.view).await?.unwrap_or(true))
    }

    /// The ACL check every authenticated request passes before any handler runs.
    async fn authorize(
        &self,
        active: &Active,
        token: &Token,
        req: &Request,
    ) -> Result<(), LogicalError> {
        if token.entry.is_root() || self.is_unauthenticated(active, &req.path)? {
            return Ok(());
        }
        let acl = active.policies.acl(&token.entry.policies).await?;
        let decision = acl.allow(&AclRequest {
            operation: req.operation,
            path: &req.path,
            data: &req.data,
            root_protected: is_root_protected(&req.path),
            wrap_ttl: req.wrap_ttl,
        });
        if decision.allowed {
            Ok(())
        } else {
            Err(LogicalError::PermissionDenied)
        }
    }

    /// The mount serving `path` and the path relative to it (auth methods live under `auth/`).
    pub(crate) fn locate(
        &self,
        active: &Active,
        path: &str,
    ) -> Result<Option<Located>, LogicalError> {
        let (kind, inner) = match path.strip_prefix("auth/") {
            Some(rest) => (MountKind::Auth, rest),
            None => (MountKind::Secret, path),
        };
        let mounts = self.mounts(active, kind)?;
        let Some(idx) = find_mount_index(&mounts, inner) else {
            return Ok(None);
        };
        let rel = inner
            .strip_prefix(mounts[idx].entry.path.as_str())
            .unwrap_or("")
            .to_owned();
        Ok(Some(Located { mounts, idx, rel }))
    }

    pub(crate) async fn route(
        &self,
        active: &Active,
        req: &Request,
        token: Option<&Token>,
    ) -> Result<Option<Response>, LogicalError> {
        let found = self
            .locate(active, &req.path)?
            .ok_or(LogicalError::UnsupportedPath)?;
        let m = found.mount();
        let default_ttl = match m.entry.config.default_lease_ttl {
            0 => self.config.default_lease_ttl,
            t => t,
        };
        let resp = m
            .backend
            .handle(EngineRequest {
                operation: req.operation,
                path: &found.rel,
                data: &req.data,
                storage: &m.view,
                mount: &m.entry,
                default_lease_ttl: default_ttl,
                remote_addr: req.remote_addr,
                display_name: token.map_or("", |t| t.entry.display_name.as_str()),
            })
            .await?;
        match resp {
            Some(mut r) if r.login.is_some() => {
                let login = r.login.take().unwrap_or_default();
                let (id, entry) = self.issue_login_token(active, req, &m.entry, login).await?;
                r.auth = Some(entry.auth_block(&id, crate::clock::now_ms()));
                Ok(Some(r))
            }
            Some(mut r) if r.secret.is_some() => {
                let spec = r.secret.take().unwrap_or_default();
                let ttls = crate::expiration::MountTtls {
                    default_ttl,
                    max_ttl: match m.entry.config.max_lease_ttl {
                        0 => self.config.max_lease_ttl,
                        t => t,
                    },
                    mount_uuid: &m.entry.uuid,
                };
                let hash = token.map(|t| t.hash.as_str());
                let expires = token.map(|t| t.entry.expire_time);
                let prints = match &r.data {
                    Some(d) => self.leak.prints_map(d),
                    None => Vec::new(),
                };
                let prints = prints.iter().map(crate::leak::Print::to_hex).collect();
                match active
                    .expiration
                    .register(&req.path, hash, expires, &spec, ttls, prints)
                    .await
                {
                    Ok(lease) => {
                        // The token may have been revoked while the engine
                        // worked; its revocation listed its leases before this
                        // one existed, so this one goes now.
                        if let Some(t) = token
                            && !active.tokens.holds_leases(&t.hash).await?
                        {
                            active.expiration.revoke(&lease.id, false).await?;
                            return Err(LogicalError::PermissionDenied);
                        }
                        r.lease_id = lease.id;
                        r.lease_duration = lease.ttl;
                        r.renewable = lease.renewable;
                        Ok(Some(r))
                    }
                    Err(e) => {
                        // No record, no later revocation: undo the secret now.
                        let undo = m.backend.revoke_lease(crate::backend::LeaseRequest {
                            lease_id: "",
                            internal: &spec.internal,
                            storage: &m.view,
                            mount: &m.entry,
                            expire_time: now_unix(),
                        });
                        if let Err(u) = undo.await {
                            tracing::error!(path = %req.path, error = %u, "a secret whose lease could not be stored could not be revoked either");
                        }
                        Err(e)
                    }
                }
            }
            other => Ok(other),
        }
    }

    /// Turns a successful login into an orphan token shaped by the method's settings.
    async fn issue_login_token(
        &self,
        active: &Active,
        req: &Request,
        mount: &MountEntry,
        login: LoginAuth,
    ) -> Result<(String, TokenEntry), LogicalError> {
        let now = crate::clock::now_ms();
        let mount_max = match mount.config.max_lease_ttl {
            0 => self.config.max_lease_ttl,
            m => m,
        };
        let max = match login.max_ttl {
            0 => mount_max,
            m => m.min(mount_max),
        };
        let mut ttl = if login.period > 0 {
            login.period
        } else {
            match (login.ttl, mount.config.default_lease_ttl) {
                (0, 0) => self.config.default_lease_ttl,
                (0, d) => d,
                (t, _) => t,
            }
        };
        if login.explicit_max_ttl > 0 {
            ttl = ttl.min(login.explicit_max_ttl);
        }
        if login.period == 0 {
            ttl = ttl.min(max);
        }
        let mut policies = crate::policy::normalize_policy_names(&login.policies);
        policies.retain(|p| p != "root");
        if !login.no_default_policy && !policies.iter().any(|p| p == "default") {
            policies.push("default".into());
            policies.sort();
        }
        let hard_cap = match (login.explicit_max_ttl, login.period) {
            (e, _) if e > 0 => after_secs(now, e),
            (_, p) if p > 0 => 0,
            _ => after_secs(now, max),
        };
        let entry = TokenEntry {
            accessor: crate::token::random_base62(24)?,
            policies,
            path: req.path.clone(),
            display_name: if login.display_name.is_empty() {
                mount.kind.clone()
            } else {
                format!("{}-{}", mount.kind, login.display_name)
            },
            creation_time: now,
            creation_ttl: ttl,
            expire_time: after_secs(now, ttl),
            explicit_max_ttl: login.explicit_max_ttl,
            max_expire_time: hard_cap,
            period: login.period,
            num_uses: login.num_uses,
            meta: (!login.metadata.is_empty()).then_some(login.metadata),
            orphan: true,
            parent: None,
            renewable: true,
            role: None,
            last_renewal_time: 0,
            bound_cidrs: login.bound_cidrs,
            legacy_secs: false,
        };
        let (id, _) = active.tokens.create(&entry).await?;
        Ok((id.expose().to_owned(), entry))
    }

    /// One of the two mount tables.
    pub(crate) fn mounts(
        &self,
        active: &Active,
        kind: MountKind,
    ) -> Result<Arc<Vec<Mounted>>, LogicalError> {
        let table = match kind {
            MountKind::Secret => &active.mounts,
            MountKind::Auth => &active.auth_mounts,
        };
        Ok(table
            .read()
            .map_err(|_| internal("mount table lock poisoned"))?
            .clone())
    }

    /// Runs every secret engine's scheduled work once. A failing engine is
    /// logged and does not stop the others.
    pub async fn run_periodic(&self) -> Result<(), LogicalError> {
        let active = self.active()?;
        if !self.leading() {
            return Ok(());
        }
        if let Err(e) = self.audit.flush(&self.barrier).await {
            tracing::warn!(error = %e, "storing audit chain heads failed");
        }
        let mounts = self.mounts(&active, MountKind::Secret)?;
        for m in mounts.iter() {
            if let Err(e) = m.backend.periodic(&m.view).await {
                tracing::warn!(mount = %m.entry.path, error = %e, "scheduled work of a mount failed");
            }
        }
        let health = Self::rotation_health_of(&self.rotations(&active).await?);
        if let Ok(mut h) = self.rotation_health.lock() {
            if health.degraded() && !h.degraded() {
                tracing::error!(
                    failing = health.failing,
                    overdue = health.overdue,
                    "rotation degraded: see sys/rotation/status"
                );
            }
            *h = health;
        }
        Ok(())
    }

    /// Rotation health as of the last scheduled run; `None` while sealed.
    pub fn rotation_health(&self) -> Option<crate::sys::RotationHealth> {
        if self.is_sealed() {
            return None;
        }
        self.rotation_health.lock().ok().map(|h| *h)
    }

    pub(crate) fn sys_paths(&self) -> &SysPaths {
        &self.sys
    }
}

/// Longest mount whose path prefixes `path` (`secret` also matches `secret/`).
pub(crate) fn find_mount<'a>(mounts: &'a [Mounted], path: &str) -> Option<&'a Mounted> {
    find_mount_index(mounts, path).map(|i| &mounts[i])
}

/// Index of the longest mount whose path prefixes `path`.
pub(crate) fn find_mount_index(mounts: &[Mounted], path: &str) -> Option<usize> {
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| {
            let mp = m.entry.path.as_str();
            path.starts_with(mp) || mp.strip_suffix('/') == Some(path)
        })
        .max_by_key(|(_, m)| m.entry.path.len())
        .map(|(i, _)| i)
}

fn decode_share(key: &str) -> Result<SecretBytes, LogicalError> {
    let key = key.trim();
    hex::decode(key)
        .ok()
        .or_else(|| base64::engine::general_purpose::STANDARD.decode(key).ok())
        .map(SecretBytes::new)
        .ok_or_else(|| {
            LogicalError::BadRequest("'key' must be a valid hex or base64 string".into())
        })
}

/// Rejects `.` and `..` segments before anything routes on the path.
///
/// Empty segments stay legal: Vault clients store keys such as `http://host`.
fn check_path(path: &str) -> Result<(), LogicalError> {
    if path.split('/').any(|seg| seg == ".." || seg == ".")
        || path.starts_with('/')
        || path.contains('\0')
    {
        return Err(LogicalError::BadRequest(format!(
            "invalid path {path:?}: '.' and '..' segments are not allowed"
        )));
    }
    Ok(())
}

/// Paths that need `sudo` besides the operation's capability (Vault's root paths).
fn is_root_protected(path: &str) -> bool {
    if let Some(rest) = path.strip_prefix("auth/token/") {
        return is_root_protected_token_path(rest);
    }
    let Some(rest) = path.strip_prefix("sys/") else {
        return false;
    };
    const EXACT: &[&str] = &[
        "step-down",
        "rotate",
        "rotate/keyring",
        "seal",
        "remount",
        "audit",
        "audit-search",
        "raw",
        "leases",
        "leases/count",
        "config/cors",
    ];
    const PREFIX: &[&str] = &[
        "auth/",
        "audit/",
        "audit-head/",
        "raw/",
        "revoke-prefix/",
        "revoke-force/",
        "leases/revoke-prefix/",
        "leases/revoke-force/",
        "leases/lookup/",
        "plugins/catalog/",
        "config/auditing/",
        "internal/inspect/",
    ];
    EXACT.contains(&rest.trim_end_matches('/')) || PREFIX.iter().any(|p| rest.starts_with(p))
}

/// Vault's rules for empty answers: a read of nothing and an empty list are
/// 404 (an empty scan is not, as in OpenBao).
fn finish(op: Operation, resp: Option<Response>) -> Result<Response, LogicalError> {
    match (op, resp) {
        (Operation::Read, None) => Err(LogicalError::NotFound),
        (Operation::List, None) => Err(LogicalError::NotFound),
        (op @ (Operation::List | Operation::Scan), Some(r)) => {
            let empty = r
                .data
                .as_ref()
                .and_then(|d| d.get("keys"))
                .is_none_or(|k| k.as_array().is_none_or(Vec::is_empty));
            match (empty, op) {
                (false, _) => Ok(r),
                (true, Operation::List) => Err(LogicalError::NotFound),
                // OpenBao answers an empty scan with 200 and no keys.
                (true, _) => Ok(Response::data(serde_json::Map::new())),
            }
        }
        (Operation::Scan, None) => Ok(Response::data(serde_json::Map::new())),
        (_, Some(r)) => Ok(r),
        (_, None) => Ok(Response::default()),
    }
}

/// Whether a response has nothing to say (HTTP 204).
pub fn is_empty_response(r: &Response) -> bool {
    r.data.is_none()
        && r.raw.is_none()
        && r.lease_id.is_empty()
        && r.warnings.is_empty()
        && r.auth.is_none()
        && r.status.is_none()
        && r.wrap_info.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_segments_are_refused() {
        for bad in ["a/../b", "/a", "./a", "a/.", "..", "a/./b"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        for good in ["a/b", "a/b/", "secret/http://x", "a.b/c..d"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
    }
}
