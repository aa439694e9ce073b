//! init -> unseal -> write -> restart -> unseal -> read, with health codes in
//! every state, on the embedded store and on PostgreSQL.

mod common;

use common::{Http, Server, Setup, init, pg_drop, pg_table, postgres_available, unseal};
use serde_json::json;

async fn health(h: &Http) -> u16 {
    h.get("sys/health").await.status
}

async fn full_lifecycle(setup: &Setup, expected_storage: &str) {
    let s = Server::with_config(&setup.config, &[]);
    let anon = s.http(None);
    assert_eq!(health(&anon).await, 501, "not initialised");
    assert_eq!(
        anon.get("sys/init").await.json()["initialized"],
        json!(false)
    );
    let st = anon.get("sys/seal-status").await.json();
    assert_eq!(
        (st["initialized"].clone(), st["sealed"].clone()),
        (json!(false), json!(true))
    );
    // Logical requests before init answer 503 like Vault.
    assert_eq!(s.http(Some("x")).get("secret/a").await.status, 503);

    let (keys, root) = init(&anon, 3, 2).await;
    assert_eq!(keys.len(), 3);
    assert_eq!(
        anon.put(
            "sys/init",
            json!({"secret_shares": 1, "secret_threshold": 1})
        )
        .await
        .status,
        400
    );
    assert_eq!(health(&anon).await, 503, "initialised but sealed");
    let st = anon.get("sys/seal-status").await.json();
    assert_eq!(st["t"], 2);
    assert_eq!(st["n"], 3);
    assert_eq!(st["storage_type"], expected_storage);
    assert_eq!(st["type"], "shamir");

    // One share: progress 1, still sealed.
    let p = anon.put("sys/unseal", json!({"key": keys[0]})).await.json();
    assert_eq!(
        (p["sealed"].clone(), p["progress"].clone()),
        (json!(true), json!(1))
    );
    assert!(!p["nonce"].as_str().unwrap().is_empty());
    // Reset drops progress.
    let p = anon.put("sys/unseal", json!({"reset": true})).await.json();
    assert_eq!(p["progress"], 0);
    let st = unseal(&anon, &keys[1..]).await;
    assert_eq!(st["sealed"], json!(false));
    assert!(st["cluster_id"].is_string());
    assert_eq!(health(&anon).await, 200);

    let h = s.http(Some(&root));
    assert_eq!(
        h.post("sys/mounts/kv", json!({"type": "kv"})).await.status,
        204
    );
    assert_eq!(
        h.post("kv/app", json!({"password": "hunter2", "n": 7}))
            .await
            .status,
        204
    );
    assert_eq!(h.get("kv/app").await.json()["data"]["password"], "hunter2");

    s.stop();
    let s = Server::with_config(&setup.config, &[]);
    let anon = s.http(None);
    assert_eq!(health(&anon).await, 503, "sealed after restart");
    assert_eq!(s.http(Some(&root)).get("kv/app").await.status, 503);
    unseal(&anon, &[keys[2].clone(), keys[0].clone()]).await;
    let h = s.http(Some(&root));
    let r = h.get("kv/app").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["data"], json!({"password": "hunter2", "n": 7}));

    // sys/seal makes the server refuse again.
    assert_eq!(h.put("sys/seal", json!({})).await.status, 204);
    assert_eq!(health(&anon).await, 503);
    assert_eq!(h.get("kv/app").await.status, 503);
}

#[tokio::test]
async fn lifecycle_on_embedded_store() {
    full_lifecycle(&Setup::embedded(), "file").await;
}

#[tokio::test]
async fn lifecycle_on_postgresql() {
    if !postgres_available().await {
        return;
    }
    let table = pg_table("life");
    let setup = Setup::new(
        &format!(
            "storage \"postgresql\" {{\n  connection_url = \"{}\"\n  table = \"{table}\"\n}}",
            common::pg_url()
        ),
        "",
    );
    full_lifecycle(&setup, "postgresql").await;
    pg_drop(&table).await;
}

#[tokio::test]
async fn health_query_parameters_choose_codes() {
    let setup = Setup::embedded();
    let s = Server::with_config(&setup.config, &[]);
    let h = s.http(None);
    assert_eq!(h.get("sys/health?uninitcode=200").await.status, 200);
    let (keys, _) = init(&h, 1, 1).await;
    assert_eq!(h.get("sys/health?sealedcode=299").await.status, 299);
    assert_eq!(h.send("HEAD", "sys/health", None, &[]).await.status, 503);
    unseal(&h, &keys).await;
    assert_eq!(h.get("sys/health?activecode=202").await.status, 202);
    assert_eq!(h.get("sys/health?standbyok=true").await.status, 200);
    let body = h.get("sys/health").await.json();
    for k in [
        "initialized",
        "sealed",
        "standby",
        "performance_standby",
        "server_time_utc",
        "version",
        "cluster_id",
    ] {
        assert!(body.get(k).is_some(), "health lacks {k}");
    }
    assert_eq!(h.get("sys/health?activecode=abc").await.status, 400);
    let head = h.send("HEAD", "sys/health", None, &[]).await;
    assert_eq!((head.status, head.text.as_str()), (200, ""));
}

