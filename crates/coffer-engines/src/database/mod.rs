//! The `database` engine: connection configs, roles, and dynamic users
//! created on demand in PostgreSQL or MySQL/MariaDB, each behind a lease that
//! drops the user when it ends.

mod config;
mod driver;
mod leak;
mod mysql;
mod postgres;
mod role;
mod rotation;
mod static_role;
mod template;
mod username;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use coffer_core::backend::{Backend, EngineRequest, LeaseRequest, StorageView};
use coffer_core::leak::LeakKind;
use coffer_core::logical::Operation::{self, *};
use coffer_core::mounts::MountEntry;
use coffer_core::paths::{PathSpec, PathTable};
use coffer_core::token::now_unix;
use coffer_core::{LeaseSpec, LogicalError, Response};
use serde_json::{Map, Value, json};
use tokio::sync::RwLock;
use zeroize::Zeroizing;

use config::DbConfig;
use driver::Driver;
use role::Role;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    ConfigList,
    Config,
    Reset,
    RolesList,
    Role,
    Creds,
    StaticRolesList,
    StaticRole,
    StaticCreds,
    RotateRole,
    RotateRoot,
}

macro_rules! path {
    ($p:expr, [$($op:ident),*], $r:ident, $h:expr) => {
        PathSpec { pattern: $p, operations: &[$($op),*], route: Route::$r, help: $h }
    };
}

static PATHS: &[PathSpec<Route>] = &[
    path!("config", [List], ConfigList, "List connection configs."),
    path!("config/", [List], ConfigList, "List connection configs."),
    path!(
        "config/{name}",
        [Read, Update, Delete],
        Config,
        "A database connection."
    ),
    path!(
        "reset/{name}",
        [Update],
        Reset,
        "Close and reopen a connection's pool."
    ),
    path!("roles", [List], RolesList, "List roles."),
    path!("roles/", [List], RolesList, "List roles."),
    path!(
        "roles/{name}",
        [Read, Update, Delete],
        Role,
        "A dynamic role."
    ),
    path!("creds/{name}", [Read], Creds, "New credentials for a role."),
    path!(
        "static-roles",
        [List],
        StaticRolesList,
        "List static roles."
    ),
    path!(
        "static-roles/",
        [List],
        StaticRolesList,
        "List static roles."
    ),
    path!(
        "static-roles/{name}",
        [Read, Update, Delete],
        StaticRole,
        "An existing user whose password coffer rotates."
    ),
    path!(
        "static-creds/{name}",
        [Read],
        StaticCreds,
        "A static role's current credentials."
    ),
    path!(
        "rotate-role/{name}",
        [Update],
        RotateRole,
        "Rotate a static role's password now."
    ),
    path!(
        "rotate-root/{name}",
        [Update],
        RotateRoot,
        "Rotate the connection's own password; afterwards only coffer knows it."
    ),
];

/// One mount's engine: its path table and its open pools by config name.
pub struct Database {
    paths: PathTable<Route>,
    pools: RwLock<HashMap<String, Arc<dyn Driver>>>,
    /// One rotation at a time per mount, so two can never race on a user;
    /// config and static-role writes take it too, so none of them writes
    /// back a password a rotation replaced meanwhile.
    rotation_lock: tokio::sync::Mutex<()>,
}

/// Builds the engine for a mount.
/// The `plugin_name` values a connection accepts (the plugin catalog's
/// `database` list).
pub const PLUGIN_NAMES: &[&str] = &[
    "mysql-aurora-database-plugin",
    "mysql-database-plugin",
    "mysql-legacy-database-plugin",
    "mysql-rds-database-plugin",
    "postgresql-database-plugin",
];

pub fn factory(_mount: &MountEntry) -> Result<Arc<dyn Backend>, LogicalError> {
    Ok(Arc::new(Database {
        paths: PathTable::new(PATHS).map_err(LogicalError::Internal)?,
        pools: RwLock::new(HashMap::new()),
        rotation_lock: tokio::sync::Mutex::new(()),
    }))
}

/// A `json!({...})` literal as a response's data map.
pub(super) fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

pub(super) fn bad(m: impl Into<String>) -> LogicalError {
    LogicalError::BadRequest(m.into())
}

