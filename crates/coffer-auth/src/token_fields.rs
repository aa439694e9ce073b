//! The token settings every role or user carries (`token_ttl`, `token_policies`...),
//! with Vault's deprecated aliases read and written back.

use coffer_core::LogicalError;
use coffer_core::fields::Fields;
use coffer_core::logical::LoginAuth;
use coffer_core::policy::normalize_policy_names;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Token settings shared by auth method roles and users.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenFields {
    /// Policies.
    pub token_policies: Vec<String>,
    /// TTL, seconds.
    pub token_ttl: u64,
    /// Max TTL, seconds.
    pub token_max_ttl: u64,
    /// Hard cap, seconds.
    pub token_explicit_max_ttl: u64,
    /// Periodic, seconds.
    pub token_period: u64,
    /// Use limit.
    pub token_num_uses: i64,
    /// Skip `default`.
    pub token_no_default_policy: bool,
    /// Source addresses tokens may be used from (accepted; enforced at login).
    pub token_bound_cidrs: Vec<String>,
}

impl TokenFields {
    /// Updates from request data, accepting the deprecated names too.
    pub fn apply(&mut self, data: &Map<String, Value>) -> Result<(), LogicalError> {
        let f = Fields::new(data);
        if let Some(p) = f.str_list("token_policies")?.or(f.str_list("policies")?) {
            self.token_policies = normalize_policy_names(&p);
        }
        if let Some(t) = f.duration("token_ttl")?.or(f.duration("ttl")?) {
            self.token_ttl = t;
        }
        if let Some(t) = f.duration("token_max_ttl")?.or(f.duration("max_ttl")?) {
            self.token_max_ttl = t;
        }
        if let Some(t) = f.duration("token_explicit_max_ttl")? {
            self.token_explicit_max_ttl = t;
        }
        if let Some(t) = f.duration("token_period")?.or(f.duration("period")?) {
            self.token_period = t;
        }
        if let Some(n) = f.int("token_num_uses")? {
            if n < 0 {
                return Err(LogicalError::BadRequest(
                    "token_num_uses cannot be negative".into(),
                ));
            }
            self.token_num_uses = n;
        }
        if let Some(b) = f.bool("token_no_default_policy")? {
            self.token_no_default_policy = b;
        }
        if let Some(c) = f
            .str_list("token_bound_cidrs")?
            .or(f.str_list("bound_cidrs")?)
        {
            coffer_core::cidr::parse_all(&c)?;
            self.token_bound_cidrs = c;
        }
        match f.str("token_type")?.as_deref() {
            None | Some("") | Some("default") | Some("service") | Some("default-service") => {}
            Some("batch") | Some("default-batch") => {
                return Err(LogicalError::BadRequest(
                    "batch tokens are not supported; use token_type=service".into(),
                ));
            }
            Some(t) => {
                return Err(LogicalError::BadRequest(format!(
                    "invalid token_type {t:?}"
                )));
            }
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(LogicalError::BadRequest(
                "token_ttl cannot be greater than token_max_ttl".into(),
            ));
        }
        Ok(())
    }

    /// The fields as reads show them, with the deprecated aliases.
    pub fn write_to(&self, m: &mut Map<String, Value>) {
        let v = json!({
            "token_policies": self.token_policies,
            "policies": self.token_policies,
            "token_ttl": self.token_ttl,
            "ttl": self.token_ttl,
            "token_max_ttl": self.token_max_ttl,
            "max_ttl": self.token_max_ttl,
            "token_explicit_max_ttl": self.token_explicit_max_ttl,
            "token_period": self.token_period,
            "period": self.token_period,
            "token_num_uses": self.token_num_uses,
            "token_no_default_policy": self.token_no_default_policy,
            "token_bound_cidrs": self.token_bound_cidrs,
            "bound_cidrs": self.token_bound_cidrs,
            "token_type": "default",
        });
        if let Value::Object(o) = v {
            m.extend(o);
        }
    }

    /// The login answer core turns into a token.
    pub fn login(
        &self,
        display_name: &str,
        metadata: std::collections::BTreeMap<String, String>,
    ) -> LoginAuth {
        LoginAuth {
            policies: self.token_policies.clone(),
            ttl: self.token_ttl,
            max_ttl: self.token_max_ttl,
            explicit_max_ttl: self.token_explicit_max_ttl,
            period: self.token_period,
            num_uses: self.token_num_uses,
            no_default_policy: self.token_no_default_policy,
            metadata,
            display_name: display_name.to_owned(),
            bound_cidrs: self.token_bound_cidrs.clone(),
        }
    }
}
