//! A dynamic role (`roles/:name`).

use coffer_core::LogicalError;

use super::bad;
use coffer_core::fields::Fields;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::template::statements;

#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Role {
    pub db_name: String,
    pub creation_statements: Vec<String>,
    pub revocation_statements: Vec<String>,
    pub rollback_statements: Vec<String>,
    pub renew_statements: Vec<String>,
    pub default_ttl: u64,
    pub max_ttl: u64,
}

impl Role {
    pub(super) fn from_request(
        existing: Option<Role>,
        data: &Map<String, Value>,
    ) -> Result<Self, LogicalError> {
        let f = Fields::new(data);
        super::password_credentials_only(&f)?;
        let mut r = existing.unwrap_or(Role {
            db_name: String::new(),
            creation_statements: Vec::new(),
            revocation_statements: Vec::new(),
            rollback_statements: Vec::new(),
            renew_statements: Vec::new(),
            default_ttl: 0,
            max_ttl: 0,
        });
        if let Some(d) = f.str("db_name")? {
            r.db_name = d;
        }
        if r.db_name.is_empty() {
            return Err(bad("empty database name attribute"));
        }
        if let Some(s) = statements(&f, "creation_statements")? {
            r.creation_statements = s;
        }
        if r.creation_statements.is_empty() {
            return Err(bad("creation_statements are required"));
        }
        if let Some(s) = statements(&f, "revocation_statements")? {
            r.revocation_statements = s;
        }
        if let Some(s) = statements(&f, "rollback_statements")? {
            r.rollback_statements = s;
        }
        if let Some(s) = statements(&f, "renew_statements")? {
            r.renew_statements = s;
        }
        if let Some(t) = f.duration("default_ttl")? {
            r.default_ttl = t;
        }
        if let Some(t) = f.duration("max_ttl")? {
            r.max_ttl = t;
        }
        if r.max_ttl > 0 && r.default_ttl > r.max_ttl {
            return Err(bad("ttl cannot be greater than max_ttl"));
        }
        Ok(r)
    }

    pub(super) fn api(&self) -> Map<String, Value> {
        super::object(json!({
            "db_name": self.db_name,
            "creation_statements": self.creation_statements,
            "revocation_statements": self.revocation_statements,
            "rollback_statements": self.rollback_statements,
            "renew_statements": self.renew_statements,
            "default_ttl": self.default_ttl,
            "max_ttl": self.max_ttl,
            "credential_type": "password",
            "credential_config": {},
        }))
    }
}
