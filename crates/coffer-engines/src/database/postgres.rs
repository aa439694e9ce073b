//! PostgreSQL through a small deadpool of tokio-postgres connections.

use async_trait::async_trait;
use zeroize::Zeroizing;

use super::driver::Driver;

pub(super) struct Postgres {
    pool: deadpool_postgres::Pool,
}

impl Postgres {
    /// `url` is a `postgresql://` URI or a `key=value` string.
    pub(super) fn new(url: &str, max_open: usize) -> Result<Self, String> {
        let cfg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| format!("connection_url is not a PostgreSQL connection string: {e}"))?;
        if matches!(cfg.get_ssl_mode(), tokio_postgres::config::SslMode::Require) {
            return Err("sslmode=require is not supported yet: connections are plain TCP (use sslmode=disable on a trusted network)".into());
        }
        let mgr = deadpool_postgres::Manager::from_config(
            cfg,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(mgr)
            .max_size(max_open.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { pool })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, String> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => describe(&e),
            other => other.to_string(),
        })
    }
}

/// The statements as one simple-query message: PostgreSQL runs them as one
/// implicit transaction (all or none) in a single round trip, and its parser
/// keeps quoted `;` intact.
fn joined(statements: &[Zeroizing<String>]) -> Zeroizing<String> {
    let mut all = Zeroizing::new(String::new());
    for s in statements {
        all.push_str(s.trim_end().trim_end_matches(';'));
        all.push_str(";\n");
    }
    all
}

/// The server's own message when there is one ("password authentication failed ...").
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut s = e.to_string();
            if let Some(src) = std::error::Error::source(e) {
                s = format!("{s}: {src}");
            }
            s
        }
    }
}

#[async_trait]
impl Driver for Postgres {
    async fn execute(&self, statements: &[Zeroizing<String>]) -> Result<(), String> {
        let c = self.client().await?;
        c.batch_execute(&joined(statements))
            .await
            .map_err(|e| describe(&e))
    }

    async fn execute_drop(&self, statements: &[Zeroizing<String>]) -> Result<(), String> {
        let c = self.client().await?;
        match c.batch_execute(&joined(statements)).await {
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_OBJECT) => {
                Ok(())
            }
            other => other.map_err(|e| describe(&e)),
        }
    }

    async fn verify(&self) -> Result<(), String> {
        let c = self.client().await?;
        c.simple_query("SELECT 1")
            .await
            .map(|_| ())
            .map_err(|e| describe(&e))
    }
}
