//! `sys/audit`, `sys/audit/:path`, `sys/audit-hash/:path` and coffer's
//! `sys/audit-head/:path`.

use serde_json::{Map, Value, json};

use base64::Engine;

use super::{b64, obj, top_level};
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
        let crate::audit::DeviceHead { head, device, key } = self.audit.head(path)?;
        let message = chain::head_message(&device, &head);
        let mut data = obj(json!({
            "device": device,
            "sequence": head.seq,
            "hash": head.hash,
            "message": message,
        }));
        if let Some((mount, key)) = key {
            // Signed inside the server, as if by a root token: the device's
            // configuration chose the key.
            let mut sign = Request::new(Operation::Update, format!("{mount}/sign/{key}"));
            sign.data = obj(json!({ "input": b64().encode(message.as_bytes()) }));
            let signed = self.route(active, &sign, None).await.map_err(|e| {
                LogicalError::BadRequest(format!(
                    "signing the chain head with transit key {mount}/{key} failed: {e}"
                ))
            })?;
            let signature = signed
                .and_then(|r| r.data)
                .and_then(|d| d.get("signature").cloned())
                .ok_or_else(|| {
                    LogicalError::Internal(format!(
                        "transit key {mount}/{key} returned no signature"
                    ))
                })?;
            data.insert("signature".into(), signature);
            data.insert("key".into(), Value::String(format!("{mount}/{key}")));
        }
        Ok(Response::data(data))
    }
}
