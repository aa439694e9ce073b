//! The audit broker: every request and its outcome, HMAC'd, to every device.
//!
//! Devices come from the server configuration (the binary builds their sinks
//! before anything is unsealed) or, when the configuration allows it, from
//! `sys/audit/:path` (stored in `core/audit` behind the barrier and built by
//! the binary's [`AuditFactory`], which confines them). Each device has its
//! own HMAC key and hash chain, both kept behind the barrier. Core stays free
//! of files and sockets: a device's destination is an [`AuditSink`].

pub mod chain;
mod committer;
mod entry;
mod salt;
pub mod search;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

pub use chain::ChainHead;
pub use entry::{Context, EntryInput, EntryKind, MountInfo};
pub use salt::Salt;

use crate::barrier::Barrier;
use crate::fields::parse_bool;
use crate::logical::LogicalError;
use crate::metrics;
use committer::{Committer, Link};

/// Devices enabled through the API, behind the barrier.
const TABLE_PATH: &str = "core/audit";
const SALT_PREFIX: &str = "core/audit-salt/";
const HEAD_PREFIX: &str = "core/audit-head/";

/// Where a device's lines go (a file, a socket).
#[async_trait::async_trait]
pub trait AuditSink: Send + Sync {
    /// Writes one complete line, newline included. An error means the line
    /// may not have been recorded.
    async fn write(&self, line: &[u8]) -> Result<(), String>;
    /// True when [`AuditSink::write_inline`] works: the write finishes without
    /// waiting (a file), so the chain's lock need not be held across an await.
    fn writes_inline(&self) -> bool {
        false
    }
    /// True when an inline write can take long (a file synced per write):
    /// batches are then written on a blocking thread.
    fn blocks_long(&self) -> bool {
        false
    }
    /// Writes complete lines (one or a batch) without awaiting (only when
    /// `writes_inline`).
    fn write_inline(&self, _line: &[u8]) -> Result<(), String> {
        Err("this audit device cannot write inline".into())
    }
    /// Reopens the destination (after log rotation, on SIGHUP).
    async fn reopen(&self) -> Result<(), String> {
        Ok(())
    }
    /// The last complete line already at the destination, so that a chain
    /// continues after a crash that lost the stored head's latest updates.
    async fn last_line(&self) -> Option<Vec<u8>> {
        None
    }
    /// The sequence number of the first line in the destination as it is
    /// now (a file: its first line), so that a head records where the file
    /// begins and lines cut from its start are caught.
    fn first_seq(&self) -> Option<u64> {
        None
    }
    /// The lines written so far, for searching (`sys/audit-search`), where
    /// the destination can be read back (a file); `None` otherwise.
    fn read_back(&self) -> Option<Result<Box<dyn std::io::Read + Send>, String>> {
        None
    }
}

/// Builds sinks for devices enabled through `sys/audit/:path`.
pub trait AuditFactory: Send + Sync {
    /// Whether the configuration lets the API enable devices at all.
    fn api_enabled(&self) -> bool;
    /// A sink for a device enabled (now or at an earlier unseal) through the
    /// API; the factory applies its confinement rules.
    fn build(&self, spec: &DeviceSpec) -> Result<Arc<dyn AuditSink>, String>;
}

/// Options core itself reads; the rest (paths, addresses) are the sink's.
pub const COMMON_OPTIONS: &[&str] = &[
    "format",
    "log_raw",
    "hmac_accessor",
    "prefix",
    "elide_list_responses",
    "head_key",
];

/// How a device formats its entries.
#[derive(Debug, Clone)]
pub struct DeviceOptions {
    /// Write values in plaintext (dangerous; off by default).
    pub log_raw: bool,
    /// HMAC accessors too (Vault's default).
    pub hmac_accessor: bool,
    /// Text written before each JSON object.
    pub prefix: String,
    /// Replace list answers' keys by their count.
    pub elide_list_responses: bool,
    /// A transit signing key (`<mount>/<key>`) that signs the chain head
    /// `sys/audit-head` answers.
    pub head_key: Option<(String, String)>,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        Self {
            log_raw: false,
            hmac_accessor: true,
            prefix: String::new(),
            elide_list_responses: false,
            head_key: None,
        }
    }
}

