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
