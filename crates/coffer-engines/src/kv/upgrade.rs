//! Upgrading a KV version 1 mount to version 2: every value becomes version 1
//! of the same key. The copy goes into a fresh view, so a v1 key that looks
//! like part of the v2 layout (`config`, `metadata/...`) cannot collide.

use coffer_core::LogicalError;
use coffer_core::backend::StorageView;
use coffer_core::barrier::BarrierOp;
use time::OffsetDateTime;

use super::v2::import_v1;

/// Keys per storage batch: large enough to amortise fsync, small enough to
/// keep a batch's memory modest.
const BATCH_KEYS: usize = 256;

/// Copies every v1 value in `from` into `into` as a v2 secret; returns how many.
pub(crate) async fn v1_to_v2(from: &StorageView, into: &StorageView) -> Result<u64, LogicalError> {
    let at = OffsetDateTime::now_utc();
    let mut copied = 0u64;
    let mut ops: Vec<BarrierOp> = Vec::with_capacity(BATCH_KEYS * 2);
    let mut folders = vec![String::new()];
    while let Some(folder) = folders.pop() {
        for child in from.list(&folder).await? {
            let key = format!("{folder}{child}");
            if child.ends_with('/') {
                folders.push(key);
                continue;
            }
            // A key listed a moment ago is gone only if deleted concurrently,
            // which the v1 engine's gate rules out; skip it all the same.
            let Some(value) = from.get(&key).await? else {
                continue;
            };
            ops.extend(import_v1(&key, value.expose().to_vec(), at)?);
            copied += 1;
            if ops.len() >= BATCH_KEYS * 2 {
                into.batch(std::mem::take(&mut ops)).await?;
            }
        }
    }
    if !ops.is_empty() {
        into.batch(ops).await?;
    }
    Ok(copied)
}
