//! The interface between core and secret engines.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::barrier::{Barrier, BarrierError};
use crate::logical::{LogicalError, Operation, Response};
use crate::mounts::MountEntry;

/// A mount's private slice of storage: every key is prefixed with `logical/<uuid>/`.
#[derive(Clone)]
pub struct StorageView {
    barrier: Arc<Barrier>,
    prefix: String,
    events: Option<crate::events::MountEvents>,
    leak: Option<crate::leak::MountLeak>,
}

impl StorageView {
    /// A view of `barrier` under `prefix` (which ends in `/`).
    pub fn new(barrier: Arc<Barrier>, prefix: String) -> Self {
        Self {
            barrier,
            prefix,
            events: None,
            leak: None,
        }
    }

    /// The same view, feeding the leak index for its mount.
    pub fn with_leak(mut self, leak: crate::leak::MountLeak) -> Self {
        self.leak = Some(leak);
        self
    }

    /// The mount's handle on the leak index (none for auth methods and in
    /// tests): engines tell it what they hold whenever that changes.
    pub fn leak(&self) -> Option<&crate::leak::MountLeak> {
        self.leak.as_ref()
    }

    /// The same view, publishing change events for its mount.
    pub fn with_events(mut self, events: crate::events::MountEvents) -> Self {
        self.events = Some(events);
        self
    }

    /// The mount's event publisher (none in tests and for auth methods).
    pub fn events(&self) -> Option<&crate::events::MountEvents> {
        self.events.as_ref()
    }

    /// Publishes a change event about `path` (relative to the mount) and
    /// the data path it concerns; nothing happens without a publisher.
    /// Events carry paths and versions, never values.
    pub fn publish(
        &self,
        event_type: &str,
        path: &str,
        data_path: Option<&str>,
        extra: &[(&str, String)],
    ) {
        if let Some(e) = &self.events {
            e.publish(event_type, path, data_path, extra);
        }
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Reads raw plaintext bytes.
    pub async fn get(&self, key: &str) -> Result<Option<crate::secret::SecretBytes>, BarrierError> {
        self.barrier.get(&self.full(key)).await
    }

    /// Writes raw plaintext bytes.
    pub async fn put(&self, key: &str, value: &[u8]) -> Result<(), BarrierError> {
        self.barrier.put(&self.full(key), value).await
    }

    /// Deletes a key.
    pub async fn delete(&self, key: &str) -> Result<(), BarrierError> {
        self.barrier.delete(&self.full(key)).await
    }

    /// Lists one level below `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        self.barrier.list(&self.full(prefix)).await
    }

    /// Applies several writes (keys relative to the view) atomically.
    pub async fn batch(&self, ops: Vec<crate::barrier::BarrierOp>) -> Result<(), BarrierError> {
        use crate::barrier::BarrierOp;
        let ops = ops
            .into_iter()
            .map(|op| match op {
                BarrierOp::Put(k, v) => BarrierOp::Put(self.full(&k), v),
                BarrierOp::Delete(k) => BarrierOp::Delete(self.full(&k)),
            })
            .collect();
        self.barrier.batch(ops).await
    }

    /// A password from the named `sys/policies/password` policy: the one
    /// thing outside its own prefix an engine may use.
    pub async fn generate_password(
        &self,
        policy: &str,
    ) -> Result<crate::secret::SecretString, LogicalError> {
        let key = format!("{}{policy}", crate::password_policy::POLICY_PREFIX);
        let Some(bytes) = self.barrier.get(&key).await? else {
            return Err(LogicalError::BadRequest(format!(
                "password policy {policy:?} does not exist"
            )));
        };
        let p: crate::password_policy::PasswordPolicy = serde_json::from_slice(bytes.expose())
            .map_err(|e| {
                LogicalError::Internal(format!("password policy {policy:?} is corrupt: {e}"))
            })?;
        crate::heavy::run("password generation", move || p.generate()).await?
    }

    /// Reads and parses a JSON value.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, LogicalError> {
        match self.get(key).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(bytes.expose())
                .map(Some)
                .map_err(|e| {
                    LogicalError::Internal(format!("stored entry {key:?} is not valid JSON: {e}"))
                }),
        }
    }

    /// Serializes and writes a JSON value.
    pub async fn put_json<T: serde::Serialize>(
        &self,
        key: &str,
        v: &T,
    ) -> Result<(), LogicalError> {
        let bytes = zeroize::Zeroizing::new(
            serde_json::to_vec(v).map_err(|e| LogicalError::Internal(e.to_string()))?,
        );
        Ok(self.put(key, &bytes).await?)
    }
}

