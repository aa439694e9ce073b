//! The stored form of a lease.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::clock::{rfc3339_ms, secs_left};

/// One lease, stored at `sys/expire/id/<id>` behind the barrier.
#[derive(Clone, Serialize, Deserialize)]
pub struct LeaseEntry {
    /// `<mount path><engine path>/<random>`.
    pub id: String,
    /// The engine's data for renewal and revocation (never sent to clients).
    pub internal: Map<String, Value>,
    /// HMAC handle of the token that created it.
    pub token_hash: Option<String>,
    /// Unix milliseconds.
    pub issue_time: i64,
    /// Unix milliseconds.
    pub expire_time: i64,
    /// Renewals never go past this (unix milliseconds).
    pub max_expire_time: i64,
    /// Unix milliseconds of the last renewal.
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
    /// When the next revocation attempt is due (unix milliseconds).
    #[serde(default)]
    pub next_attempt: Option<i64>,
    /// Set on leases stored before times were kept in milliseconds (the
    /// field is missing there); [`LeaseEntry::upgrade`] converts them.
    #[serde(default = "absent_means_seconds")]
    pub legacy_secs: bool,
    /// The issuing mount's uuid: the engine is found by it (a mount that
    /// moved keeps it), else by the id's path.
    #[serde(default)]
    pub mount_uuid: Option<String>,
    /// Prints (`leak::Print`, hex) of the secret's values, so that
    /// `sys/leak/check` can tell a leaked credential by its lease.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prints: Vec<String>,
}

fn absent_means_seconds() -> bool {
    true
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
    /// Converts a lease stored with second times to milliseconds.
    pub fn upgrade(&mut self) {
        if self.legacy_secs {
            for t in [
                &mut self.issue_time,
                &mut self.expire_time,
                &mut self.max_expire_time,
            ] {
                *t = t.saturating_mul(1000);
            }
            for t in [&mut self.last_renewal, &mut self.next_attempt]
                .into_iter()
                .flatten()
            {
                *t = t.saturating_mul(1000);
            }
            self.legacy_secs = false;
        }
    }

    /// When the background loop should next look at it.
    pub fn due(&self) -> i64 {
        self.next_attempt.unwrap_or(self.expire_time)
    }

    /// `sys/leases/lookup`'s data, with coffer's revocation fields when a
    /// revocation has failed.
    pub fn to_api(&self, now: i64) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("id".into(), json!(self.id));
        // The request path that issued it: the id without its random part.
        let path = self
            .id
            .rsplit_once('/')
            .map_or(self.id.as_str(), |(p, _)| p);
        m.insert("path".into(), json!(path));
        m.insert("issue_time".into(), rfc3339_ms(self.issue_time));
        m.insert("expire_time".into(), rfc3339_ms(self.expire_time));
        m.insert(
            "last_renewal".into(),
            self.last_renewal.map_or(Value::Null, rfc3339_ms),
        );
        m.insert("renewable".into(), json!(self.renewable));
        m.insert("ttl".into(), json!(secs_left(self.expire_time, now)));
        if self.revoke_attempts > 0 {
            m.insert("revoke_attempts".into(), json!(self.revoke_attempts));
            m.insert("last_revoke_error".into(), json!(self.last_error));
            m.insert(
                "next_revoke_attempt".into(),
                self.next_attempt.map_or(Value::Null, rfc3339_ms),
            );
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_leases_upgrade_once() {
        let mut e: LeaseEntry = serde_json::from_value(json!({"id": "db/creds/r/x",
            "internal": {}, "token_hash": null, "issue_time": 10, "expire_time": 70,
            "max_expire_time": 100, "last_renewal": 20, "renewable": true, "ttl": 60,
            "next_attempt": 75}))
        .unwrap();
        e.upgrade();
        e.upgrade();
        assert_eq!(
            (e.issue_time, e.expire_time, e.max_expire_time),
            (10_000, 70_000, 100_000)
        );
        assert_eq!(
            (e.last_renewal, e.next_attempt),
            (Some(20_000), Some(75_000))
        );
        let again: LeaseEntry = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert!(!again.legacy_secs);
        assert_eq!(again.to_api(40_000)["ttl"], 30);
        assert_eq!(again.to_api(40_000)["path"], "db/creds/r");
    }
}