/// Roles only issue passwords (Vault also has RSA keys and client certificates).
pub(super) fn password_credentials_only(
    f: &coffer_core::fields::Fields<'_>,
) -> Result<(), LogicalError> {
    match f.str("credential_type")? {
        Some(t) if t != "password" => Err(bad(format!(
            "credential_type {t:?} is not supported; only \"password\""
        ))),
        _ => Ok(()),
    }
}

fn check_name(name: &str) -> Result<(), LogicalError> {
    if name.is_empty() || name.contains('/') {
        return Err(bad("name must be a single path segment"));
    }
    Ok(())
}

impl Database {
    async fn config(&self, st: &StorageView, name: &str) -> Result<DbConfig, LogicalError> {
        st.get_json(&format!("config/{name}"))
            .await?
            .ok_or_else(|| bad(format!("no database connection named {name:?}")))
    }

    async fn role(&self, st: &StorageView, name: &str) -> Result<Option<Role>, LogicalError> {
        st.get_json(&format!("role/{name}")).await
    }

    /// The open pool for a config, opened on first use.
    async fn driver(
        &self,
        st: &StorageView,
        name: &str,
    ) -> Result<(Arc<dyn Driver>, DbConfig), LogicalError> {
        let cfg = self.config(st, name).await?;
        if let Some(d) = self.pools.read().await.get(name) {
            return Ok((d.clone(), cfg));
        }
        let mut pools = self.pools.write().await;
        if let Some(d) = pools.get(name) {
            return Ok((d.clone(), cfg));
        }
        let d: Arc<dyn Driver> = Arc::from(cfg.connect().map_err(bad)?);
        pools.insert(name.to_owned(), d.clone());
        Ok((d, cfg))
    }

    /// A password from the config's `password_policy`, or Vault's default shape.
    async fn new_password(
        &self,
        st: &StorageView,
        cfg: &DbConfig,
    ) -> Result<Zeroizing<String>, LogicalError> {
        if cfg.password_policy.is_empty() {
            return template::password();
        }
        let p = st.generate_password(&cfg.password_policy).await?;
        Ok(Zeroizing::new(p.expose().to_owned()))
    }

    async fn forget_pool(&self, name: &str) {
        self.pools.write().await.remove(name);
    }

