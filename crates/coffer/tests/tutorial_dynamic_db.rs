//! docs/tutorial-dynamic-db.md, end to end: `examples/dynamic-db/app.py`
//! queries PostgreSQL in a loop with credentials `coffer agent` renders
//! (its own `examples/dynamic-db/agent.hcl`). Dynamic credentials are
//! renewed, reach their max TTL, are replaced and the app told with
//! SIGHUP; the old user is revoked and gone; not one query fails. Then the
//! same with a static role rotated with a grace period.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Http, PrivatePostgres, Server};
use serde_json::{Value, json};

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/dynamic-db")
}

async fn pg_sql(pg: &PrivatePostgres, sql: &str) -> Vec<tokio_postgres::SimpleQueryMessage> {
    let (client, conn) =
        tokio_postgres::connect(&pg.dsn("postgres", &pg.password), tokio_postgres::NoTls)
            .await
            .expect("postgres");
    tokio::spawn(conn);
    client.simple_query(sql).await.expect("sql")
}

async fn role_exists(pg: &PrivatePostgres, name: &str) -> bool {
    let rows = pg_sql(
        pg,
        &format!("SELECT 1 FROM pg_roles WHERE rolname = '{name}'"),
    )
    .await;
    rows.iter()
        .any(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
}

async fn login_works(pg: &PrivatePostgres, user: &str, password: &str) -> bool {
    match tokio_postgres::connect(&pg.dsn(user, password), tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            client.simple_query("SELECT 1").await.is_ok()
        }
        Err(_) => false,
    }
}

/// The example's files in `dir`, pointed at this server and database, with
/// an AppRole login whose policy is the one the tutorial writes.
async fn set_up(
    dir: &Path,
    root: &Http,
    addr: &str,
    pg: &PrivatePostgres,
    creds_path: &str,
    python: &Path,
) {
    std::fs::copy(examples().join("app.py"), dir.join("app.py")).expect("app.py");
    let hcl = std::fs::read_to_string(examples().join("agent.hcl"))
        .expect("agent.hcl")
        .replace("http://127.0.0.1:8200", addr)
        .replace("\"port\": 5432", &format!("\"port\": {}", pg.port))
        .replace("database/creds/app", creds_path)
        .replace(
            "\"python3\"",
            &format!("{:?}", python.display().to_string()),
        );
    std::fs::write(dir.join("agent.hcl"), hcl).expect("agent.hcl");
    let policy = format!(
        "path \"{creds_path}\" {{ capabilities = [\"read\"] }}\npath \"sys/leases/renew\" {{ capabilities = [\"update\"] }}\npath \"sys/events/subscribe/*\" {{ capabilities = [\"read\"] }}\npath \"sys/internal/ui/mounts/*\" {{ capabilities = [\"read\"] }}\n"
    );
    common::put_policy(root, "app", &policy).await;
    let (role_id, secret_id) = common::approle(root, "app", "app").await;
    std::fs::write(dir.join("role_id"), role_id).expect("role_id");
    std::fs::write(dir.join("secret_id"), secret_id).expect("secret_id");
}

fn start_agent(dir: &Path) -> Proc {
    let log = std::fs::File::create(dir.join("agent.log")).expect("log");
    Proc(
        Command::new(common::server_binary())
            .args(["agent", "-config=agent.hcl"])
            .current_dir(dir)
            .env_remove("VAULT_TOKEN")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("coffer agent"),
    )
}

