//! `auth/<mount>/role/<name>`: which service accounts may log in, and the
//! token they get.

use coffer_core::LogicalError;
use coffer_core::fields::Fields;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::selector::LabelSelector;
use crate::TokenFields;

#[derive(Serialize, Deserialize, Clone, Default)]
#[serde(default)]
pub(crate) struct Role {
    pub bound_service_account_names: Vec<String>,
    pub bound_service_account_namespaces: Vec<String>,
    pub bound_service_account_namespace_selector: String,
    pub audience: String,
    pub alias_name_source: String,
    #[serde(flatten)]
    pub token: TokenFields,
}

pub(crate) const ALIAS_UID: &str = "serviceaccount_uid";
pub(crate) const ALIAS_NAME: &str = "serviceaccount_name";

fn bad(m: impl Into<String>) -> LogicalError {
    LogicalError::BadRequest(m.into())
}

fn any_glob(patterns: &[String], value: &str) -> bool {
    patterns
        .iter()
        .any(|p| coffer_core::glob::matches(p, value))
}

impl Role {
    /// Applies a write over the role as stored (a partial update keeps
    /// what it does not name).
    pub fn apply(
        prev: Option<Role>,
        data: &Map<String, Value>,
    ) -> Result<(Role, Vec<String>), LogicalError> {
        let f = Fields::new(data);
        let mut r = prev.unwrap_or_else(|| Role {
            alias_name_source: ALIAS_UID.into(),
            ..Role::default()
        });
        if let Some(v) = f.str_list("bound_service_account_names")? {
            r.bound_service_account_names = v;
        }
        if let Some(v) = f.str_list("bound_service_account_namespaces")? {
            r.bound_service_account_namespaces = v;
        }
        match f.raw("bound_service_account_namespace_selector") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                r.bound_service_account_namespace_selector = s.trim().to_owned()
            }
            // An API client may send the selector as an object.
            Some(v @ Value::Object(_)) => {
                r.bound_service_account_namespace_selector = v.to_string()
            }
            Some(_) => {
                return Err(bad(
                    "bound_service_account_namespace_selector must be a label selector in JSON or YAML",
                ));
            }
        }
        if let Some(a) = f.str("audience")? {
            r.audience = a.trim().to_owned();
        }
        if let Some(s) = f.str("alias_name_source")? {
            r.alias_name_source = if s.is_empty() { ALIAS_UID.into() } else { s };
        }
        r.token.apply(data)?;
        r.check()?;
        let mut warnings = vec![];
        if r.audience.is_empty() {
            warnings.push(
                "this role has no audience: any audience the API server accepts will do; set audience (e.g. \"vault\") to bind tokens to coffer"
                    .to_string(),
            );
        }
        Ok((r, warnings))
    }

    fn check(&self) -> Result<(), LogicalError> {
        if self.bound_service_account_names.is_empty() {
            return Err(bad("\"bound_service_account_names\" can not be empty"));
        }
        for (field, list) in [
            (
                "bound_service_account_names",
                &self.bound_service_account_names,
            ),
            (
                "bound_service_account_namespaces",
                &self.bound_service_account_namespaces,
            ),
        ] {
            if list.len() > 1 && list.iter().any(|v| v == "*") {
                return Err(bad(format!("can not mix \"*\" with values in {field:?}")));
            }
        }
        if self.bound_service_account_namespaces.is_empty()
            && self.bound_service_account_namespace_selector.is_empty()
        {
            return Err(bad(
                "\"bound_service_account_namespaces\" can not be empty if \"bound_service_account_namespace_selector\" is not set",
            ));
        }
        if !self.bound_service_account_namespace_selector.is_empty() {
            LabelSelector::parse(&self.bound_service_account_namespace_selector).map_err(bad)?;
        }
        if self.alias_name_source != ALIAS_UID && self.alias_name_source != ALIAS_NAME {
            return Err(bad(format!(
                "invalid alias_name_source {:?}: use {ALIAS_UID:?} or {ALIAS_NAME:?}",
                self.alias_name_source
            )));
        }
        Ok(())
    }

    /// Whether the role binds this service-account name.
    pub fn binds_name(&self, name: &str) -> bool {
        self.bound_service_account_names == ["*"]
            || any_glob(&self.bound_service_account_names, name)
    }

    /// Whether the namespace list (not the selector) binds this namespace.
    pub fn binds_namespace(&self, ns: &str) -> bool {
        any_glob(&self.bound_service_account_namespaces, ns)
    }

    /// The role as reads show it.
    pub fn to_api(&self) -> Map<String, Value> {
        let mut m = match json!({
            "bound_service_account_names": self.bound_service_account_names,
            "bound_service_account_namespaces": self.bound_service_account_namespaces,
            "bound_service_account_namespace_selector": self.bound_service_account_namespace_selector,
            "audience": self.audience,
            "alias_name_source": self.alias_name_source,
        }) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        self.token.write_to(&mut m);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_needs_names_and_namespaces_or_a_selector() {
        let data = |v: Value| v.as_object().cloned().unwrap();
        let e = Role::apply(
            None,
            &data(json!({"bound_service_account_namespaces": "a"})),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("bound_service_account_names"), "{e}");
        let e = Role::apply(None, &data(json!({"bound_service_account_names": "a"})))
            .err()
            .unwrap();
        assert!(e.to_string().contains("namespace_selector"), "{e}");
        let e = Role::apply(None, &data(json!({"bound_service_account_names": ["*", "b"], "bound_service_account_namespaces": "x"})))
            .err()
            .unwrap();
        assert!(e.to_string().contains("can not mix"), "{e}");
        let (r, warnings) = Role::apply(
            None,
            &data(json!({"bound_service_account_names": "eso",
                          "bound_service_account_namespace_selector": {"matchLabels": {"team": "pay"}}})),
        )
        .unwrap();
        assert_eq!(r.alias_name_source, ALIAS_UID);
        assert_eq!(warnings.len(), 1, "no audience is worth a warning");
        LabelSelector::parse(&r.bound_service_account_namespace_selector).unwrap();
        let e = Role::apply(Some(r), &data(json!({"alias_name_source": "pod"})))
            .err()
            .unwrap();
        assert!(e.to_string().contains("alias_name_source"), "{e}");
    }
}