impl DeviceOptions {
    /// Reads the common options of a device.
    pub fn parse(options: &BTreeMap<String, String>) -> Result<Self, String> {
        let flag = |key: &str, default: bool| match options.get(key) {
            None => Ok(default),
            Some(v) => parse_bool(v).ok_or_else(|| format!("option {key:?} must be true or false")),
        };
        if let Some(f) = options.get("format")
            && f != "json"
        {
            return Err(format!(
                "option \"format\" must be \"json\" (got {f:?}; jsonx is not supported)"
            ));
        }
        let prefix = options.get("prefix").cloned().unwrap_or_default();
        // A prefix with a newline could forge whole lines.
        if prefix.chars().any(char::is_control) || prefix.len() > 256 {
            return Err(
                "option \"prefix\" must be at most 256 characters without control characters"
                    .into(),
            );
        }
        let head_key = match options.get("head_key") {
            None => None,
            Some(k) => match k.trim_matches('/').rsplit_once('/') {
                Some((mount, key)) if !mount.is_empty() && !key.is_empty() => {
                    Some((mount.to_owned(), key.to_owned()))
                }
                _ => {
                    return Err(format!(
                        "option \"head_key\" must name a transit key as <mount>/<key>, e.g. \"transit/audit-head\" (got {k:?})"
                    ));
                }
            },
        };
        Ok(Self {
            head_key,
            log_raw: flag("log_raw", false)?,
            hmac_accessor: flag("hmac_accessor", true)?,
            prefix,
            elide_list_responses: flag("elide_list_responses", false)?,
        })
    }
}

/// A device as `sys/audit` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceSpec {
    /// Mount-like path with a trailing slash (`file/`).
    pub path: String,
    /// `file` or `socket`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Device options as strings, as Vault keeps them.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Vault's replication flag, kept for clients.
    #[serde(default)]
    pub local: bool,
}

impl DeviceSpec {
    /// The path without its trailing slash (storage key, display).
    pub fn name(&self) -> &str {
        self.path.trim_end_matches('/')
    }
}

/// Normalises and checks a device path (`file` -> `file/`).
pub fn normalize_path(path: &str) -> Result<String, String> {
    let name = path.trim_matches('/');
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if ok {
        Ok(format!("{name}/"))
    } else {
        Err(format!(
            "invalid audit device path {path:?}: use letters, digits, '-', '_', '.' and '/'"
        ))
    }
}

/// An enabled device, ready to write (exists only while unsealed).
struct Device {
    /// Unique for the process's life (keys per-request caches).
    id: usize,
    spec: DeviceSpec,
    from_config: bool,
    opts: DeviceOptions,
    sink: Arc<dyn AuditSink>,
    salt: Salt,
    /// The chain; held only briefly, never across an await.
    link: Arc<std::sync::Mutex<Link>>,
    /// Batches the lines of sinks that write inline (files).
    committer: Option<Arc<Committer>>,
    /// Orders writes to sinks that must be awaited (sockets).
    gate: tokio::sync::Mutex<()>,
    /// HMACs of a token and its accessor, by the token's storage id (not a
    /// secret): the two entries of a request, and a client's next requests,
    /// reuse them.
    ids: quick_cache::sync::Cache<String, Arc<(String, String)>>,
    failing: AtomicBool,
}

const POISONED: &str = "audit chain lock poisoned";

impl Device {
    /// The token and accessor as this device writes them.
    fn ids(&self, input: &EntryInput<'_>) -> Arc<(String, String)> {
        let presented = input.req.token.as_ref().map_or("", |t| t.expose());
        let hash = |s: &str| {
            if self.opts.log_raw || s.is_empty() {
                s.to_owned()
            } else {
                self.salt.hash(s)
            }
        };
        let Some(t) = input.token else {
            return Arc::new((hash(presented), String::new()));
        };
        if let Some(ids) = self.ids.get(&t.hash) {
            return ids;
        }
        let accessor = if self.opts.hmac_accessor {
            hash(&t.entry.accessor)
        } else {
            t.entry.accessor.clone()
        };
        let ids = Arc::new((hash(presented), accessor));
        if !self.opts.log_raw {
            self.ids.insert(t.hash.clone(), ids.clone());
        }
        ids
    }

