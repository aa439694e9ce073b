//! `sys/policies/password/:name`: password policies engines generate from.

use serde_json::json;

use super::obj;
use crate::core::Core;
use crate::fields::Fields;
use crate::logical::{LogicalError, Operation, Request, Response};
use crate::password_policy::{POLICY_PREFIX, PasswordPolicy};

impl Core {
    pub(crate) async fn password_policy_op(
        &self,
        req: &Request,
        name: &str,
        generate: bool,
    ) -> Result<Option<Response>, LogicalError> {
        if name.is_empty() && req.operation == Operation::List {
            let keys = self.barrier.list(POLICY_PREFIX).await?;
            return Ok((!keys.is_empty()).then(|| Response::list(keys)));
        }
        if name.is_empty() || name.contains('/') {
            return Err(LogicalError::BadRequest("missing policy name".into()));
        }
        let key = format!("{POLICY_PREFIX}{name}");
        let stored = || async {
            match self.barrier.get(&key).await? {
                None => Ok(None),
                Some(b) => serde_json::from_slice::<PasswordPolicy>(b.expose())
                    .map(Some)
                    .map_err(|e| {
                        LogicalError::Internal(format!("password policy {name:?} is corrupt: {e}"))
                    }),
            }
        };
        if generate {
            let p = stored().await?.ok_or_else(|| {
                LogicalError::BadRequest(format!("policy {name:?} does not exist"))
            })?;
            let pw = crate::heavy::run("password generation", move || p.generate()).await??;
            return Ok(Some(Response::data(obj(json!({"password": pw.expose()})))));
        }
        match req.operation {
            Operation::Read => Ok(stored()
                .await?
                .map(|p| Response::data(obj(json!({"policy": p.raw}))))),
            Operation::Delete => {
                self.barrier.delete(&key).await?;
                Ok(None)
            }
            _ => {
                let raw = Fields::new(&req.data)
                    .str("policy")?
                    .ok_or_else(|| LogicalError::BadRequest("missing policy".into()))?;
                // hvac and the Vault CLI may send the policy base64-encoded.
                let text = {
                    use base64::Engine as _;
                    base64::engine::general_purpose::STANDARD
                        .decode(raw.trim())
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                        .filter(|t| t.contains("length"))
                        .unwrap_or(raw)
                };
                let p = PasswordPolicy::parse(&text)?;
                let bytes =
                    serde_json::to_vec(&p).map_err(|e| LogicalError::Internal(e.to_string()))?;
                self.barrier.put(&key, &bytes).await?;
                Ok(None)
            }
        }
    }
}
