//! Leadership on PostgreSQL: a lease row with a database-clock TTL, held
//! over a dedicated connection, and a fence row whose epoch every write of
//! the active node checks.
//!
//! Why both a TTL and connection liveness: a node that crashes closes its
//! connections, so PostgreSQL drops its session at once and a standby may
//! take over without waiting for the TTL (failover in a fraction of a
//! second). A node that is paused or cut off keeps its session open on the
//! server side, so there the TTL decides; the node itself stops serving
//! before the TTL runs out, counting from the start of its last good
//! renewal. A taker terminates the old holder's sessions and then bumps the
//! fence epoch, which waits for the old holder's in-flight writes to end;
//! after the bump no write of the old epoch can commit.

use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::{Client, NoTls};

use crate::StorageError;
use crate::ha::{Advertise, Attempt, Fence, HaLock, Leader, Node};
use crate::postgres::{db, fence_lock_key, run_ddl, valid_table_name};

/// The leadership row and the fence row in the HA table.
const LEADER: &str = "leader";
const FENCE: &str = "fence";
const NODE_PREFIX: &str = "node/";

/// Settings of [`PostgresHa`].
#[derive(Clone)]
pub struct PostgresHaConfig {
    /// A libpq-style URL or `key=value` string.
    pub connection_url: String,
    /// The HA table (created on first start).
    pub table: String,
    /// This process's node id.
    pub node_id: String,
    /// How long leadership lasts without renewal.
    pub lease_ttl: Duration,
}

/// The application name of the lock connection and of the data pool: a
/// taker finds the old holder's sessions by them.
pub fn lock_application_name(node_id: &str) -> String {
    format!("{LOCK_APP_PREFIX}{node_id}")
}

/// See [`lock_application_name`]; also matched in SQL.
const LOCK_APP_PREFIX: &str = "coffer-ha:";

/// See [`lock_application_name`].
pub fn pool_application_name(node_id: &str) -> String {
    format!("coffer:{node_id}")
}

/// Leadership over a PostgreSQL table.
pub struct PostgresHa {
    cfg: PostgresHaConfig,
    pg: tokio_postgres::Config,
    fence: std::sync::Arc<Fence>,
    conn: tokio::sync::Mutex<Option<Client>>,
    losses: tokio::sync::watch::Sender<u64>,
}

impl PostgresHa {
    /// Creates the HA table if needed. `fence` is the one the data backend
    /// checks (see `PostgresConfig::fence`).
    pub async fn connect(
        cfg: PostgresHaConfig,
        fence: std::sync::Arc<Fence>,
    ) -> Result<Self, StorageError> {
        if !valid_table_name(&cfg.table) {
            return Err(StorageError::Config(format!(
                "postgresql ha_table name {:?} must be letters, digits, '_' or '.'",
                cfg.table
            )));
        }
        let mut pg: tokio_postgres::Config = cfg.connection_url.parse().map_err(|e| {
            StorageError::Config(format!("postgresql connection_url is not valid: {e}"))
        })?;
        pg.application_name(lock_application_name(&cfg.node_id));
        pg.connect_timeout(cfg.lease_ttl / 3);
        pg.keepalives_idle(Duration::from_secs(5));
        let (losses, _) = tokio::sync::watch::channel(0);
        let ha = Self {
            cfg,
            pg,
            fence,
            conn: tokio::sync::Mutex::new(None),
            losses,
        };
        let t = &ha.cfg.table;
        let guard = ha.client().await?;
        let c = guard
            .as_ref()
            .ok_or_else(|| StorageError::Postgres("no connection".into()))?;
        run_ddl(
            c,
            &format!(
                "CREATE TABLE IF NOT EXISTS {t} (ha_key TEXT COLLATE \"C\" PRIMARY KEY, \
             epoch BIGINT NOT NULL DEFAULT 0, holder TEXT, holder_pid INT, api_addr TEXT, \
             cluster_addr TEXT, hostname TEXT, version TEXT, valid_until TIMESTAMPTZ, \
             since TIMESTAMPTZ, last_echo TIMESTAMPTZ); \
             INSERT INTO {t} (ha_key) VALUES ('{LEADER}'), ('{FENCE}') ON CONFLICT DO NOTHING"
            ),
        )
        .await?;
        drop(guard);
        Ok(ha)
    }

