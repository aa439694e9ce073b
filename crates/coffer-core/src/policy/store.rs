//! Named policies behind the barrier, plus the built-in `root` and `default`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::{Acl, Policy, parse_policy};
use crate::barrier::Barrier;
use crate::logical::LogicalError;

pub(crate) const PREFIX: &str = "sys/policy/";

/// The `default` policy written at first unseal; operators may edit it.
pub const DEFAULT_POLICY: &str = r#"# Lets a token look up, renew and revoke itself, see its own capabilities,
# and use the wrapping and hashing helpers.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}

path "auth/token/revoke-self" {
  capabilities = ["update"]
}

path "sys/capabilities-self" {
  capabilities = ["update"]
}

path "sys/leases/renew" {
  capabilities = ["update"]
}

path "sys/leases/lookup" {
  capabilities = ["update"]
}

path "sys/wrapping/wrap" {
  capabilities = ["update"]
}

path "sys/wrapping/lookup" {
  capabilities = ["update"]
}

path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}

path "sys/tools/hash" {
  capabilities = ["update"]
}

path "sys/tools/hash/*" {
  capabilities = ["update"]
}
"#;

/// The built-in policy of wrapping tokens: they can only unwrap.
pub const RESPONSE_WRAPPING: &str = "response-wrapping";
const RESPONSE_WRAPPING_POLICY: &str = r#"path "sys/wrapping/unwrap" { capabilities = ["update"] }
path "sys/wrapping/lookup" { capabilities = ["update"] }
"#;

#[derive(Serialize, Deserialize)]
struct Stored {
    name: String,
    raw: String,
}

