//! A database connection config (`config/:name`), stored behind the barrier.

use coffer_core::LogicalError;

use super::bad;
use coffer_core::fields::Fields;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::driver::{Driver, Plugin};
use super::template;

#[derive(Clone, Serialize, Deserialize)]
pub(super) struct DbConfig {
    pub plugin_name: String,
    /// With `{{username}}`/`{{password}}` placeholders, never the password itself.
    pub connection_url: String,
    pub username: String,
    pub password: String,
    pub allowed_roles: Vec<String>,
    pub verify_connection: bool,
    pub max_open_connections: usize,
    #[serde(default)]
    pub root_rotation_statements: Vec<String>,
    /// Go-template user names (`username.rs`); empty for Vault's default shape.
    #[serde(default)]
    pub username_template: String,
    /// A `sys/policies/password` policy; empty for Vault's default shape.
    #[serde(default)]
    pub password_policy: String,
    /// Unix seconds of the last `rotate-root`.
    #[serde(default)]
    pub root_last_rotation: Option<i64>,
    #[serde(default)]
    pub root_failures: u32,
    #[serde(default)]
    pub root_last_error: Option<String>,
}

impl Drop for DbConfig {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.password);
    }
}

impl DbConfig {
    /// A new config, or `existing` with the request's fields applied (Vault
    /// updates configs field by field).
    pub(super) fn from_request(
        existing: Option<DbConfig>,
        data: &Map<String, Value>,
    ) -> Result<Self, LogicalError> {
        let f = Fields::new(data);

        let mut c = match existing {
            Some(c) => c,
            None => {
                let plugin_name = f
                    .str("plugin_name")?
                    .ok_or_else(|| bad("plugin_name is required"))?;
                DbConfig {
                    plugin_name,
                    connection_url: String::new(),
                    username: String::new(),
                    password: String::new(),
                    allowed_roles: Vec::new(),
                    verify_connection: true,
                    max_open_connections: 4,
                    root_rotation_statements: Vec::new(),
                    username_template: String::new(),
                    password_policy: String::new(),
                    root_last_rotation: None,
                    root_failures: 0,
                    root_last_error: None,
                }
            }
        };
        if let Some(p) = f.str("plugin_name")? {
            c.plugin_name = p;
        }
        Plugin::from_name(&c.plugin_name).ok_or_else(|| {
            bad(format!(
                "unknown plugin_name {:?}; use postgresql-database-plugin or mysql-database-plugin",
                c.plugin_name
            ))
        })?;
        if let Some(u) = f.str("connection_url")? {
            c.connection_url = u;
        }
        if c.connection_url.is_empty() {
            return Err(bad("connection_url is required"));
        }
        if let Some(u) = f.str("username")? {
            c.username = u;
        }
        if let Some(p) = f.str("password")? {
            c.password = p;
        }
        if let Some(r) = f.str_list("allowed_roles")? {
            c.allowed_roles = r;
        }
        if let Some(v) = f.bool("verify_connection")? {
            c.verify_connection = v;
        }
        if let Some(n) = f.int("max_open_connections")? {
            c.max_open_connections = usize::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad("max_open_connections must be at least 1"))?;
        }
        if let Some(p) = f.str("password_policy")? {
            c.password_policy = p;
        }
        if let Some(t) = f.str("username_template")? {
            if !t.is_empty() {
                super::username::check(&t)?;
            }
            c.username_template = t;
        }
        if let Some(s) = template::statements(&f, "root_rotation_statements")? {
            c.root_rotation_statements = s;
        }
        Ok(c)
    }

    pub(super) fn plugin(&self) -> Result<Plugin, LogicalError> {
        Plugin::from_name(&self.plugin_name).ok_or_else(|| {
            LogicalError::Internal(format!("stored plugin {:?} is unknown", self.plugin_name))
        })
    }

    pub(super) fn allows(&self, role: &str) -> bool {
        self.allowed_roles.iter().any(|r| r == "*" || r == role)
    }

    /// The connection URL with the credentials filled in, escaped for a URL
    /// where the URL is one.
    fn url(&self) -> Zeroizing<String> {
        let is_uri = self.connection_url.contains("://");
        let esc = |s: &str| -> String {
            if is_uri {
                template::url_escape(s)
            } else {
                s.to_owned()
            }
        };
        let (u, p) = (esc(&self.username), Zeroizing::new(esc(&self.password)));
        template::render(&self.connection_url, &[("username", &u), ("password", &p)])
    }

    pub(super) fn connect(&self) -> Result<Box<dyn Driver>, String> {
        self.plugin()
            .map_err(|e| e.to_string())?
            .connect(&self.url(), self.max_open_connections)
    }

    /// `GET config/:name`: everything but the password.
    pub(super) fn api(&self) -> Map<String, Value> {
        super::object(json!({
            "plugin_name": self.plugin_name,
            "plugin_version": "",
            "connection_details": {
                "connection_url": redact_url(&self.connection_url),
                "username": self.username,
                "max_open_connections": self.max_open_connections,
            },
            "allowed_roles": self.allowed_roles,
            "root_credentials_rotate_statements": self.root_rotation_statements,
            "password_policy": self.password_policy,
            "username_template": self.username_template,
            "verify_connection": self.verify_connection,
        }))
    }
}

