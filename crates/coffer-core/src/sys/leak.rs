//! `sys/leak/check` (is a candidate string live in coffer, and where?) and
//! `sys/leak/status`, plus the background indexing after an unseal.

use serde_json::{Map, Value, json};

use crate::core::{Active, Core};
use crate::expiration::SharedMounts;
use crate::leak::{LeakKind, LeakMatch, MAX_CANDIDATE_BYTES, MAX_CANDIDATES, MIN_LEN, Print};
use crate::logical::{LogicalError, Request, Response};
use crate::mounts::MountKind;
use crate::token::Token;

fn bad(m: impl Into<String>) -> LogicalError {
    LogicalError::BadRequest(m.into())
}

/// The `candidates` of a check: strings, at most [`MAX_CANDIDATES`].
fn candidates(data: &Map<String, Value>) -> Result<Vec<&str>, LogicalError> {
    let list = match data.get("candidates") {
        Some(Value::Array(a)) => a,
        Some(Value::String(s)) => return Ok(vec![s.as_str()]),
        Some(_) => return Err(bad("candidates must be a list of strings")),
        None => return Err(bad("missing candidates: a list of strings to check")),
    };
    if list.len() > MAX_CANDIDATES {
        return Err(bad(format!(
            "{} candidates in one call; at most {MAX_CANDIDATES}",
            list.len()
        )));
    }
    list.iter()
        .enumerate()
        .map(|(i, v)| match v.as_str() {
            None => Err(bad(format!("candidates[{i}] is not a string"))),
            Some(s) if s.len() > MAX_CANDIDATE_BYTES => Err(bad(format!(
                "candidates[{i}] has {} bytes; at most {MAX_CANDIDATE_BYTES}",
                s.len()
            ))),
            Some(s) => Ok(s),
        })
        .collect()
}