#[tokio::test]
async fn unseal_rejects_bad_keys_clearly() {
    let setup = Setup::embedded();
    let s = Server::with_config(&setup.config, &[]);
    let h = s.http(None);
    let (keys, _) = init(&h, 3, 2).await;
    let cases = [
        (json!({"key": "!!!not-a-key"}), "valid hex or base64"),
        (
            json!({"key": "00112233"}),
            "unseal key has 4 bytes, expected 33",
        ),
        (json!({}), "'key' must be specified"),
    ];
    for (body, needle) in cases {
        let r = h.put("sys/unseal", body).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.text.contains(needle), "{} lacks {needle}", r.text);
    }
    // Two shares from a different server rebuild the wrong key: refused, progress reset.
    let other = Setup::embedded();
    let s2 = Server::with_config(&other.config, &[]);
    let (wrong, _) = init(&s2.http(None), 3, 2).await;
    h.put("sys/unseal", json!({"key": wrong[0]})).await;
    let r = h.put("sys/unseal", json!({"key": wrong[1]})).await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("unseal failed"), "{}", r.text);
    assert_eq!(h.get("sys/seal-status").await.json()["progress"], 0);
    // The right keys still work afterwards.
    assert_eq!(unseal(&h, &keys[..2]).await["sealed"], json!(false));
}

/// `sys/remount` moves secret engines and auth methods: data, users and the
/// tokens they issued follow; the old path serves nothing; a restart keeps it.
#[tokio::test]
async fn mounts_and_auth_methods_move() {
    let setup = Setup::embedded();
    let (server, keys, root_token) = common::ready(&setup).await;
    let root = server.http(Some(&root_token));
    common::enable(&root, "sys/mounts/kv1", "kv").await;
    assert_eq!(
        root.post("kv1/app", json!({"pw": "s3cret"})).await.status,
        204
    );
    common::enable(&root, "sys/auth/up", "userpass").await;
    let r = root
        .post(
            "auth/up/users/ann",
            json!({"password": "hunter22hunter", "token_policies": "default"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let login = server
        .http(None)
        .post("auth/up/login/ann", json!({"password": "hunter22hunter"}))
        .await;
    let ann = login.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let r = root
        .post("sys/remount", json!({"from": "kv1/", "to": "kv1moved"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let id = v["data"]["migration_id"].as_str().unwrap().to_owned();
    assert_eq!(v["migration_id"], v["data"]["migration_id"]);
    let st = root.get(&format!("sys/remount/status/{id}")).await.json();
    assert_eq!(st["data"]["migration_info"]["status"], "success");
    assert_eq!(st["data"]["migration_info"]["target_mount"], "kv1moved/");
    assert_eq!(
        root.get("kv1moved/app").await.json()["data"]["pw"],
        "s3cret"
    );
    assert_eq!(root.get("kv1/app").await.status, 404);
    assert!(root.get("sys/mounts").await.json()["data"]["kv1moved/"].is_object());

    let r = root
        .post(
            "sys/remount",
            json!({"from": "auth/up", "to": "auth/people"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let login = server
        .http(None)
        .post(
            "auth/people/login/ann",
            json!({"password": "hunter22hunter"}),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(
        server
            .http(Some(&ann))
            .get("auth/token/lookup-self")
            .await
            .status,
        200
    );

    // Refusals, with Vault's messages.
    for (body, needle) in [
        (
            json!({"from": "nothere", "to": "x"}),
            "no matching mount at \"nothere/\"",
        ),
        (
            json!({"from": "kv1moved", "to": "sys/x"}),
            "cannot remount to destination sys/x/",
        ),
        (json!({"from": "sys", "to": "sys2"}), "cannot remount"),
        (
            json!({"from": "auth/token", "to": "auth/t2"}),
            "cannot remount",
        ),
        (
            json!({"from": "auth/people", "to": "people"}),
            "auth/ paths move only to auth/",
        ),
        (
            json!({"from": "kv1moved", "to": "kv1moved/sub"}),
            "path already in use at \"kv1moved/\"",
        ),
        (json!({"from": "kv1moved"}), "required"),
    ] {
        let r = root.post("sys/remount", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        let msg = r.json()["errors"][0]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    assert_eq!(root.get("sys/remount/status/unknown").await.status, 404);

    // It survives a restart, and disabling the moved method revokes its tokens.
    server.stop();
    let server = Server::with_config(&setup.config, &[]);
    unseal(&server.http(None), &keys).await;
    let root = server.http(Some(&root_token));
    assert_eq!(
        root.get("kv1moved/app").await.json()["data"]["pw"],
        "s3cret"
    );
    assert_eq!(root.delete("sys/auth/people").await.status, 204);
    assert_eq!(
        server
            .http(Some(&ann))
            .get("auth/token/lookup-self")
            .await
            .status,
        403
    );
}