    async fn write_config(
        &self,
        st: &StorageView,
        name: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>, LogicalError> {
        // Under the rotation lock: a root rotation in flight must not have
        // its new password overwritten by a config read before it.
        let _g = self.rotation_lock.lock().await;
        let existing: Option<DbConfig> = st.get_json(&format!("config/{name}")).await?;
        let cfg = DbConfig::from_request(existing, data)?;
        if !cfg.password_policy.is_empty() {
            // Fails now (400) rather than at the first `creds/` request.
            st.generate_password(&cfg.password_policy).await?;
        }
        if cfg.verify_connection {
            let d = cfg.connect().map_err(bad)?;
            d.verify().await.map_err(|e| {
                bad(format!(
                    "error creating database object: error verifying connection: {e}"
                ))
            })?;
        }
        self.save_config(st, name, &cfg).await?;
        self.forget_pool(name).await;
        Ok(None)
    }

    async fn creds(
        &self,
        req: &EngineRequest<'_>,
        name: &str,
    ) -> Result<Option<Response>, LogicalError> {
        let st = req.storage;
        let role = self
            .role(st, name)
            .await?
            .ok_or_else(|| bad(format!("unknown role: {name}")))?;
        let (driver, cfg) = self.driver(st, &role.db_name).await?;
        if !cfg.allows(name) {
            return Err(bad(format!("{name:?} is not an allowed role")));
        }
        let plugin = cfg.plugin()?;
        let now = now_unix();
        let ttl = match role.default_ttl {
            0 => req.default_lease_ttl,
            t => t,
        };
        let ttl = match role.max_ttl {
            0 => ttl,
            m => ttl.min(m),
        };
        let username = if cfg.username_template.is_empty() {
            let (part, total) = plugin.name_limits(&cfg.plugin_name);
            template::username(req.display_name, name, part, total, now)?
        } else {
            let millis = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
            username::render(
                &cfg.username_template,
                &username::Inputs {
                    display_name: req.display_name,
                    role_name: name,
                    now_millis: i64::try_from(millis).unwrap_or(now.saturating_mul(1000)),
                },
            )?
        };
        let password = self.new_password(st, &cfg).await?;
        let expiration = template::expiration(now + ttl as i64);
        let vars = [
            ("name", username.as_str()),
            ("username", username.as_str()),
            ("password", password.as_str()),
            ("expiration", expiration.as_str()),
        ];
        let create: Vec<_> = role
            .creation_statements
            .iter()
            .map(|s| template::render(s, &vars))
            .collect();
        if let Err(e) = driver.execute(&create).await {
            if !role.rollback_statements.is_empty() {
                let undo: Vec<_> = role
                    .rollback_statements
                    .iter()
                    .map(|s| template::render(s, &vars))
                    .collect();
                if let Err(u) = driver.execute(&undo).await {
                    tracing::warn!(role = name, error = %u, "rollback statements failed");
                }
            }
            return Err(LogicalError::Internal(format!(
                "creating the database user failed: {e}"
            )));
        }
        let mut data = Map::new();
        data.insert("username".into(), json!(username));
        data.insert("password".into(), json!(password.as_str()));
        let mut internal = Map::new();
        internal.insert("username".into(), json!(username));
        internal.insert("role".into(), json!(name));
        internal.insert("db_name".into(), json!(role.db_name));
        Ok(Some(Response {
            data: Some(data),
            secret: Some(LeaseSpec {
                ttl,
                max_ttl: role.max_ttl,
                renewable: true,
                internal,
            }),
            ..Response::default()
        }))
    }

    /// Runs a role's revocation or renewal statements (or the plugin's
    /// defaults) for the user a lease names.
    async fn lease_statements(
        &self,
        req: &LeaseRequest<'_>,
        revoke: bool,
    ) -> Result<(), LogicalError> {
        let field = |k: &str| req.internal.get(k).and_then(Value::as_str).unwrap_or("");
        let (username, role_name, db_name) = (field("username"), field("role"), field("db_name"));
        if username.is_empty() || db_name.is_empty() {
            return Err(LogicalError::Internal(
                "lease has no database user recorded".into(),
            ));
        }
        let (driver, cfg) = self.driver(req.storage, db_name).await?;
        let plugin = cfg.plugin()?;
        let role = self.role(req.storage, role_name).await?;
        let (stmts, default) = match (&role, revoke) {
            (Some(r), true) if !r.revocation_statements.is_empty() => {
                (r.revocation_statements.clone(), false)
            }
            (Some(r), false) if !r.renew_statements.is_empty() => {
                (r.renew_statements.clone(), false)
            }
            (_, true) => (plugin.default_revocation(), true),
            (_, false) => (plugin.default_renewal(), true),
        };
        if stmts.is_empty() {
            return Ok(());
        }
        let expiration = template::expiration(req.expire_time);
        let vars = [
            ("name", username),
            ("username", username),
            ("expiration", expiration.as_str()),
        ];
        let rendered: Vec<Zeroizing<String>> =
            stmts.iter().map(|s| template::render(s, &vars)).collect();
        let outcome = if revoke && default {
            driver.execute_drop(&rendered).await
        } else {
            driver.execute(&rendered).await
        };
        outcome.map_err(|e| {
            LogicalError::Internal(format!(
                "{} of database user {username} failed: {e}",
                if revoke { "revocation" } else { "renewal" }
            ))
        })
    }
}

#[async_trait]
impl Backend for Database {
    fn help(&self) -> coffer_core::paths::MountHelp {
        coffer_core::paths::MountHelp {
            description: "The database engine: connections to PostgreSQL and MySQL/MariaDB, roles whose credentials are created per request under a lease and dropped when it ends, and static roles whose user's password rotates on a schedule.",
            paths: self.paths.docs(),
        }
    }

