//! KV version 2: versioned secrets with check-and-set, soft delete, undelete,
//! destroy and per-key metadata, in Vault's wire shapes.
//!
//! Layout in the mount's view: `config`, `metadata/<path>` (one JSON entry per
//! key) and `versions/<sha256(path)>/<n>` (one entry per version). A version
//! and its metadata are written in one batch; writes to one key are serialised.

use std::collections::{BTreeMap, HashMap, hash_map::DefaultHasher};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use coffer_core::backend::{Backend, EngineRequest, Retune, StorageView};
use coffer_core::barrier::BarrierOp;
use coffer_core::fields::Fields;
use coffer_core::leak::{LeakKind, LeakMatch, Print};
use coffer_core::logical::Operation::*;
use coffer_core::mounts::MountEntry;
use coffer_core::paths::{PathSpec, PathTable};
use coffer_core::{LogicalError, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::Mutex;

#[derive(Clone, Copy)]
enum Route {
    Config,
    Data,
    Delete,
    Undelete,
    Destroy,
    MetadataRoot,
    Metadata,
    Detailed,
    Subkeys,
}

static PATHS: &[PathSpec<Route>] = &[
    PathSpec {
        pattern: "config",
        operations: &[Read, Update],
        route: Route::Config,
        help: "Mount-wide max_versions, cas_required, delete_version_after.",
    },
    PathSpec {
        pattern: "data/{*path}",
        operations: &[Read, Update, Patch, Delete],
        route: Route::Data,
        help: "Read, write, patch or soft-delete the latest version.",
    },
    PathSpec {
        pattern: "delete/{*path}",
        operations: &[Update],
        route: Route::Delete,
        help: "Soft-delete versions.",
    },
    PathSpec {
        pattern: "undelete/{*path}",
        operations: &[Update],
        route: Route::Undelete,
        help: "Restore soft-deleted versions.",
    },
    PathSpec {
        pattern: "destroy/{*path}",
        operations: &[Update],
        route: Route::Destroy,
        help: "Destroy versions for good.",
    },
    PathSpec {
        pattern: "metadata/",
        operations: &[List, Scan],
        route: Route::MetadataRoot,
        help: "List keys (SCAN: every key below, recursively).",
    },
    PathSpec {
        pattern: "metadata/{*path}",
        operations: &[Read, Update, Patch, Delete, List, Scan],
        route: Route::Metadata,
        help: "Key metadata and versions.",
    },
    PathSpec {
        pattern: "detailed-metadata/",
        operations: &[List, Scan],
        route: Route::Detailed,
        help: "List keys with each key's metadata (custom_metadata included), as OpenBao does.",
    },
    PathSpec {
        pattern: "detailed-metadata/{*path}",
        operations: &[List, Scan],
        route: Route::Detailed,
        help: "List keys with each key's metadata (custom_metadata included), as OpenBao does.",
    },
    PathSpec {
        pattern: "subkeys/{*path}",
        operations: &[Read],
        route: Route::Subkeys,
        help: "The structure of a version without its values.",
    },
];

const STRIPES: usize = 64;
const DEFAULT_MAX_VERSIONS: u64 = 10;

#[derive(Serialize, Deserialize, Clone, Default)]
struct Config {
    max_versions: u64,
    cas_required: bool,
    delete_version_after: u64,
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct VersionMeta {
    created_time: String,
    /// RFC 3339, or empty; a time in the future is a scheduled deletion.
    deletion_time: String,
    destroyed: bool,
}

#[derive(Serialize, Deserialize, Clone, Default)]
struct KeyMeta {
    created_time: String,
    updated_time: String,
    current_version: u64,
    oldest_version: u64,
    max_versions: u64,
    cas_required: bool,
    delete_version_after: u64,
    custom_metadata: Option<BTreeMap<String, String>>,
    versions: BTreeMap<u64, VersionMeta>,
}

/// The KV version 2 engine.
pub struct KvV2 {
    paths: PathTable<Route>,
    locks: Vec<Mutex<()>>,
    /// Parsed key metadata by stripe, so a read decrypts and parses only the
    /// version. Filled and changed only under the key's stripe lock (by
    /// writers after a write, by readers on a miss), so it never holds
    /// metadata older than a finished write. No secret values live here.
    metas: Vec<std::sync::Mutex<HashMap<String, Arc<KeyMeta>>>>,
}

/// Cached metadata entries per stripe (64 stripes: 131,072 keys in all).
const METAS_PER_STRIPE: usize = 2048;

impl KvV2 {
    /// A new engine instance.
    pub fn new() -> Result<Self, LogicalError> {
        Ok(Self {
            paths: PathTable::new(PATHS).map_err(LogicalError::Internal)?,
            locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            metas: (0..STRIPES).map(|_| Default::default()).collect(),
        })
    }

    fn stripe(key: &str) -> usize {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() as usize) % STRIPES
    }

    fn lock(&self, key: &str) -> &Mutex<()> {
        &self.locks[Self::stripe(key)]
    }

    fn cached(&self, path: &str) -> Option<Arc<KeyMeta>> {
        let map = self.metas[Self::stripe(path)].lock().ok()?;
        map.get(path).cloned()
    }

    /// Records (or forgets) a key's metadata; the caller holds the key's lock.
    fn remember(&self, path: &str, meta: Option<Arc<KeyMeta>>) {
        let Ok(mut map) = self.metas[Self::stripe(path)].lock() else {
            return;
        };
        match meta {
            Some(m) => {
                if map.len() >= METAS_PER_STRIPE && !map.contains_key(path) {
                    // Crude but bounded: start the stripe over.
                    map.clear();
                }
                map.insert(path.to_owned(), m);
            }
            None => {
                map.remove(path);
            }
        }
    }

    /// Metadata for a reader that does not hold the key's lock.
    async fn read_meta(
        &self,
        st: &StorageView,
        path: &str,
    ) -> Result<Option<Arc<KeyMeta>>, LogicalError> {
        if let Some(m) = self.cached(path) {
            return Ok(Some(m));
        }
        let _g = self.lock(path).lock().await;
        self.locked_meta(st, path).await
    }

    /// Metadata while holding the key's lock: cached, or read and cached.
    async fn locked_meta(
        &self,
        st: &StorageView,
        path: &str,
    ) -> Result<Option<Arc<KeyMeta>>, LogicalError> {
        if let Some(m) = self.cached(path) {
            return Ok(Some(m));
        }
        let meta = Self::meta(st, path).await?.map(Arc::new);
        if let Some(m) = &meta {
            self.remember(path, Some(m.clone()));
        }
        Ok(meta)
    }

    /// Writes a batch that changes a key's metadata (to `meta`, or removes it)
    /// and keeps the cache in step; the caller holds the key's lock.
    async fn commit_meta(
        &self,
        st: &StorageView,
        path: &str,
        ops: Vec<BarrierOp>,
        meta: Option<KeyMeta>,
    ) -> Result<(), LogicalError> {
        match st.batch(ops).await {
            Ok(()) => {
                self.remember(path, meta.map(Arc::new));
                Ok(())
            }
            Err(e) => {
                // The write may or may not have landed: read it afresh next time.
                self.remember(path, None);
                Err(e.into())
            }
        }
    }
}

/// `{"data": ..., "metadata": ...}` of a data read.
fn data_answer(data: Value, metadata: Map<String, Value>) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("data".into(), data);
    m.insert("metadata".into(), Value::Object(metadata));
    m
}

