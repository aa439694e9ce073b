//! Dynamic database users against real databases: a private PostgreSQL that
//! checks passwords, and the machine's MariaDB. A credential must log in, and
//! after its lease ends it must not.

mod common;

use std::time::{Duration, Instant};

use common::{PG_CREATE, PrivatePostgres, Server, Setup, configure_pg, pg_login};
use mysql_async::prelude::Queryable;
use serde_json::{Value, json};

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

    // A user someone already dropped by hand: revocation still succeeds.
    let (gone_lease, gone_user, _) = user_of(&h.get("database/creds/app").await.json());
    pg_exec(&pg, &format!("DROP ROLE \"{gone_user}\"")).await;
    let r = h
        .put("sys/leases/revoke", json!({"lease_id": gone_lease}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);

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

    // A password policy shapes generated passwords (and must exist).
    let r = h
        .post("database/config/pg", json!({"password_policy": "nope"}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let policy = "length = 30\nrule \"charset\" {\n  charset = \"abcdefghijklmnopqrstuvwxyz\"\n}\nrule \"charset\" {\n  charset = \"0123456789\"\n  min-chars = 6\n}\n";
    let r = h
        .put("sys/policies/password/db", json!({"policy": policy}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let sample = h.get("sys/policies/password/db/generate").await.json();
    assert_eq!(sample["data"]["password"].as_str().unwrap().len(), 30);
    let r = h
        .post("database/config/pg", json!({"password_policy": "db"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let (_, user, pw) = user_of(&h.get("database/creds/app").await.json());
    assert!(
        pw.len() == 30 && pw.chars().filter(char::is_ascii_digit).count() >= 6,
        "{pw}"
    );
    assert!(
        pw.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "{pw}"
    );
    pg_login(&pg, &user, &pw).await.unwrap();

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
                "username_template": "{{ printf \"%s_%s\" (.RoleName | truncate 6) (random 10) | lowercase }}",
            }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = h
        .post(
            "database/config/maria",
            json!({"username_template": "{{ .Nope }}"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.text.contains("no entry for key \\\"Nope\\\""),
        "{}",
        r.text
    );
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
    assert!(user.starts_with("reader_") && user.len() == 17, "{user}");
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

    // A static role on MariaDB: rotated at creation and on demand.
    let mut root = mysql_async::Conn::from_url("mysql://root@127.0.0.1:3306/test")
        .await
        .unwrap();
    root.query_drop("DROP USER IF EXISTS 'coffer_static'@'%'")
        .await
        .unwrap();
    root.query_drop("CREATE USER 'coffer_static'@'%' IDENTIFIED BY 'initial-Pw-1'")
        .await
        .unwrap();
    let r = h
        .post(
            "database/static-roles/st",
            json!({"db_name": "maria", "username": "coffer_static", "rotation_period": "1h"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let static_login = async |pw: &str| match mysql_async::Conn::from_url(format!(
        "mysql://coffer_static:{pw}@127.0.0.1:3306"
    ))
    .await
    {
        Ok(c) => {
            let _ = c.disconnect().await;
            true
        }
        Err(_) => false,
    };
    let s1 = h.get("database/static-creds/st").await.json()["data"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(static_login(&s1).await, "new password {s1}");
    assert!(
        !static_login("initial-Pw-1").await,
        "old password still works"
    );
    assert_eq!(
        h.post("database/rotate-role/st", json!({})).await.status,
        204
    );
    let s2 = h.get("database/static-creds/st").await.json()["data"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(static_login(&s2).await && !static_login(&s1).await);
    root.query_drop("DROP USER IF EXISTS 'coffer_static'@'%'")
        .await
        .unwrap();
    let _ = root.disconnect().await;
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

async fn pg_exec(pg: &PrivatePostgres, sql: &str) {
    let (client, conn) =
        tokio_postgres::connect(&pg.dsn("postgres", &pg.password), tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(conn);
    client.batch_execute(sql).await.unwrap();
}

fn creds_of(v: &Value) -> (String, String) {
    (
        v["data"]["username"].as_str().unwrap().to_owned(),
        v["data"]["password"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn static_roles_rotate_on_demand_on_schedule_and_with_grace() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    pg_exec(
        &pg,
        "CREATE ROLE solo LOGIN PASSWORD 'initial';
         CREATE ROLE app_a LOGIN PASSWORD 'initial';
         CREATE ROLE app_b LOGIN IN ROLE app_a;
         CREATE ROLE coffer_admin LOGIN SUPERUSER PASSWORD 'admin-pw';",
    )
    .await;
    let s = Server::dev();
    let h = s.http(Some("root"));
    h.post("sys/mounts/database", json!({"type": "database"}))
        .await;
    let url = format!(
        "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable",
        pg.port
    );
    for (name, user, pw) in [
        ("pg", "postgres", pg.password.as_str()),
        ("adm", "coffer_admin", "admin-pw"),
    ] {
        let r = h
            .post(
                &format!("database/config/{name}"),
                json!({"plugin_name": "postgresql-database-plugin", "connection_url": url, "username": user, "password": pw, "allowed_roles": "*"}),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
    }

    // Creation rotates at once: the password only coffer knows works, the old one not.
    let r = h
        .post(
            "database/static-roles/solo",
            json!({"db_name": "pg", "username": "solo", "rotation_period": "1h"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let (user, p1) = creds_of(&h.get("database/static-creds/solo").await.json());
    assert_eq!(user, "solo");
    pg_login(&pg, "solo", &p1).await.unwrap();
    assert!(pg_login(&pg, "solo", "initial").await.is_err());
    let role = h.get("database/static-roles/solo").await.json();
    assert_eq!(role["data"]["rotation_period"], 3600);

    // On demand.
    assert_eq!(
        h.post("database/rotate-role/solo", json!({})).await.status,
        204
    );
    let (_, p2) = creds_of(&h.get("database/static-creds/solo").await.json());
    assert_ne!(p1, p2);
    pg_login(&pg, "solo", &p2).await.unwrap();
    assert!(pg_login(&pg, "solo", &p1).await.is_err());

    // A failed rotation keeps the old password, shows in the status, the
    // metric and health, and is retried until it works.
    pg.pause();
    let r = h.post("database/rotate-role/solo", json!({})).await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert!(
        r.text.contains("previous password stays valid"),
        "{}",
        r.text
    );
    let (_, still) = creds_of(&h.get("database/static-creds/solo").await.json());
    assert_eq!(still, p2);
    let st = h.get("sys/rotation/status").await.json();
    let solo = st["data"]["rotations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "database/static-roles/solo")
        .cloned()
        .unwrap();
    assert_eq!(
        (solo["state"].clone(), solo["consecutive_failures"].clone()),
        (json!("failing"), json!(1)),
        "{solo}"
    );
    assert_eq!(st["data"]["degraded"], true);
    let metrics = h.get("sys/metrics?format=prometheus").await;
    assert!(
        metrics
            .content_type
            .unwrap_or_default()
            .starts_with("text/plain")
    );
    let failures: u64 = metrics
        .text
        .lines()
        .find_map(|l| l.strip_prefix("coffer_rotation_failures_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(failures >= 1, "{}", metrics.text);
    until(
        "health reports degraded rotation",
        Duration::from_secs(12),
        async || s.http(None).get("sys/health").await.json()["rotation"]["degraded"] == json!(true),
    )
    .await;
    pg.resume();
    until(
        "the retried rotation succeeds",
        Duration::from_secs(20),
        async || {
            let st = h.get("sys/rotation/status").await.json();
            st["data"]["degraded"] == json!(false)
        },
    )
    .await;
    let (_, p3) = creds_of(&h.get("database/static-creds/solo").await.json());
    assert_ne!(p3, p2);
    pg_login(&pg, "solo", &p3).await.unwrap();
    assert!(pg_login(&pg, "solo", &p2).await.is_err());

    // On schedule: a 5 s period rotates without being asked.
    let r = h
        .post(
            "database/static-roles/solo",
            json!({"rotation_period": "5s"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    until(
        "a scheduled rotation",
        Duration::from_secs(20),
        async || creds_of(&h.get("database/static-creds/solo").await.json()).1 != p3,
    )
    .await;

    // Grace: the previous pair keeps working for its grace period, then stops.
    let r = h
        .post(
            "database/static-roles/app",
            json!({"db_name": "pg", "username": "app_a", "grace_username": "app_b", "rotation_period": "1h", "rotation_grace_period": "3s"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let (u1, g1) = creds_of(&h.get("database/static-creds/app").await.json());
    assert_eq!(u1, "app_a");
    assert_eq!(
        h.post("database/rotate-role/app", json!({})).await.status,
        204
    );
    let now = h.get("database/static-creds/app").await.json();
    let (u2, g2) = creds_of(&now);
    assert_eq!(
        (u2.as_str(), now["data"]["previous_username"].as_str()),
        ("app_b", Some("app_a"))
    );
    pg_login(&pg, &u1, &g1).await.unwrap();
    pg_login(&pg, &u2, &g2).await.unwrap();
    until(
        "previous credentials retired after the grace period",
        Duration::from_secs(15),
        async || pg_login(&pg, &u1, &g1).await.is_err(),
    )
    .await;
    pg_login(&pg, &u2, &g2).await.unwrap();
    let r = h
        .post("database/static-roles/bad", json!({"db_name": "pg", "username": "app_a", "rotation_period": "1h", "rotation_grace_period": "2h", "grace_username": "app_b"}))
        .await;
    assert_eq!(r.status, 400);

    // Transit keys with automatic rotation are listed too; the CLI prints
    // the table and exits 0 when nothing fails.
    h.post("sys/mounts/transit", json!({"type": "transit"}))
        .await;
    h.post("transit/keys/orders", json!({"auto_rotate_period": "1h"}))
        .await;
    let st = h.get("sys/rotation/status").await.json();
    let key = st["data"]["rotations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "transit/keys/orders")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (key["kind"].clone(), key["rotation_period"].clone()),
        (json!("transit key"), json!(3600)),
        "{st}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["rotation", "status"])
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", "root")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("database/static-roles/app") && text.contains("transit/keys/orders"),
        "{text}"
    );

    // rotate-root: afterwards only coffer knows the admin password, and still works.
    assert_eq!(
        h.post("database/rotate-root/adm", json!({})).await.status,
        204
    );
    assert!(pg_login(&pg, "coffer_admin", "admin-pw").await.is_err());
    h.post(
        "database/roles/via-adm",
        json!({"db_name": "adm", "creation_statements": [PG_CREATE]}),
    )
    .await;
    let (_, user, pw) = user_of(&h.get("database/creds/via-adm").await.json());
    pg_login(&pg, &user, &pw).await.unwrap();
    let st = h.get("sys/rotation/status").await.json();
    assert!(
        st["data"]["rotations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["path"] == "database/rotate-root/adm"),
        "{st}"
    );

    // Concurrently: rotations of the static role and of the admin's root
    // credentials, interleaved with partial updates of both records. None
    // may write back a password another replaced: afterwards the stored
    // static password logs in, and the admin connection still works.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let (path, body) = match i % 3 {
                0 => ("database/rotate-role/solo".to_owned(), json!({})),
                1 => (
                    "database/static-roles/solo".to_owned(),
                    json!({"rotation_period": format!("{}h", 1 + i)}),
                ),
                _ => ("database/rotate-root/adm".to_owned(), json!({})),
            };
            let r = h.post(&path, body).await;
            assert!(r.status < 300, "{path}: {}", r.text);
            let r = h
                .post("database/config/adm", json!({"allowed_roles": "*"}))
                .await;
            assert!(r.status < 300, "{}", r.text);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (_, stored) = creds_of(&h.get("database/static-creds/solo").await.json());
    pg_login(&pg, "solo", &stored).await.unwrap();
    let (_, user, pw) = user_of(&h.get("database/creds/via-adm").await.json());
    pg_login(&pg, &user, &pw).await.unwrap();
}