    /// The lock connection, opened if it is not (or no longer) open.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, StorageError> {
        let mut guard = self.conn.lock().await;
        if guard.as_ref().is_some_and(|c| !c.is_closed()) {
            return Ok(guard);
        }
        *guard = None;
        let (client, connection) = self.timed(self.pg.connect(NoTls)).await?;
        let losses = self.losses.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "HA lock connection to PostgreSQL lost");
            }
            losses.send_modify(|n| *n += 1);
        });
        let ms = self.cfg.lease_ttl.as_millis() / 3;
        self.timed(client.batch_execute(&format!(
            "SET statement_timeout = {ms}; SET lock_timeout = {ms}"
        )))
        .await?;
        *guard = Some(client);
        Ok(guard)
    }

    /// Bounds one round trip: a silent network must not hold the loop
    /// past the lease (the server-side timeout cannot see a lost packet).
    async fn timed<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, StorageError> {
        match tokio::time::timeout(self.cfg.lease_ttl / 3, f).await {
            Ok(r) => r.map_err(db),
            Err(_) => Err(StorageError::Postgres(
                "HA lock: PostgreSQL did not answer in time".into(),
            )),
        }
    }

    /// Runs `f` on the lock connection; a failure closes the connection so
    /// the next call starts afresh (a timed-out statement may still run).
    async fn with_client<T>(
        &self,
        f: impl AsyncFnOnce(&Client) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let mut guard = self.client().await?;
        let Some(c) = guard.as_ref() else {
            return Err(StorageError::Postgres("no connection".into()));
        };
        let r = f(c).await;
        if r.is_err() {
            *guard = None;
        }
        r
    }

    /// The epoch held: the fence is armed exactly while leadership is held.
    fn epoch_held(&self) -> Option<i64> {
        Some(self.fence.epoch()).filter(|e| *e != 0)
    }

    fn set_held(&self, epoch: Option<i64>) {
        match epoch {
            Some(e) => self.fence.arm(e),
            None => self.fence.disarm(),
        }
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.cfg.lease_ttl.as_millis()).unwrap_or(i64::MAX)
    }
}

fn leader_of(row: &tokio_postgres::Row) -> Option<Leader> {
    let node_id: Option<String> = row.get("holder");
    Some(Leader {
        node_id: node_id?,
        api_addr: row.get::<_, Option<String>>("api_addr").unwrap_or_default(),
        cluster_addr: row
            .get::<_, Option<String>>("cluster_addr")
            .unwrap_or_default(),
        since_ms: row.get::<_, Option<i64>>("since_ms").unwrap_or_default(),
        epoch: row.get("epoch"),
    })
}

#[async_trait]
impl HaLock for PostgresHa {
    fn node_id(&self) -> &str {
        &self.cfg.node_id
    }

    fn lease_ttl(&self) -> Duration {
        self.cfg.lease_ttl
    }