/// The connection URL as reads show it: a password written into it (rather
/// than the `{{password}}` placeholder) becomes `xxxxx`, as Vault's reads
/// show it. URLs (`scheme://user:pass@host`), MySQL DSNs (`user:pass@tcp(...)`)
/// and `password=` in key/value connection strings are covered.
pub(super) fn redact_url(url: &str) -> String {
    const MASK: &str = "xxxxx";
    let is_template = |p: &str| p.starts_with("{{") && p.ends_with("}}");
    // user:pass@ right after the scheme, or at the start of a DSN.
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    if let Some(at) = rest.rfind('@')
        && let Some(colon) = rest[..at].find(':')
        && !rest[..at].contains('/')
        && !is_template(&rest[colon + 1..at])
    {
        return format!("{}{}:{MASK}{}", &url[..start], &rest[..colon], &rest[at..]);
    }
    // key=value form: password=secret (possibly quoted).
    let mut out = String::with_capacity(url.len());
    let mut changed = false;
    for (i, part) in url.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match part.split_once('=') {
            Some((k, v))
                if k.eq_ignore_ascii_case("password") && !is_template(v.trim_matches('\'')) =>
            {
                out.push_str(k);
                out.push('=');
                out.push_str(MASK);
                changed = true;
            }
            _ => out.push_str(part),
        }
    }
    if changed { out } else { url.to_owned() }
}

#[cfg(test)]
mod redact_tests {
    use super::redact_url;

    #[test]
    fn passwords_in_urls_are_masked_and_templates_kept() {
        for (url, shown) in [
            (
                "postgresql://postgres:s3cret@127.0.0.1:5432/db?sslmode=disable",
                "postgresql://postgres:xxxxx@127.0.0.1:5432/db?sslmode=disable",
            ),
            (
                "postgresql://{{username}}:{{password}}@127.0.0.1:5432/db",
                "postgresql://{{username}}:{{password}}@127.0.0.1:5432/db",
            ),
            (
                "root:pw@tcp(127.0.0.1:3306)/",
                "root:xxxxx@tcp(127.0.0.1:3306)/",
            ),
            (
                "{{username}}:{{password}}@tcp(db:3306)/",
                "{{username}}:{{password}}@tcp(db:3306)/",
            ),
            (
                "host=db user=app password=hunter2 dbname=x",
                "host=db user=app password=xxxxx dbname=x",
            ),
            ("postgresql://db:5432/x", "postgresql://db:5432/x"),
            ("mysql://u:p@a@h:3306/", "mysql://u:xxxxx@h:3306/"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
