//! Response wrapping: a single-use token stands in for a response until it is
//! unwrapped. The response is kept behind the barrier under the token's hash.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::barrier::BarrierOp;
use crate::core::{Active, Core};
use crate::fields::Fields;
use crate::logical::{LogicalError, Operation, Request, Response};
use crate::policy::RESPONSE_WRAPPING;
use crate::token::{Token, TokenEntry, random_base62};

const PREFIX: &str = "sys/wrapping/resp/";
/// Spent wrapping tokens, by hash, until they would have expired: a second
/// unwrap learns when the first happened (a sign the link leaked).
const USED: &str = "sys/wrapping/used/";
/// The same, grouped by the hour they expire in, so tidy finds old ones
/// without reading every record.
const USED_BY_HOUR: &str = "sys/wrapping/used-by-hour/";
const HOUR_MS: i64 = 3_600_000;

#[derive(Serialize, Deserialize)]
struct Used {
    /// When the token was spent (RFC 3339).
    at: String,
    /// `unwrapped` or `rewrapped`.
    how: String,
    /// When the token would have expired (ms since the epoch).
    expire_ms: i64,
}

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

const INVALID: &str = "wrapping token is not valid or does not exist";

fn invalid() -> LogicalError {
    LogicalError::BadRequest(INVALID.into())
}

fn now_rfc3339() -> Result<String, LogicalError> {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .map_err(|e| LogicalError::Internal(e.to_string()))
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
            creation_time: now_rfc3339()?,
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
        let t = match (param, caller) {
            (Some(id), _) => match active.tokens.lookup(&id).await? {
                Some(t) => t,
                None => return Err(self.spent_wrapping_error(active, &id).await),
            },
            (None, Some(t)) => t.clone(),
            (None, None) => match &req.token {
                Some(id) => return Err(self.spent_wrapping_error(active, id.expose()).await),
                None => return Err(invalid()),
            },
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

    /// The error for a wrapping token that resolves to nothing: Vault's, and
    /// when it was spent if it was (until it would have expired).
    pub(crate) async fn spent_wrapping_error(&self, active: &Active, id: &str) -> LogicalError {
        if id.is_empty() || id.len() > 256 {
            return invalid();
        }
        let hash = active.tokens.hash_of(id);
        let used = match self.barrier.get(&format!("{USED}{hash}")).await {
            Ok(Some(b)) => serde_json::from_slice::<Used>(b.expose()).ok(),
            _ => None,
        };
        match used {
            Some(u) if u.expire_ms > crate::clock::now_ms() => {
                LogicalError::BadRequest(format!("{INVALID}: it was already {} at {}", u.how, u.at))
            }
            _ => invalid(),
        }
    }

    /// Takes the wrapped response and ends the wrapping token. The read and
    /// the delete happen under the token's stripe, so of any number of
    /// concurrent unwraps (or rewraps) exactly one gets the response.
    async fn claim(&self, active: &Active, t: &Token, how: &str) -> Result<Wrapped, LogicalError> {
        let key = format!("{PREFIX}{}", t.hash);
        let used = Used {
            at: now_rfc3339()?,
            how: how.to_owned(),
            expire_ms: t.entry.expire_time,
        };
        let record =
            serde_json::to_vec(&used).map_err(|e| LogicalError::Internal(e.to_string()))?;
        let hour = used.expire_ms.div_euclid(HOUR_MS);
        let w = {
            let _g = self.wrap_claims.lock(&t.hash).await;
            let w = self.read_wrapped(t).await?;
            self.barrier
                .batch(vec![
                    BarrierOp::Delete(key),
                    BarrierOp::Put(format!("{USED}{}", t.hash), record),
                    BarrierOp::Put(format!("{USED_BY_HOUR}{hour:012}/{}", t.hash), Vec::new()),
                ])
                .await?;
            w
        };
        active.tokens.revoke_tree(&t.hash).await?;
        Ok(w)
    }

    /// Forgets spent wrapping tokens past the time they would have expired;
    /// answers how many.
    pub(crate) async fn tidy_spent_wrapping(&self) -> Result<usize, LogicalError> {
        let this_hour = crate::clock::now_ms().div_euclid(HOUR_MS);
        let mut n = 0;
        for bucket in self.barrier.list(USED_BY_HOUR).await? {
            let hour = bucket.trim_end_matches('/');
            if hour.parse::<i64>().is_ok_and(|h| h >= this_hour) {
                continue;
            }
            let mut ops = Vec::new();
            for hash in self
                .barrier
                .list(&format!("{USED_BY_HOUR}{bucket}"))
                .await?
            {
                ops.push(BarrierOp::Delete(format!("{USED}{hash}")));
                ops.push(BarrierOp::Delete(format!("{USED_BY_HOUR}{bucket}{hash}")));
                n += 1;
            }
            self.barrier.batch(ops).await?;
        }
        Ok(n)
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
                let w = self.claim(active, &t, "unwrapped").await?;
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
                let creation_time = now_rfc3339()?;
                let mut w = self.claim(active, &t, "rewrapped").await?;
                let wrapped_accessor = w.auth.as_ref().and_then(|a| a.get("accessor")).cloned();
                w.creation_time = creation_time;
                self.store_wrapped(active, w, wrapped_accessor).await
            }
        }
    }
}