fn status(dir: &Path) -> Value {
    std::fs::read_to_string(dir.join("status.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null)
}

/// Stops the agent (which stops the app, which writes its final counts).
fn stop(agent: &mut Proc, dir: &Path) -> Value {
    let pid = agent.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let _ = agent.0.wait();
    status(dir)
}

async fn until(what: &str, limit: Duration, dir: &Path, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < limit,
            "{what} within {limit:?}; status {}; agent log:\n{}",
            status(dir),
            std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn prepared() -> Option<(PrivatePostgres, Server, PathBuf)> {
    let pg = PrivatePostgres::start()?;
    let venv = common::pip_venv("pg8000-venv", "pg8000==1.31.6")?;
    let s = Server::dev();
    let root = s.http(Some("root"));
    common::enable(&root, "sys/mounts/database", "database").await;
    common::enable(&root, "sys/auth/approle", "approle").await;
    let url = format!(
        "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable",
        pg.port
    );
    let r = root
        .post(
            "database/config/pg",
            json!({"plugin_name": "postgresql-database-plugin", "connection_url": url,
                   "username": "postgres", "password": pg.password, "allowed_roles": "*"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    Some((pg, s, venv.join("bin/python")))
}

#[tokio::test]
async fn dynamic_credentials_are_replaced_before_they_end_without_a_failed_query() {
    let Some((pg, s, python)) = prepared().await else {
        return;
    };
    let root = s.http(Some("root"));
    let r = root
        .post(
            "database/roles/app",
            json!({"db_name": "pg", "default_ttl": "4s", "max_ttl": "10s",
                   "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    set_up(d, &root, &s.addr, &pg, "database/creds/app", &python).await;
    let mut agent = start_agent(d);
    // The first user, then a replacement once the first nears its max TTL.
    until("the app runs", Duration::from_secs(20), d, || {
        status(d)["ok"].as_u64() > Some(10)
    })
    .await;
    let first = status(d)["users"][0]
        .as_str()
        .expect("first user")
        .to_owned();
    assert!(role_exists(&pg, &first).await);
    until("a second user", Duration::from_secs(25), d, || {
        status(d)["users"].as_array().is_some_and(|u| u.len() >= 2)
    })
    .await;
    // The first user's lease ends at its max TTL: revoked, the role dropped.
    let start = Instant::now();
    while role_exists(&pg, &first).await {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{first} still exists"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Queries went on meanwhile, with the new user.
    let ok_then = status(d)["ok"].as_u64().unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let fin = stop(&mut agent, d);
    assert!(fin["ok"].as_u64().unwrap_or(0) > ok_then, "{fin}");
    assert_eq!(fin["failed"], 0, "not one query failed: {fin}");
    let users = fin["users"].as_array().expect("users");
    assert_ne!(users[0], users[1], "{fin}");
    eprintln!("dynamic: {fin}");
}

#[tokio::test]
async fn a_static_role_rotation_reaches_the_app_at_once_and_the_old_password_ends_after_grace() {
    let Some((pg, s, python)) = prepared().await else {
        return;
    };
    pg_sql(
        &pg,
        "CREATE ROLE svc_a LOGIN PASSWORD 'initial'; CREATE ROLE svc_b LOGIN IN ROLE svc_a;",
    )
    .await;
    let root = s.http(Some("root"));
    let r = root
        .post(
            "database/static-roles/svc",
            json!({"db_name": "pg", "username": "svc_a", "grace_username": "svc_b",
                   "rotation_period": "1h", "rotation_grace_period": "3s"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    set_up(d, &root, &s.addr, &pg, "database/static-creds/svc", &python).await;
    let mut agent = start_agent(d);
    until("the app runs", Duration::from_secs(20), d, || {
        status(d)["ok"].as_u64() > Some(10)
    })
    .await;
    let before = root.get("database/static-creds/svc").await.json();
    let (user1, pw1) = (
        before["data"]["username"]
            .as_str()
            .expect("user")
            .to_owned(),
        before["data"]["password"].as_str().expect("pw").to_owned(),
    );
    // A rotation: the event brings the new pair to the app within a second.
    let rotated = Instant::now();
    assert_eq!(
        root.post("database/rotate-role/svc", json!({}))
            .await
            .status,
        204
    );
    until("the app switched", Duration::from_secs(5), d, || {
        status(d)["users"].as_array().is_some_and(|u| u.len() >= 2)
    })
    .await;
    eprintln!("rotation to app switch: {:?}", rotated.elapsed());
    // The previous pair works during its grace period, then not.
    assert!(
        login_works(&pg, &user1, &pw1).await,
        "previous pair within grace"
    );
    let start = Instant::now();
    while login_works(&pg, &user1, &pw1).await {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "grace never ended"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let fin = stop(&mut agent, d);
    assert_eq!(fin["failed"], 0, "not one query failed: {fin}");
    assert!(fin["ok"].as_u64().unwrap_or(0) > 20, "{fin}");
    eprintln!("static: {fin}");
}
