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
