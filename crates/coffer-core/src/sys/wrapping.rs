//! Response wrapping: a single-use token stands in for a response until it is
//! unwrapped. The response is kept behind the barrier under the token's hash.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::core::{Active, Core};
use crate::fields::Fields;
use crate::logical::{LogicalError, Operation, Request, Response};
use crate::policy::RESPONSE_WRAPPING;
use crate::token::{Token, TokenEntry, random_base62};

const PREFIX: &str = "sys/wrapping/resp/";

#[derive(Serialize, Deserialize)]
struct Wrapped {
    creation_path: String,
    creation_time: String,
    creation_ttl: u64,
    data: Option<Map<String, Value>>,
    auth: Option<Value>,
    lease_id: String,
    lease_duration: u64,
    renewable: bool,
    warnings: Vec<String>,
}

fn invalid() -> LogicalError {
    LogicalError::BadRequest("wrapping token is not valid or does not exist".into())
}

fn is_wrapping(t: &Token) -> bool {
    t.entry.policies.iter().any(|p| p == RESPONSE_WRAPPING)
}

impl Core {
    /// Replaces `resp` by a wrapping token valid for `ttl` seconds.
    pub(crate) async fn wrap_response(
        &self,
        active: &Active,
        path: &str,
        ttl: u64,
        resp: Response,
    ) -> Result<Response, LogicalError> {
        let wrapped_accessor = resp.auth.as_ref().and_then(|a| a.get("accessor")).cloned();
        let w = Wrapped {
            creation_path: path.to_owned(),
            creation_time: OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .map_err(|e| LogicalError::Internal(e.to_string()))?,
            creation_ttl: ttl,
            data: resp.data,
            auth: resp.auth,
            lease_id: resp.lease_id,
            lease_duration: resp.lease_duration,
            renewable: resp.renewable,
            warnings: resp.warnings,
        };
        self.store_wrapped(active, w, wrapped_accessor).await
    }

    async fn store_wrapped(
        &self,
        active: &Active,
        w: Wrapped,
        wrapped_accessor: Option<Value>,
    ) -> Result<Response, LogicalError> {
        let now = crate::clock::now_ms();
        let entry = TokenEntry {
            accessor: random_base62(24)?,
            policies: vec![RESPONSE_WRAPPING.into()],
            path: w.creation_path.clone(),
            display_name: String::new(),
            creation_time: now,
            creation_ttl: w.creation_ttl,
            expire_time: crate::clock::after_secs(now, w.creation_ttl),
            max_expire_time: crate::clock::after_secs(now, w.creation_ttl),
            num_uses: 1,
            orphan: true,
            ..TokenEntry::default()
        };
        let (id, token) = active.tokens.create(&entry).await?;
        let bytes = zeroize::Zeroizing::new(
            serde_json::to_vec(&w).map_err(|e| LogicalError::Internal(e.to_string()))?,
        );
        self.barrier
            .put(&format!("{PREFIX}{}", token.hash), &bytes)
            .await?;
        let mut info = json!({
            "token": id.expose(),
            "accessor": entry.accessor,
            "ttl": w.creation_ttl,
            "creation_time": w.creation_time,
            "creation_path": w.creation_path,
        });
        if let Some(a) = wrapped_accessor {
            info["wrapped_accessor"] = a;
        }
        Ok(Response {
            wrap_info: Some(info),
            ..Response::default()
        })
    }

    /// The wrapping token a request names: the `token` parameter, else the caller.
    async fn wrapping_target(
        &self,
        active: &Active,
        req: &Request,
        caller: Option<&Token>,
    ) -> Result<Token, LogicalError> {
        let param = Fields::new(&req.data)
            .str("token")?
            .filter(|t| !t.is_empty());
        let t = match param {
            Some(id) => active.tokens.lookup(&id).await?.ok_or_else(invalid)?,
            None => caller.cloned().ok_or_else(invalid)?,
        };
        if !is_wrapping(&t) {
            return Err(invalid());
        }
        Ok(t)
    }

    async fn read_wrapped(&self, t: &Token) -> Result<Wrapped, LogicalError> {
        let bytes = self
            .barrier
            .get(&format!("{PREFIX}{}", t.hash))
            .await?
            .ok_or_else(invalid)?;
        serde_json::from_slice(bytes.expose())
            .map_err(|e| LogicalError::Internal(format!("wrapped response is corrupt: {e}")))
    }

    /// Takes the wrapped response and ends the wrapping token. The read and
    /// the delete happen under the token's stripe, so of any number of
    /// concurrent unwraps (or rewraps) exactly one gets the response.
    async fn claim(&self, active: &Active, t: &Token) -> Result<Wrapped, LogicalError> {
        let key = format!("{PREFIX}{}", t.hash);
        let w = {
            let _g = self.wrap_claims.lock(&t.hash).await;
            let w = self.read_wrapped(t).await?;
            self.barrier.delete(&key).await?;
            w
        };
        active.tokens.revoke_tree(&t.hash).await?;
        Ok(w)
    }

    /// `sys/wrapping/{wrap,unwrap,lookup,rewrap}`.
    pub(crate) async fn wrapping_op(
        &self,
        active: &Active,
        req: &Request,
        caller: Option<&Token>,
        op: &str,
    ) -> Result<Response, LogicalError> {
        if req.operation == Operation::Read && op != "lookup" {
            return Err(LogicalError::UnsupportedOperation);
        }
        match op {
            "wrap" => {
                if req.wrap_ttl.is_none_or(|t| t == 0) {
                    return Err(LogicalError::BadRequest(
                        "endpoint requires response wrapping to be used".into(),
                    ));
                }
                // The generic wrapping step turns this into a wrapping token.
                Ok(Response::data(req.data.clone()))
            }
            "unwrap" => {
                let t = self.wrapping_target(active, req, caller).await?;
                let w = self.claim(active, &t).await?;
                Ok(Response {
                    data: w.data,
                    auth: w.auth,
                    lease_id: w.lease_id,
                    lease_duration: w.lease_duration,
                    renewable: w.renewable,
                    warnings: w.warnings,
                    ..Response::default()
                })
            }
            "lookup" => {
                // The token may come in the header (as OpenBao Agent sends
                // it); looking it up never uses it up.
                let t = self.wrapping_target(active, req, caller).await?;
                let w = self.read_wrapped(&t).await?;
                Ok(Response::data(
                    json!({"creation_path": w.creation_path, "creation_time": w.creation_time, "creation_ttl": w.creation_ttl})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                ))
            }
            _ => {
                let t = self.wrapping_target(active, req, caller).await?;
                let creation_time = OffsetDateTime::now_utc()
                    .format(&Rfc3339)
                    .map_err(|e| LogicalError::Internal(e.to_string()))?;
                let mut w = self.claim(active, &t).await?;
                let wrapped_accessor = w.auth.as_ref().and_then(|a| a.get("accessor")).cloned();
                w.creation_time = creation_time;
                self.store_wrapped(active, w, wrapped_accessor).await
            }
        }
    }
}
