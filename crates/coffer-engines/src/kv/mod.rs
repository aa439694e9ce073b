//! The key/value engine. Version 1 stores one JSON object per path.

mod upgrade;
mod v1;
mod v2;

use std::sync::Arc;

use coffer_core::LogicalError;
use coffer_core::backend::Backend;
use coffer_core::mounts::MountEntry;

/// Builds the KV engine for a mount, choosing the version from `options.version`.
pub fn factory(entry: &MountEntry) -> Result<Arc<dyn Backend>, LogicalError> {
    match version_of(entry) {
        "1" => Ok(Arc::new(v1::KvV1::new()?)),
        "2" => Ok(Arc::new(v2::KvV2::new()?)),
        v => Err(LogicalError::BadRequest(format!(
            "invalid version provided: {v:?}; kv mounts take version \"1\" or \"2\""
        ))),
    }
}

/// The KV version a mount entry asks for; no option (or an empty one) means 1.
fn version_of(entry: &MountEntry) -> &str {
    match entry.options.as_ref().and_then(|o| o.get("version")) {
        None => "1",
        Some(v) if v.is_empty() => "1",
        Some(v) => v,
    }
}

/// Keys under `dir` (`""` or ending in `/`) of `st`, relative to `dir`: a
/// list gives the children (folders end in `/`), a scan every key below,
/// breadth first (OpenBao's SCAN order). `prefix` is the storage prefix of
/// the key space (`metadata/` for version 2).
pub(crate) async fn keys_below(
    st: &coffer_core::backend::StorageView,
    prefix: &str,
    dir: &str,
    op: coffer_core::logical::Operation,
    data: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<String>, LogicalError> {
    let mut keys = st.list(&format!("{prefix}{dir}")).await?;
    if op == coffer_core::logical::Operation::Scan {
        let mut out = Vec::new();
        let mut queue = std::collections::VecDeque::from([String::new()]);
        let mut first = Some(keys);
        while let Some(sub) = queue.pop_front() {
            let entries = match first.take() {
                Some(k) => k,
                None => st.list(&format!("{prefix}{dir}{sub}")).await?,
            };
            for e in entries {
                if e.ends_with('/') {
                    queue.push_back(format!("{sub}{e}"));
                } else {
                    out.push(format!("{sub}{e}"));
                }
            }
        }
        return Ok(out);
    }
    // OpenBao's pagination of a list: keys after `after`, at most `limit`.
    let f = coffer_core::fields::Fields::new(data);
    if let Some(after) = f.str("after")?.filter(|a| !a.is_empty()) {
        keys.retain(|k| *k > after);
    }
    if let Some(limit) = f.int("limit")? {
        if limit < 0 {
            return Err(LogicalError::BadRequest(
                "limit must be zero or more".into(),
            ));
        }
        if limit > 0 {
            keys.truncate(limit as usize);
        }
    }
    Ok(keys)
}

/// Every key below `prefix` (`metadata/` for version 2), recursively.
pub(crate) async fn every_key(
    st: &coffer_core::backend::StorageView,
    prefix: &str,
) -> Result<Vec<String>, LogicalError> {
    let none = serde_json::Map::new();
    keys_below(st, prefix, "", coffer_core::logical::Operation::Scan, &none).await
}

/// How `sys/leak/check` reports a KV value: the secret, its version and
/// the field that holds it (never the value).
pub(crate) fn kv_match(
    path: &str,
    field: String,
    kv_version: u8,
    version: Option<u64>,
    deleted: bool,
) -> coffer_core::leak::LeakMatch {
    let mut details = serde_json::Map::new();
    details.insert("field".into(), field.into());
    details.insert("kv_version".into(), kv_version.into());
    if let Some(v) = version {
        details.insert("version".into(), v.into());
    }
    if deleted {
        details.insert("deleted".into(), true.into());
    }
    coffer_core::leak::LeakMatch {
        kind: "kv",
        name: path.to_owned(),
        details,
    }
}