fn bad(m: impl Into<String>) -> LogicalError {
    LogicalError::BadRequest(m.into())
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Seconds as Go prints a `time.Duration`: `0s`, `45s`, `30m0s`, `1h0m0s`.
pub(crate) fn go_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// A list path as a folder: `""` or ending in `/`.
fn dir_of(path: &str) -> String {
    if path.is_empty() || path.ends_with('/') {
        path.to_owned()
    } else {
        format!("{path}/")
    }
}

fn meta_key(path: &str) -> String {
    format!("metadata/{path}")
}

fn version_key(path: &str, v: u64) -> String {
    let mut hex = [0u8; 64];
    // A 64-byte buffer always fits a SHA-256 digest's hex.
    let _ = hex::encode_to_slice(Sha256::digest(path.as_bytes()), &mut hex);
    let hex = std::str::from_utf8(&hex).unwrap_or_default();
    format!("versions/{hex}/{v}")
}

impl VersionMeta {
    fn is_deleted(&self, at: OffsetDateTime) -> bool {
        OffsetDateTime::parse(&self.deletion_time, &Rfc3339).is_ok_and(|t| t <= at)
    }

    /// The `metadata` object of a data read or write, built without a detour through serde.
    fn api(&self, version: u64, custom: &Option<BTreeMap<String, String>>) -> Map<String, Value> {
        let custom = match custom {
            Some(c) => Value::Object(
                c.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
            None => Value::Null,
        };
        let mut m = Map::new();
        m.insert("created_time".into(), self.created_time.clone().into());
        m.insert("custom_metadata".into(), custom);
        m.insert("deletion_time".into(), self.deletion_time.clone().into());
        m.insert("destroyed".into(), self.destroyed.into());
        m.insert("version".into(), version.into());
        m
    }
}

impl KeyMeta {
    fn api(&self) -> Map<String, Value> {
        let versions: Map<String, Value> = self
            .versions
            .iter()
            .map(|(n, v)| {
                (n.to_string(), json!({"created_time": v.created_time, "deletion_time": v.deletion_time, "destroyed": v.destroyed}))
            })
            .collect();
        obj(json!({
            "cas_required": self.cas_required,
            "created_time": self.created_time,
            "current_version": self.current_version,
            "custom_metadata": self.custom_metadata,
            "delete_version_after": go_duration(self.delete_version_after),
            "max_versions": self.max_versions,
            "oldest_version": self.oldest_version,
            "updated_time": self.updated_time,
            "versions": versions,
        }))
    }
}

fn versions_param(data: &Map<String, Value>) -> Result<Vec<u64>, LogicalError> {
    let list = Fields::new(data).str_list("versions")?.unwrap_or_default();
    if list.is_empty() {
        return Err(bad("no version number provided"));
    }
    list.iter()
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| bad(format!("invalid version {v:?}")))
        })
        .collect()
}