    /// Writes one entry, chained; the chain advances only when the sink
    /// accepted the line, so the log never has a gap of its own making.
    async fn record(&self, input: &EntryInput<'_>, key: usize) -> Result<(), String> {
        let ids = self.ids(input);
        let mut line = Vec::with_capacity(2048);
        line.extend_from_slice(self.opts.prefix.as_bytes());
        entry::write(input, key, &ids, &self.salt, &self.opts, &mut line)
            .map_err(|e| e.to_string())?;
        if let Some(c) = &self.committer {
            return c.submit(line).await;
        }
        let _turn = self.gate.lock().await;
        let head = self.link.lock().map_err(|_| POISONED)?.head.clone();
        if !chain::append_link(&mut line, &head) {
            return Err("entry did not serialize to an object".into());
        }
        self.sink.write(&line).await?;
        self.link.lock().map_err(|_| POISONED)?.advance(&line);
        Ok(())
    }

    /// The chain head and the sequence number last stored.
    fn head(&self) -> Result<(ChainHead, u64), String> {
        let link = self.link.lock().map_err(|_| POISONED)?;
        Ok((link.head.clone(), link.stored))
    }
}

/// A device's chain head as `sys/audit-head` reports it.
pub struct DeviceHead {
    /// The last link.
    pub head: ChainHead,
    /// The device's path (`file/`).
    pub device: String,
    /// Where the device's current file begins in the chain, when known.
    pub first_seq: Option<u64>,
    /// The transit key (`mount`, `name`) that signs it.
    pub key: Option<(String, String)>,
}

/// A sink whose device could not be opened at unseal: it refuses every
/// line, so requests fail closed unless another device records them.
struct Unavailable(String);

#[async_trait::async_trait]
impl AuditSink for Unavailable {
    async fn write(&self, _: &[u8]) -> Result<(), String> {
        Err(self.0.clone())
    }
}

/// Sends entries to the enabled devices.
#[derive(Default)]
pub struct Broker {
    factory: Option<Arc<dyn AuditFactory>>,
    configured: Vec<(DeviceSpec, Arc<dyn AuditSink>)>,
    live: RwLock<Arc<Vec<Arc<Device>>>>,
    table_lock: tokio::sync::Mutex<()>,
    /// With HA: which node's chain heads these are (each node writes its
    /// own files, so each keeps its own heads).
    head_scope: Option<String>,
}

fn internal(e: impl std::fmt::Display) -> LogicalError {
    LogicalError::Internal(e.to_string())
}

impl Broker {
    /// A broker for the configuration's devices (sinks already open) and,
    /// with a factory, for devices enabled through the API.
    pub fn new(
        factory: Option<Arc<dyn AuditFactory>>,
        configured: Vec<(DeviceSpec, Arc<dyn AuditSink>)>,
    ) -> Self {
        Self {
            factory,
            configured,
            ..Self::default()
        }
    }

    /// Keeps chain heads per node: `scope` names this node (HA, where
    /// every node has its own device files but storage is shared).
    pub fn with_head_scope(mut self, scope: &str) -> Self {
        use sha2::Digest;
        let h = sha2::Sha256::digest(scope.as_bytes());
        self.head_scope = Some(hex::encode(&h[..8]));
        self
    }

    fn head_path(&self, name: &str) -> String {
        match &self.head_scope {
            None => format!("{HEAD_PREFIX}{name}"),
            Some(scope) => format!("{HEAD_PREFIX}{name}@{scope}"),
        }
    }

    fn live(&self) -> Arc<Vec<Arc<Device>>> {
        self.live.read().map(|l| l.clone()).unwrap_or_default()
    }

