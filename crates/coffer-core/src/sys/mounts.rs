//! `sys/mounts`: list, enable, read, disable and tune secret engines.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{obj, top_level};
use crate::core::{Active, Core, Mounted};
use crate::fields::Fields;
use crate::logical::{LogicalError, Operation, Request, Response};
use crate::mounts::{
    MOUNT_TABLE_PATH, MountEntry, PROTECTED_PREFIXES, normalize_mount_path, system_mount,
};

impl Core {
    pub(crate) fn list_mounts(&self, active: &Active) -> Result<Response, LogicalError> {
        let mounts = self.mounts(active)?;
        let mut data = Map::new();
        for m in mounts.iter() {
            data.insert(m.entry.path.clone(), Value::Object(m.entry.to_api()));
        }
        let sys = system_mount();
        data.insert(sys.path.clone(), Value::Object(sys.to_api()));
        Ok(top_level(Response::data(data)))
    }

    pub(crate) async fn mount_op(
        &self,
        active: &Active,
        req: &Request,
        raw_path: &str,
    ) -> Result<Option<Response>, LogicalError> {
        let (path, tune) = match raw_path.trim_end_matches('/').strip_suffix("/tune") {
            Some(p) => (normalize_mount_path(p), true),
            None => (normalize_mount_path(raw_path), false),
        };
        match (req.operation, tune) {
            (Operation::Read, false) => self.read_mount(active, &path).map(Some),
            (Operation::Read, true) => self.read_tune(active, &path).map(Some),
            (op, false) if op.is_write() => self
                .enable_mount(active, &path, &req.data)
                .await
                .map(|_| None),
            (op, true) if op.is_write() => self
                .tune_mount(active, &path, &req.data)
                .await
                .map(|_| None),
            (Operation::Delete, false) => self.disable_mount(active, &path).await.map(|_| None),
            _ => Err(LogicalError::UnsupportedOperation),
        }
    }

    fn mount_entry(&self, active: &Active, path: &str) -> Result<MountEntry, LogicalError> {
        if path == "sys/" {
            return Ok(system_mount());
        }
        self.mounts(active)?
            .iter()
            .find(|m| m.entry.path == path)
            .map(|m| m.entry.clone())
            .ok_or_else(|| LogicalError::BadRequest(format!("no mount at {path:?}")))
    }

    fn read_mount(&self, active: &Active, path: &str) -> Result<Response, LogicalError> {
        Ok(top_level(Response::data(
            self.mount_entry(active, path)?.to_api(),
        )))
    }

    fn read_tune(&self, active: &Active, path: &str) -> Result<Response, LogicalError> {
        let e = self.mount_entry(active, path)?;
        let eff = |v: u64, sys: u64| if v == 0 { sys } else { v };
        let mut data = obj(json!({
            "default_lease_ttl": eff(e.config.default_lease_ttl, self.config.default_lease_ttl),
            "max_lease_ttl": eff(e.config.max_lease_ttl, self.config.max_lease_ttl),
            "force_no_cache": e.config.force_no_cache,
            "description": e.description,
        }));
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
    ) -> Result<(), LogicalError> {
        let f = Fields::new(data);
        let kind = f.str("type")?.filter(|t| !t.is_empty()).ok_or_else(|| {
            LogicalError::BadRequest(
                "field \"type\" is required: the engine type to mount, e.g. kv".into(),
            )
        })?;
        let kind = match kind.as_str() {
            "generic" => "kv".to_string(),
            _ => kind,
        };
        if path == "/" {
            return Err(LogicalError::BadRequest(
                "mount path must not be empty".into(),
            ));
        }
        if let Some(p) = PROTECTED_PREFIXES.iter().find(|p| path.starts_with(**p)) {
            return Err(LogicalError::BadRequest(format!(
                "cannot mount {path:?}: the {p:?} prefix is reserved"
            )));
        }
        if self.engines.get(&kind).is_none() {
            return Err(LogicalError::BadRequest(format!(
                "unknown backend type: {kind:?}"
            )));
        }
        let mut entry = MountEntry::new(path, &kind);
        entry.description = f.str("description")?.unwrap_or_default();
        entry.local = f.bool("local")?.unwrap_or(false);
        entry.seal_wrap = f.bool("seal_wrap")?.unwrap_or(false);
        entry.external_entropy_access = f.bool("external_entropy_access")?.unwrap_or(false);
        if let Some(cfg) = f.object("config")? {
            apply_config(&mut entry, cfg)?;
        }
        entry.options = f.str_map("options")?.filter(|o| !o.is_empty());
        let _guard = self.mount_lock.lock().await;
        let current = self.mounts(active)?;
        if let Some(clash) = current
            .iter()
            .find(|m| m.entry.path.starts_with(path) || path.starts_with(m.entry.path.as_str()))
        {
            return Err(LogicalError::BadRequest(format!(
                "path is already in use at {}",
                clash.entry.path
            )));
        }
        let mounted = self.instantiate(entry)?;
        let mut next: Vec<Mounted> = current.iter().map(clone_mounted).collect();
        next.push(mounted);
        self.commit_mounts(active, next).await?;
        tracing::info!(path, kind, "mounted secret engine");
        Ok(())
    }

    async fn disable_mount(&self, active: &Active, path: &str) -> Result<(), LogicalError> {
        if PROTECTED_PREFIXES.iter().any(|p| path.starts_with(*p)) {
            return Err(LogicalError::BadRequest(format!("cannot unmount {path:?}")));
        }
        let _guard = self.mount_lock.lock().await;
        let current = self.mounts(active)?;
        let Some(gone) = current.iter().find(|m| m.entry.path == path) else {
            // Vault answers 204 for a path with nothing mounted.
            return Ok(());
        };
        let prefix = gone.entry.view_prefix();
        let next: Vec<Mounted> = current
            .iter()
            .filter(|m| m.entry.path != path)
            .map(clone_mounted)
            .collect();
        self.commit_mounts(active, next).await?;
        self.clear_prefix(&prefix).await?;
        tracing::info!(path, "unmounted secret engine");
        Ok(())
    }

    async fn tune_mount(
        &self,
        active: &Active,
        path: &str,
        data: &Map<String, Value>,
    ) -> Result<(), LogicalError> {
        let _guard = self.mount_lock.lock().await;
        let current = self.mounts(active)?;
        let Some(idx) = current.iter().position(|m| m.entry.path == path) else {
            return Err(LogicalError::BadRequest(format!("no mount at {path:?}")));
        };
        let mut entry = current[idx].entry.clone();
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
        let mut next: Vec<Mounted> = current.iter().map(clone_mounted).collect();
        next[idx] = self.instantiate(entry)?;
        self.commit_mounts(active, next).await
    }

    async fn commit_mounts(&self, active: &Active, next: Vec<Mounted>) -> Result<(), LogicalError> {
        let entries: Vec<&MountEntry> = next.iter().map(|m| &m.entry).collect();
        let bytes =
            serde_json::to_vec(&entries).map_err(|e| LogicalError::Internal(e.to_string()))?;
        self.barrier.put(MOUNT_TABLE_PATH, &bytes).await?;
        let mut slot = active
            .mounts
            .write()
            .map_err(|_| LogicalError::Internal("mount table lock poisoned".into()))?;
        *slot = Arc::new(next);
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

fn clone_mounted(m: &Mounted) -> Mounted {
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
