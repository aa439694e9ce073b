//! What the database engine tells the leak index: static roles' passwords
//! (the current one, and the previous one while its grace period runs) and
//! each connection's own password. Dynamic credentials are indexed by core
//! with their lease.

use coffer_core::LogicalError;
use coffer_core::backend::StorageView;
use coffer_core::leak::{LeakKind, LeakMatch, Print};
use serde_json::{Map, json};

use super::Database;
use super::config::DbConfig;
use super::static_role::StaticRole;

fn static_values(role: &StaticRole) -> impl Iterator<Item = &str> {
    std::iter::once(role.password.as_str()).chain(role.previous.iter().map(|p| p.password.as_str()))
}

impl Database {
    /// Stores a static role and indexes its passwords; the caller holds
    /// the rotation lock, so the index changes in the order of the writes.
    pub(super) async fn save_static(
        &self,
        st: &StorageView,
        name: &str,
        role: &StaticRole,
    ) -> Result<(), LogicalError> {
        st.put_json(&format!("static-role/{name}"), role).await?;
        if let Some(leak) = st.leak() {
            leak.set_strs(LeakKind::StaticRole, name, static_values(role));
        }
        Ok(())
    }

    /// Stores a connection and indexes its password (same lock as above).
    pub(super) async fn save_config(
        &self,
        st: &StorageView,
        name: &str,
        cfg: &DbConfig,
    ) -> Result<(), LogicalError> {
        st.put_json(&format!("config/{name}"), cfg).await?;
        if let Some(leak) = st.leak() {
            leak.set_strs(LeakKind::RootCredential, name, [cfg.password.as_str()]);
        }
        Ok(())
    }

    /// Deletes a stored static role or connection and its index entry.
    pub(super) async fn forget(
        &self,
        st: &StorageView,
        kind: LeakKind,
        name: &str,
    ) -> Result<(), LogicalError> {
        let key = match kind {
            LeakKind::StaticRole => format!("static-role/{name}"),
            _ => format!("config/{name}"),
        };
        st.delete(&key).await?;
        if let Some(leak) = st.leak() {
            leak.remove(kind, name);
        }
        Ok(())
    }

    pub(super) async fn leak_reindex_all(&self, st: &StorageView) -> Result<(), LogicalError> {
        let Some(leak) = st.leak() else {
            return Ok(());
        };
        let _g = self.rotation_lock.lock().await;
        for name in st.list("static-role/").await? {
            if let Some(role) = self.load_static(st, &name).await? {
                leak.set_strs(LeakKind::StaticRole, &name, static_values(&role));
            }
        }
        for name in st.list("config/").await? {
            if let Some(cfg) = st.get_json::<DbConfig>(&format!("config/{name}")).await? {
                leak.set_strs(LeakKind::RootCredential, &name, [cfg.password.as_str()]);
            }
        }
        Ok(())
    }

    pub(super) async fn leak_confirm_one(
        &self,
        st: &StorageView,
        kind: LeakKind,
        name: &str,
        print: &Print,
    ) -> Result<Vec<LeakMatch>, LogicalError> {
        let Some(leak) = st.leak() else {
            return Ok(Vec::new());
        };
        let mut details = Map::new();
        let found = match kind {
            LeakKind::StaticRole => {
                let Some(role) = self.load_static(st, name).await? else {
                    return Ok(Vec::new());
                };
                let current = leak.matches(&role.password, print);
                let previous = role
                    .previous
                    .as_ref()
                    .filter(|p| leak.matches(&p.password, print));
                if current {
                    details.insert("username".into(), json!(role.active_user));
                    details.insert("credential".into(), json!("current"));
                } else if let Some(p) = previous {
                    details.insert("username".into(), json!(p.user));
                    details.insert("credential".into(), json!("previous"));
                    details.insert("valid_until".into(), json!(p.until));
                }
                (current || previous.is_some()).then_some("database-static-role")
            }
            LeakKind::RootCredential => {
                let Some(cfg) = st.get_json::<DbConfig>(&format!("config/{name}")).await? else {
                    return Ok(Vec::new());
                };
                details.insert("username".into(), json!(cfg.username));
                leak.matches(&cfg.password, print)
                    .then_some("database-root")
            }
            _ => None,
        };
        Ok(found
            .map(|kind| LeakMatch {
                kind,
                name: name.to_owned(),
                details,
            })
            .into_iter()
            .collect())
    }
}