/// The settings the mount `config` and a key's metadata share, as given.
fn apply_settings(
    f: &Fields,
    max_versions: &mut u64,
    cas_required: &mut bool,
    delete_version_after: &mut u64,
) -> Result<(), LogicalError> {
    if let Some(m) = f.int("max_versions")? {
        *max_versions = u64::try_from(m).map_err(|_| bad("max_versions cannot be negative"))?;
    }
    if let Some(c) = f.bool("cas_required")? {
        *cas_required = c;
    }
    if let Some(d) = f.duration("delete_version_after")? {
        *delete_version_after = d;
    }
    Ok(())
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// Keys with `null` leaves, down to `depth` levels (0: all).
fn subkeys(v: &Value, depth: u64, level: u64) -> Value {
    match v {
        Value::Object(m) if depth == 0 || level < depth => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), subkeys(v, depth, level + 1)))
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// Storage writes that make a KV v1 value version 1 of the same key.
pub(crate) fn import_v1(
    path: &str,
    value: Vec<u8>,
    at: OffsetDateTime,
) -> Result<[BarrierOp; 2], LogicalError> {
    let t = rfc3339(at);
    let meta = KeyMeta {
        created_time: t.clone(),
        updated_time: t.clone(),
        current_version: 1,
        oldest_version: 1,
        versions: BTreeMap::from([(
            1,
            VersionMeta {
                created_time: t,
                ..Default::default()
            },
        )]),
        ..Default::default()
    };
    let meta = serde_json::to_vec(&meta).map_err(|e| LogicalError::Internal(e.to_string()))?;
    Ok([
        BarrierOp::Put(version_key(path, 1), value),
        BarrierOp::Put(meta_key(path), meta),
    ])
}

impl KvV2 {
    async fn config(st: &StorageView) -> Result<Config, LogicalError> {
        Ok(st.get_json("config").await?.unwrap_or_default())
    }

    async fn meta(st: &StorageView, path: &str) -> Result<Option<KeyMeta>, LogicalError> {
        st.get_json(&meta_key(path)).await
    }

