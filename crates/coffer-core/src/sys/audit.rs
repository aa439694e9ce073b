//! `sys/audit`, `sys/audit/:path`, `sys/audit-hash/:path` and coffer's
//! `sys/audit-head/:path`.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

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

    /// `sys/audit-search`: completed requests on a path from every device
    /// that can be read back, newest first.
    pub(super) async fn audit_search(&self, req: &Request) -> Result<Response, LogicalError> {
        use crate::audit::search::{Found, Query, scan};
        let f = Fields::new(&req.data);
        let path = f
            .str("path")?
            .map(|p| p.trim_start_matches('/').to_owned())
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                LogicalError::BadRequest(
                    "path is required: the API path to search for, e.g. secret/data/app (a trailing * matches every path it begins)"
                        .into(),
                )
            })?;
        let time = |k: &str| -> Result<Option<OffsetDateTime>, LogicalError> {
            match f.str(k)?.filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => OffsetDateTime::parse(&s, &Rfc3339).map(Some).map_err(|_| {
                    LogicalError::BadRequest(format!(
                        "{k} must be an RFC 3339 time such as 2026-12-01T00:00:00Z (got {s:?})"
                    ))
                }),
            }
        };
        let operations = match f.str_list("operations")? {
            Some(ops) if ops.iter().any(|o| o == "*") => Vec::new(),
            Some(ops) if !ops.is_empty() => ops,
            _ => vec!["read".to_owned()],
        };
        let limit = match f.int("limit")? {
            None => 1000,
            Some(n) if (1..=10_000).contains(&n) => n as usize,
            Some(n) => {
                return Err(LogicalError::BadRequest(format!(
                    "limit must be between 1 and 10000 (got {n})"
                )));
            }
        };
        let q = Query {
            path,
            operations,
            since: time("since")?,
            until: time("until")?,
            limit,
        };
        let (readers, unreadable_devices) = self.audit.readers();
        let mut searched: Vec<String> = readers.iter().map(|(d, _, _)| d.clone()).collect();
        searched.sort();
        let query = q.clone();
        let (found, failures) = tokio::task::spawn_blocking(move || {
            let mut found = Found::default();
            let mut failures = Vec::new();
            for (device, prefix, reader) in readers {
                let result = reader.and_then(|r| {
                    scan(
                        std::io::BufReader::new(r),
                        &device,
                        &prefix,
                        &query,
                        &mut found,
                    )
                    .map_err(|e| e.to_string())
                });
                if let Err(e) = result {
                    failures.push(format!("{device}: {e}"));
                }
            }
            (found, failures)
        })
        .await
        .map_err(|e| LogicalError::Internal(e.to_string()))?;
        let mut hits: Vec<_> = found.hits.into_iter().collect();
        // Several devices record the same request: keep one, newest first.
        hits.sort_by(|a, b| a.request_id.cmp(&b.request_id).then(a.time.cmp(&b.time)));
        hits.dedup_by(|a, b| !a.request_id.is_empty() && a.request_id == b.request_id);
        hits.sort_by(|a, b| b.time.cmp(&a.time));
        hits.truncate(q.limit);
        let mut warnings = Vec::new();
        if searched.is_empty() {
            warnings.push(
                "no enabled audit device can be read back (only file devices writing to a file can): nothing was searched"
                    .to_owned(),
            );
        }
        if !unreadable_devices.is_empty() {
            warnings.push(format!(
                "not searched (they cannot be read back): {}",
                unreadable_devices.join(", ")
            ));
        }
        warnings.extend(failures);
        let mut resp = Response::data(obj(json!({
            "entries": hits,
            "devices": searched,
            "truncated": found.dropped > 0,
            "lines_read": found.lines,
            "unreadable_lines": found.unreadable,
        })));
        resp.warnings = warnings;
        Ok(resp)
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
