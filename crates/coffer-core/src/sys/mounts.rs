//! `sys/mounts` and `sys/auth`: list, enable, read, disable and tune secret
//! engines and auth methods. Both tables work the same way.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{obj, top_level};
use crate::backend::{Retune, StorageView};
use crate::barrier::BarrierOp;
use crate::core::{Active, Core, Mounted};
use crate::fields::Fields;
use crate::logical::{LogicalError, Operation, Request, Response};
use crate::mounts::{
    MountEntry, MountKind, PROTECTED_PREFIXES, normalize_mount_path, system_mount, token_auth_mount,
};

/// The entry as listed; auth methods also show their token type.
fn listed(entry: &MountEntry, kind: MountKind) -> Value {
    let mut v = entry.to_api();
    if kind == MountKind::Auth
        && let Some(Value::Object(c)) = v.get_mut("config")
    {
        c.insert("token_type".into(), json!("default-service"));
    }
    Value::Object(v)
}

/// The built-in mount of a table; the token store's carries its tuned TTLs.
fn builtin(active: &Active, kind: MountKind) -> MountEntry {
    match kind {
        MountKind::Secret => system_mount(),
        MountKind::Auth => {
            let mut m = token_auth_mount();
            if let Ok(c) = active.token_mount.read() {
                m.config = c.clone();
            }
            m
        }
    }
}

const TOKEN_MOUNT_PATH: &str = "core/token-mount";
/// Storage views of removed or migrated mounts whose data is still being cleared.
const RETIRED_VIEWS: &str = "core/retired-views";

impl Core {
    pub(crate) fn list_mounts(
        &self,
        active: &Active,
        kind: MountKind,
    ) -> Result<Response, LogicalError> {
        let mut data = Map::new();
        for m in self.mounts(active, kind)?.iter() {
            data.insert(m.entry.path.clone(), listed(&m.entry, kind));
        }
        let b = builtin(active, kind);
        data.insert(b.path.clone(), listed(&b, kind));
        Ok(top_level(Response::data(data)))
    }

    pub(crate) async fn mount_op(
        &self,
        active: &Active,
        req: &Request,
        raw_path: &str,
        kind: MountKind,
    ) -> Result<Option<Response>, LogicalError> {
        let (path, tune) = match raw_path.trim_end_matches('/').strip_suffix("/tune") {
            Some(p) => (normalize_mount_path(p), true),
            None => (normalize_mount_path(raw_path), false),
        };
        match (req.operation, tune) {
            (Operation::Read, false) => {
                let e = self.mount_entry(active, &path, kind)?;
                Ok(Some(top_level(Response::data(obj(listed(&e, kind))))))
            }
            (Operation::Read, true) => self.read_tune(active, &path, kind).map(Some),
            (op, false) if op.is_write() => self
                .enable_mount(active, &path, &req.data, kind)
                .await
                .map(|_| None),
            (op, true) if op.is_write() => {
                let warnings = self.tune_mount(active, &path, &req.data, kind).await?;
                if warnings.is_empty() {
                    return Ok(None);
                }
                Ok(Some(Response {
                    warnings,
                    ..Response::default()
                }))
            }
            (Operation::Delete, false) => {
                self.disable_mount(active, &path, kind).await.map(|_| None)
            }
            _ => Err(LogicalError::UnsupportedOperation),
        }
    }

    fn mount_entry(
        &self,
        active: &Active,
        path: &str,
        kind: MountKind,
    ) -> Result<MountEntry, LogicalError> {
        let b = builtin(active, kind);
        if path == b.path {
            return Ok(b);
        }
        self.mounts(active, kind)?
            .iter()
            .find(|m| m.entry.path == path)
            .map(|m| m.entry.clone())
            .ok_or_else(|| LogicalError::BadRequest(format!("no mount at {path:?}")))
    }

    fn read_tune(
        &self,
        active: &Active,
        path: &str,
        kind: MountKind,
    ) -> Result<Response, LogicalError> {
        let e = self.mount_entry(active, path, kind)?;
        let eff = |v: u64, sys: u64| if v == 0 { sys } else { v };
        let mut data = obj(json!({
            "default_lease_ttl": eff(e.config.default_lease_ttl, self.config.default_lease_ttl),
            "max_lease_ttl": eff(e.config.max_lease_ttl, self.config.max_lease_ttl),
            "force_no_cache": e.config.force_no_cache,
            "description": e.description,
        }));
        if kind == MountKind::Auth {
            data.insert("token_type".into(), json!("default-service"));
        }
        if let Some(o) = &e.options {
            data.insert("options".into(), json!(o));
        }
        Ok(top_level(Response::data(data)))
    }