    async fn handle(&self, req: EngineRequest<'_>) -> Result<Option<Response>, LogicalError> {
        let m = self.paths.route(req.operation, req.path)?;
        let st = req.storage;
        let name = m.param("name");
        if !name.is_empty() {
            check_name(name)?;
        }
        let op: Operation = req.operation;
        match m.route {
            Route::ConfigList => Ok(Some(Response::list(st.list("config/").await?))),
            Route::Config => match op {
                Read => Ok(st
                    .get_json::<DbConfig>(&format!("config/{name}"))
                    .await?
                    .map(|c| Response::data(c.api()))),
                Delete => {
                    let _g = self.rotation_lock.lock().await;
                    self.forget(st, LeakKind::RootCredential, name).await?;
                    self.forget_pool(name).await;
                    Ok(None)
                }
                _ => self.write_config(st, name, req.data).await,
            },
            Route::Reset => {
                self.config(st, name).await?;
                self.forget_pool(name).await;
                Ok(None)
            }
            Route::RolesList => Ok(Some(Response::list(st.list("role/").await?))),
            Route::Role => match op {
                Read => Ok(self.role(st, name).await?.map(|r| Response::data(r.api()))),
                Delete => {
                    st.delete(&format!("role/{name}")).await?;
                    Ok(None)
                }
                _ => {
                    // A partial update must not lose a concurrent one.
                    let _g = self.rotation_lock.lock().await;
                    let existing = self.role(st, name).await?;
                    let role = Role::from_request(existing, req.data)?;
                    st.put_json(&format!("role/{name}"), &role).await?;
                    Ok(None)
                }
            },
            Route::Creds => self.creds(&req, name).await,
            Route::StaticRolesList => Ok(Some(Response::list(st.list("static-role/").await?))),
            Route::StaticRole => match op {
                Read => Ok(self
                    .load_static(st, name)
                    .await?
                    .map(|r| Response::data(r.api()))),
                Delete => {
                    let _g = self.rotation_lock.lock().await;
                    self.forget(st, LeakKind::StaticRole, name).await?;
                    Ok(None)
                }
                _ => {
                    // Same lock as rotation: an update that read the role
                    // before a rotation must not write its old password back.
                    let _g = self.rotation_lock.lock().await;
                    let existing = self.load_static(st, name).await?;
                    let is_new = existing.is_none();
                    let role = static_role::StaticRole::from_request(existing, req.data)?;
                    if is_new {
                        self.create_static(st, name, role).await?;
                    } else {
                        self.save_static(st, name, &role).await?;
                    }
                    Ok(None)
                }
            },
            Route::StaticCreds => Ok(self
                .load_static(st, name)
                .await?
                .map(|r| Response::data(r.creds(now_unix())))),
            Route::RotateRole => {
                self.rotate_static(st, name).await?;
                Ok(None)
            }
            Route::RotateRoot => {
                self.rotate_root(st, name).await?;
                Ok(None)
            }
        }
    }

    async fn periodic(&self, storage: &StorageView) -> Result<(), LogicalError> {
        self.rotate_due(storage).await
    }

    async fn leak_reindex(&self, storage: &StorageView) -> Result<(), LogicalError> {
        self.leak_reindex_all(storage).await
    }

    async fn leak_confirm(
        &self,
        storage: &StorageView,
        kind: LeakKind,
        name: &str,
        print: &coffer_core::leak::Print,
    ) -> Result<Vec<coffer_core::leak::LeakMatch>, LogicalError> {
        self.leak_confirm_one(storage, kind, name, print).await
    }

    async fn rotation_status(
        &self,
        storage: &StorageView,
    ) -> Result<Vec<coffer_core::backend::RotationStatus>, LogicalError> {
        self.rotation_list(storage).await
    }

    async fn exists(
        &self,
        path: &str,
        storage: &StorageView,
    ) -> Result<Option<bool>, LogicalError> {
        let key = if let Some(n) = path.strip_prefix("config/") {
            format!("config/{n}")
        } else if let Some(n) = path.strip_prefix("roles/") {
            format!("role/{n}")
        } else if let Some(n) = path.strip_prefix("static-roles/") {
            format!("static-role/{n}")
        } else {
            return Ok(None);
        };
        Ok(Some(storage.get(&key).await?.is_some()))
    }

    async fn revoke_lease(&self, req: LeaseRequest<'_>) -> Result<(), LogicalError> {
        self.lease_statements(&req, true).await
    }

    async fn renew_lease(&self, req: LeaseRequest<'_>) -> Result<(), LogicalError> {
        self.lease_statements(&req, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::driver::Plugin;

    #[test]
    fn plugins_by_name() {
        assert_eq!(
            Plugin::from_name("postgresql-database-plugin"),
            Some(Plugin::Postgres)
        );
        assert_eq!(
            Plugin::from_name("mysql-rds-database-plugin"),
            Some(Plugin::Mysql)
        );
        assert_eq!(Plugin::from_name("oracle-database-plugin"), None);
        for name in crate::database::PLUGIN_NAMES {
            assert!(Plugin::from_name(name).is_some(), "{name}");
        }
    }
}
