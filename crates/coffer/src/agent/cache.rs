//! `cache {}`: the API proxy keeps answers that carry a lease (database
//! credentials) or a new token (a login) and serves the same request again
//! from memory while the lease lives, renewing it at 2/3 of its TTL as the
//! agent does. An entry leaves when its lease cannot be renewed or ends,
//! and when a revocation passes through the proxy: `sys/leases/revoke`
//! (its lease), `sys/leases/revoke-prefix` (leases under it),
//! `auth/token/revoke-self` and `auth/token/revoke` (everything requested
//! with that token, and the login that made it), `auth/token/revoke-accessor`
//! (everything: an accessor names no token the proxy saw).
//! `POST /agent/v1/cache-clear` empties it by the same keys.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use coffer_client::Client;

/// One kept answer.
#[derive(Clone)]
pub struct Entry {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    /// The answer: secrets (credentials, tokens), wiped when dropped.
    pub body: Arc<zeroize::Zeroizing<Vec<u8>>>,
    /// The request's path (below `/v1/`).
    path: String,
    /// The token the request carried (what a revocation of it clears).
    token: String,
    /// The lease in the answer, if any.
    lease: Option<String>,
    /// The token the answer created, if any (a login).
    created_token: Option<String>,
    ends: Instant,
}

/// What identifies a request.
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
    pub token: &'a str,
}

/// The cache, shared by every listener.
#[derive(Default)]
pub struct Cache {
    entries: Mutex<HashMap<String, Entry>>,
}

fn key(method: &str, path: &str, body: &[u8], token: &str) -> String {
    let mut h = Sha256::new();
    for part in [method.as_bytes(), path.as_bytes(), body, token.as_bytes()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

impl Cache {
    /// A kept answer for this request, if there is one still alive.
    pub fn get(&self, method: &str, path: &str, body: &[u8], token: &str) -> Option<Entry> {
        let k = key(method, path, body, token);
        let mut m = self.entries.lock().ok()?;
        match m.get(&k) {
            Some(e) if e.ends > Instant::now() => Some(e.clone()),
            Some(_) => {
                m.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Keeps an answer when it carries a lease or a new token; starts its
    /// renewals.
    pub fn offer(
        self: &Arc<Self>,
        client: &Client,
        req: Request<'_>,
        status: u16,
        headers: Vec<(String, Vec<u8>)>,
        answer: Bytes,
    ) {
        let Request {
            method,
            path,
            body,
            token,
        } = req;
        if status != 200 {
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(&answer) else {
            return;
        };
        let lease = v["lease_id"]
            .as_str()
            .filter(|l| !l.is_empty())
            .map(str::to_owned);
        let created_token = v["auth"]["client_token"].as_str().map(str::to_owned);
        let ttl = if lease.is_some() {
            v["lease_duration"].as_u64().unwrap_or(0)
        } else {
            v["auth"]["lease_duration"].as_u64().unwrap_or(0)
        };
        if (lease.is_none() && created_token.is_none()) || ttl == 0 && lease.is_some() {
            return;
        }
        // A token without a TTL lives until revoked.
        let life = if ttl == 0 {
            Duration::from_secs(365 * 24 * 3600)
        } else {
            Duration::from_secs(ttl)
        };
        let k = key(method, path, body, token);
        let entry = Entry {
            status,
            headers,
            body: Arc::new(zeroize::Zeroizing::new(answer.to_vec())),
            path: path.to_owned(),
            token: token.to_owned(),
            lease: lease.clone(),
            created_token,
            ends: Instant::now() + life,
        };
        if let Ok(mut m) = self.entries.lock() {
            m.insert(k.clone(), entry);
        }
        if let (Some(lease), true) = (lease, v["renewable"].as_bool().unwrap_or(false)) {
            let me = self.clone();
            let client = client.with_token(Some(token.to_owned()));
            tokio::spawn(async move { me.renew(k, lease, ttl, client).await });
        }
    }

    /// Renews a kept lease at 2/3 of its TTL until that fails or stops
    /// extending it, then lets the entry go.
    async fn renew(self: Arc<Self>, k: String, lease: String, first: u64, client: Client) {
        let mut ttl = first;
        loop {
            tokio::time::sleep(Duration::from_secs((ttl * 2 / 3).max(1))).await;
            let still = self
                .entries
                .lock()
                .map(|m| m.contains_key(&k))
                .unwrap_or(false);
            if !still {
                return;
            }
            let body = serde_json::json!({"lease_id": lease, "increment": first});
            let renewed = client.write("sys/leases/renew", &body).await;
            let next = renewed
                .ok()
                .flatten()
                .and_then(|a| a["lease_duration"].as_u64())
                .unwrap_or(0);
            if next == 0 || next < first {
                // Gone, or its max TTL is near: the next request gets a new one.
                tracing::debug!(lease = %lease, "cached lease no longer renewable; evicted");
                self.remove(|e| e.lease.as_deref() == Some(lease.as_str()));
                return;
            }
            if let Ok(mut m) = self.entries.lock()
                && let Some(e) = m.get_mut(&k)
            {
                e.ends = Instant::now() + Duration::from_secs(next);
            }
            ttl = next;
        }
    }

    fn remove(&self, mut which: impl FnMut(&Entry) -> bool) -> usize {
        let Ok(mut m) = self.entries.lock() else {
            return 0;
        };
        let before = m.len();
        m.retain(|_, e| !which(e));
        before - m.len()
    }

    /// Drops what a revocation that just passed through made stale.
    pub fn observe(&self, path: &str, body: &[u8], token: &str) {
        let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let field = |k: &str| v[k].as_str().map(str::to_owned);
        let tail = |prefix: &str| {
            path.strip_prefix(prefix)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
        };
        let gone_token = |t: String| {
            move |e: &Entry| e.token == t || e.created_token.as_deref() == Some(t.as_str())
        };
        if path == "sys/leases/revoke" || path.starts_with("sys/leases/revoke/") {
            if let Some(l) = field("lease_id").or_else(|| tail("sys/leases/revoke/")) {
                self.remove(|e| e.lease.as_deref() == Some(l.as_str()));
            }
        } else if let Some(prefix) =
            tail("sys/leases/revoke-prefix/").or_else(|| tail("sys/leases/revoke-force/"))
        {
            self.remove(|e| e.lease.as_deref().is_some_and(|l| l.starts_with(&prefix)));
        } else if path == "auth/token/revoke-self" {
            self.remove(gone_token(token.to_owned()));
        } else if path == "auth/token/revoke" || path == "auth/token/revoke-orphan" {
            if let Some(t) = field("token") {
                self.remove(gone_token(t));
            }
        } else if path == "auth/token/revoke-accessor" {
            self.remove(|_| true);
        }
    }

    /// `/agent/v1/cache-clear`: `{"type": "all"|"lease"|"token"|"request_path"|"token_accessor", "value": ...}`.
    pub fn clear(&self, kind: &str, value: &str) -> Result<usize, String> {
        Ok(match kind {
            "all" | "token_accessor" => self.remove(|_| true),
            "lease" => self.remove(|e| e.lease.as_deref() == Some(value)),
            "token" => {
                self.remove(|e| e.token == value || e.created_token.as_deref() == Some(value))
            }
            "request_path" => {
                let v = value.trim_start_matches("/v1/").trim_start_matches('/');
                self.remove(|e| e.path.starts_with(v))
            }
            other => {
                return Err(format!(
                    "unknown type {other:?}: all, lease, token, token_accessor or request_path"
                ));
            }
        })
    }
}