/// Lower-cases, trims, de-duplicates and sorts policy names.
pub fn normalize_policy_names(names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = names
        .iter()
        .map(|n| n.trim().to_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Policies by name, with compiled ACLs cached per policy set.
///
/// A cache fill that read storage before a change finished must not land
/// after it (a removed grant would live on in the cache): every change bumps
/// `generation` while holding both cache locks, and a fill is kept only if
/// the generation it started under is still current. Changes themselves are
/// serialised so storage and cache end in the same order.
pub struct PolicyStore {
    barrier: Arc<Barrier>,
    policies: RwLock<HashMap<String, Arc<Policy>>>,
    acls: RwLock<HashMap<Vec<String>, Arc<Acl>>>,
    generation: AtomicU64,
    writes: tokio::sync::Mutex<()>,
}

fn poisoned() -> LogicalError {
    LogicalError::Internal("policy cache lock poisoned".into())
}

impl PolicyStore {
    /// Loads the store, writing the `default` policy if it is missing.
    pub async fn load(barrier: Arc<Barrier>) -> Result<Self, LogicalError> {
        let store = Self {
            barrier,
            policies: RwLock::new(HashMap::new()),
            acls: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            writes: tokio::sync::Mutex::new(()),
        };
        if store.get("default").await?.is_none() {
            store.put("default", DEFAULT_POLICY).await?;
        }
        Ok(store)
    }

    fn root() -> Policy {
        Policy {
            name: "root".into(),
            raw: String::new(),
            rules: Vec::new(),
        }
    }

    /// Normalises a policy name, refusing anything that would become `root`.
    pub fn check_name(name: &str) -> Result<String, LogicalError> {
        let n = name.trim().to_lowercase();
        if n.is_empty() {
            return Err(LogicalError::BadRequest("policy name is missing".into()));
        }
        if n.contains(['/', '\0']) || n.chars().any(char::is_control) {
            return Err(LogicalError::BadRequest(format!(
                "policy name {name:?} has characters that are not allowed"
            )));
        }
        Ok(n)
    }

    /// A policy by name (`root` is built in and has no text).
    pub async fn get(&self, name: &str) -> Result<Option<Arc<Policy>>, LogicalError> {
        let name = name.trim().to_lowercase();
        if name == "root" {
            return Ok(Some(Arc::new(Self::root())));
        }
        if name == RESPONSE_WRAPPING {
            let p = parse_policy(RESPONSE_WRAPPING, RESPONSE_WRAPPING_POLICY)
                .map_err(|e| LogicalError::Internal(e.to_string()))?;
            return Ok(Some(Arc::new(p)));
        }
        if let Some(p) = self.policies.read().map_err(|_| poisoned())?.get(&name) {
            return Ok(Some(p.clone()));
        }
        let generation = self.generation.load(Ordering::Acquire);
        let Some(bytes) = self.barrier.get(&format!("{PREFIX}{name}")).await? else {
            return Ok(None);
        };
        let stored: Stored = serde_json::from_slice(bytes.expose())
            .map_err(|e| LogicalError::Internal(format!("policy {name:?} is corrupt: {e}")))?;
        let p = Arc::new(
            parse_policy(&stored.name, &stored.raw)
                .map_err(|e| LogicalError::Internal(format!("stored policy {name:?}: {e}")))?,
        );
        let mut cache = self.policies.write().map_err(|_| poisoned())?;
        if self.generation.load(Ordering::Acquire) == generation {
            cache.insert(name, p.clone());
        }
        Ok(Some(p))
    }

    /// Applies a change to the caches: both locks held, generation bumped.
    fn changed(&self, name: String, policy: Option<Arc<Policy>>) -> Result<(), LogicalError> {
        let mut policies = self.policies.write().map_err(|_| poisoned())?;
        let mut acls = self.acls.write().map_err(|_| poisoned())?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        match policy {
            Some(p) => policies.insert(name, p),
            None => policies.remove(&name),
        };
        acls.clear();
        Ok(())
    }

    /// Forgets a policy another node changed (an HA standby's copy).
    pub(crate) fn invalidate(&self, name: &str) {
        if let Err(e) = self.changed(name.to_owned(), None) {
            tracing::warn!(error = %e, "dropping a cached policy failed");
        }
    }

    /// Parses and stores a policy (text may be base64-encoded, as Vault allows).
    pub async fn put(&self, name: &str, text: &str) -> Result<(), LogicalError> {
        let name = Self::check_name(name)?;
        if name == "root" || name == RESPONSE_WRAPPING {
            return Err(LogicalError::BadRequest(format!(
                "cannot update the {name:?} policy"
            )));
        }
        let raw = decode_maybe_base64(text);
        let policy =
            parse_policy(&name, &raw).map_err(|e| LogicalError::BadRequest(e.to_string()))?;
        let bytes = serde_json::to_vec(&Stored {
            name: name.clone(),
            raw,
        })
        .map_err(|e| LogicalError::Internal(e.to_string()))?;
        let _w = self.writes.lock().await;
        self.barrier.put(&format!("{PREFIX}{name}"), &bytes).await?;
        self.changed(name, Some(Arc::new(policy)))
    }

    /// Deletes a policy; `root` and `default` cannot be deleted.
    pub async fn delete(&self, name: &str) -> Result<(), LogicalError> {
        let name = Self::check_name(name)?;
        if name == "root" || name == "default" {
            return Err(LogicalError::BadRequest(format!(
                "cannot delete the {name:?} policy"
            )));
        }
        let _w = self.writes.lock().await;
        self.barrier.delete(&format!("{PREFIX}{name}")).await?;
        self.changed(name, None)
    }

    /// Stored policy names, sorted (without `root`).
    pub async fn list(&self) -> Result<Vec<String>, LogicalError> {
        let mut names = self.barrier.list(PREFIX).await?;
        names.retain(|n| !n.ends_with('/'));
        names.sort();
        Ok(names)
    }

    /// The compiled ACL for a normalised set of policy names; unknown names grant nothing.
    pub async fn acl(&self, names: &[String]) -> Result<Arc<Acl>, LogicalError> {
        if let Some(a) = self.acls.read().map_err(|_| poisoned())?.get(names) {
            return Ok(a.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let mut found = Vec::with_capacity(names.len());
        for n in names {
            if let Some(p) = self.get(n).await? {
                found.push(p);
            }
        }
        let refs: Vec<&Policy> = found.iter().map(|p| p.as_ref()).collect();
        let acl = Arc::new(Acl::new(&refs));
        let mut cache = self.acls.write().map_err(|_| poisoned())?;
        if self.generation.load(Ordering::Acquire) == generation {
            cache.insert(names.to_vec(), acl.clone());
        }
        Ok(acl)
    }
}

fn decode_maybe_base64(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() || t.contains(['{', '"', ' ', '\n']) {
        return text.to_owned();
    }
    base64::engine::general_purpose::STANDARD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| text.to_owned())
}