    async fn try_acquire(&self, me: &Advertise) -> Result<Attempt, StorageError> {
        let t = self.cfg.table.clone();
        let state = format!(
            "SELECT holder, epoch, api_addr, cluster_addr, \
             (extract(epoch FROM since) * 1000)::bigint AS since_ms, \
             (valid_until IS NULL OR valid_until < now()) AS expired, \
             (holder_pid IS NULL OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a \
               WHERE a.pid = l.holder_pid AND a.application_name = '{LOCK_APP_PREFIX}' || l.holder)) AS gone \
             FROM {t} l WHERE ha_key = '{LEADER}'"
        );
        // A cheap look first: standbys ask several times a second.
        let row = self
            .with_client(async |c| self.timed(c.query_one(&state, &[])).await)
            .await?;
        let takeable = row.get::<_, bool>("expired") || row.get::<_, bool>("gone");
        if !takeable {
            return Ok(Attempt::Held(leader_of(&row)));
        }
        let old: Option<String> = row.get("holder");
        let me_id = self.cfg.node_id.clone();
        if let Some(old) = old.filter(|o| *o != me_id) {
            // Best effort: ends the old holder's open writes so the epoch
            // bump below does not wait on a paused process's transaction.
            let kill = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                        WHERE application_name = $1 OR application_name = $2";
            let names = (lock_application_name(&old), pool_application_name(&old));
            if let Err(e) = self
                .with_client(async |c| self.timed(c.query_one(kill, &[&names.0, &names.1])).await)
                .await
            {
                tracing::warn!(error = %e, "could not end the old active node's sessions");
            }
        }
        let ttl = self.ttl_ms();
        let locked = format!("{state} FOR UPDATE");
        let attempt = self
            .with_client(async |c| {
                self.timed(c.batch_execute("BEGIN")).await?;
                let row = self.timed(c.query_one(&locked, &[])).await?;
                if !(row.get::<_, bool>("expired") || row.get::<_, bool>("gone")) {
                    self.timed(c.batch_execute("ROLLBACK")).await?;
                    return Ok(Attempt::Held(leader_of(&row)));
                }
                // Waits for fenced writes under way (they hold it shared);
                // later ones find the new epoch.
                let lk = fence_lock_key(&t);
                self.timed(c.execute("SELECT pg_advisory_xact_lock($1)", &[&lk]))
                    .await?;
                let bump = format!(
                    "UPDATE {t} SET epoch = epoch + 1 WHERE ha_key = '{FENCE}' RETURNING epoch"
                );
                let epoch: i64 = self.timed(c.query_one(&bump, &[])).await?.get(0);
                let claim = format!(
                    "UPDATE {t} SET holder = $1, holder_pid = pg_backend_pid(), epoch = $2, \
                     api_addr = $3, cluster_addr = $4, hostname = $5, version = $6, \
                     valid_until = now() + $7::bigint * interval '1 millisecond', since = now() \
                     WHERE ha_key = '{LEADER}'"
                );
                self.timed(c.execute(
                    &claim,
                    &[
                        &me_id,
                        &epoch,
                        &me.api_addr,
                        &me.cluster_addr,
                        &me.hostname,
                        &me.version,
                        &ttl,
                    ],
                ))
                .await?;
                self.timed(c.batch_execute("COMMIT")).await?;
                Ok(Attempt::Acquired(epoch))
            })
            .await?;
        if let Attempt::Acquired(epoch) = attempt {
            self.set_held(Some(epoch));
        }
        Ok(attempt)
    }

    async fn renew(&self) -> Result<bool, StorageError> {
        let Some(epoch) = self.epoch_held() else {
            return Ok(false);
        };
        let sql = format!(
            "UPDATE {} SET valid_until = now() + $3::bigint * interval '1 millisecond' \
             WHERE ha_key = '{LEADER}' AND holder = $1 AND epoch = $2 AND holder_pid = pg_backend_pid()",
            self.cfg.table
        );
        let (me, ttl) = (self.cfg.node_id.clone(), self.ttl_ms());
        let n = self
            .with_client(async |c| self.timed(c.execute(&sql, &[&me, &epoch, &ttl])).await)
            .await?;
        if n == 0 {
            self.set_held(None);
            return Ok(false);
        }
        Ok(true)
    }

