//! The key/value engine. Version 1 stores one JSON object per path.

mod v1;
mod v2;

use std::sync::Arc;

use coffer_core::LogicalError;
use coffer_core::backend::Backend;
use coffer_core::mounts::MountEntry;

/// Builds the KV engine for a mount, choosing the version from `options.version`.
pub fn factory(entry: &MountEntry) -> Result<Arc<dyn Backend>, LogicalError> {
    let version = entry
        .options
        .as_ref()
        .and_then(|o| o.get("version"))
        .map(String::as_str)
        .unwrap_or("1");
    match version {
        "" | "1" => Ok(Arc::new(v1::KvV1::new()?)),
        "2" => Ok(Arc::new(v2::KvV2::new()?)),
        v => Err(LogicalError::BadRequest(format!(
            "kv: unknown version {v:?}; use \"1\" or \"2\""
        ))),
    }
}