impl LeakMatch {
    fn to_api(&self, mount: &str) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), json!(self.kind));
        if !mount.is_empty() {
            m.insert("mount".into(), json!(mount));
        }
        m.insert("name".into(), json!(self.name));
        for (k, v) in &self.details {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

impl Core {
    /// Indexes what every secret mount holds, in the background (serving
    /// does not wait); leases are indexed as the expiration manager loads
    /// them.
    pub(crate) fn spawn_leak_reindex(&self, mounts: SharedMounts) {
        let index = self.leak.clone();
        let epoch = index.epoch();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let table = match mounts.read() {
                Ok(m) => m.clone(),
                Err(_) => return,
            };
            for m in table.iter() {
                if index.epoch() != epoch {
                    return;
                }
                if let Err(e) = m.backend.leak_reindex(&m.view).await {
                    tracing::warn!(mount = %m.entry.path, error = %e, "indexing a mount for leak checks failed; its values are checked only once written again");
                }
            }
            index.engines_done(epoch);
            let stats = index.stats();
            tracing::info!(
                values = stats.values,
                ms = started.elapsed().as_millis() as u64,
                "leak index built"
            );
        });
    }

    pub(crate) async fn leak_check(
        &self,
        active: &Active,
        req: &Request,
        token: Option<&Token>,
    ) -> Result<Response, LogicalError> {
        let list = candidates(&req.data)?;
        let who = token.map_or("", |t| t.hash.as_str());
        self.leak.admit(who, list.len())?;
        // Read before looking: indexing that finishes during the check
        // may have come too late for the first candidates.
        let complete = self.leak_complete(active);
        let mut results = Vec::with_capacity(list.len());
        let mut live = 0;
        for (i, c) in list.iter().enumerate() {
            let Some(print) = self.leak.print(c) else {
                if self.leak.is_open() {
                    results.push(json!({"index": i, "checked": false, "live": false,
                        "reason": format!("shorter than {MIN_LEN} characters: not checked")}));
                    continue;
                }
                return Err(LogicalError::Unavailable(
                    "the leak index is not open on this node".into(),
                ));
            };
            let found = self.leak_matches(active, c, &print).await?;
            if !found.is_empty() {
                live += 1;
            }
            results.push(
                json!({"index": i, "checked": true, "live": !found.is_empty(),
                "matches": found}),
            );
        }
        Ok(Response::data(crate::sys::obj(json!({
            "results": results,
            "live": live,
            "complete": complete,
        }))))
    }

    /// Whether everything stored has been indexed since the unseal.
    fn leak_complete(&self, active: &Active) -> bool {
        self.leak.engines_indexed() && active.expiration.stats().loaded
    }

    /// Every place `candidate` is live, each confirmed by its holder.
    async fn leak_matches(
        &self,
        active: &Active,
        candidate: &str,
        print: &Print,
    ) -> Result<Vec<Value>, LogicalError> {
        let mounts = self.mounts(active, MountKind::Secret)?;
        let mut out = Vec::new();
        for h in self.leak.find(print) {
            if h.kind == LeakKind::Lease {
                out.extend(lease_match(active, &mounts, &h.name, print).await?);
                continue;
            }
            let Some(m) = mounts.iter().find(|m| *m.entry.uuid == *h.mount) else {
                continue;
            };
            let found = m.backend.leak_confirm(&m.view, h.kind, &h.name, print);
            for f in found.await? {
                out.push(f.to_api(&m.entry.path));
            }
        }
        if let Some(t) = active.tokens.lookup(candidate).await? {
            out.push(token_match(&t.entry).to_api(""));
        }
        for kind in [MountKind::Secret, MountKind::Auth] {
            for m in self.mounts(active, kind)?.iter() {
                let mount = match kind {
                    MountKind::Secret => m.entry.path.clone(),
                    MountKind::Auth => format!("auth/{}", m.entry.path),
                };
                for found in m.backend.leak_lookup(&m.view, candidate).await? {
                    out.push(found.to_api(&mount));
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn leak_status(&self, active: &Active) -> Response {
        let s = self.leak.stats();
        let per_value = match s.values {
            0 => 0,
            n => s.bytes / n,
        };
        Response::data(crate::sys::obj(json!({
            "complete": self.leak_complete(active),
            "values": s.values,
            "holders": s.owners,
            "bytes": s.bytes,
            "bytes_per_value": per_value,
            "min_length": MIN_LEN,
            "max_candidates": MAX_CANDIDATES,
            "candidates_per_minute": crate::leak::CANDIDATES_PER_MINUTE,
        })))
    }
}

/// The lease `id`, if it still holds the value printed `print`.
async fn lease_match(
    active: &Active,
    mounts: &[crate::core::Mounted],
    id: &str,
    print: &Print,
) -> Result<Option<Value>, LogicalError> {
    let Some(e) = active.expiration.lookup(id).await? else {
        return Ok(None);
    };
    let mut hit = false;
    for p in e.prints.iter().filter_map(|p| Print::from_hex(p)) {
        hit |= p.matches(print);
    }
    if !hit {
        return Ok(None);
    }
    let mount = mounts
        .iter()
        .find(|m| Some(&m.entry.uuid) == e.mount_uuid.as_ref())
        .map_or("", |m| m.entry.path.as_str());
    let mut details = Map::new();
    details.insert("lease_id".into(), json!(e.id));
    details.insert(
        "expire_time".into(),
        crate::clock::rfc3339_ms(e.expire_time),
    );
    let m = LeakMatch {
        kind: "lease",
        name: e.id.clone(),
        details,
    };
    Ok(Some(m.to_api(mount)))
}

/// How a live token is reported: by its accessor, never its id.
fn token_match(e: &crate::token::TokenEntry) -> LeakMatch {
    let mut details = Map::new();
    details.insert("accessor".into(), json!(e.accessor));
    details.insert("display_name".into(), json!(e.display_name));
    details.insert("policies".into(), json!(e.policies));
    details.insert("path".into(), json!(e.path));
    if e.expire_time > 0 {
        details.insert(
            "expire_time".into(),
            crate::clock::rfc3339_ms(e.expire_time),
        );
    }
    LeakMatch {
        kind: "token",
        name: e.accessor.clone(),
        details,
    }
}
