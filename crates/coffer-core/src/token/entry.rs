//! What is stored for a token, and how Vault shows it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::clock::{floor_secs, rfc3339_ms, secs_left};

/// Unix seconds now.
pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Unix seconds as Vault writes times in answers (RFC 3339), or null.
pub fn rfc3339(unix: i64) -> Value {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

/// What is stored for a token (never its id).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TokenEntry {
    /// Public handle for the token.
    pub accessor: String,
    /// Normalised policy names.
    pub policies: Vec<String>,
    /// The path that created it, e.g. `auth/token/create`.
    pub path: String,
    /// Shown in lookups.
    pub display_name: String,
    /// Unix milliseconds (see [`crate::clock`]).
    pub creation_time: i64,
    /// TTL given at creation, seconds (0: never expires).
    pub creation_ttl: u64,
    /// Unix milliseconds when it expires; 0 means never.
    pub expire_time: i64,
    /// Hard cap from `explicit_max_ttl`, seconds (0: none).
    pub explicit_max_ttl: u64,
    /// Unix milliseconds no renewal can pass; 0 means none.
    pub max_expire_time: i64,
    /// Periodic tokens renew to this many seconds (0: not periodic).
    pub period: u64,
    /// Uses left; 0 is unlimited, -1 spent.
    pub num_uses: i64,
    /// Key/value metadata.
    pub meta: Option<BTreeMap<String, String>>,
    /// Has no parent.
    pub orphan: bool,
    /// Hash of the parent token.
    pub parent: Option<String>,
    /// Can be renewed.
    pub renewable: bool,
    /// Token role it was created from.
    pub role: Option<String>,
    /// Unix milliseconds of the last renewal (0: never).
    pub last_renewal_time: i64,
    /// Addresses the token may be used from (empty: anywhere).
    #[serde(default)]
    pub bound_cidrs: Vec<String>,
    /// Set on entries stored before times were kept in milliseconds (the
    /// field is missing there); [`TokenEntry::upgrade`] converts them.
    #[serde(default = "absent_means_seconds")]
    pub legacy_secs: bool,
}

fn absent_means_seconds() -> bool {
    true
}

impl TokenEntry {
    /// Converts an entry stored with second times to milliseconds.
    pub fn upgrade(&mut self) {
        if self.legacy_secs {
            for t in [
                &mut self.creation_time,
                &mut self.expire_time,
                &mut self.max_expire_time,
                &mut self.last_renewal_time,
            ] {
                *t = t.saturating_mul(1000);
            }
            self.legacy_secs = false;
        }
    }

    /// True for a token holding the `root` policy.
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }

    /// Whether it has expired at `now`.
    pub fn is_expired(&self, now: i64) -> bool {
        self.expire_time > 0 && self.expire_time <= now
    }

    /// Remaining whole seconds at `now` (ms; 0 for tokens that never expire).
    pub fn remaining(&self, now: i64) -> u64 {
        if self.expire_time == 0 {
            0
        } else {
            secs_left(self.expire_time, now)
        }
    }

    /// The `auth` block of login and token-creation responses.
    pub fn auth_block(&self, client_token: &str, now: i64) -> Value {
        let token_policies: Vec<&String> = self.policies.iter().collect();
        json!({
            "client_token": client_token,
            "accessor": self.accessor,
            "policies": self.policies,
            "token_policies": token_policies,
            "metadata": self.meta,
            "lease_duration": self.remaining(now),
            "renewable": self.renewable && self.expire_time != 0,
            "entity_id": "",
            "token_type": "service",
            "orphan": self.orphan,
            "mfa_requirement": null,
            "num_uses": self.num_uses.max(0),
        })
    }

    /// `auth/token/lookup*` data; `id` is empty for accessor lookups.
    pub fn lookup_data(&self, id: &str, now: i64) -> Map<String, Value> {
        let mut d = json!({
            "id": id,
            "accessor": self.accessor,
            "policies": self.policies,
            "path": self.path,
            "meta": self.meta,
            "display_name": self.display_name,
            "num_uses": self.num_uses.max(0),
            "orphan": self.orphan,
            "creation_time": floor_secs(self.creation_time),
            "creation_ttl": self.creation_ttl,
            "expire_time": if self.expire_time == 0 { Value::Null } else { rfc3339_ms(self.expire_time) },
            "issue_time": rfc3339_ms(self.creation_time),
            "ttl": self.remaining(now),
            "explicit_max_ttl": self.explicit_max_ttl,
            "entity_id": "",
            "type": "service",
            "renewable": self.renewable && self.expire_time != 0,
        });
        if self.period > 0 {
            d["period"] = json!(self.period);
        }
        if let Some(r) = &self.role {
            d["role"] = json!(r);
        }
        if !self.bound_cidrs.is_empty() {
            d["bound_cidrs"] = json!(self.bound_cidrs);
        }
        if self.last_renewal_time > 0 {
            d["last_renewal_time"] = json!(floor_secs(self.last_renewal_time));
            d["last_renewal"] = rfc3339_ms(self.last_renewal_time);
        }
        match d {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

/// Vault's display names: `token-` plus the name with anything but letters, digits and `-` replaced.
pub fn display_name(given: Option<&str>) -> String {
    match given.map(str::trim).filter(|s| !s.is_empty()) {
        None => "token".into(),
        Some(n) => {
            let clean: String = n
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            format!("token-{clean}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_and_expiry() {
        assert_eq!(display_name(None), "token");
        assert_eq!(display_name(Some("my app.v2")), "token-my-app-v2");
        let e = TokenEntry {
            expire_time: 100_000,
            ..TokenEntry::default()
        };
        assert!(!e.is_expired(99_999) && e.is_expired(100_000));
        assert_eq!(e.remaining(40_000), 60);
        let lookup = e.lookup_data("x", 40_000);
        assert_eq!(lookup["ttl"], 60);
        assert!(lookup["expire_time"].is_string());
        let forever = TokenEntry::default().lookup_data("x", 40);
        assert_eq!(forever["expire_time"], Value::Null);
        assert_eq!(forever["ttl"], 0);
    }

    #[test]
    fn second_entries_upgrade_once() {
        let mut old: TokenEntry =
            serde_json::from_value(json!({"accessor": "a", "policies": [], "path": "p",
                "display_name": "d", "creation_time": 10, "creation_ttl": 5, "expire_time": 15,
                "explicit_max_ttl": 0, "max_expire_time": 0, "period": 0, "num_uses": 0,
                "meta": null, "orphan": true, "parent": null, "renewable": true, "role": null,
                "last_renewal_time": 0}))
            .unwrap();
        old.upgrade();
        old.upgrade();
        assert_eq!(
            (old.creation_time, old.expire_time, old.max_expire_time),
            (10_000, 15_000, 0)
        );
        let again: TokenEntry =
            serde_json::from_value(serde_json::to_value(&old).unwrap()).unwrap();
        assert!(!again.legacy_secs && again.expire_time == 15_000);
    }
}