/// What an engine sees of a request.
pub struct EngineRequest<'a> {
    /// The operation.
    pub operation: Operation,
    /// The path relative to the mount (no leading slash; list paths end in `/`).
    pub path: &'a str,
    /// Request data.
    pub data: &'a Map<String, Value>,
    /// This mount's storage and nothing else.
    pub storage: &'a StorageView,
    /// The mount's configuration.
    pub mount: &'a MountEntry,
    /// Mount default TTL after system defaults are applied.
    pub default_lease_ttl: u64,
    /// The client's address, for CIDR-bound credentials.
    pub remote_addr: Option<std::net::SocketAddr>,
    /// The calling token's display name (`root`, `token`, `userpass-alice`),
    /// used in generated user names.
    pub display_name: &'a str,
}

/// What an engine sees when one of its leases is renewed or revoked.
pub struct LeaseRequest<'a> {
    /// The lease id (`<mount>/<path>/<random>`).
    pub lease_id: &'a str,
    /// The `internal` map the engine gave when it issued the secret.
    pub internal: &'a Map<String, Value>,
    /// The mount's storage.
    pub storage: &'a StorageView,
    /// The mount's configuration.
    pub mount: &'a MountEntry,
    /// When the lease now ends (unix seconds): the new end for a renewal.
    pub expire_time: i64,
}

/// One thing a mount rotates, as `sys/rotation/status` lists it.
#[derive(Debug, Clone, Default)]
pub struct RotationStatus {
    /// Path below the mount (`static-roles/app`, `keys/orders`).
    pub name: String,
    /// What it is (`database static role`, `database root credentials`, `transit key`).
    pub kind: &'static str,
    /// Seconds between scheduled rotations; 0 when only rotated by hand.
    pub period: u64,
    /// Unix seconds of the last success.
    pub last_success: Option<i64>,
    /// Unix seconds when the next rotation is due (none if unscheduled).
    pub next_due: Option<i64>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// The last failure's message.
    pub last_error: Option<String>,
}

