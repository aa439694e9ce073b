//! Shared backend: one PostgreSQL table of `key -> bytea`.
//!
//! Keys use the "C" collation so that range scans over a prefix follow byte
//! order, which is what listing relies on.

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use std::sync::Arc;

use crate::ha::Fence;
use crate::listing::prefix_successor;
use crate::postgres_ha::pool_application_name;
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
    /// With HA: the HA table and the fence every write checks, and this
    /// node's id (its sessions are named after it).
    pub ha: Option<PostgresFencing>,
}

/// How the data backend of an HA node fences its writes.
#[derive(Clone)]
pub struct PostgresFencing {
    /// The HA table holding the fence row.
    pub ha_table: String,
    /// The epoch this node may write under, set by the HA lock.
    pub fence: Arc<Fence>,
    /// This node's id.
    pub node_id: String,
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
    fence: Option<Arc<Fence>>,
}

struct Queries {
    get: String,
    put: String,
    delete: String,
    list: String,
    /// The same writes, done only while the fence row holds this node's
    /// epoch (see [`create_fence_functions`]).
    fenced_put: String,
    fenced_delete: String,
    fence_check: String,
}

pub(crate) fn pg(e: impl std::fmt::Display) -> StorageError {
    StorageError::Postgres(e.to_string())
}

/// tokio-postgres prints only "db error"; the server's message is what helps.
pub(crate) fn db(e: tokio_postgres::Error) -> StorageError {
    match e.as_db_error() {
        Some(d) => StorageError::Postgres(format!("{}: {}", d.code().code(), d.message())),
        None => pg(e),
    }
}

pub(crate) fn valid_table_name(name: &str) -> bool {
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
        let mut pg_config: tokio_postgres::Config = config.connection_url.parse().map_err(|e| {
            StorageError::Config(format!("postgresql connection_url is not valid: {e}"))
        })?;
        if let Some(ha) = &config.ha {
            if !valid_table_name(&ha.ha_table) {
                return Err(StorageError::Config(format!(
                    "postgresql ha_table name {:?} must be letters, digits, '_' or '.'",
                    ha.ha_table
                )));
            }
            pg_config.application_name(pool_application_name(&ha.node_id));
        }
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
        run_ddl(
            &client,
            &format!(
                "CREATE TABLE IF NOT EXISTS {t} (key TEXT COLLATE \"C\" PRIMARY KEY, value BYTEA NOT NULL)"
            ),
        )
        .await?;
        if let Some(h) = &config.ha {
            create_fence_functions(&client, t, &h.ha_table).await?;
        }
        let sql = Queries {
            fenced_put: format!("SELECT {t}_fenced_put($1, $2, $3)"),
            fenced_delete: format!("SELECT {t}_fenced_delete($1, $2)"),
            fence_check: format!("SELECT {t}_fence_holds($1)"),
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
        Ok(Self {
            pool,
            sql,
            fence: config.ha.as_ref().map(|h| h.fence.clone()),
        })
    }

    /// The epoch to write under: `None` without HA, an error when this node
    /// is not the active one.
    fn write_epoch(&self) -> Result<Option<i64>, StorageError> {
        match &self.fence {
            None => Ok(None),
            Some(f) => match f.epoch() {
                0 => Err(StorageError::Fenced),
                e => Ok(Some(e)),
            },
        }
    }
}

/// Serialises coffer's DDL: nodes starting together would otherwise race in
/// `CREATE ... IF NOT EXISTS`, which PostgreSQL does not make atomic.
pub(crate) const DDL_LOCK: i64 = 0x636f_6666_6572_6464; // "cofferdd"

