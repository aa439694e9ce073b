//! `sys/audit`, `sys/audit/:path`, `sys/audit-hash/:path` and coffer's
//! `sys/audit-head/:path`.

use serde_json::{Map, Value, json};

use super::{obj, top_level};
use crate::audit::DeviceSpec;
use crate::audit::chain;
use crate::core::{Active, Core};
use crate::fields::Fields;
use crate::logical::{LogicalError, Operation, Request, Response};

impl Core {
    pub(super) fn audit_list(&self) -> Response {
        let mut data = Map::new();
        for d in self.audit.list() {
            data.insert(
                d.path.clone(),
                json!({
                    "path": d.path,
                    "type": d.kind,
                    "description": d.description,
                    "options": d.options,
                    "local": d.local,
                }),
            );
        }
        top_level(Response::data(data))
    }

    pub(super) async fn audit_op(
        &self,
        req: &Request,
        path: &str,
    ) -> Result<Option<Response>, LogicalError> {
        if req.operation == Operation::Delete {
            self.audit.disable(&self.barrier, path).await?;
            return Ok(None);
        }
        let f = Fields::new(&req.data);
        let kind = f
            .str("type")?
            .ok_or_else(|| LogicalError::BadRequest("type is required".into()))?;
        let mut options = f.str_map("options")?.unwrap_or_default();
        // hvac and older clients name the file `path`.
        if !options.contains_key("file_path")
            && let Some(p) = options.remove("path")
        {
            options.insert("file_path".into(), p);
        }
        let spec = DeviceSpec {
            path: path.to_owned(),
            kind,
            description: f.str("description")?.unwrap_or_default(),
            options,
            local: f.bool("local")?.unwrap_or(false),
        };
        self.audit.enable(&self.barrier, spec).await?;
        Ok(None)
    }

    pub(super) fn audit_hash(&self, req: &Request, path: &str) -> Result<Response, LogicalError> {
        let input = Fields::new(&req.data)
            .str("input")?
            .ok_or_else(|| LogicalError::BadRequest("input is required".into()))?;
        let hash = self.audit.hash(path, &input)?;
        Ok(top_level(Response::data(obj(json!({ "hash": hash })))))
    }

    pub(super) async fn audit_head(
        &self,
        active: &Active,
        path: &str,
    ) -> Result<Response, LogicalError> {
        let crate::audit::DeviceHead {
            head,
            device,
            first_seq,
            key,
        } = self.audit.head(path)?;
        let message = chain::head_message(&device, first_seq, &head);
        let mut data = obj(json!({
            "device": device,
            "sequence": head.seq,
            "hash": head.hash,
            "message": message,
        }));
        if let Some(first) = first_seq {
            data.insert("file_first_sequence".into(), first.into());
        }
        if let Some((mount, key)) = key {
            let signature = self.sign_head(active, &mount, &key, &message).await?;
            data.insert("signature".into(), Value::String(signature));
            data.insert("key".into(), Value::String(format!("{mount}/{key}")));
        }
        Ok(Response::data(data))
    }

    /// Signs a chain head with the device's `head_key`, which must name a key
    /// of a transit mount: the engine's signing is called directly, never a
    /// request path, so the option cannot be turned into a write elsewhere.
    async fn sign_head(
        &self,
        active: &Active,
        mount: &str,
        key: &str,
        message: &str,
    ) -> Result<String, LogicalError> {
        let mounts = self.mounts(active, crate::mounts::MountKind::Secret)?;
        let wanted = format!("{}/", mount.trim_end_matches('/'));
        let m = mounts
            .iter()
            .find(|m| m.entry.path == wanted)
            .ok_or_else(|| {
                LogicalError::BadRequest(format!(
                    "the audit device's head_key {mount}/{key} names mount {wanted:?}, which is not mounted"
                ))
            })?;
        if m.entry.kind != "transit" {
            return Err(LogicalError::BadRequest(format!(
                "the audit device's head_key {mount}/{key} must name a transit key; {wanted:?} is a {:?} mount",
                m.entry.kind
            )));
        }
        m.backend
            .sign_for_core(&m.view, key, message.as_bytes())
            .await
            .map_err(|e| {
                LogicalError::BadRequest(format!(
                    "signing the chain head with transit key {mount}/{key} failed: {e}"
                ))
            })
    }
}
