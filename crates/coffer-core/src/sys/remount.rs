//! `sys/remount` (`bao secrets move`, `bao auth move`): a mount takes a new
//! path. Its data stays where it is (storage views are named by the mount's
//! uuid, not its path), its leases get ids under the new path, and tokens
//! issued by a moved auth method name the new path. The move is finished
//! when the request answers; `sys/remount/status/<id>` reports it, as the
//! CLI polls for it.

use std::collections::VecDeque;

use serde_json::{Value, json};

use super::mounts::clone_mounted;
use super::{obj, top_level};
use crate::core::{Active, Core, Mounted};
use crate::fields::Fields;
use crate::logical::{LogicalError, Response};
use crate::mounts::{MountKind, PROTECTED_PREFIXES, normalize_mount_path};

/// Finished moves kept for `sys/remount/status`.
const KEPT: usize = 256;

/// Recent moves by migration id.
#[derive(Default)]
pub(crate) struct Remounts(std::sync::Mutex<VecDeque<(String, Value)>>);

impl Remounts {
    fn record(&self, id: &str, info: Value) {
        if let Ok(mut q) = self.0.lock() {
            if q.len() >= KEPT {
                q.pop_front();
            }
            q.push_back((id.to_owned(), info));
        }
    }

    fn get(&self, id: &str) -> Option<Value> {
        let q = self.0.lock().ok()?;
        q.iter().find(|(k, _)| k == id).map(|(_, v)| v.clone())
    }
}

fn bad(msg: impl Into<String>) -> LogicalError {
    LogicalError::BadRequest(msg.into())
}

/// Which table a `from`/`to` path names, and the path inside it.
fn split(p: &str) -> (MountKind, String) {
    let p = normalize_mount_path(p);
    match p.strip_prefix("auth/") {
        Some(rest) => (MountKind::Auth, rest.to_owned()),
        None => (MountKind::Secret, p),
    }
}

impl Core {
    pub(crate) async fn remount(
        &self,
        active: &Active,
        data: &serde_json::Map<String, Value>,
    ) -> Result<Response, LogicalError> {
        let f = Fields::new(data);
        let from = f.str("from")?.filter(|s| !s.trim_matches('/').is_empty());
        let to = f.str("to")?.filter(|s| !s.trim_matches('/').is_empty());
        let (Some(from), Some(to)) = (from, to) else {
            return Err(bad("both \"from\" and \"to\" are required"));
        };
        let (kind, from) = split(&from);
        let (to_kind, to) = split(&to);
        if kind != to_kind {
            return Err(bad(
                "cannot move between secret engines and auth methods (auth/ paths move only to auth/ paths)",
            ));
        }
        let shown = |p: &str| match kind {
            MountKind::Secret => p.to_owned(),
            MountKind::Auth => format!("auth/{p}"),
        };
        let reserved: &[&str] = match kind {
            MountKind::Secret => PROTECTED_PREFIXES,
            MountKind::Auth => &["token/"],
        };
        if reserved.iter().any(|r| from.starts_with(r)) {
            return Err(bad(format!("cannot remount {:?}", shown(&from))));
        }
        if reserved.iter().any(|r| to.starts_with(r)) {
            return Err(bad(format!("cannot remount to destination {}", shown(&to))));
        }
        let _guard = self.mount_lock.lock().await;
        let current = self.mounts(active, kind)?;
        let Some(idx) = current.iter().position(|m| m.entry.path == from) else {
            return Err(bad(format!("no matching mount at {:?}", shown(&from))));
        };
        if let Some(clash) = current.iter().find(|m| {
            m.entry.path.starts_with(to.as_str()) || to.starts_with(m.entry.path.as_str())
        }) {
            return Err(bad(format!(
                "path already in use at {:?}",
                shown(&clash.entry.path)
            )));
        }
        let mut next: Vec<Mounted> = current.iter().map(clone_mounted).collect();
        // The same engine instance and storage view: only the path changes.
        next[idx].entry.path = to.clone();
        let events = next[idx].view.events().cloned();
        self.commit_mounts(active, next, kind, None).await?;
        if let Some(e) = events {
            e.set_mount_path(&to);
        }
        let moved = match kind {
            MountKind::Secret => {
                // A second pass takes leases that requests routed to the
                // old path before the table changed registered meanwhile.
                let mut n = active.expiration.move_prefix(&from, &to).await?;
                n += active.expiration.move_prefix(&from, &to).await?;
                n
            }
            MountKind::Auth => {
                active
                    .tokens
                    .repath_created_under(&format!("auth/{from}"), &format!("auth/{to}"))
                    .await?
            }
        };
        let id = uuid::Uuid::new_v4().to_string();
        tracing::info!(migration_id = %id, from = %shown(&from), to = %shown(&to), moved, "mount moved");
        self.remounts.record(
            &id,
            json!({
                "source_mount": shown(&from),
                "target_mount": shown(&to),
                "status": "success",
            }),
        );
        let what = match kind {
            MountKind::Secret => "leases",
            MountKind::Auth => "tokens",
        };
        let mut r = top_level(Response::data(obj(json!({ "migration_id": id }))));
        r.warnings.push(format!(
            "Mount moved from {} to {}; {moved} {what} now name the new path. Policies name paths: grant the new one.",
            shown(&from),
            shown(&to)
        ));
        Ok(r)
    }

    pub(crate) fn remount_status(&self, id: &str) -> Result<Option<Response>, LogicalError> {
        Ok(self.remounts.get(id).map(|info| {
            Response::data(obj(json!({
                "migration_id": id,
                "migration_info": info,
            })))
        }))
    }
}
