//! Password rotation: static roles (scheduled and on demand) and the
//! connection's own root credentials.

use coffer_core::LogicalError;
use coffer_core::backend::{RotationStatus, StorageView};
use coffer_core::token::now_unix;
use zeroize::Zeroizing;

use super::Database;
use super::static_role::{Previous, StaticRole};
use super::template;

/// Seconds before a failed rotation is tried again: 1, 2, 4 ... capped by
/// the role's period and five minutes.
fn retry_delay(failures: u32, period: u64) -> i64 {
    let d = 1i64.checked_shl(failures.saturating_sub(1)).unwrap_or(300);
    d.min(300).min(period.max(1) as i64)
}

impl Database {
    pub(super) async fn load_static(
        &self,
        st: &StorageView,
        name: &str,
    ) -> Result<Option<StaticRole>, LogicalError> {
        st.get_json(&format!("static-role/{name}")).await
    }

    /// Sets `user`'s password in the database with the role's rotation
    /// statements, or the plugin's default.
    async fn set_password(
        &self,
        st: &StorageView,
        db_name: &str,
        statements: &[String],
        user: &str,
        password: &str,
    ) -> Result<(), String> {
        let (driver, cfg) = self.driver(st, db_name).await.map_err(|e| e.to_string())?;
        let plugin = cfg.plugin().map_err(|e| e.to_string())?;
        let stmts = if statements.is_empty() {
            plugin.default_password_change()
        } else {
            statements.to_vec()
        };
        let vars = [("name", user), ("username", user), ("password", password)];
        let rendered: Vec<_> = stmts.iter().map(|s| template::render(s, &vars)).collect();
        driver.execute(&rendered).await
    }

    /// Creates a static role: its password is rotated right away (and the
    /// grace user's replaced by one nobody knows), or nothing is saved.
    pub(super) async fn create_static(
        &self,
        st: &StorageView,
        name: &str,
        mut role: StaticRole,
    ) -> Result<(), LogicalError> {
        let cfg = self.config(st, &role.db_name).await?;
        if !cfg.allows(name) {
            return Err(LogicalError::BadRequest(format!(
                "{name:?} is not an allowed role"
            )));
        }
        let fresh = template::password()?;
        self.set_password(
            st,
            &role.db_name,
            &role.rotation_statements,
            &role.username,
            &fresh,
        )
        .await
        .map_err(|e| {
            LogicalError::BadRequest(format!("cannot manage user {}: {e}", role.username))
        })?;
        if role.grace_period > 0 {
            let unknown = template::password()?;
            self.set_password(
                st,
                &role.db_name,
                &role.rotation_statements,
                &role.grace_username,
                &unknown,
            )
            .await
            .map_err(|e| {
                LogicalError::BadRequest(format!("cannot manage user {}: {e}", role.grace_username))
            })?;
        }
        role.active_user = role.username.clone();
        role.password = fresh.to_string();
        role.last_rotation = now_unix();
        self.save_static(st, name, &role).await
    }

    /// Rotates a static role now. A database failure leaves the old password
    /// in place and recorded, counts a failure and schedules a retry.
    pub(super) async fn rotate_static(
        &self,
        st: &StorageView,
        name: &str,
    ) -> Result<(), LogicalError> {
        let _g = self.rotation_lock.lock().await;
        let mut role = self
            .load_static(st, name)
            .await?
            .ok_or_else(|| LogicalError::BadRequest(format!("unknown static role: {name}")))?;
        let target = role.rotation_target();
        let fresh = self
            .new_password(st, &self.config(st, &role.db_name).await?)
            .await?;
        let now = now_unix();
        match self
            .set_password(
                st,
                &role.db_name,
                &role.rotation_statements,
                &target,
                &fresh,
            )
            .await
        {
            Ok(()) => {
                if role.grace_period > 0 {
                    role.previous = Some(Previous {
                        user: role.active_user.clone(),
                        password: std::mem::take(&mut role.password),
                        until: now + role.grace_period as i64,
                    });
                }
                role.active_user = target;
                role.password = fresh.to_string();
                role.last_rotation = now;
                role.failures = 0;
                role.last_error = None;
                role.retry_at = None;
                self.save_static(st, name, &role).await?;
                tracing::info!(role = name, user = %role.active_user, "static role rotated");
                st.publish(
                    "database/rotate",
                    &format!("rotate-role/{name}"),
                    Some(&format!("static-creds/{name}")),
                    &[("name", name.to_owned())],
                );
                Ok(())
            }
            Err(e) => {
                role.failures += 1;
                role.last_error = Some(e.clone());
                role.retry_at = Some(now + retry_delay(role.failures, role.rotation_period));
                coffer_core::metrics::ROTATION_FAILURES.inc();
                self.save_static(st, name, &role).await?;
                st.publish(
                    "database/rotate-fail",
                    &format!("rotate-role/{name}"),
                    Some(&format!("static-creds/{name}")),
                    &[("name", name.to_owned())],
                );
                tracing::error!(role = name, failures = role.failures, error = %e, "static role rotation failed; the old password stays valid");
                Err(LogicalError::Internal(format!(
                    "rotating static role {name} failed: {e}; the previous password stays valid"
                )))
            }
        }
    }