    fn set_live(&self, devices: Vec<Arc<Device>>) {
        if let Ok(mut l) = self.live.write() {
            *l = Arc::new(devices);
        }
    }

    /// Whether any device is enabled (nothing to format otherwise).
    pub fn is_active(&self) -> bool {
        !self.live().is_empty()
    }

    async fn load_table(barrier: &Barrier) -> Result<Vec<DeviceSpec>, LogicalError> {
        match barrier.get(TABLE_PATH).await? {
            None => Ok(Vec::new()),
            Some(b) => serde_json::from_slice(b.expose())
                .map_err(|e| internal(format!("audit device table is corrupt: {e}"))),
        }
    }

    async fn open_device(
        &self,
        barrier: &Barrier,
        spec: DeviceSpec,
        sink: Arc<dyn AuditSink>,
        from_config: bool,
    ) -> Result<Device, LogicalError> {
        let opts = DeviceOptions::parse(&spec.options).map_err(LogicalError::BadRequest)?;
        let salt_path = format!("{SALT_PREFIX}{}", spec.name());
        let salt = match barrier.get(&salt_path).await? {
            Some(b) => Salt::from_slice(b.expose())
                .ok_or_else(|| internal(format!("audit salt of {} is corrupt", spec.path)))?,
            None => {
                let s = Salt::random().map_err(internal)?;
                barrier.put(&salt_path, s.expose()).await?;
                s
            }
        };
        let stored: ChainHead = match barrier.get(&self.head_path(spec.name())).await? {
            Some(b) => serde_json::from_slice(b.expose()).map_err(|e| {
                internal(format!("audit chain head of {} is corrupt: {e}", spec.path))
            })?,
            None => ChainHead::default(),
        };
        let mut head = stored.clone();
        // After a crash the destination may hold lines newer than the last
        // stored head; the chain continues from those.
        if let Some(last) = sink.last_line().await
            && let Some((seq, _)) = chain::chain_fields(&last)
            && seq > head.seq
        {
            head = ChainHead {
                seq,
                hash: chain::line_hash(&last),
            };
        }
        let link = Arc::new(std::sync::Mutex::new(Link {
            head,
            stored: stored.seq,
        }));
        let committer = sink
            .writes_inline()
            .then(|| Committer::new(sink.clone(), link.clone()));
        static NEXT_ID: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        Ok(Device {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            spec,
            from_config,
            opts,
            sink,
            salt,
            link,
            committer,
            gate: tokio::sync::Mutex::new(()),
            ids: quick_cache::sync::Cache::new(4096),
            failing: AtomicBool::new(false),
        })
    }

    /// Loads every device's key and chain head; called at unseal before the
    /// first request is served.
    pub(crate) async fn unseal(&self, barrier: &Barrier) -> Result<(), LogicalError> {
        let _guard = self.table_lock.lock().await;
        let mut devices = Vec::new();
        for (spec, sink) in &self.configured {
            devices.push(Arc::new(
                self.open_device(barrier, spec.clone(), sink.clone(), true)
                    .await?,
            ));
        }
        for spec in Self::load_table(barrier).await? {
            if devices.iter().any(|d| d.spec.path == spec.path) {
                tracing::warn!(path = %spec.path, "an API-enabled audit device has the path of a configured one; the configured one is used");
                continue;
            }
            let sink: Arc<dyn AuditSink> = match self.factory.as_ref().map(|f| f.build(&spec)) {
                Some(Ok(s)) => s,
                Some(Err(e)) => {
                    tracing::error!(path = %spec.path, error = %e, "audit device could not be opened; it will refuse every entry");
                    Arc::new(Unavailable(e))
                }
                None => Arc::new(Unavailable(
                    "this server does not allow audit devices enabled through the API".into(),
                )),
            };
            devices.push(Arc::new(
                self.open_device(barrier, spec, sink, false).await?,
            ));
        }
        self.set_live(devices);
        Ok(())
    }