/// The advisory lock that orders fenced writes before an epoch raise: every
/// fenced write holds it shared for its transaction, a takeover takes it
/// exclusively to raise the epoch. Derived from the HA table's name.
pub(crate) fn fence_lock_key(ha_table: &str) -> i64 {
    // FNV-1a: stable across builds and platforms, unlike the std hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in ha_table.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// Fenced writes as functions: one round trip each, and no row lock on the
/// fence row (which costs a multixact per concurrent writer). Inside a
/// volatile function each statement sees a fresh snapshot, so the epoch is
/// read after the shared lock is held: either the write commits before a
/// takeover's raise (which waits for the lock), or it sees the new epoch
/// and writes nothing. Created under an advisory lock: nodes start at once.
async fn create_fence_functions(
    client: &tokio_postgres::Client,
    t: &str,
    ha: &str,
) -> Result<(), StorageError> {
    let lk = fence_lock_key(ha);
    let holds = format!(
        "PERFORM pg_advisory_xact_lock_shared({lk}); \
         IF NOT EXISTS (SELECT 1 FROM {ha} WHERE ha_key = 'fence' AND epoch = e) THEN RETURN false; END IF;"
    );
    let ddl = format!(
        "CREATE OR REPLACE FUNCTION {t}_fenced_put(k TEXT, v BYTEA, e BIGINT) RETURNS BOOLEAN \
           LANGUAGE plpgsql VOLATILE AS $f$ BEGIN {holds} \
           INSERT INTO {t} (key, value) VALUES (k, v) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value; \
           RETURN true; END $f$; \
         CREATE OR REPLACE FUNCTION {t}_fenced_delete(k TEXT, e BIGINT) RETURNS BOOLEAN \
           LANGUAGE plpgsql VOLATILE AS $f$ BEGIN {holds} \
           DELETE FROM {t} WHERE key = k; RETURN true; END $f$; \
         CREATE OR REPLACE FUNCTION {t}_fence_holds(e BIGINT) RETURNS BOOLEAN \
           LANGUAGE plpgsql VOLATILE AS $f$ BEGIN {holds} RETURN true; END $f$;"
    );
    run_ddl(client, &ddl).await
}

/// Runs `sql` (one implicit transaction) under the DDL lock, which is held
/// until that transaction committed: released inside it, the next node's
/// `IF NOT EXISTS` would not yet see what this one created, and fail.
pub(crate) async fn run_ddl(
    client: &tokio_postgres::Client,
    sql: &str,
) -> Result<(), StorageError> {
    client
        .batch_execute(&format!("SELECT pg_advisory_lock({DDL_LOCK})"))
        .await
        .map_err(db)?;
    let r = client.batch_execute(sql).await.map_err(db);
    let unlocked = client
        .batch_execute(&format!("SELECT pg_advisory_unlock({DDL_LOCK})"))
        .await
        .map_err(db);
    r.and(unlocked)
}

#[async_trait]
impl Storage for PostgresStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let client = self.pool.get().await.map_err(pg)?;
        let row = client.query_opt(&self.sql.get, &[&key]).await.map_err(db)?;
        Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
    }

    async fn put(&self, key: &str, value: Vec<u8>) -> Result<(), StorageError> {
        let epoch = self.write_epoch()?;
        let client = self.pool.get().await.map_err(pg)?;
        match epoch {
            None => {
                client
                    .execute(&self.sql.put, &[&key, &value])
                    .await
                    .map_err(db)?;
            }
            Some(e) => {
                let done: bool = client
                    .query_one(&self.sql.fenced_put, &[&key, &value, &e])
                    .await
                    .map_err(db)?
                    .get(0);
                if !done {
                    return Err(StorageError::Fenced);
                }
            }
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let epoch = self.write_epoch()?;
        let client = self.pool.get().await.map_err(pg)?;
        match epoch {
            None => {
                client
                    .execute(&self.sql.delete, &[&key])
                    .await
                    .map_err(db)?;
            }
            Some(e) => {
                let done: bool = client
                    .query_one(&self.sql.fenced_delete, &[&key, &e])
                    .await
                    .map_err(db)?
                    .get(0);
                if !done {
                    return Err(StorageError::Fenced);
                }
            }
        }
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
        let epoch = self.write_epoch()?;
        let mut client = self.pool.get().await.map_err(pg)?;
        let tx = client.transaction().await.map_err(db)?;
        if let Some(e) = epoch
            && !tx
                .query_one(&self.sql.fence_check, &[&e])
                .await
                .map_err(db)?
                .get::<_, bool>(0)
        {
            return Err(StorageError::Fenced);
        }
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
