//! Shared backend: one PostgreSQL table of `key -> bytea`.
//!
//! Keys use the "C" collation so that range scans over a prefix follow byte
//! order, which is what listing relies on.

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::listing::prefix_successor;
use crate::{Op, Storage, StorageError};

/// How to reach PostgreSQL.
#[derive(Clone)]
pub struct PostgresConfig {
    /// A libpq-style URL or `key=value` string.
    pub connection_url: String,
    /// The table holding coffer's entries; created on first start.
    pub table: String,
    /// Pool size.
    pub max_parallel: usize,
}

impl std::fmt::Debug for PostgresConfig {
    // The URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("table", &self.table)
            .field("max_parallel", &self.max_parallel)
            .finish_non_exhaustive()
    }
}

/// Entries in a PostgreSQL table, through a connection pool.
pub struct PostgresStorage {
    pool: Pool,
    sql: Queries,
}

struct Queries {
    get: String,
    put: String,
    delete: String,
    list: String,
}

fn pg(e: impl std::fmt::Display) -> StorageError {
    StorageError::Postgres(e.to_string())
}

/// tokio-postgres prints only "db error"; the server's message is what helps.
fn db(e: tokio_postgres::Error) -> StorageError {
    match e.as_db_error() {
        Some(d) => StorageError::Postgres(format!("{}: {}", d.code().code(), d.message())),
        None => pg(e),
    }
}

fn valid_table_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

impl PostgresStorage {
    /// Connects, and creates the table if it does not exist yet.
    pub async fn connect(config: &PostgresConfig) -> Result<Self, StorageError> {
        if !valid_table_name(&config.table) {
            return Err(StorageError::Config(format!(
                "postgresql table name {:?} must be letters, digits, '_' or '.'",
                config.table
            )));
        }
        let pg_config: tokio_postgres::Config = config.connection_url.parse().map_err(|e| {
            StorageError::Config(format!("postgresql connection_url is not valid: {e}"))
        })?;
        let manager = Manager::from_config(
            pg_config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.max_parallel.max(1))
            .build()
            .map_err(pg)?;
        let t = &config.table;
        let client = pool.get().await.map_err(pg)?;
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {t} (key TEXT COLLATE \"C\" PRIMARY KEY, value BYTEA NOT NULL)"
            ))
            .await.map_err(db)?;
        let sql = Queries {
            get: format!("SELECT value FROM {t} WHERE key = $1"),
            put: format!(
                "INSERT INTO {t} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            ),
            delete: format!("DELETE FROM {t} WHERE key = $1"),
            list: format!(
                "SELECT DISTINCT (CASE WHEN strpos(r, '/') > 0 THEN left(r, strpos(r, '/')) ELSE r END) COLLATE \"C\" AS c \
                 FROM (SELECT substr(key, $3::int) AS r FROM {t} \
                       WHERE key >= $1 AND ($2::text IS NULL OR key < $2)) s \
                 WHERE r <> '' ORDER BY c"
            ),
        };
        Ok(Self { pool, sql })
    }
}

#[async_trait]
impl Storage for PostgresStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let client = self.pool.get().await.map_err(pg)?;
        let row = client.query_opt(&self.sql.get, &[&key]).await.map_err(db)?;
        Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        let client = self.pool.get().await.map_err(pg)?;
        client
            .execute(&self.sql.put, &[&key, &value])
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let client = self.pool.get().await.map_err(pg)?;
        client
            .execute(&self.sql.delete, &[&key])
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let client = self.pool.get().await.map_err(pg)?;
        let upper = prefix_successor(prefix);
        let from = i32::try_from(prefix.chars().count() + 1)
            .map_err(|_| StorageError::Postgres("list prefix too long".into()))?;
        let rows = client
            .query(&self.sql.list, &[&prefix, &upper, &from])
            .await
            .map_err(db)?;
        Ok(rows.into_iter().map(|r| r.get::<_, String>(0)).collect())
    }

    async fn batch(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        let mut client = self.pool.get().await.map_err(pg)?;
        let tx = client.transaction().await.map_err(db)?;
        for op in &ops {
            match op {
                Op::Put(k, v) => tx.execute(&self.sql.put, &[k, v]).await.map_err(db)?,
                Op::Delete(k) => tx.execute(&self.sql.delete, &[k]).await.map_err(db)?,
            };
        }
        tx.commit().await.map_err(db)
    }

    fn kind(&self) -> &'static str {
        "postgresql"
    }
}
