//! `sys/version-history` and `sys/plugins/catalog`: which coffer versions
//! have run on this storage, and which engine and auth method types (and
//! database plugins) this build offers. Every plugin is built in.

use serde_json::{Map, Value, json};

use super::obj;
use crate::core::Core;
use crate::logical::{LogicalError, Response};

const VERSIONS: &str = "core/versions/";

fn plugin_version() -> String {
    format!("v{}+builtin.coffer", crate::VERSION)
}

impl Core {
    /// Notes the running version on first unseal under it.
    pub(crate) async fn record_version(&self) -> Result<(), LogicalError> {
        let key = format!("{VERSIONS}{}", crate::VERSION);
        if self.barrier.get(&key).await?.is_none() {
            let now = time::OffsetDateTime::now_utc()
                .replace_nanosecond(0)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default();
            let v = json!({"timestamp_installed": now, "build_date": crate::BUILD_DATE});
            self.barrier.put(&key, v.to_string().as_bytes()).await?;
        }
        Ok(())
    }

    pub(crate) async fn version_history(&self) -> Result<Response, LogicalError> {
        let mut found: Vec<(String, Map<String, Value>)> = Vec::new();
        for v in self.barrier.list(VERSIONS).await? {
            if let Some(b) = self.barrier.get(&format!("{VERSIONS}{v}")).await?
                && let Ok(Value::Object(m)) = serde_json::from_slice(b.expose())
            {
                found.push((v, m));
            }
        }
        found.sort_by(|a, b| {
            let t =
                |m: &Map<String, Value>| m["timestamp_installed"].as_str().unwrap_or("").to_owned();
            t(&a.1).cmp(&t(&b.1))
        });
        let mut keys = Vec::new();
        let mut info = Map::new();
        let mut previous = Value::Null;
        for (v, mut m) in found {
            m.insert("previous_version".into(), previous.clone());
            previous = json!(v);
            keys.push(v.clone());
            info.insert(v, Value::Object(m));
        }
        Ok(Response::data(obj(json!({"keys": keys, "key_info": info}))))
    }

    fn catalog_names(&self, plugin_type: &str) -> Option<Vec<String>> {
        match plugin_type {
            "secret" => Some(self.engines.names()),
            "auth" => Some(self.auth_methods.names()),
            "database" => Some(self.engines.catalog("database")),
            _ => None,
        }
    }

    /// `GET sys/plugins/catalog`.
    pub(crate) fn plugin_catalog(&self) -> Response {
        let mut data = Map::new();
        let mut detailed = Vec::new();
        for t in ["auth", "database", "secret"] {
            let names = self.catalog_names(t).unwrap_or_default();
            for n in &names {
                detailed.push(json!({
                    "type": t, "name": n, "version": plugin_version(),
                    "builtin": true, "deprecation_status": "supported",
                }));
            }
            data.insert(t.into(), json!(names));
        }
        data.insert("detailed".into(), Value::Array(detailed));
        Response::data(data)
    }

    /// `LIST sys/plugins/catalog/<type>`.
    pub(crate) fn plugin_list(&self, plugin_type: &str) -> Result<Response, LogicalError> {
        let names = self.catalog_names(plugin_type).ok_or_else(|| {
            LogicalError::BadRequest(format!(
                "unknown plugin type {plugin_type:?}: use auth, database or secret"
            ))
        })?;
        Ok(Response::data(obj(json!({ "keys": names }))))
    }

    /// `GET sys/plugins/catalog/<type>/<name>`.
    pub(crate) fn plugin_info(
        &self,
        plugin_type: &str,
        name: &str,
    ) -> Result<Option<Response>, LogicalError> {
        let names = self.catalog_names(plugin_type).ok_or_else(|| {
            LogicalError::BadRequest(format!(
                "unknown plugin type {plugin_type:?}: use auth, database or secret"
            ))
        })?;
        Ok(names.iter().any(|n| n == name).then(|| {
            Response::data(obj(json!({
                "name": name, "args": [], "builtin": true, "command": "", "sha256": "",
                "deprecation_status": "supported", "version": plugin_version(),
            })))
        }))
    }
}
