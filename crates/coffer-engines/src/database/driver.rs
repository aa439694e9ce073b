//! Talking to the managed databases: one pool per connection config.

use async_trait::async_trait;
use zeroize::Zeroizing;

/// A database this engine manages users in.
#[async_trait]
pub(super) trait Driver: Send + Sync {
    /// Runs statements in one transaction (as far as the database allows DDL
    /// in one): all of them or none.
    async fn execute(&self, statements: &[Zeroizing<String>]) -> Result<(), String>;
    /// Opens a connection and runs a trivial query.
    async fn verify(&self) -> Result<(), String>;
    /// Runs the default revocation, where a user that no longer exists
    /// already counts as dropped (a retried revocation must succeed).
    async fn execute_drop(&self, statements: &[Zeroizing<String>]) -> Result<(), String> {
        self.execute(statements).await
    }
}

/// The database kinds, by Vault's plugin names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plugin {
    Postgres,
    Mysql,
}

impl Plugin {
    /// The driver for a `plugin_name` (one of [`super::PLUGIN_NAMES`]).
    pub(super) fn from_name(name: &str) -> Option<Self> {
        match name {
            "postgresql-database-plugin" => Some(Plugin::Postgres),
            "mysql-database-plugin"
            | "mysql-aurora-database-plugin"
            | "mysql-rds-database-plugin"
            | "mysql-legacy-database-plugin" => Some(Plugin::Mysql),
            _ => None,
        }
    }

    /// Per-part and total length limits of generated user names.
    pub(super) fn name_limits(self, plugin_name: &str) -> (usize, usize) {
        match self {
            Plugin::Postgres => (8, 63),
            Plugin::Mysql if plugin_name == "mysql-database-plugin" => (10, 32),
            // The legacy MySQL plugins keep MySQL 5.6's 16-character limit.
            Plugin::Mysql => (4, 16),
        }
    }

    /// What revocation runs when a role gives no statements.
    pub(super) fn default_revocation(self) -> Vec<String> {
        match self {
            // Sessions end, grants and owned objects go, then the role; a
            // role already gone is success, so a retry is safe
            // (`execute_drop` treats "role does not exist" as done.)
            Plugin::Postgres => vec![
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}' AND pid <> pg_backend_pid();".into(),
                "DROP OWNED BY \"{{name}}\";".into(),
                "DROP ROLE IF EXISTS \"{{name}}\";".into(),
            ],
            Plugin::Mysql => vec![
                "DROP USER IF EXISTS '{{name}}'@'%';".into(),
            ],
        }
    }

    /// What renewal runs when a role gives no statements.
    pub(super) fn default_renewal(self) -> Vec<String> {
        match self {
            Plugin::Postgres => {
                vec!["ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}';".into()]
            }
            Plugin::Mysql => Vec::new(),
        }
    }

    /// What rotation runs when a static role or config gives no statements.
    pub(super) fn default_password_change(self) -> Vec<String> {
        match self {
            Plugin::Postgres => {
                vec!["ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}';".into()]
            }
            Plugin::Mysql => vec!["ALTER USER '{{name}}'@'%' IDENTIFIED BY '{{password}}';".into()],
        }
    }

    /// Connects with `url` (placeholders already filled in).
    pub(super) fn connect(self, url: &str, max_open: usize) -> Result<Box<dyn Driver>, String> {
        match self {
            Plugin::Postgres => super::postgres::Postgres::new(url, max_open)
                .map(|d| Box::new(d) as Box<dyn Driver>),
            Plugin::Mysql => {
                super::mysql::Mysql::new(url, max_open).map(|d| Box::new(d) as Box<dyn Driver>)
            }
        }
    }
}
