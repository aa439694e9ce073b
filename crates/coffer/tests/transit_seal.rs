//! Auto-unseal through transit: server B keeps its root key encrypted by a
//! transit key on server A (over TLS) and unseals itself through it.

mod common;

use std::time::{Duration, Instant};

use common::{Http, Server, Setup, TestTls};
use serde_json::{Value, json};

const KEY: &str = "unseal-b";

/// Server A: TLS, file storage, Shamir; its transit key and a token for B.
struct ServerA {
    _dir: tempfile::TempDir,
    server: Server,
    tls: TestTls,
    unseal_key: String,
    root: String,
    b_token: String,
}

impl ServerA {
    fn http(&self, token: Option<&str>) -> Http {
        self.tls.http(&self.server.addr, token)
    }
}

async fn start_a() -> ServerA {
    let dir = tempfile::tempdir().unwrap();
    let tls = TestTls::make(dir.path(), "DNS:coffer-a.test,IP:127.0.0.1");
    let config = dir.path().join("a.hcl");
    std::fs::write(
        &config,
        format!(
            "storage \"file\" {{\n path = \"{}/data\"\n}}\nlistener \"tcp\" {{\n address = \"127.0.0.1:0\"\n tls_cert_file = \"{}\"\n tls_key_file = \"{}\"\n}}\n",
            dir.path().display(),
            tls.cert,
            tls.key
        ),
    )
    .unwrap();
    let server = Server::with_config(&config, &[]);
    let anon = tls.http(&server.addr, None);
    let (keys, root) = common::init(&anon, 1, 1).await;
    assert_eq!(common::unseal(&anon, &keys).await["sealed"], json!(false));
    let h = tls.http(&server.addr, Some(&root));
    assert_eq!(
        h.post("sys/mounts/transit", json!({"type": "transit"}))
            .await
            .status,
        204
    );
    let r = h.post(&format!("transit/keys/{KEY}"), json!({})).await;
    assert!(r.status < 300, "{}", r.text);
    let policy = format!(
        "path \"transit/encrypt/{KEY}\" {{ capabilities = [\"update\"] }}\npath \"transit/decrypt/{KEY}\" {{ capabilities = [\"update\"] }}\n"
    );
    let r = h
        .put("sys/policies/acl/seal-b", json!({ "policy": policy }))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = h
        .post(
            "auth/token/create",
            json!({"policies": ["seal-b"], "ttl": "1h"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b_token = r.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    ServerA {
        _dir: dir,
        server,
        tls,
        unseal_key: keys[0].clone(),
        root,
        b_token,
    }
}

fn seal_stanza(a: &ServerA, server_name: &str) -> String {
    format!(
        "seal \"transit\" {{\n address = \"{}\"\n token = \"{}\"\n key_name = \"{KEY}\"\n mount_path = \"transit/\"\n tls_ca_cert = \"{}\"\n tls_server_name = \"{server_name}\"\n}}",
        a.server.addr, a.b_token, a.tls.ca
    )
}

/// Polls B's seal status until `done` holds, or fails after `limit`.
async fn wait_for(b: &Http, limit: Duration, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let st = b.get("sys/seal-status").await.json();
        if done(&st) {
            return st;
        }
        assert!(start.elapsed() < limit, "{what}: last status {st}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn b_unseals_through_a_and_waits_for_a() {
    let a = start_a().await;
    let setup = Setup::embedded_with(&seal_stanza(&a, "coffer-a.test"));

    // Init: B's root key goes to A; B answers recovery keys and is unsealed.
    let b = Server::with_config(&setup.config, &[]);
    let anon = b.http(None);
    let st = anon.get("sys/seal-status").await.json();
    assert_eq!(
        (&st["type"], &st["initialized"], &st["recovery_seal"]),
        (&json!("transit"), &json!(false), &json!(true))
    );
    let r = anon.put("sys/init", json!({"secret_shares": 5})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let init = r.json();
    assert_eq!(init["keys"], json!([]));
    let recovery: Vec<String> = init["recovery_keys_base64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 5);
    assert_eq!(init["recovery_keys"].as_array().unwrap().len(), 5);
    let root = init["root_token"].as_str().unwrap().to_owned();
    let st = anon.get("sys/seal-status").await.json();
    assert_eq!(
        (&st["sealed"], &st["t"], &st["n"]),
        (&json!(false), &json!(3), &json!(5))
    );
    let h = b.http(Some(&root));
    h.post("sys/mounts/kv", json!({"type": "kv"})).await;
    assert_eq!(h.post("kv/app", json!({"v": 1})).await.status, 204);

    // A manual seal is lifted by a threshold of recovery keys, not by one.
    assert_eq!(h.put("sys/seal", json!({})).await.status, 204);
    let r = anon.put("sys/unseal", json!({"key": recovery[0]})).await;
    assert_eq!(
        (&r.json()["sealed"], &r.json()["progress"]),
        (&json!(true), &json!(1))
    );
    let r = anon.put("sys/unseal", json!({"reset": true})).await;
    assert_eq!(r.json()["progress"], 0);
    let st = common::unseal(&anon, &recovery[2..5]).await;
    assert_eq!(st["sealed"], json!(false), "{st}");
    assert_eq!(h.get("kv/app").await.json()["data"]["v"], 1);
    b.stop();

    // Restart: unsealed by A with nobody present.
    let b = Server::with_config(&setup.config, &[]);
    assert_eq!(b.http(None).get("sys/health").await.status, 200);
    assert_eq!(
        b.http(Some(&root)).get("kv/app").await.json()["data"]["v"],
        1
    );
    b.stop();

    // A sealed: B starts sealed, says why, and keeps trying.
    let ha = a.http(Some(&a.root));
    assert_eq!(ha.put("sys/seal", json!({})).await.status, 204);
    let b = Server::with_config(&setup.config, &[]);
    let anon = b.http(None);
    let st = anon.get("sys/seal-status").await.json();
    assert_eq!(st["sealed"], json!(true));
    // Unauthenticated: a class of error, never the KMS's address or answer.
    let why = st["auto_unseal_error"].as_str().unwrap_or_default();
    assert!(why.contains("unreachable or refused"), "{st}");
    let port = a.server.addr.rsplit(':').next().unwrap_or_default();
    assert!(
        !why.contains(port) && !why.contains(KEY) && !why.contains("sealed"),
        "{st}"
    );
    assert_eq!(b.http(Some(&root)).get("kv/app").await.status, 503);

    // A unsealed again: B unseals on its own.
    let st = common::unseal(&a.http(None), std::slice::from_ref(&a.unseal_key)).await;
    assert_eq!(st["sealed"], json!(false));
    let st = wait_for(&anon, Duration::from_secs(45), "B unseals itself", |s| {
        s["sealed"] == json!(false)
    })
    .await;
    assert!(st.get("auto_unseal_error").is_none(), "{st}");
    assert_eq!(
        b.http(Some(&root)).get("kv/app").await.json()["data"]["v"],
        1
    );
    b.stop();

    // A rotates its key and retires version 1: B rewrapped its root key at
    // the restart in between, so it still unseals.
    assert_eq!(
        ha.post(&format!("transit/keys/{KEY}/rotate"), json!({}))
            .await
            .status,
        200
    );
    let b = Server::with_config(&setup.config, &[]);
    assert_eq!(b.http(None).get("sys/health").await.status, 200);
    b.stop();
    let r = ha
        .post(
            &format!("transit/keys/{KEY}/config"),
            json!({"min_decryption_version": 2}),
        )
        .await;
    assert!(r.status < 300, "{}", r.text);
    let b = Server::with_config(&setup.config, &[]);
    assert_eq!(b.http(None).get("sys/health").await.status, 200);
    b.stop();

    // The TLS server name is checked: a name A's certificate lacks fails.
    let wrong = setup.dir.path().join("wrong-name.hcl");
    std::fs::write(
        &wrong,
        std::fs::read_to_string(&setup.config)
            .unwrap()
            .replace("coffer-a.test", "other.test"),
    )
    .unwrap();
    let b = Server::with_config(&wrong, &[]);
    let st = b.http(None).get("sys/seal-status").await.json();
    assert_eq!(st["sealed"], json!(true));
    assert!(
        st["auto_unseal_error"]
            .as_str()
            .is_some_and(|e| e.contains("unreachable") && !e.contains("other.test")),
        "{st}"
    );
}

#[tokio::test]
async fn recovery_options_and_config_errors() {
    // Shamir refuses recovery options; an auto seal refuses a bad threshold.
    let s = Server::with_config(&Setup::embedded().config, &[]);
    let r = s
        .http(None)
        .put(
            "sys/init",
            json!({"secret_shares": 1, "secret_threshold": 1, "recovery_shares": 3}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.text.contains("not applicable to seal type shamir"),
        "{}",
        r.text
    );

    let setup = Setup::embedded_with("seal \"static\" {\n  key_env = \"COFFER_TEST_SEAL_KEY\"\n}");
    let key = "ab".repeat(32);
    let s = Server::with_config(&setup.config, &[("COFFER_TEST_SEAL_KEY", &key)]);
    let anon = s.http(None);
    let r = anon
        .put(
            "sys/init",
            json!({"recovery_shares": 2, "recovery_threshold": 3}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("recovery_threshold"), "{}", r.text);
    // recovery_shares = 0: no recovery keys, and the API cannot unseal after a manual seal.
    let r = anon.put("sys/init", json!({"recovery_shares": 0})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["recovery_keys"], json!([]));
    let root = r.json()["root_token"].as_str().unwrap().to_owned();
    assert_eq!(
        s.http(Some(&root)).put("sys/seal", json!({})).await.status,
        204
    );
    let r = anon.put("sys/unseal", json!({"key": key})).await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("without recovery keys"), "{}", r.text);
    s.stop();

    // A transit stanza without a key name names what is missing.
    let bad = Setup::embedded_with(
        "seal \"transit\" {\n address = \"http://127.0.0.1:1\"\n token = \"t\"\n}",
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["server", "--config", bad.config.to_str().unwrap()])
        .env_remove("VAULT_TRANSIT_SEAL_KEY_NAME")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("key_name"), "{err}");
}