    async fn release(&self) -> Result<(), StorageError> {
        let Some(epoch) = self.epoch_held() else {
            return Ok(());
        };
        self.set_held(None);
        let sql = format!(
            "UPDATE {} SET holder = NULL, holder_pid = NULL, valid_until = NULL, \
             api_addr = NULL, cluster_addr = NULL, since = NULL \
             WHERE ha_key = '{LEADER}' AND holder = $1 AND epoch = $2",
            self.cfg.table
        );
        let me = self.cfg.node_id.clone();
        self.with_client(async |c| self.timed(c.execute(&sql, &[&me, &epoch])).await)
            .await
            .map(|_| ())
    }

    fn forfeit(&self) {
        self.set_held(None);
        // A renewal given up half-way may leave the connection mid-statement.
        if let Ok(mut c) = self.conn.try_lock() {
            *c = None;
        }
    }

    async fn leader(&self) -> Result<Option<Leader>, StorageError> {
        let sql = format!(
            "SELECT holder, epoch, api_addr, cluster_addr, \
             (extract(epoch FROM since) * 1000)::bigint AS since_ms \
             FROM {} WHERE ha_key = '{LEADER}'",
            self.cfg.table
        );
        let row = self
            .with_client(async |c| self.timed(c.query_one(&sql, &[])).await)
            .await?;
        Ok(leader_of(&row))
    }

    async fn echo(&self, me: &Advertise) -> Result<(), StorageError> {
        let sql = format!(
            "INSERT INTO {} (ha_key, api_addr, cluster_addr, hostname, version, last_echo) \
             VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT (ha_key) DO UPDATE SET \
             api_addr = EXCLUDED.api_addr, cluster_addr = EXCLUDED.cluster_addr, \
             hostname = EXCLUDED.hostname, version = EXCLUDED.version, last_echo = now()",
            self.cfg.table
        );
        let key = format!("{NODE_PREFIX}{}", self.cfg.node_id);
        self.with_client(async |c| {
            self.timed(c.execute(
                &sql,
                &[
                    &key,
                    &me.api_addr,
                    &me.cluster_addr,
                    &me.hostname,
                    &me.version,
                ],
            ))
            .await
        })
        .await
        .map(|_| ())
    }

    async fn nodes(&self, within: Duration) -> Result<Vec<Node>, StorageError> {
        let sql = format!(
            "SELECT ha_key, api_addr, cluster_addr, hostname, version, \
             (extract(epoch FROM last_echo) * 1000)::bigint AS echo_ms FROM {} \
             WHERE ha_key LIKE '{NODE_PREFIX}%' AND last_echo > now() - $1::bigint * interval '1 millisecond' \
             ORDER BY ha_key",
            self.cfg.table
        );
        let within = i64::try_from(within.as_millis()).unwrap_or(i64::MAX);
        let rows = self
            .with_client(async |c| self.timed(c.query(&sql, &[&within])).await)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Node {
                node_id: r
                    .get::<_, String>("ha_key")
                    .trim_start_matches(NODE_PREFIX)
                    .to_owned(),
                advertise: Advertise {
                    api_addr: r.get::<_, Option<String>>("api_addr").unwrap_or_default(),
                    cluster_addr: r
                        .get::<_, Option<String>>("cluster_addr")
                        .unwrap_or_default(),
                    hostname: r.get::<_, Option<String>>("hostname").unwrap_or_default(),
                    version: r.get::<_, Option<String>>("version").unwrap_or_default(),
                },
                last_echo_ms: r.get::<_, Option<i64>>("echo_ms").unwrap_or_default(),
            })
            .collect())
    }

    async fn leave(&self) -> Result<(), StorageError> {
        let sql = format!("DELETE FROM {} WHERE ha_key = $1", self.cfg.table);
        let key = format!("{NODE_PREFIX}{}", self.cfg.node_id);
        self.with_client(async |c| self.timed(c.execute(&sql, &[&key])).await)
            .await
            .map(|_| ())
    }

    fn connection_losses(&self) -> tokio::sync::watch::Receiver<u64> {
        self.losses.subscribe()
    }
}
