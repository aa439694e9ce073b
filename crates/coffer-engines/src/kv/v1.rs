//! KV version 1: the value at a path is the JSON object last written there.

use async_trait::async_trait;
use coffer_core::backend::{Backend, EngineRequest, Retune, StorageView};
use coffer_core::fields::parse_duration;
use coffer_core::leak::{LeakKind, LeakMatch, Print};
use coffer_core::logical::Operation::*;
use coffer_core::mounts::MountEntry;
use coffer_core::paths::{PathSpec, PathTable};
use coffer_core::{LogicalError, Response};
use serde_json::{Map, Value};
use tokio::sync::RwLock;

#[derive(Clone, Copy)]
enum Route {
    Root,
    Entry,
}

static PATHS: &[PathSpec<Route>] = &[
    PathSpec {
        pattern: "",
        operations: &[List, Scan],
        route: Route::Root,
        help: "List the top level of the mount.",
    },
    PathSpec {
        pattern: "{*path}",
        operations: &[Read, Update, Delete, List, Scan],
        route: Route::Entry,
        help: "Read, write, delete or list secrets; a folder lists with a trailing slash.",
    },
];

/// The KV version 1 engine.
pub struct KvV1 {
    paths: PathTable<Route>,
    /// Requests hold it shared; an upgrade to version 2 holds it exclusively
    /// while copying, then marks this instance retired (`true`).
    retired: RwLock<bool>,
    /// A write and the leak index update it makes happen in the same order
    /// for one key.
    keys: coffer_core::stripes::Stripes,
}

impl KvV1 {
    /// A new engine instance.
    pub fn new() -> Result<Self, LogicalError> {
        Ok(Self {
            paths: PathTable::new(PATHS).map_err(LogicalError::Internal)?,
            retired: RwLock::new(false),
            keys: coffer_core::stripes::Stripes::default(),
        })
    }
}

/// The advisory TTL stored with a secret under `ttl` (or the legacy `lease`).
fn secret_ttl(data: &Map<String, Value>) -> Option<u64> {
    let v = data.get("ttl").or_else(|| data.get("lease"))?;
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => parse_duration(s).ok(),
        _ => None,
    }
}

#[async_trait]
impl Backend for KvV1 {
    fn help(&self) -> coffer_core::paths::MountHelp {
        coffer_core::paths::MountHelp {
            description: "The KV version 1 engine: one value per path, stored encrypted behind the barrier, no versions. Write replaces the whole value, read returns it, list shows the keys under a folder.",
            paths: self.paths.docs(),
        }
    }

    async fn handle(&self, req: EngineRequest<'_>) -> Result<Option<Response>, LogicalError> {
        let m = self.paths.route(req.operation, req.path)?;
        let retired = self.retired.read().await;
        if *retired {
            return Err(LogicalError::Unavailable(
                "this mount was just upgraded to KV version 2; retry the request".into(),
            ));
        }
        let key = match m.route {
            Route::Root => "",
            Route::Entry => m.param("path"),
        };
        match req.operation {
            List | Scan => {
                let dir = if key.is_empty() || key.ends_with('/') {
                    key.to_owned()
                } else {
                    format!("{key}/")
                };
                let keys =
                    super::keys_below(req.storage, "", &dir, req.operation, req.data).await?;
                Ok(Some(Response::list(keys)))
            }
            Read => {
                let Some(data) = req.storage.get_json::<Map<String, Value>>(key).await? else {
                    return Ok(None);
                };
                let lease_duration = secret_ttl(&data).unwrap_or(req.default_lease_ttl);
                let mut resp = Response::data(data);
                resp.lease_duration = lease_duration;
                Ok(Some(resp))
            }
            Create | Update => {
                if key.ends_with('/') {
                    return Err(LogicalError::BadRequest(
                        "cannot write to a path ending in '/'".into(),
                    ));
                }
                if req.data.is_empty() {
                    return Err(LogicalError::BadRequest("missing data fields".into()));
                }
                if let Some(v) = req.data.get("ttl").filter(|v| !v.is_null())
                    && secret_ttl(req.data).is_none()
                {
                    return Err(LogicalError::BadRequest(format!(
                        "\"ttl\" must be a duration such as 3600 or \"1h\", got {v}"
                    )));
                }
                let _g = self.keys.lock(key).await;
                req.storage.put_json(key, req.data).await?;
                if let Some(leak) = req.storage.leak() {
                    leak.set_map(LeakKind::Kv, key, req.data);
                }
                req.storage.publish("kv-v1/write", key, Some(key), &[]);
                Ok(None)
            }
            Delete => {
                let _g = self.keys.lock(key).await;
                req.storage.delete(key).await?;
                if let Some(leak) = req.storage.leak() {
                    leak.remove(LeakKind::Kv, key);
                }
                req.storage.publish("kv-v1/delete", key, Some(key), &[]);
                Ok(None)
            }
            Patch => Err(LogicalError::UnsupportedOperation),
        }
    }

    async fn leak_reindex(&self, st: &StorageView) -> Result<(), LogicalError> {
        let Some(leak) = st.leak() else {
            return Ok(());
        };
        for key in super::every_key(st, "").await? {
            let _g = self.keys.lock(&key).await;
            if let Some(v) = st.get_json::<Value>(&key).await? {
                leak.set_json(LeakKind::Kv, &key, &v);
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
        let Some(v) = st.get_json::<Value>(name).await? else {
            return Ok(Vec::new());
        };
        Ok(leak
            .field_in_json(&v, print)
            .map(|field| super::kv_match(name, field, 1, None, false))
            .into_iter()
            .collect())
    }

    async fn exists(
        &self,
        path: &str,
        storage: &StorageView,
    ) -> Result<Option<bool>, LogicalError> {
        Ok(Some(storage.get(path).await?.is_some()))
    }

    async fn retune(
        &self,
        next: &MountEntry,
        current: &StorageView,
        fresh: &StorageView,
    ) -> Result<Retune, LogicalError> {
        if super::version_of(next) != "2" {
            return Ok(Retune::InPlace);
        }
        // Wait for requests in flight, and keep new ones out while copying.
        let mut retired = self.retired.write().await;
        let copied = super::upgrade::v1_to_v2(current, fresh).await?;
        *retired = true;
        Ok(Retune::Migrated {
            warning: format!(
                "Upgraded mount from version 1 to version 2 ({copied} secrets, each now at \
                 version 1); read and write them under data/, list them under metadata/."
            ),
        })
    }
}
