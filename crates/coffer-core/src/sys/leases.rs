//! `sys/leases/*` (and Vault's older `sys/renew`, `sys/revoke*` aliases).

use serde_json::{Value, json};

use super::obj;
use crate::core::{Active, Core};
use crate::expiration::lookup_data;
use crate::fields::Fields;
use crate::logical::{LogicalError, Request, Response};

/// Which lease operation a `sys/` path asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LeaseOp {
    Lookup,
    List,
    Renew,
    Revoke,
    RevokePrefix,
    RevokeForce,
    Tidy,
    Count,
    Irrevocable,
}

impl Core {
    pub(crate) async fn lease_op(
        &self,
        active: &Active,
        req: &Request,
        op: LeaseOp,
        param: &str,
    ) -> Result<Option<Response>, LogicalError> {
        let f = Fields::new(&req.data);
        let x = &active.expiration;
        // The body's lease_id wins over the one in the URL, as in Vault.
        let lease_id = || -> Result<String, LogicalError> {
            let id = f.str("lease_id")?.unwrap_or_else(|| param.to_owned());
            if id.is_empty() {
                return Err(LogicalError::BadRequest(
                    "lease_id must be specified".into(),
                ));
            }
            Ok(id)
        };
        match op {
            LeaseOp::Lookup => {
                let id = lease_id()?;
                let e = x
                    .lookup(&id)
                    .await?
                    .ok_or_else(|| LogicalError::BadRequest("invalid lease".into()))?;
                Ok(Some(Response::data(lookup_data(&e))))
            }
            LeaseOp::List => {
                let keys = x.list(param).await?;
                Ok((!keys.is_empty()).then(|| Response::list(keys)))
            }
            LeaseOp::Renew => {
                let id = lease_id()?;
                if id.starts_with("auth/") {
                    return Err(LogicalError::BadRequest(
                        "tokens are renewed through auth/token/renew".into(),
                    ));
                }
                let increment = f.duration("increment")?.unwrap_or(0);
                let (e, warning) = x.renew(&id, increment).await?;
                Ok(Some(Response {
                    lease_id: e.id,
                    lease_duration: e.ttl,
                    renewable: e.renewable,
                    warnings: warning.into_iter().collect(),
                    ..Response::default()
                }))
            }
            LeaseOp::Revoke => {
                let id = lease_id()?;
                if f.bool("sync")?.unwrap_or(true) {
                    x.revoke(&id, false).await?;
                } else {
                    let x = x.clone();
                    tokio::spawn(async move {
                        if let Err(e) = x.revoke(&id, false).await {
                            tracing::warn!(lease = %id, error = %e, "asynchronous lease revocation failed; retrying");
                        }
                    });
                }
                Ok(None)
            }
            LeaseOp::RevokePrefix | LeaseOp::RevokeForce => {
                if param.is_empty() {
                    return Err(LogicalError::BadRequest("prefix must be specified".into()));
                }
                let n = x.revoke_prefix(param, op == LeaseOp::RevokeForce).await?;
                tracing::info!(
                    prefix = param,
                    revoked = n,
                    force = op == LeaseOp::RevokeForce,
                    "leases revoked by prefix"
                );
                Ok(None)
            }
            LeaseOp::Tidy => {
                // Runs before answering (Vault starts it in the background):
                // the answer then says what it did.
                let (removed, revoked) = x.tidy(&active.tokens).await?;
                tracing::info!(removed, revoked, "lease tidy finished");
                Ok(Some(Response {
                    warnings: vec![format!(
                        "Tidy finished: {removed} dangling token index entries removed, {revoked} leases of revoked tokens revoked."
                    )],
                    status: Some(202),
                    ..Response::default()
                }))
            }
            LeaseOp::Count | LeaseOp::Irrevocable => {
                let kind = f.str("type")?.unwrap_or_default();
                let stats = x.stats();
                let irrevocable = x.irrevocable();
                match (op, kind.as_str()) {
                    (LeaseOp::Count, "irrevocable") => Ok(Some(Response::data(obj(json!({
                        "lease_count": irrevocable.len(),
                        "counts": {},
                    }))))),
                    // coffer's own: every lease, and the state of revocation.
                    (LeaseOp::Count, "all") => Ok(Some(Response::data(obj(json!({
                        "lease_count": stats.total,
                        "failing_count": stats.failing.len(),
                        "irrevocable_count": irrevocable.len(),
                        "loaded": stats.loaded,
                        "load_ms": stats.load_ms,
                    }))))),
                    (LeaseOp::Irrevocable, "irrevocable") => {
                        let leases: Vec<Value> = irrevocable
                            .iter()
                            .map(|(id, attempts, error)| {
                                json!({"lease_id": id, "error": error, "revoke_attempts": attempts})
                            })
                            .collect();
                        Ok(Some(Response::data(obj(json!({
                            "lease_count": leases.len(),
                            "leases": leases,
                        })))))
                    }
                    _ => Err(LogicalError::BadRequest(
                        "type must be \"irrevocable\" (or \"all\" for sys/leases/count)".into(),
                    )),
                }
            }
        }
    }
}
