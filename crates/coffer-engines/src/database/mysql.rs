//! MySQL and MariaDB through a mysql_async pool.

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use zeroize::Zeroizing;

use super::driver::Driver;
use super::template::url_escape;

pub(super) struct Mysql {
    pool: mysql_async::Pool,
}

/// Vault's (Go driver) form `user:pass@tcp(host:port)/db?x=y` as a `mysql://` URL;
/// a `mysql://` URL is taken as it is.
fn to_url(dsn: &str) -> Result<String, String> {
    if dsn.starts_with("mysql://") {
        return Ok(dsn.to_owned());
    }
    let (cred, rest) = dsn.rsplit_once('@').unwrap_or(("", dsn));
    let rest = rest
        .strip_prefix("tcp(")
        .ok_or_else(|| "connection_url must look like user:pass@tcp(host:port)/ or mysql://user:pass@host:port/".to_string())?;
    let (addr, path) = rest
        .split_once(')')
        .ok_or_else(|| "connection_url: tcp( is not closed".to_string())?;
    let (user, pass) = cred.split_once(':').unwrap_or((cred, ""));
    // Go DSN options (parseTime, tls, ...) mean nothing to this client.
    let db = path.split('?').next().unwrap_or("");
    Ok(format!(
        "mysql://{}:{}@{addr}{db}",
        url_escape(user),
        url_escape(pass)
    ))
}

impl Mysql {
    pub(super) fn new(dsn: &str, max_open: usize) -> Result<Self, String> {
        let url = Zeroizing::new(to_url(dsn)?);
        let opts = mysql_async::Opts::from_url(&url)
            .map_err(|e| format!("connection_url is not a MySQL address: {e}"))?;
        let constraints = mysql_async::PoolConstraints::new(0, max_open.max(1))
            .ok_or_else(|| "max_open_connections must be at least 1".to_string())?;
        let opts = mysql_async::OptsBuilder::from_opts(opts)
            .pool_opts(mysql_async::PoolOpts::default().with_constraints(constraints));
        Ok(Self {
            pool: mysql_async::Pool::new(opts),
        })
    }
}

fn describe(e: mysql_async::Error) -> String {
    match e {
        mysql_async::Error::Server(s) => format!("MySQL error {}: {}", s.code, s.message),
        other => other.to_string(),
    }
}

#[async_trait]
impl Driver for Mysql {
    async fn execute(&self, statements: &[Zeroizing<String>]) -> Result<(), String> {
        let mut c = self.pool.get_conn().await.map_err(describe)?;
        // DDL commits by itself in MySQL; the transaction still groups DML.
        let mut tx = c
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .map_err(describe)?;
        for s in statements {
            for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                tx.query_drop(part).await.map_err(describe)?;
            }
        }
        tx.commit().await.map_err(describe)
    }

    async fn verify(&self) -> Result<(), String> {
        let mut c = self.pool.get_conn().await.map_err(describe)?;
        c.query_drop("SELECT 1").await.map_err(describe)
    }
}

#[cfg(test)]
mod tests {
    use super::to_url;

    #[test]
    fn go_dsn_becomes_a_url() {
        assert_eq!(
            to_url("root:p@ss@tcp(127.0.0.1:3306)/test?parseTime=true").unwrap(),
            "mysql://root:p%40ss@127.0.0.1:3306/test"
        );
        assert_eq!(to_url("u:@tcp(db:3306)/").unwrap(), "mysql://u:@db:3306/");
        assert!(to_url("nonsense").is_err());
    }
}
