//! The stored form of a lease.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::token::rfc3339;

/// One lease, stored at `sys/expire/id/<id>` behind the barrier.
#[derive(Clone, Serialize, Deserialize)]
pub struct LeaseEntry {
    /// `<mount path><engine path>/<random>`.
    pub id: String,
    /// The engine's data for renewal and revocation (never sent to clients).
    pub internal: Map<String, Value>,
    /// HMAC handle of the token that created it.
    pub token_hash: Option<String>,
    /// Unix seconds.
    pub issue_time: i64,
    /// Unix seconds.
    pub expire_time: i64,
    /// Renewals never go past this (unix seconds).
    pub max_expire_time: i64,
    /// Unix seconds of the last renewal.
    pub last_renewal: Option<i64>,
    /// Whether renewals are allowed.
    pub renewable: bool,
    /// The TTL last granted, seconds.
    pub ttl: u64,
    /// Failed revocations so far.
    #[serde(default)]
    pub revoke_attempts: u32,
    /// The last revocation error.
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the next revocation attempt is due (unix seconds).
    #[serde(default)]
    pub next_attempt: Option<i64>,
}

impl std::fmt::Debug for LeaseEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseEntry")
            .field("id", &self.id)
            .field("expire_time", &self.expire_time)
            .field("revoke_attempts", &self.revoke_attempts)
            .finish_non_exhaustive()
    }
}

impl LeaseEntry {
    /// When the background loop should next look at it.
    pub fn due(&self) -> i64 {
        self.next_attempt.unwrap_or(self.expire_time)
    }

    /// `sys/leases/lookup`'s data, with coffer's revocation fields when a
    /// revocation has failed.
    pub fn to_api(&self, now: i64) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        m.insert("issue_time".into(), rfc3339(self.issue_time));
        m.insert("expire_time".into(), rfc3339(self.expire_time));
        m.insert(
            "last_renewal".into(),
            self.last_renewal.map_or(Value::Null, rfc3339),
        );
        m.insert("renewable".into(), json!(self.renewable));
        m.insert("ttl".into(), json!((self.expire_time - now).max(0)));
        if self.revoke_attempts > 0 {
            m.insert("revoke_attempts".into(), json!(self.revoke_attempts));
            m.insert("last_revoke_error".into(), json!(self.last_error));
            m.insert(
                "next_revoke_attempt".into(),
                self.next_attempt.map_or(Value::Null, rfc3339),
            );
        }
        m
    }
}
