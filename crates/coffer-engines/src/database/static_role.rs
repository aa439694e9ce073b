//! Static roles: an existing database user whose password coffer rotates.
//!
//! A rotation writes the new password into the database first and records
//! it only once the database took it, so a failed rotation leaves the old
//! password valid and recorded. With a grace period the role alternates
//! between two existing users (`username` and `grace_username`): the new
//! password goes to the user not in use, and the previous pair keeps working
//! until the grace period ends, when its password is replaced by one nobody
//! knows.

use coffer_core::LogicalError;

use super::bad;
use coffer_core::fields::Fields;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use zeroize::Zeroize;

use super::template::statements;

/// Vault's lower bound on `rotation_period`.
pub(super) const MIN_PERIOD: u64 = 5;

#[derive(Clone, Default, Serialize, Deserialize)]
pub(super) struct StaticRole {
    pub db_name: String,
    pub username: String,
    pub rotation_period: u64,
    pub rotation_statements: Vec<String>,
    /// Seconds the previous credentials keep working after a rotation.
    #[serde(default)]
    pub grace_period: u64,
    /// The second user the role alternates to when `grace_period` is set.
    #[serde(default)]
    pub grace_username: String,
    /// Which user holds the current password (`username` unless alternating).
    pub active_user: String,
    pub password: String,
    /// Unix seconds of the last successful rotation.
    pub last_rotation: i64,
    /// The previous credentials while their grace period runs.
    #[serde(default)]
    pub previous: Option<Previous>,
    #[serde(default)]
    pub failures: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    /// When a failed rotation is tried again (unix seconds).
    #[serde(default)]
    pub retry_at: Option<i64>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
pub(super) struct Previous {
    pub user: String,
    pub password: String,
    pub until: i64,
}

impl Drop for StaticRole {
    fn drop(&mut self) {
        self.password.zeroize();
    }
}

impl Drop for Previous {
    fn drop(&mut self) {
        self.password.zeroize();
    }
}

impl StaticRole {
    /// Applies a write to a new or existing role; the caller rotates a new one.
    pub(super) fn from_request(
        existing: Option<StaticRole>,
        data: &Map<String, Value>,
    ) -> Result<Self, LogicalError> {
        let f = Fields::new(data);
        super::password_credentials_only(&f)?;
        let is_new = existing.is_none();
        let mut r = existing.unwrap_or_default();
        if let Some(u) = f.str("username")? {
            if !is_new && u != r.username {
                return Err(bad("cannot update static account username"));
            }
            r.username = u;
        }
        if r.username.is_empty() {
            return Err(bad(
                "username is a required field to create a static account",
            ));
        }
        if let Some(d) = f.str("db_name")? {
            r.db_name = d;
        }
        if r.db_name.is_empty() {
            return Err(bad("database name is a required field"));
        }
        if let Some(p) = f.duration("rotation_period")? {
            r.rotation_period = p;
        }
        if r.rotation_period < MIN_PERIOD {
            return Err(bad(format!(
                "rotation_period must be {MIN_PERIOD} seconds or more"
            )));
        }
        if let Some(s) = statements(&f, "rotation_statements")? {
            r.rotation_statements = s;
        }
        if let Some(g) = f.duration("rotation_grace_period")? {
            r.grace_period = g;
        }
        if let Some(u) = f.str("grace_username")? {
            r.grace_username = u;
        }
        if r.grace_period > 0 {
            if r.grace_username.is_empty() || r.grace_username == r.username {
                return Err(bad(
                    "rotation_grace_period needs grace_username: a second existing user with the same rights, which the role alternates to",
                ));
            }
            if r.grace_period >= r.rotation_period {
                return Err(bad(
                    "rotation_grace_period must be shorter than rotation_period",
                ));
            }
        }
        if r.active_user.is_empty() {
            r.active_user = r.username.clone();
        }
        Ok(r)
    }

    /// When the next scheduled rotation is due.
    pub(super) fn next_rotation(&self) -> i64 {
        self.retry_at
            .unwrap_or(self.last_rotation + self.rotation_period as i64)
    }

    /// The user a rotation gives the new password to.
    pub(super) fn rotation_target(&self) -> String {
        if self.grace_period == 0 {
            return self.username.clone();
        }
        if self.active_user == self.username {
            self.grace_username.clone()
        } else {
            self.username.clone()
        }
    }

    /// `GET static-roles/:name`.
    pub(super) fn api(&self) -> Map<String, Value> {
        let mut m = super::object(json!({
            "db_name": self.db_name,
            "username": self.username,
            "rotation_period": self.rotation_period,
            "rotation_statements": self.rotation_statements,
            "credential_type": "password",
            "credential_config": {},
            "last_vault_rotation": coffer_core::token::rfc3339(self.last_rotation),
        }));
        if self.grace_period > 0 {
            m.insert("rotation_grace_period".into(), json!(self.grace_period));
            m.insert("grace_username".into(), json!(self.grace_username));
        }
        m
    }

    /// `GET static-creds/:name`.
    pub(super) fn creds(&self, now: i64) -> Map<String, Value> {
        let mut m = super::object(json!({
            "username": self.active_user,
            "password": self.password,
            "last_vault_rotation": coffer_core::token::rfc3339(self.last_rotation),
            "rotation_period": self.rotation_period,
            "ttl": (self.last_rotation + self.rotation_period as i64 - now).max(0),
        }));
        if let Some(p) = &self.previous {
            m.insert("previous_username".into(), json!(p.user));
            m.insert(
                "previous_valid_until".into(),
                coffer_core::token::rfc3339(p.until),
            );
        }
        m
    }
}