    /// Ends a finished grace period: the previous user's password is replaced
    /// by one nobody knows.
    async fn retire_previous(&self, st: &StorageView, name: &str) -> Result<(), LogicalError> {
        let _g = self.rotation_lock.lock().await;
        let Some(mut role) = self.load_static(st, name).await? else {
            return Ok(());
        };
        let Some(prev) = role.previous.clone() else {
            return Ok(());
        };
        if prev.until > now_unix() {
            return Ok(());
        }
        let unknown = self
            .new_password(st, &self.config(st, &role.db_name).await?)
            .await?;
        match self
            .set_password(
                st,
                &role.db_name,
                &role.rotation_statements,
                &prev.user,
                &unknown,
            )
            .await
        {
            Ok(()) => {
                role.previous = None;
                self.save_static(st, name, &role).await?;
                tracing::info!(role = name, user = %prev.user, "grace period over: previous credentials retired");
                Ok(())
            }
            Err(e) => {
                role.failures += 1;
                role.last_error = Some(format!("retiring {}: {e}", prev.user));
                coffer_core::metrics::ROTATION_FAILURES.inc();
                self.save_static(st, name, &role).await?;
                Err(LogicalError::Internal(e))
            }
        }
    }

    /// Rotations that came due, and grace periods that ended.
    pub(super) async fn rotate_due(&self, st: &StorageView) -> Result<(), LogicalError> {
        for name in st.list("static-role/").await? {
            let Some(role) = self.load_static(st, &name).await? else {
                continue;
            };
            let now = now_unix();
            if role.previous.as_ref().is_some_and(|p| p.until <= now)
                && let Err(e) = self.retire_previous(st, &name).await
            {
                tracing::warn!(role = %name, error = %e, "retiring previous credentials failed; retrying");
            }
            if role.next_rotation() <= now {
                // Failures are recorded, counted and logged by rotate_static.
                let _ = self.rotate_static(st, &name).await;
            }
        }
        Ok(())
    }

    /// `rotate-root/:name`: a new password for the connection's own user,
    /// known only to coffer afterwards. The stored config changes only once
    /// the database took the new password.
    pub(super) async fn rotate_root(
        &self,
        st: &StorageView,
        name: &str,
    ) -> Result<(), LogicalError> {
        let _g = self.rotation_lock.lock().await;
        let mut cfg = self.config(st, name).await?;
        if cfg.username.is_empty() {
            return Err(LogicalError::BadRequest(
                "rotate-root needs the connection's username and password fields".into(),
            ));
        }
        let fresh: Zeroizing<String> = self.new_password(st, &cfg).await?;
        let stmts = if cfg.root_rotation_statements.is_empty() {
            cfg.plugin()?.default_password_change()
        } else {
            cfg.root_rotation_statements.clone()
        };
        let user = cfg.username.clone();
        let vars = [
            ("name", user.as_str()),
            ("username", user.as_str()),
            ("password", fresh.as_str()),
        ];
        let rendered: Vec<_> = stmts.iter().map(|s| template::render(s, &vars)).collect();
        let (driver, _) = self.driver(st, name).await?;
        let now = now_unix();
        match driver.execute(&rendered).await {
            Ok(()) => {
                cfg.password = fresh.to_string();
                cfg.root_last_rotation = Some(now);
                cfg.root_failures = 0;
                cfg.root_last_error = None;
                self.save_config(st, name, &cfg).await?;
                self.forget_pool(name).await;
                tracing::info!(connection = name, "root credentials rotated");
                let at = format!("rotate-root/{name}");
                st.publish(
                    "database/root-rotate",
                    &at,
                    None,
                    &[("name", name.to_owned())],
                );
                Ok(())
            }
            Err(e) => {
                cfg.root_failures += 1;
                cfg.root_last_error = Some(e.clone());
                coffer_core::metrics::ROTATION_FAILURES.inc();
                self.save_config(st, name, &cfg).await?;
                let at = format!("rotate-root/{name}");
                st.publish(
                    "database/root-rotate-fail",
                    &at,
                    None,
                    &[("name", name.to_owned())],
                );
                Err(LogicalError::Internal(format!(
                    "rotating the root credentials of {name} failed: {e}; the previous password stays valid"
                )))
            }
        }
    }

    pub(super) async fn rotation_list(
        &self,
        st: &StorageView,
    ) -> Result<Vec<RotationStatus>, LogicalError> {
        let mut out = Vec::new();
        for name in st.list("static-role/").await? {
            if let Some(r) = self.load_static(st, &name).await? {
                out.push(RotationStatus {
                    name: format!("static-roles/{name}"),
                    kind: "database static role",
                    period: r.rotation_period,
                    last_success: Some(r.last_rotation),
                    next_due: Some(r.next_rotation()),
                    consecutive_failures: r.failures,
                    last_error: r.last_error.clone(),
                });
            }
        }
        for name in st.list("config/").await? {
            let Some(c) = st
                .get_json::<super::config::DbConfig>(&format!("config/{name}"))
                .await?
            else {
                continue;
            };
            if c.root_last_rotation.is_some() || c.root_failures > 0 {
                out.push(RotationStatus {
                    name: format!("rotate-root/{name}"),
                    kind: "database root credentials",
                    period: 0,
                    last_success: c.root_last_rotation,
                    next_due: None,
                    consecutive_failures: c.root_failures,
                    last_error: c.root_last_error.clone(),
                });
            }
        }
        Ok(out)
    }
}
