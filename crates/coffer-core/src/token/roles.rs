//! Token roles (`auth/token/roles/:name`): templates that `create/:role` applies.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::fields::Fields;
use crate::logical::LogicalError;
use crate::policy::normalize_policy_names;

/// A stored token role.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRole {
    /// Role name.
    pub name: String,
    /// Policies tokens of this role may have (empty: subset of the parent's).
    pub allowed_policies: Vec<String>,
    /// Policies they may never have.
    pub disallowed_policies: Vec<String>,
    /// Glob forms of the allowed list.
    pub allowed_policies_glob: Vec<String>,
    /// Glob forms of the disallowed list.
    pub disallowed_policies_glob: Vec<String>,
    /// Tokens are orphans.
    pub orphan: bool,
    /// Tokens can be renewed.
    pub renewable: bool,
    /// Appended to the creation path.
    pub path_suffix: String,
    /// Hard cap, seconds.
    pub token_explicit_max_ttl: u64,
    /// Do not add `default`.
    pub token_no_default_policy: bool,
    /// Use limit.
    pub token_num_uses: i64,
    /// Periodic tokens, seconds.
    pub token_period: u64,
    /// `default-service`, `service` (batch tokens are not supported).
    pub token_type: String,
    /// Accepted for compatibility; no identity store yet.
    pub allowed_entity_aliases: Vec<String>,
    /// Addresses tokens of this role may be used from.
    pub token_bound_cidrs: Vec<String>,
}

impl TokenRole {
    /// Builds or updates a role from request data.
    pub fn apply(
        name: &str,
        prev: Option<TokenRole>,
        data: &Map<String, Value>,
    ) -> Result<TokenRole, LogicalError> {
        let f = Fields::new(data);
        let mut r = prev.unwrap_or(TokenRole {
            name: name.to_owned(),
            allowed_policies: vec![],
            disallowed_policies: vec![],
            allowed_policies_glob: vec![],
            disallowed_policies_glob: vec![],
            orphan: false,
            renewable: true,
            path_suffix: String::new(),
            token_explicit_max_ttl: 0,
            token_no_default_policy: false,
            token_num_uses: 0,
            token_period: 0,
            token_type: "default-service".into(),
            allowed_entity_aliases: vec![],
            token_bound_cidrs: vec![],
        });
        let norm = |v: Vec<String>| normalize_policy_names(&v);
        if let Some(v) = f.str_list("allowed_policies")? {
            r.allowed_policies = norm(v);
        }
        if let Some(v) = f.str_list("disallowed_policies")? {
            r.disallowed_policies = norm(v);
        }
        if let Some(v) = f.str_list("allowed_policies_glob")? {
            r.allowed_policies_glob = norm(v);
        }
        if let Some(v) = f.str_list("disallowed_policies_glob")? {
            r.disallowed_policies_glob = norm(v);
        }
        if let Some(v) = f.bool("orphan")? {
            r.orphan = v;
        }
        if let Some(v) = f.bool("renewable")? {
            r.renewable = v;
        }
        if let Some(v) = f.str("path_suffix")? {
            if v.contains("..") {
                return Err(LogicalError::BadRequest(
                    "path_suffix must not contain '..'".into(),
                ));
            }
            r.path_suffix = v;
        }
        if let Some(v) = f
            .duration("token_explicit_max_ttl")?
            .or(f.duration("explicit_max_ttl")?)
        {
            r.token_explicit_max_ttl = v;
        }
        if let Some(v) = f.bool("token_no_default_policy")? {
            r.token_no_default_policy = v;
        }
        if let Some(v) = f.int("token_num_uses")? {
            if v < 0 {
                return Err(LogicalError::BadRequest(
                    "token_num_uses cannot be negative".into(),
                ));
            }
            r.token_num_uses = v;
        }
        if let Some(v) = f.duration("token_period")?.or(f.duration("period")?) {
            r.token_period = v;
        }
        if let Some(v) = f.str("token_type")? {
            match v.as_str() {
                "" | "default" | "default-service" | "service" => {
                    r.token_type = if v.is_empty() || v == "default" {
                        "default-service".into()
                    } else {
                        v
                    }
                }
                "batch" | "default-batch" => {
                    return Err(LogicalError::BadRequest(
                        "batch tokens are not supported; use service".into(),
                    ));
                }
                other => {
                    return Err(LogicalError::BadRequest(format!(
                        "invalid token_type {other:?}"
                    )));
                }
            }
        }
        if let Some(v) = f.str_list("allowed_entity_aliases")? {
            r.allowed_entity_aliases = v;
        }
        if let Some(v) = f
            .str_list("token_bound_cidrs")?
            .or(f.str_list("bound_cidrs")?)
        {
            crate::cidr::parse_all(&v)?;
            r.token_bound_cidrs = v;
        }
        Ok(r)
    }

    /// The role as `GET auth/token/roles/:name` shows it (with Vault's deprecated aliases).
    pub fn to_api(&self) -> Map<String, Value> {
        let v = json!({
            "name": self.name,
            "allowed_policies": self.allowed_policies,
            "disallowed_policies": self.disallowed_policies,
            "allowed_policies_glob": self.allowed_policies_glob,
            "disallowed_policies_glob": self.disallowed_policies_glob,
            "orphan": self.orphan,
            "renewable": self.renewable,
            "path_suffix": self.path_suffix,
            "token_explicit_max_ttl": self.token_explicit_max_ttl,
            "explicit_max_ttl": self.token_explicit_max_ttl,
            "token_no_default_policy": self.token_no_default_policy,
            "token_num_uses": self.token_num_uses,
            "token_period": self.token_period,
            "period": self.token_period,
            "token_type": self.token_type,
            "allowed_entity_aliases": if self.allowed_entity_aliases.is_empty() { Value::Null } else { json!(self.allowed_entity_aliases) },
            "token_bound_cidrs": self.token_bound_cidrs,
            "bound_cidrs": self.token_bound_cidrs,
        });
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// Checks requested policies against the role; `Ok(true)` when the role decides (has an allow list).
    pub fn check_policies(&self, policies: &[String]) -> Result<bool, LogicalError> {
        for p in policies.iter().filter(|p| *p != "default") {
            if self.disallowed_policies.contains(p)
                || self
                    .disallowed_policies_glob
                    .iter()
                    .any(|g| crate::glob::matches(g, p))
            {
                return Err(LogicalError::BadRequest(format!(
                    "token policies ({p}) must not be in the disallowed list of the role"
                )));
            }
        }
        let has_allow = !self.allowed_policies.is_empty() || !self.allowed_policies_glob.is_empty();
        if has_allow {
            for p in policies.iter().filter(|p| *p != "default") {
                let ok = self.allowed_policies.contains(p)
                    || self
                        .allowed_policies_glob
                        .iter()
                        .any(|g| crate::glob::matches(g, p));
                if !ok {
                    return Err(LogicalError::BadRequest(format!(
                        "token policies ({p}) must be subset of the role's allowed policies"
                    )));
                }
            }
        }
        Ok(has_allow)
    }
}