    /// Stores every chain head and forgets the keys; called before sealing.
    pub(crate) async fn seal(&self, barrier: &Barrier) {
        if let Err(e) = self.flush(barrier).await {
            tracing::error!(error = %e, "storing audit chain heads at seal failed");
        }
        self.set_live(Vec::new());
    }

    /// Closes every device without storing its chain head (this node may
    /// no longer write: an HA node that lost leadership).
    pub(crate) fn close(&self) {
        self.set_live(Vec::new());
    }

    /// Stores the chain heads that moved since the last flush.
    pub async fn flush(&self, barrier: &Barrier) -> Result<(), LogicalError> {
        for d in self.live().iter() {
            let (head, stored) = d.head().map_err(internal)?;
            if head.seq == stored {
                continue;
            }
            let bytes = serde_json::to_vec(&head).map_err(internal)?;
            barrier.put(&self.head_path(d.spec.name()), &bytes).await?;
            if let Ok(mut link) = d.link.lock() {
                link.stored = link.stored.max(head.seq);
            }
        }
        Ok(())
    }

    /// Writes one entry to every device. Fails only when devices are enabled
    /// and none of them recorded it (the caller then refuses the request).
    pub async fn log(&self, input: &EntryInput<'_>) -> Result<(), LogicalError> {
        let devices = self.live();
        if devices.is_empty() {
            return Ok(());
        }
        let mut recorded = 0;
        for d in devices.iter() {
            match d.record(input, d.id).await {
                Ok(()) => {
                    recorded += 1;
                    if d.failing.swap(false, Ordering::Relaxed) {
                        tracing::info!(device = %d.spec.path, "audit device records entries again");
                    }
                }
                Err(e) => {
                    metrics::AUDIT_DEVICE_FAILURES.inc();
                    if !d.failing.swap(true, Ordering::Relaxed) {
                        tracing::error!(device = %d.spec.path, error = %e, "audit device failed to record an entry");
                    } else {
                        tracing::debug!(device = %d.spec.path, error = %e, "audit device still failing");
                    }
                }
            }
        }
        if recorded == 0 {
            metrics::AUDIT_REFUSALS.inc();
            tracing::error!(request_id = %input.req.id, path = %input.req.path, "no audit device recorded the request; refusing it");
            return Err(LogicalError::Internal(
                "internal error: no audit device could record the request".into(),
            ));
        }
        Ok(())
    }

    /// Reopens every device's destination (SIGHUP). Returns the failures.
    pub async fn reopen(&self) -> Vec<(String, String)> {
        let mut sinks: Vec<(String, Arc<dyn AuditSink>)> = self
            .configured
            .iter()
            .map(|(s, k)| (s.path.clone(), k.clone()))
            .collect();
        for d in self.live().iter() {
            if !d.from_config {
                sinks.push((d.spec.path.clone(), d.sink.clone()));
            }
        }
        let mut failed = Vec::new();
        for (path, sink) in sinks {
            if let Err(e) = sink.reopen().await {
                tracing::error!(device = %path, error = %e, "reopening audit device failed");
                failed.push((path, e));
            }
        }
        failed
    }

    /// Readers of the enabled devices that can be read back, with each
    /// device's path and line prefix; and the devices that cannot.
    #[allow(clippy::type_complexity)]
    pub fn readers(
        &self,
    ) -> (
        Vec<(
            String,
            String,
            Result<Box<dyn std::io::Read + Send>, String>,
        )>,
        Vec<String>,
    ) {
        let (mut readable, mut not) = (Vec::new(), Vec::new());
        for d in self.live().iter() {
            match d.sink.read_back() {
                Some(r) => readable.push((d.spec.path.clone(), d.opts.prefix.clone(), r)),
                None => not.push(d.spec.path.clone()),
            }
        }
        (readable, not)
    }

    /// The enabled devices, for `sys/audit`.
    pub fn list(&self) -> Vec<DeviceSpec> {
        self.live().iter().map(|d| d.spec.clone()).collect()
    }

