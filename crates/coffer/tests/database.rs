//! Dynamic database users against real databases: a private PostgreSQL that
//! checks passwords, and the machine's MariaDB. A credential must log in, and
//! after its lease ends it must not.

mod common;

use std::time::{Duration, Instant};

use common::{Http, PrivatePostgres, Server, Setup};
use mysql_async::prelude::Queryable;
use serde_json::{Value, json};

const PG_CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

async fn pg_login(pg: &PrivatePostgres, user: &str, password: &str) -> Result<(), String> {
    let (client, conn) = tokio_postgres::connect(&pg.dsn(user, password), tokio_postgres::NoTls)
        .await
        .map_err(|e| {
            e.as_db_error()
                .map_or(e.to_string(), |d| d.message().to_owned())
        })?;
    tokio::spawn(conn);
    client
        .simple_query("SELECT 1")
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn pg_role_exists(pg: &PrivatePostgres, user: &str) -> bool {
    let (client, conn) =
        tokio_postgres::connect(&pg.dsn("postgres", &pg.password), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    let rows = client
        .query("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&user])
        .await
        .unwrap();
    !rows.is_empty()
}

async fn configure_pg(h: &Http, pg: &PrivatePostgres, ttl: &str, max_ttl: &str) {
    let r = h
        .post("sys/mounts/database", json!({"type": "database"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = h
        .post(
            "database/config/pg",
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable", pg.port),
                "username": "postgres",
                "password": pg.password,
                "allowed_roles": "app,batch",
            }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    for role in ["app", "batch"] {
        let r = h
            .post(
                &format!("database/roles/{role}"),
                json!({"db_name": "pg", "creation_statements": [PG_CREATE], "default_ttl": ttl, "max_ttl": max_ttl}),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
    }
}

fn user_of(v: &Value) -> (String, String, String) {
    (
        v["lease_id"].as_str().unwrap().to_owned(),
        v["data"]["username"].as_str().unwrap().to_owned(),
        v["data"]["password"].as_str().unwrap().to_owned(),
    )
}

async fn until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn postgres_users_live_exactly_as_long_as_their_leases() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let s = Server::dev();
    let h = s.http(Some("root"));
    configure_pg(&h, &pg, "3s", "8s").await;

    // The config never shows the password; a wrong one is refused at write.
    let cfg = h.get("database/config/pg").await.json();
    assert!(!cfg.to_string().contains(&pg.password));
    let r = h
        .post("database/config/bad", json!({"plugin_name": "postgresql-database-plugin", "connection_url": format!("host=127.0.0.1 port={} user={{{{username}}}} password={{{{password}}}}", pg.port), "username": "postgres", "password": "wrong"}))
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.text.contains("password authentication failed"),
        "{}",
        r.text
    );

    // creds: a real login, then gone after the lease's 3 s.
    let v = h.get("database/creds/app").await.json();
    let (lease, user, pw) = user_of(&v);
    assert!(lease.starts_with("database/creds/app/"), "{lease}");
    assert_eq!(
        (v["lease_duration"].clone(), v["renewable"].clone()),
        (json!(3), json!(true))
    );
    assert!(user.starts_with("v-root-app-"), "{user}");
    pg_login(&pg, &user, &pw).await.unwrap();
    until(
        "expired user dropped",
        Duration::from_secs(10),
        async || !pg_role_exists(&pg, &user).await,
    )
    .await;
    let err = pg_login(&pg, &user, &pw).await.unwrap_err();
    assert!(
        err.contains("password authentication failed") || err.contains("does not exist"),
        "{err}"
    );

    // Renew: up to max_ttl (8 s) and no further.
    let (lease, user, pw) = user_of(&h.get("database/creds/app").await.json());
    let r = h
        .put(
            "sys/leases/renew",
            json!({"lease_id": lease, "increment": 6}),
        )
        .await
        .json();
    assert_eq!(r["lease_duration"], 6);
    let r = h
        .put(
            "sys/leases/renew",
            json!({"lease_id": lease, "increment": 600}),
        )
        .await
        .json();
    assert!(r["lease_duration"].as_u64().unwrap() <= 8, "{r}");
    assert!(!r["warnings"].is_null(), "{r}");
    pg_login(&pg, &user, &pw).await.unwrap();

    // Revoke drops the user at once, even with a session open.
    let r = h.put("sys/leases/revoke", json!({"lease_id": lease})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(!pg_role_exists(&pg, &user).await);
    assert!(pg_login(&pg, &user, &pw).await.is_err());

    // revoke-prefix drops every user of a role, and only those.
    let a = user_of(&h.get("database/creds/batch").await.json());
    let b = user_of(&h.get("database/creds/batch").await.json());
    let keep = user_of(&h.get("database/creds/app").await.json());
    let r = h
        .put("sys/leases/revoke-prefix/database/creds/batch", json!({}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(!pg_role_exists(&pg, &a.1).await && !pg_role_exists(&pg, &b.1).await);
    assert!(pg_role_exists(&pg, &keep.1).await);

    // A revoked token takes its users with it.
    let t = h
        .post("auth/token/create", json!({"policies": ["root"]}))
        .await
        .json();
    let child = t["auth"]["client_token"].as_str().unwrap().to_owned();
    let theirs = user_of(&s.http(Some(&child)).get("database/creds/app").await.json());
    assert!(theirs.1.starts_with("v-token-app-"), "{}", theirs.1);
    let r = h.post("auth/token/revoke", json!({"token": child})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(!pg_role_exists(&pg, &theirs.1).await);

    // A role not in allowed_roles gets nothing.
    h.post(
        "database/roles/other",
        json!({"db_name": "pg", "creation_statements": PG_CREATE}),
    )
    .await;
    let r = h.get("database/creds/other").await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("not an allowed role"), "{}", r.text);
}

#[tokio::test]
async fn postgres_leases_pending_at_shutdown_are_revoked_after_restart() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let setup = Setup::embedded();
    let s = Server::with_config(&setup.config, &[]);
    let anon = s.http(None);
    let (keys, root) = common::init(&anon, 1, 1).await;
    common::unseal(&anon, &keys).await;
    let h = s.http(Some(&root));
    configure_pg(&h, &pg, "5s", "1h").await;
    let (_, user, pw) = user_of(&h.get("database/creds/app").await.json());
    pg_login(&pg, &user, &pw).await.unwrap();
    s.stop();

    tokio::time::sleep(Duration::from_secs(6)).await;
    // VALID UNTIL alone does not end a role; only coffer drops it.
    assert!(pg_role_exists(&pg, &user).await);
    let s = Server::with_config(&setup.config, &[]);
    common::unseal(&s.http(None), &keys).await;
    until(
        "user dropped after restart",
        Duration::from_secs(10),
        async || !pg_role_exists(&pg, &user).await,
    )
    .await;
}

#[tokio::test]
async fn mariadb_users_log_in_and_are_dropped() {
    if !common::mariadb_available().await {
        return;
    }
    let s = Server::dev();
    let h = s.http(Some("root"));
    h.post("sys/mounts/database", json!({"type": "database"}))
        .await;
    let r = h
        .post(
            "database/config/maria",
            json!({
                "plugin_name": "mysql-database-plugin",
                "connection_url": "{{username}}:{{password}}@tcp(127.0.0.1:3306)/",
                "username": "root",
                "password": "",
                "allowed_roles": ["*"],
            }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = h
        .post(
            "database/roles/reader",
            json!({
                "db_name": "maria",
                "creation_statements": "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'; GRANT SELECT ON test.* TO '{{name}}'@'%';",
                "default_ttl": "3s",
            }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let v = h.get("database/creds/reader").await.json();
    let (lease, user, pw) = user_of(&v);
    assert!(
        user.len() <= 32 && user.starts_with("v-root-reader-"),
        "{user}"
    );
    let login = async |pw: &str| {
        let url = format!("mysql://{user}:{pw}@127.0.0.1:3306/test");
        match mysql_async::Conn::from_url(url).await {
            Ok(mut c) => {
                let r: Result<Option<u8>, _> = c.query_first("SELECT 1").await;
                let _ = c.disconnect().await;
                r.map(|_| ()).map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        }
    };
    login(&pw).await.unwrap();
    assert!(
        login("not-the-password").await.is_err(),
        "MariaDB checks the password"
    );
    until(
        "expired MariaDB user dropped",
        Duration::from_secs(10),
        async || login(&pw).await.is_err(),
    )
    .await;
    let r = h.put("sys/leases/lookup", json!({"lease_id": lease})).await;
    assert_eq!(r.status, 400, "lease gone: {}", r.text);
}

#[tokio::test]
async fn revocations_wait_for_a_database_that_went_away() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let s = Server::dev();
    let h = s.http(Some("root"));
    configure_pg(&h, &pg, "2s", "1h").await;
    let (lease, user, _) = user_of(&h.get("database/creds/app").await.json());
    pg.pause();

    // The lease ends while the database is down: kept, failing, retried.
    until(
        "a failed revocation recorded",
        Duration::from_secs(10),
        async || {
            let v = h
                .put("sys/leases/lookup", json!({"lease_id": lease}))
                .await
                .json();
            v["data"]["revoke_attempts"].as_u64().unwrap_or(0) >= 1
        },
    )
    .await;
    let v = h
        .put("sys/leases/lookup", json!({"lease_id": lease}))
        .await
        .json();
    assert!(
        !v["data"]["last_revoke_error"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{v}"
    );
    let count = h.get("sys/leases/count?type=all").await.json();
    assert_eq!(count["data"]["failing_count"], 1, "{count}");

    pg.resume();
    until(
        "revoked once the database is back",
        Duration::from_secs(20),
        async || !pg_role_exists(&pg, &user).await,
    )
    .await;
    let r = h.put("sys/leases/lookup", json!({"lease_id": lease})).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let count = h.get("sys/leases/count?type=all").await.json();
    assert_eq!(count["data"]["failing_count"], 0, "{count}");
}