/// A secret engine mounted at some path.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Answers a request; `Ok(None)` means "nothing" (404 on read, 204 otherwise).
    async fn handle(&self, req: EngineRequest<'_>) -> Result<Option<Response>, LogicalError>;

    /// Paths (relative to the mount) served without a token, such as `login`.
    fn is_unauthenticated(&self, _path: &str) -> bool {
        false
    }

    /// What the engine is and its paths, for `path-help`.
    fn help(&self) -> crate::paths::MountHelp {
        crate::paths::MountHelp::default()
    }

    /// Whether `path` holds a value, so a write can be told apart as create or update.
    /// `None` means the engine has no existence check (writes count as update).
    async fn exists(
        &self,
        _path: &str,
        _storage: &StorageView,
    ) -> Result<Option<bool>, LogicalError> {
        Ok(None)
    }

    /// Called on the running engine when a tune changes the mount's `options`
    /// to those of `next`. An engine whose stored layout depends on its options
    /// moves its data from `current` into `fresh` (an empty view) and answers
    /// [`Retune::Migrated`]; the mount then uses `fresh` and the old view is
    /// cleared. An error refuses the tune and changes nothing.
    async fn retune(
        &self,
        _next: &MountEntry,
        _current: &StorageView,
        _fresh: &StorageView,
    ) -> Result<Retune, LogicalError> {
        Ok(Retune::InPlace)
    }

    /// Another node (the HA active one) changed `key` of this mount's view:
    /// drop anything built from it. Engines that keep nothing ignore it.
    async fn invalidate(&self, _key: &str) {}

    /// Tells the leak index everything this mount holds (after an unseal,
    /// in the background). Engines that hold no credentials ignore it.
    async fn leak_reindex(&self, _storage: &StorageView) -> Result<(), LogicalError> {
        Ok(())
    }

    /// The index says `name` (of `kind`) may hold the value printed `print`:
    /// answers where, reading what it holds now, or nothing if it does not.
    async fn leak_confirm(
        &self,
        _storage: &StorageView,
        _kind: crate::leak::LeakKind,
        _name: &str,
        _print: &crate::leak::Print,
    ) -> Result<Vec<crate::leak::LeakMatch>, LogicalError> {
        Ok(Vec::new())
    }

    /// Values a mount keeps only as its own HMACs (AppRole secret IDs) are
    /// not in the index: this looks `candidate` up directly.
    async fn leak_lookup(
        &self,
        _storage: &StorageView,
        _candidate: &str,
    ) -> Result<Vec<crate::leak::LeakMatch>, LogicalError> {
        Ok(Vec::new())
    }

    /// Scheduled work (such as rotating keys whose period has passed), called
    /// every few seconds while unsealed; keep it cheap when nothing is due.
    async fn periodic(&self, _storage: &StorageView) -> Result<(), LogicalError> {
        Ok(())
    }

    /// What this mount rotates and how that is going.
    async fn rotation_status(
        &self,
        _storage: &StorageView,
    ) -> Result<Vec<RotationStatus>, LogicalError> {
        Ok(Vec::new())
    }

    /// Undoes a leased secret in the outside world (drops the database user).
    /// An error keeps the lease and makes the expiration manager retry.
    async fn revoke_lease(&self, _req: LeaseRequest<'_>) -> Result<(), LogicalError> {
        Err(LogicalError::Internal(
            "this engine issues no leases and cannot revoke one".into(),
        ))
    }

    /// Signs `message` with the named key for core's own use (an audit
    /// device's `head_key`), with the key's default options; the signature
    /// as the engine's `sign/` answers it. Only engines holding signing keys
    /// answer; no request path reaches this.
    async fn sign_for_core(
        &self,
        _storage: &StorageView,
        _key: &str,
        _message: &[u8],
    ) -> Result<String, LogicalError> {
        Err(LogicalError::BadRequest(
            "this engine holds no signing keys".into(),
        ))
    }

    /// Extends a leased secret to `expire_time` outside (database `VALID UNTIL`).
    /// An error refuses the renewal.
    async fn renew_lease(&self, _req: LeaseRequest<'_>) -> Result<(), LogicalError> {
        Ok(())
    }

    /// A token this auth method issued asks to be renewed; `meta` and
    /// `policies` are the token's. An error refuses the renewal: as in
    /// Vault, a token outlives its deleted role or user only until its TTL.
    async fn check_renewal(
        &self,
        _storage: &StorageView,
        _meta: &std::collections::BTreeMap<String, String>,
        _policies: &[String],
    ) -> Result<(), LogicalError> {
        Ok(())
    }
}

/// How an engine took a change of its mount options.
#[derive(Debug, PartialEq, Eq)]
pub enum Retune {
    /// Storage is unchanged; the new options apply to it as it is.
    InPlace,
    /// The data now lives in the fresh view; `warning` tells the operator what happened.
    Migrated {
        /// Reported in the tune response's `warnings`.
        warning: String,
    },
}

/// Builds an engine for a mount, or refuses its options.
pub type BackendFactory = fn(&MountEntry) -> Result<Arc<dyn Backend>, LogicalError>;

/// The engine types this server can mount, by `type` name.
#[derive(Default, Clone)]
pub struct EngineRegistry {
    factories: HashMap<String, BackendFactory>,
    /// Plugins of other catalog types an engine offers, such as the
    /// database engine's `postgresql-database-plugin`.
    catalog: Vec<(&'static str, &'static [&'static str])>,
}

impl EngineRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a type name.
    pub fn register(&mut self, kind: &str, f: BackendFactory) {
        self.factories.insert(kind.to_owned(), f);
    }

    /// The factory for `kind`.
    pub fn get(&self, kind: &str) -> Option<BackendFactory> {
        self.factories.get(kind).copied()
    }

    /// Lists `names` under the plugin catalog type `plugin_type`.
    pub fn register_catalog(&mut self, plugin_type: &'static str, names: &'static [&'static str]) {
        self.catalog.push((plugin_type, names));
    }

    /// Registered type names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.factories.keys().cloned().collect();
        v.sort();
        v
    }

    /// Names registered under another catalog type, sorted.
    pub fn catalog(&self, plugin_type: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .catalog
            .iter()
            .filter(|(t, _)| *t == plugin_type)
            .flat_map(|(_, names)| names.iter().map(|n| (*n).to_owned()))
            .collect();
        v.sort();
        v
    }
}