    fn find(&self, path: &str) -> Result<Arc<Device>, LogicalError> {
        let path = normalize_path(path).map_err(LogicalError::BadRequest)?;
        self.live()
            .iter()
            .find(|d| d.spec.path == path)
            .cloned()
            .ok_or_else(|| LogicalError::BadRequest(format!("unknown audit backend {path}")))
    }

    /// `hmac-sha256:<hex>` of `input` under the device's key.
    pub fn hash(&self, path: &str, input: &str) -> Result<String, LogicalError> {
        let d = self.find(path)?;
        Ok(if d.opts.log_raw {
            input.to_owned()
        } else {
            d.salt.hash(input)
        })
    }

    /// The device's current chain head (what its last line hashes to), its
    /// path, and the transit key that signs it, if any.
    pub fn head(&self, path: &str) -> Result<DeviceHead, LogicalError> {
        let d = self.find(path)?;
        let (head, _) = d.head().map_err(internal)?;
        Ok(DeviceHead {
            head,
            first_seq: d.sink.first_seq(),
            device: d.spec.path.clone(),
            key: d.opts.head_key.clone(),
        })
    }

    /// Enables a device through the API (only when the configuration allows).
    pub(crate) async fn enable(
        &self,
        barrier: &Barrier,
        mut spec: DeviceSpec,
    ) -> Result<(), LogicalError> {
        let factory = self
            .factory
            .as_ref()
            .filter(|f| f.api_enabled())
            .ok_or_else(|| {
                LogicalError::BadRequest(
                    "enabling audit devices through the API is disabled: declare the device in the server configuration (audit \"file\" \"name\" { ... }), or set audit_api = true and audit_dir there"
                        .into(),
                )
            })?;
        spec.path = normalize_path(&spec.path).map_err(LogicalError::BadRequest)?;
        DeviceOptions::parse(&spec.options).map_err(LogicalError::BadRequest)?;
        let _guard = self.table_lock.lock().await;
        if self.live().iter().any(|d| d.spec.path == spec.path) {
            return Err(LogicalError::BadRequest(format!(
                "path already in use: {}",
                spec.path
            )));
        }
        let sink = factory.build(&spec).map_err(LogicalError::BadRequest)?;
        // A fresh device starts a fresh key and chain.
        barrier
            .delete(&format!("{SALT_PREFIX}{}", spec.name()))
            .await?;
        barrier.delete(&self.head_path(spec.name())).await?;
        let device = self.open_device(barrier, spec.clone(), sink, false).await?;
        let mut table = Self::load_table(barrier).await?;
        table.push(spec);
        barrier
            .put(TABLE_PATH, &serde_json::to_vec(&table).map_err(internal)?)
            .await?;
        let mut devices: Vec<Arc<Device>> = self.live().iter().cloned().collect();
        devices.push(Arc::new(device));
        self.set_live(devices);
        Ok(())
    }

    /// Disables an API-enabled device; nothing enabled there is not an error.
    pub(crate) async fn disable(&self, barrier: &Barrier, path: &str) -> Result<(), LogicalError> {
        let path = normalize_path(path).map_err(LogicalError::BadRequest)?;
        let _guard = self.table_lock.lock().await;
        if self.configured.iter().any(|(s, _)| s.path == path) {
            return Err(LogicalError::BadRequest(format!(
                "audit device {path} is declared in the server configuration; remove it there"
            )));
        }
        let mut table = Self::load_table(barrier).await?;
        let before = table.len();
        table.retain(|s| s.path != path);
        if table.len() != before {
            barrier
                .put(TABLE_PATH, &serde_json::to_vec(&table).map_err(internal)?)
                .await?;
        }
        let name = path.trim_end_matches('/');
        barrier.delete(&format!("{SALT_PREFIX}{name}")).await?;
        barrier.delete(&self.head_path(name)).await?;
        let devices: Vec<Arc<Device>> = self
            .live()
            .iter()
            .filter(|d| d.spec.path != path)
            .cloned()
            .collect();
        self.set_live(devices);
        Ok(())
    }
}