    /// The deleted-or-destroyed answer: 404 with the envelope and metadata.
    fn gone(meta: &KeyMeta, n: u64, v: &VersionMeta) -> Response {
        Response {
            status: Some(404),
            ..Response::data(data_answer(Value::Null, v.api(n, &meta.custom_metadata)))
        }
    }

    async fn read(
        &self,
        st: &StorageView,
        path: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>, LogicalError> {
        let Some(meta) = self.read_meta(st, path).await? else {
            return Ok(None);
        };
        let n = match Fields::new(data).int("version")? {
            Some(v) if v > 0 => v as u64,
            _ => meta.current_version,
        };
        let Some(v) = meta.versions.get(&n) else {
            return Ok(None);
        };
        if v.destroyed || v.is_deleted(now()) {
            return Ok(Some(Self::gone(&meta, n, v)));
        }
        let Some(value) = st.get_json::<Value>(&version_key(path, n)).await? else {
            return Ok(Some(Self::gone(&meta, n, v)));
        };
        Ok(Some(Response::data(data_answer(
            value,
            v.api(n, &meta.custom_metadata),
        ))))
    }

    /// Writes a new version (write or patch), honouring CAS and trimming old versions.
    async fn put_version(
        &self,
        st: &StorageView,
        path: &str,
        value: Value,
        cas: Option<i64>,
        meta: Option<KeyMeta>,
    ) -> Result<Response, LogicalError> {
        let cfg = Self::config(st).await?;
        let mut meta = meta.unwrap_or_default();
        if (meta.cas_required || cfg.cas_required) && cas.is_none() {
            return Err(bad("check-and-set parameter required for this call"));
        }
        if let Some(c) = cas
            && c as u64 != meta.current_version
        {
            return Err(bad(
                "check-and-set parameter did not match the current version",
            ));
        }
        let t = now();
        let n = meta.current_version + 1;
        let dva = if meta.delete_version_after > 0 {
            meta.delete_version_after
        } else {
            cfg.delete_version_after
        };
        let deletion_time = if dva > 0 {
            rfc3339(t + time::Duration::seconds(dva as i64))
        } else {
            String::new()
        };
        meta.versions.insert(
            n,
            VersionMeta {
                created_time: rfc3339(t),
                deletion_time,
                destroyed: false,
            },
        );
        meta.current_version = n;
        if meta.created_time.is_empty() {
            meta.created_time = rfc3339(t);
        }
        meta.updated_time = rfc3339(t);
        let max = match (meta.max_versions, cfg.max_versions) {
            (0, 0) => DEFAULT_MAX_VERSIONS,
            (0, m) | (m, _) => m,
        };
        let bytes =
            serde_json::to_vec(&value).map_err(|e| LogicalError::Internal(e.to_string()))?;
        let mut ops = vec![BarrierOp::Put(version_key(path, n), bytes)];
        while meta.versions.len() as u64 > max {
            if let Some((&old, _)) = meta.versions.iter().next() {
                meta.versions.remove(&old);
                ops.push(BarrierOp::Delete(version_key(path, old)));
            }
        }
        meta.oldest_version = meta.versions.keys().next().copied().unwrap_or(0);
        let version_meta = meta.versions.get(&n).cloned().unwrap_or_default();
        ops.push(BarrierOp::Put(
            meta_key(path),
            serde_json::to_vec(&meta).map_err(|e| LogicalError::Internal(e.to_string()))?,
        ));
        let answer = Response::data(version_meta.api(n, &meta.custom_metadata));
        self.commit_meta(st, path, ops, Some(meta)).await?;
        if let Some(leak) = st.leak() {
            leak.set_json(LeakKind::Kv, path, &value);
        }
        Ok(answer)
    }

    async fn write(
        &self,
        st: &StorageView,
        path: &str,
        data: &Map<String, Value>,
    ) -> Result<Response, LogicalError> {
        let value = match data.get("data") {
            Some(Value::Object(m)) => Value::Object(m.clone()),
            // Vault stores a version whose data is null (reads give null).
            Some(Value::Null) => Value::Null,
            None => return Err(bad("no data provided")),
            Some(_) => return Err(bad("data must be a JSON object")),
        };
        let cas = Self::cas(data)?;
        let _g = self.lock(path).lock().await;
        let meta = self.locked_meta(st, path).await?.map(|m| (*m).clone());
        self.put_version(st, path, value, cas, meta).await
    }

    fn cas(data: &Map<String, Value>) -> Result<Option<i64>, LogicalError> {
        match Fields::new(data).object("options")? {
            Some(o) => Fields::new(o).int("cas"),
            None => Ok(None),
        }
    }

    async fn patch(
        &self,
        st: &StorageView,
        path: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>, LogicalError> {
        let patch = match data.get("data") {
            Some(p @ Value::Object(_)) => p.clone(),
            _ => return Err(bad("no data provided")),
        };
        let cas = Self::cas(data)?;
        let _g = self.lock(path).lock().await;
        let Some(meta) = self.locked_meta(st, path).await? else {
            return Err(LogicalError::NotFound);
        };
        let meta = (*meta).clone();
        let n = meta.current_version;
        let live = meta
            .versions
            .get(&n)
            .is_some_and(|v| !v.destroyed && !v.is_deleted(now()));
        if !live {
            return Err(LogicalError::NotFound);
        }
        let Some(mut value) = st.get_json::<Value>(&version_key(path, n)).await? else {
            return Err(LogicalError::NotFound);
        };
        merge_patch(&mut value, &patch);
        self.put_version(st, path, value, cas, Some(meta))
            .await
            .map(Some)
    }

    /// Applies `f` to the listed versions' metadata (delete, undelete, destroy).
    async fn mark(
        &self,
        st: &StorageView,
        path: &str,
        versions: &[u64],
        destroy: bool,
        f: impl Fn(&mut VersionMeta),
    ) -> Result<(), LogicalError> {
        let _g = self.lock(path).lock().await;
        let Some(meta) = self.locked_meta(st, path).await? else {
            return Ok(());
        };
        let mut meta = (*meta).clone();
        let mut ops = Vec::new();
        for n in versions {
            if let Some(v) = meta.versions.get_mut(n) {
                f(v);
                if destroy {
                    ops.push(BarrierOp::Delete(version_key(path, *n)));
                }
            }
        }
        meta.updated_time = rfc3339(now());
        ops.push(BarrierOp::Put(
            meta_key(path),
            serde_json::to_vec(&meta).map_err(|e| LogicalError::Internal(e.to_string()))?,
        ));
        let current_destroyed = destroy && versions.contains(&meta.current_version);
        self.commit_meta(st, path, ops, Some(meta)).await?;
        if current_destroyed && let Some(leak) = st.leak() {
            leak.remove(LeakKind::Kv, path);
        }
        Ok(())
    }

    async fn metadata_write(
        &self,
        st: &StorageView,
        path: &str,
        data: &Map<String, Value>,
        merge: bool,
    ) -> Result<(), LogicalError> {
        let f = Fields::new(data);
        let _g = self.lock(path).lock().await;
        let mut meta = self
            .locked_meta(st, path)
            .await?
            .map(|m| (*m).clone())
            .unwrap_or_default();
        apply_settings(
            &f,
            &mut meta.max_versions,
            &mut meta.cas_required,
            &mut meta.delete_version_after,
        )?;
        match (data.get("custom_metadata"), merge) {
            (None, _) => {}
            (Some(Value::Object(patch)), true) => {
                let mut cur = meta.custom_metadata.take().unwrap_or_default();
                for (k, v) in patch {
                    match v {
                        Value::Null => {
                            cur.remove(k);
                        }
                        Value::String(s) => {
                            cur.insert(k.clone(), s.clone());
                        }
                        other => {
                            cur.insert(k.clone(), other.to_string());
                        }
                    }
                }
                meta.custom_metadata = (!cur.is_empty()).then_some(cur);
            }
            (Some(_), _) => {
                meta.custom_metadata = f.str_map("custom_metadata")?.filter(|m| !m.is_empty())
            }
        }
        if meta.created_time.is_empty() {
            meta.created_time = rfc3339(now());
        }
        meta.updated_time = rfc3339(now());
        let bytes = serde_json::to_vec(&meta).map_err(|e| LogicalError::Internal(e.to_string()))?;
        let ops = vec![BarrierOp::Put(meta_key(path), bytes)];
        self.commit_meta(st, path, ops, Some(meta)).await
    }

    /// OpenBao's `detailed-metadata/`: the keys a LIST or SCAN of
    /// `metadata/` gives, and each one's metadata in `key_info` (a folder's
    /// is `{}`), so a client filtering on `custom_metadata` makes one call.
    async fn detailed(
        &self,
        st: &StorageView,
        path: &str,
        op: coffer_core::logical::Operation,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>, LogicalError> {
        let dir = dir_of(path);
        let keys = super::keys_below(st, "metadata/", &dir, op, data).await?;
        let mut info = Map::new();
        let mut listed = Vec::with_capacity(keys.len());
        for k in keys {
            if k.ends_with('/') {
                info.insert(k.clone(), Value::Object(Map::new()));
            } else if let Some(m) = self.read_meta(st, &format!("{dir}{k}")).await? {
                info.insert(k.clone(), Value::Object(m.api()));
            } else {
                // Deleted since the list: leave it out of both.
                continue;
            }
            listed.push(k);
        }
        let mut r = Response::list(listed);
        if let Some(d) = r.data.as_mut() {
            d.insert("key_info".into(), Value::Object(info));
        }
        Ok(Some(r))
    }

    async fn metadata_delete(&self, st: &StorageView, path: &str) -> Result<(), LogicalError> {
        let _g = self.lock(path).lock().await;
        let Some(meta) = self.locked_meta(st, path).await? else {
            return Ok(());
        };
        let mut ops: Vec<BarrierOp> = meta
            .versions
            .keys()
            .map(|n| BarrierOp::Delete(version_key(path, *n)))
            .collect();
        ops.push(BarrierOp::Delete(meta_key(path)));
        self.commit_meta(st, path, ops, None).await?;
        if let Some(leak) = st.leak() {
            leak.remove(LeakKind::Kv, path);
        }
        Ok(())
    }

    /// The current version's value, unless it was destroyed (a soft-deleted
    /// one still counts: it can be undeleted, and what leaked still works).
    async fn current_value(
        meta: &KeyMeta,
        st: &StorageView,
        path: &str,
    ) -> Result<Option<(u64, bool, Value)>, LogicalError> {
        let n = meta.current_version;
        let Some(v) = meta.versions.get(&n).filter(|v| !v.destroyed) else {
            return Ok(None);
        };
        let deleted = v.is_deleted(now());
        Ok(st
            .get_json::<Value>(&version_key(path, n))
            .await?
            .map(|value| (n, deleted, value)))
    }
}

impl KvV2 {
    async fn serve(&self, req: &EngineRequest<'_>) -> Result<Option<Response>, LogicalError> {
        let m = match self.paths.route(req.operation, req.path) {
            Ok(m) => m,
            Err(LogicalError::UnsupportedPath) => {
                return Ok(Some(Response {
                    status: Some(404),
                    warnings: vec![
                        "Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv get' for this operation."
                            .into(),
                    ],
                    ..Response::default()
                }));
            }
            Err(e) => return Err(e),
        };
        let st = req.storage;
        let path = m.param("path").to_owned();
        match m.route {
            Route::Config => match req.operation {
                Read => {
                    let c = Self::config(st).await?;
                    Ok(Some(Response::data(obj(json!({
                        "cas_required": c.cas_required,
                        "delete_version_after": go_duration(c.delete_version_after),
                        "max_versions": c.max_versions,
                    })))))
                }
                _ => {
                    let mut c = Self::config(st).await?;
                    apply_settings(
                        &Fields::new(req.data),
                        &mut c.max_versions,
                        &mut c.cas_required,
                        &mut c.delete_version_after,
                    )?;
                    st.put_json("config", &c).await?;
                    Ok(None)
                }
            },
            Route::Data => match req.operation {
                Read => self.read(st, &path, req.data).await,
                Patch => self.patch(st, &path, req.data).await,
                Delete => {
                    let current = self
                        .read_meta(st, &path)
                        .await?
                        .map(|m| m.current_version)
                        .unwrap_or(0);
                    let t = rfc3339(now());
                    self.mark(st, &path, &[current], false, |v| {
                        if !v.destroyed {
                            v.deletion_time = t.clone();
                        }
                    })
                    .await?;
                    Ok(None)
                }
                _ => self.write(st, &path, req.data).await.map(Some),
            },
            Route::Delete => {
                let t = rfc3339(now());
                self.mark(st, &path, &versions_param(req.data)?, false, |v| {
                    if !v.destroyed {
                        v.deletion_time = t.clone();
                    }
                })
                .await?;
                Ok(None)
            }
            Route::Undelete => {
                self.mark(st, &path, &versions_param(req.data)?, false, |v| {
                    if !v.destroyed {
                        v.deletion_time.clear();
                    }
                })
                .await?;
                Ok(None)
            }
            Route::Destroy => {
                self.mark(st, &path, &versions_param(req.data)?, true, |v| {
                    v.destroyed = true
                })
                .await?;
                Ok(None)
            }
            Route::MetadataRoot => Ok(Some(Response::list(
                super::keys_below(st, "metadata/", "", req.operation, req.data).await?,
            ))),
            Route::Detailed => self.detailed(st, &path, req.operation, req.data).await,
            Route::Metadata => match req.operation {
                List | Scan => {
                    let dir = dir_of(&path);
                    let keys =
                        super::keys_below(st, "metadata/", &dir, req.operation, req.data).await?;
                    Ok(Some(Response::list(keys)))
                }
                Read => Ok(self
                    .read_meta(st, &path)
                    .await?
                    .map(|m| Response::data(m.api()))),
                Delete => self.metadata_delete(st, &path).await.map(|_| None),
                Patch => self
                    .metadata_write(st, &path, req.data, true)
                    .await
                    .map(|_| None),
                _ => self
                    .metadata_write(st, &path, req.data, false)
                    .await
                    .map(|_| None),
            },
            Route::Subkeys => {
                let depth = Fields::new(req.data).int("depth")?.unwrap_or(0).max(0) as u64;
                let Some(r) = self.read(st, &path, req.data).await? else {
                    return Ok(None);
                };
                if r.status.is_some() {
                    return Ok(Some(r));
                }
                let d = r.data.unwrap_or_default();
                Ok(Some(Response::data(obj(json!({
                    "subkeys": subkeys(d.get("data").unwrap_or(&Value::Null), depth, 0),
                    "metadata": d.get("metadata").cloned().unwrap_or(Value::Null),
                })))))
            }
        }
    }

    /// Publishes the change a successful write, patch or delete made, with
    /// the key's versions after it (Vault's kv-v2 event types).
    async fn announce(&self, req: &EngineRequest<'_>) {
        let Ok(m) = self.paths.route(req.operation, req.path) else {
            return;
        };
        let path = m.param("path");
        let data = format!("data/{path}");
        let (kind, at) = match (m.route, req.operation) {
            (Route::Config, _) => {
                req.storage
                    .publish("kv-v2/config-write", "config", None, &[]);
                return;
            }
            (Route::Data, Patch) => ("kv-v2/data-patch", data.clone()),
            (Route::Data, Delete) => ("kv-v2/data-delete", data.clone()),
            (Route::Data, _) => ("kv-v2/data-write", data.clone()),
            (Route::Delete, _) => ("kv-v2/delete", format!("delete/{path}")),
            (Route::Undelete, _) => ("kv-v2/undelete", format!("undelete/{path}")),
            (Route::Destroy, _) => ("kv-v2/destroy", format!("destroy/{path}")),
            (Route::Metadata, Delete) => ("kv-v2/metadata-delete", format!("metadata/{path}")),
            (Route::Metadata, Patch) => ("kv-v2/metadata-patch", format!("metadata/{path}")),
            (Route::Metadata, _) => ("kv-v2/metadata-write", format!("metadata/{path}")),
            _ => return,
        };
        let mut extra = Vec::new();
        if let Ok(Some(meta)) = self.read_meta(req.storage, path).await {
            extra.push(("current_version", meta.current_version.to_string()));
            extra.push(("oldest_version", meta.oldest_version.to_string()));
        }
        if matches!(m.route, Route::Delete | Route::Undelete | Route::Destroy)
            && let Ok(v) = versions_param(req.data)
        {
            let v: Vec<String> = v.iter().map(u64::to_string).collect();
            extra.push(("versions", v.join(",")));
        }
        req.storage.publish(kind, &at, Some(&data), &extra);
    }
}

#[async_trait]
impl Backend for KvV2 {
    async fn invalidate(&self, key: &str) {
        if let Some(path) = key.strip_prefix("metadata/") {
            // Under the key's lock: a fill in progress finishes first.
            let _g = self.lock(path).lock().await;
            self.remember(path, None);
        }
    }

    async fn leak_reindex(&self, st: &StorageView) -> Result<(), LogicalError> {
        let Some(leak) = st.leak() else {
            return Ok(());
        };
        for path in super::every_key(st, "metadata/").await? {
            let _g = self.lock(&path).lock().await;
            let Some(meta) = self.locked_meta(st, &path).await? else {
                continue;
            };
            if let Some((_, _, value)) = Self::current_value(&meta, st, &path).await? {
                leak.set_json(LeakKind::Kv, &path, &value);
            }
        }
        Ok(())
    }

    async fn leak_confirm(
        &self,
        st: &StorageView,
        kind: LeakKind,
        name: &str,
        print: &Print,
    ) -> Result<Vec<LeakMatch>, LogicalError> {
        let (Some(leak), LeakKind::Kv) = (st.leak(), kind) else {
            return Ok(Vec::new());
        };
        let Some(meta) = self.read_meta(st, name).await? else {
            return Ok(Vec::new());
        };
        let Some((n, deleted, value)) = Self::current_value(&meta, st, name).await? else {
            return Ok(Vec::new());
        };
        Ok(leak
            .field_in_json(&value, print)
            .map(|field| super::kv_match(name, field, 2, Some(n), deleted))
            .into_iter()
            .collect())
    }

    fn help(&self) -> coffer_core::paths::MountHelp {
        coffer_core::paths::MountHelp {
            description: "The KV version 2 engine: versioned values under data/, their metadata (versions kept, check-and-set, custom metadata) under metadata/, soft delete with undelete, destroy, and subkeys.",
            paths: self.paths.docs(),
        }
    }

    async fn handle(&self, req: EngineRequest<'_>) -> Result<Option<Response>, LogicalError> {
        let out = self.serve(&req).await?;
        if matches!(req.operation, Create | Update | Patch | Delete) {
            self.announce(&req).await;
        }
        Ok(out)
    }

    async fn exists(
        &self,
        path: &str,
        storage: &StorageView,
    ) -> Result<Option<bool>, LogicalError> {
        // As Vault: only data/ and metadata/ tell create from update (by the
        // key's metadata); writes elsewhere (delete/, undelete/, config) are updates.
        let Some(key) = path
            .strip_prefix("data/")
            .or_else(|| path.strip_prefix("metadata/"))
        else {
            return Ok(None);
        };
        Ok(Some(storage.get(&meta_key(key)).await?.is_some()))
    }

    async fn retune(
        &self,
        next: &MountEntry,
        _current: &StorageView,
        _fresh: &StorageView,
    ) -> Result<Retune, LogicalError> {
        match super::version_of(next) {
            "2" => Ok(Retune::InPlace),
            _ => Err(bad("cannot downgrade mount from version 2")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_and_merge_patch() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1800), "30m0s");
        assert_eq!(go_duration(12319), "3h25m19s");
        assert_eq!(go_duration(3600), "1h0m0s");
        let mut v = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch(&mut v, &json!({"a": null, "b": {"c": 9}, "e": [1]}));
        assert_eq!(v, json!({"b": {"c": 9, "d": 3}, "e": [1]}));
        assert_eq!(
            subkeys(&json!({"a": 1, "b": {"c": 2}}), 0, 0),
            json!({"a": null, "b": {"c": null}})
        );
        assert_eq!(
            subkeys(&json!({"a": 1, "b": {"c": 2}}), 1, 0),
            json!({"a": null, "b": null})
        );
    }
}
