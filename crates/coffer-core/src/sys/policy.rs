//! `sys/policy`, `sys/policies/acl` and `sys/capabilities*`.

use serde_json::{Map, Value, json};

use super::{obj, top_level};
use crate::core::{Active, Core};
use crate::fields::Fields;
use crate::logical::{LogicalError, Operation, Request, Response};
use crate::token::Token;

/// Which of the two policy APIs: the old one names the text `rules`, the new one `policy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum PolicyApi {
    Legacy,
    Acl,
}

impl Core {
    pub(crate) async fn policy_list(
        &self,
        active: &Active,
        api: PolicyApi,
    ) -> Result<Response, LogicalError> {
        let mut names = active.policies.list().await?;
        names.push("root".into());
        Ok(match api {
            PolicyApi::Legacy => top_level(Response::data(obj(
                json!({ "keys": names, "policies": names }),
            ))),
            PolicyApi::Acl => Response::list(names),
        })
    }

    pub(crate) async fn policy_op(
        &self,
        active: &Active,
        req: &Request,
        name: &str,
        api: PolicyApi,
    ) -> Result<Option<Response>, LogicalError> {
        match req.operation {
            Operation::Read => {
                let Some(p) = active.policies.get(name).await? else {
                    return Ok(None);
                };
                let text_key = if api == PolicyApi::Legacy {
                    "rules"
                } else {
                    "policy"
                };
                let mut data = Map::new();
                data.insert("name".into(), json!(p.name));
                data.insert(text_key.into(), json!(p.raw));
                let resp = Response::data(data);
                Ok(Some(if api == PolicyApi::Legacy {
                    top_level(resp)
                } else {
                    resp
                }))
            }
            Operation::Delete => {
                active.policies.delete(name).await?;
                Ok(None)
            }
            op if op.is_write() => {
                let f = Fields::new(&req.data);
                let text = f.str("policy")?.or(f.str("rules")?).ok_or_else(|| {
                    LogicalError::BadRequest("'policy' parameter not supplied or empty".into())
                })?;
                active.policies.put(name, &text).await?;
                Ok(None)
            }
            _ => Err(LogicalError::UnsupportedOperation),
        }
    }

    /// `sys/capabilities*`: capabilities of a token (by id, accessor, or the caller) on paths.
    pub(crate) async fn capabilities(
        &self,
        active: &Active,
        req: &Request,
        caller: Option<&Token>,
        which: &str,
    ) -> Result<Response, LogicalError> {
        let f = Fields::new(&req.data);
        let target = match which {
            "self" => caller.cloned(),
            "accessor" => {
                let acc = f
                    .str("accessor")?
                    .ok_or_else(|| LogicalError::BadRequest("missing accessor".into()))?;
                Some(
                    active
                        .tokens
                        .lookup_accessor(&acc)
                        .await?
                        .ok_or_else(|| LogicalError::BadRequest("invalid accessor".into()))?,
                )
            }
            _ => {
                let t = f
                    .str("token")?
                    .ok_or_else(|| LogicalError::BadRequest("missing token".into()))?;
                Some(
                    active
                        .tokens
                        .lookup(&t)
                        .await?
                        .ok_or_else(|| LogicalError::BadRequest("invalid token".into()))?,
                )
            }
        };
        let target = target.ok_or(LogicalError::PermissionDenied)?;
        let paths = match f.str_list("paths")? {
            Some(p) if !p.is_empty() => p,
            _ => f
                .str("path")?
                .map(|p| vec![p])
                .ok_or_else(|| LogicalError::BadRequest("missing paths".into()))?,
        };
        let acl = active.policies.acl(&target.entry.policies).await?;
        let mut data = Map::new();
        for p in &paths {
            let path = p.trim_start_matches('/');
            data.insert(p.clone(), json!(acl.capabilities(path)));
        }
        if paths.len() == 1 {
            let only = data.get(&paths[0]).cloned().unwrap_or(Value::Null);
            data.insert("capabilities".into(), only);
        }
        Ok(top_level(Response::data(data)))
    }
}