    async fn enable_mount(
        &self,
        active: &Active,
        path: &str,
        data: &Map<String, Value>,
        kind: MountKind,
    ) -> Result<(), LogicalError> {
        let f = Fields::new(data);
        let kind_name = f.str("type")?.filter(|t| !t.is_empty()).ok_or_else(|| {
            LogicalError::BadRequest(
                "field \"type\" is required: the engine type to mount, e.g. kv".into(),
            )
        })?;
        // Vault's aliases: `generic` is KV, `kv-v2` is KV with options.version=2.
        let (type_name, forced_version) = match (kind, kind_name.as_str()) {
            (MountKind::Secret, "generic") => ("kv".to_string(), None),
            (MountKind::Secret, "kv-v2") => ("kv".to_string(), Some("2")),
            _ => (kind_name, None),
        };
        if path == "/" {
            return Err(LogicalError::BadRequest(
                "mount path must not be empty".into(),
            ));
        }
        let reserved: &[&str] = match kind {
            MountKind::Secret => PROTECTED_PREFIXES,
            MountKind::Auth => &["token/"],
        };
        if let Some(p) = reserved.iter().find(|p| path.starts_with(**p)) {
            return Err(LogicalError::BadRequest(format!(
                "cannot mount {path:?}: the {p:?} prefix is reserved"
            )));
        }
        let mut entry = match kind {
            MountKind::Secret => MountEntry::new(path, &type_name),
            MountKind::Auth => MountEntry::new_auth(path, &type_name),
        };
        entry.description = f.str("description")?.unwrap_or_default();
        entry.local = f.bool("local")?.unwrap_or(false);
        entry.seal_wrap = f.bool("seal_wrap")?.unwrap_or(false);
        entry.external_entropy_access = f.bool("external_entropy_access")?.unwrap_or(false);
        if let Some(cfg) = f.object("config")? {
            apply_config(&mut entry, cfg)?;
        }
        entry.options = f.str_map("options")?.filter(|o| !o.is_empty());
        if let Some(v) = forced_version {
            entry
                .options
                .get_or_insert_with(Default::default)
                .insert("version".into(), v.into());
        }
        let _guard = self.mount_lock.lock().await;
        let current = self.mounts(active, kind)?;
        if let Some(clash) = current
            .iter()
            .find(|m| m.entry.path.starts_with(path) || path.starts_with(m.entry.path.as_str()))
        {
            return Err(LogicalError::BadRequest(format!(
                "path is already in use at {}",
                clash.entry.path
            )));
        }
        let mounted = self.instantiate(entry, kind)?;
        let mut next: Vec<Mounted> = current.iter().map(clone_mounted).collect();
        next.push(mounted);
        self.commit_mounts(active, next, kind, None).await?;
        tracing::info!(path, r#type = type_name, ?kind, "mounted");
        Ok(())
    }

    async fn disable_mount(
        &self,
        active: &Active,
        path: &str,
        kind: MountKind,
    ) -> Result<(), LogicalError> {
        let reserved = match kind {
            MountKind::Secret => PROTECTED_PREFIXES.iter().any(|p| path.starts_with(*p)),
            MountKind::Auth => path == "token/",
        };
        if reserved {
            return Err(LogicalError::BadRequest(format!("cannot unmount {path:?}")));
        }
        let _guard = self.mount_lock.lock().await;
        let current = self.mounts(active, kind)?;
        let Some(gone) = current.iter().find(|m| m.entry.path == path) else {
            // Vault answers 204 for a path with nothing mounted.
            return Ok(());
        };
        if kind == MountKind::Secret {
            // Its secrets die with it; one that cannot be revoked keeps the mount.
            active
                .expiration
                .revoke_prefix(path, false)
                .await
                .map_err(|e| {
                    LogicalError::BadRequest(format!(
                        "failed to revoke the leases of {path}: {e}; the mount stays (revoke-force the prefix to drop them)"
                    ))
                })?;
        }
        let prefix = gone.entry.view_prefix(kind);
        let next: Vec<Mounted> = current
            .iter()
            .filter(|m| m.entry.path != path)
            .map(clone_mounted)
            .collect();
        let mut retired = self.retired_views().await?;
        retired.push(prefix.clone());
        self.commit_mounts(active, next, kind, Some(retired))
            .await?;
        self.clear_retired(&prefix).await?;
        self.leak.remove_mount(&gone.entry.uuid);
        if kind == MountKind::Auth {
            // Tokens issued through the method die with it.
            let n = active
                .tokens
                .revoke_created_under(&format!("auth/{path}"))
                .await?;
            tracing::info!(path, revoked = n, "auth method disabled");
        }
        tracing::info!(path, ?kind, "unmounted");
        Ok(())
    }

    /// Applies a tune; answers the warnings to report (from a storage migration).
    async fn tune_mount(
        &self,
        active: &Active,
        path: &str,
        data: &Map<String, Value>,
        kind: MountKind,
    ) -> Result<Vec<String>, LogicalError> {
        let _guard = self.mount_lock.lock().await;
        if kind == MountKind::Auth && path == "token/" {
            // The token store is built in: only its lease settings can be tuned.
            let mut entry = builtin(active, kind);
            apply_config(&mut entry, data)?;
            let bytes = serde_json::to_vec(&entry.config)
                .map_err(|e| LogicalError::Internal(e.to_string()))?;
            self.barrier.put(TOKEN_MOUNT_PATH, &bytes).await?;
            *active
                .token_mount
                .write()
                .map_err(|_| LogicalError::Internal("token mount lock poisoned".into()))? =
                entry.config;
            return Ok(Vec::new());
        }
        let current = self.mounts(active, kind)?;
        let Some(idx) = current.iter().position(|m| m.entry.path == path) else {
            return Err(LogicalError::BadRequest(format!("no mount at {path:?}")));
        };
        let running = &current[idx];
        let mut entry = running.entry.clone();
        apply_config(&mut entry, data)?;
        let f = Fields::new(data);
        if let Some(d) = f.str("description")? {
            entry.description = d;
        }
        if let Some(opts) = f.str_map("options")? {
            let mut merged = entry.options.clone().unwrap_or_default();
            merged.extend(opts);
            entry.options = Some(merged);
        }
        let mut warnings = Vec::new();
        let mut retired = None;
        if entry.options != running.entry.options {
            // Validate the new options before any data moves.
            self.instantiate(entry.clone(), kind)?;
            let mut moved = entry.clone();
            moved.uuid = uuid::Uuid::new_v4().to_string();
            let fresh_prefix = moved.view_prefix(kind);
            // Recorded first: if we stop mid-copy, the next unseal clears the copy.
            let mut views = self.retired_views().await?;
            views.push(fresh_prefix.clone());
            self.put_retired_views(&views).await?;
            let fresh = StorageView::new(self.barrier.clone(), fresh_prefix.clone());
            match running.backend.retune(&entry, &running.view, &fresh).await {
                Ok(Retune::InPlace) => self.clear_retired(&fresh_prefix).await?,
                Ok(Retune::Migrated { warning }) => {
                    tracing::info!(path, "mount storage migrated for new options");
                    warnings.push(warning);
                    let old = running.entry.view_prefix(kind);
                    views.retain(|p| *p != fresh_prefix);
                    views.push(old.clone());
                    retired = Some((old, views));
                    entry = moved;
                }
                Err(e) => {
                    // Anything half-copied into the fresh view is dropped.
                    if let Err(clear) = self.clear_retired(&fresh_prefix).await {
                        tracing::warn!(error = %clear, "clearing a failed migration's copy; retried at unseal");
                    }
                    return Err(e);
                }
            }
        }
        let mut next: Vec<Mounted> = current.iter().map(clone_mounted).collect();
        next[idx] = if entry.options == running.entry.options {
            // Same engine instance: its per-key locks and caches must stay
            // the only ones in front of this storage while requests run.
            Mounted {
                entry: entry.clone(),
                backend: running.backend.clone(),
                view: running.view.clone(),
            }
        } else {
            self.instantiate(entry.clone(), kind)?
        };
        let (old_view, views) = match retired {
            Some((old, views)) => (Some(old), Some(views)),
            None => (None, None),
        };
        if let Err(e) = self.commit_mounts(active, next, kind, views).await {
            if old_view.is_some() {
                // The old engine instance retired itself: serve the old view
                // through a new one, and drop the copy.
                let mut back: Vec<Mounted> = current.iter().map(clone_mounted).collect();
                back[idx] = self.instantiate(running.entry.clone(), kind)?;
                self.install_table(active, back, kind)?;
                self.clear_retired(&entry.view_prefix(kind)).await?;
            }
            return Err(e);
        }
        if let Some(prefix) = old_view {
            self.clear_retired(&prefix).await?;
            // The data now lives under the new uuid: index it there.
            self.leak.remove_mount(&running.entry.uuid);
            if let Some(m) = self.mounts(active, kind)?.get(idx) {
                m.backend.leak_reindex(&m.view).await?;
            }
        }
        Ok(warnings)
    }

    /// Persists and installs a mount table. A new list of `retired` views is
    /// written in the same batch, so a view taken out of use is cleared even
    /// if we stop before [`Core::clear_retired`] finishes.
    pub(super) async fn commit_mounts(
        &self,
        active: &Active,
        next: Vec<Mounted>,
        kind: MountKind,
        retired: Option<Vec<String>>,
    ) -> Result<(), LogicalError> {
        let entries: Vec<&MountEntry> = next.iter().map(|m| &m.entry).collect();
        let bytes =
            serde_json::to_vec(&entries).map_err(|e| LogicalError::Internal(e.to_string()))?;
        let mut ops = vec![BarrierOp::Put(kind.table_path().to_owned(), bytes)];
        if let Some(list) = retired {
            let bytes =
                serde_json::to_vec(&list).map_err(|e| LogicalError::Internal(e.to_string()))?;
            ops.push(BarrierOp::Put(RETIRED_VIEWS.to_owned(), bytes));
        }
        self.barrier.batch(ops).await?;
        self.install_table(active, next, kind)
    }

    /// Swaps the in-memory mount table.
    fn install_table(
        &self,
        active: &Active,
        next: Vec<Mounted>,
        kind: MountKind,
    ) -> Result<(), LogicalError> {
        let table = match kind {
            MountKind::Secret => &active.mounts,
            MountKind::Auth => &active.auth_mounts,
        };
        let mut slot = table
            .write()
            .map_err(|_| LogicalError::Internal("mount table lock poisoned".into()))?;
        *slot = Arc::new(next);
        Ok(())
    }

    async fn retired_views(&self) -> Result<Vec<String>, LogicalError> {
        match self.barrier.get(RETIRED_VIEWS).await? {
            None => Ok(Vec::new()),
            Some(b) => serde_json::from_slice(b.expose())
                .map_err(|e| LogicalError::Internal(format!("{RETIRED_VIEWS} is corrupt: {e}"))),
        }
    }

    async fn put_retired_views(&self, list: &[String]) -> Result<(), LogicalError> {
        if list.is_empty() {
            self.barrier.delete(RETIRED_VIEWS).await?;
        } else {
            let bytes =
                serde_json::to_vec(list).map_err(|e| LogicalError::Internal(e.to_string()))?;
            self.barrier.put(RETIRED_VIEWS, &bytes).await?;
        }
        Ok(())
    }

    /// Clears a retired view and takes it off the record.
    pub(crate) async fn clear_retired(&self, prefix: &str) -> Result<(), LogicalError> {
        self.clear_prefix(prefix).await?;
        let mut list = self.retired_views().await?;
        list.retain(|p| p != prefix);
        self.put_retired_views(&list).await
    }

    /// Finishes clearing views retired before a restart.
    pub(crate) async fn clear_all_retired(&self) -> Result<(), LogicalError> {
        for prefix in self.retired_views().await? {
            self.clear_retired(&prefix).await?;
            tracing::info!(prefix, "cleared a retired mount view");
        }
        Ok(())
    }

    /// Deletes every entry under `prefix`, depth first.
    async fn clear_prefix(&self, prefix: &str) -> Result<(), LogicalError> {
        let mut stack = vec![prefix.to_owned()];
        while let Some(p) = stack.pop() {
            for child in self.barrier.list(&p).await? {
                let full = format!("{p}{child}");
                if child.ends_with('/') {
                    stack.push(full);
                } else {
                    self.barrier.delete(&full).await?;
                }
            }
        }
        Ok(())
    }
}

pub(super) fn clone_mounted(m: &Mounted) -> Mounted {
    Mounted {
        entry: m.entry.clone(),
        backend: m.backend.clone(),
        view: m.view.clone(),
    }
}

fn apply_config(entry: &mut MountEntry, cfg: &Map<String, Value>) -> Result<(), LogicalError> {
    let f = Fields::new(cfg);
    if let Some(d) = f.duration("default_lease_ttl")? {
        entry.config.default_lease_ttl = d;
    }
    if let Some(m) = f.duration("max_lease_ttl")? {
        entry.config.max_lease_ttl = m;
    }
    if let Some(b) = f.bool("force_no_cache")? {
        entry.config.force_no_cache = b;
    }
    let (d, m) = (entry.config.default_lease_ttl, entry.config.max_lease_ttl);
    if d != 0 && m != 0 && d > m {
        return Err(LogicalError::BadRequest(format!(
            "default lease TTL ({d}s) is greater than max lease TTL ({m}s)"
        )));
    }
    Ok(())
}
