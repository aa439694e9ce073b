//! Response wrapping: single-use tokens standing in for responses.

mod common;

use std::time::Duration;

use common::{Http, Server};
use serde_json::{Value, json};

async fn wrapped(h: &Http, method: &str, path: &str, body: Option<Value>, ttl: &str) -> Value {
    let r = h
        .send(
            method,
            path,
            body.map(|b| b.to_string().into_bytes()),
            &[("X-Vault-Wrap-TTL", ttl)],
        )
        .await;
    assert_eq!(r.status, 200, "{method} {path}: {}", r.text);
    let v = r.json();
    assert_eq!(v["data"], Value::Null, "wrapped responses carry no data");
    assert_eq!(v["auth"], Value::Null);
    v["wrap_info"].clone()
}

fn tok(info: &Value) -> String {
    info["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn wrap_lookup_unwrap_once() {
    let s = Server::dev_kv_v1();
    let root = s.http(Some("root"));
    let r = root.post("sys/wrapping/wrap", json!({"a": 1})).await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("requires response wrapping"));
    let info = wrapped(
        &root,
        "POST",
        "sys/wrapping/wrap",
        Some(json!({"a": 1, "b": "two"})),
        "5m",
    )
    .await;
    assert_eq!(info["ttl"], 300, "ttl is an integer");
    assert_eq!(info["creation_path"], "sys/wrapping/wrap");
    assert!(info["accessor"].is_string() && info["creation_time"].as_str().unwrap().contains('T'));
    assert!(info.get("wrapped_accessor").is_none());

    let anon = s.http(None);
    let l = anon
        .post("sys/wrapping/lookup", json!({"token": tok(&info)}))
        .await;
    assert_eq!(l.status, 200, "lookup needs no token: {}", l.text);
    assert_eq!(l.json()["data"]["creation_ttl"], 300);

    let w = s.http(Some(&tok(&info)));
    assert_eq!(
        w.get("secret/anything").await.status,
        403,
        "a wrapping token can only unwrap"
    );
    let u = w.post("sys/wrapping/unwrap", json!({})).await;
    assert_eq!(u.status, 200, "{}", u.text);
    assert_eq!(u.json()["data"], json!({"a": 1, "b": "two"}));
    let again = w.post("sys/wrapping/unwrap", json!({})).await;
    assert_eq!(again.status, 400, "single use: {}", again.text);
    assert!(again.text.contains("wrapping token is not valid"));
    assert_eq!(
        anon.post("sys/wrapping/lookup", json!({"token": tok(&info)}))
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn any_response_can_be_wrapped_and_unwrapped_by_parameter() {
    let s = Server::dev_kv_v1();
    let root = s.http(Some("root"));
    root.post("secret/db", json!({"password": "pw"})).await;
    let info = wrapped(&root, "GET", "secret/db", None, "60").await;
    assert_eq!(info["creation_path"], "secret/db");
    let u = root
        .post("sys/wrapping/unwrap", json!({"token": tok(&info)}))
        .await;
    assert_eq!(u.json()["data"]["password"], "pw");
    assert_eq!(
        root.post("sys/wrapping/unwrap", json!({"token": tok(&info)}))
            .await
            .status,
        400
    );

    // An auth response: the wrapped token's accessor is shown.
    let info = wrapped(
        &root,
        "POST",
        "auth/token/create",
        Some(json!({"ttl": "1h"})),
        "2m",
    )
    .await;
    assert!(info["wrapped_accessor"].is_string());
    let u = s
        .http(Some(&tok(&info)))
        .post("sys/wrapping/unwrap", json!({}))
        .await
        .json();
    let inner = u["auth"]["client_token"].as_str().unwrap();
    assert_eq!(u["auth"]["accessor"], info["wrapped_accessor"]);
    assert_eq!(
        s.http(Some(inner))
            .get("auth/token/lookup-self")
            .await
            .status,
        200
    );

    // An AppRole secret ID delivered wrapped, as Vault deployments do.
    root.post("sys/auth/approle", json!({"type": "approle"}))
        .await;
    root.post("auth/approle/role/web", json!({})).await;
    let role_id = root.get("auth/approle/role/web/role-id").await.json()["data"]["role_id"].clone();
    let info = wrapped(
        &root,
        "POST",
        "auth/approle/role/web/secret-id",
        Some(json!({})),
        "5m",
    )
    .await;
    let sid = s
        .http(Some(&tok(&info)))
        .post("sys/wrapping/unwrap", json!({}))
        .await
        .json()["data"]["secret_id"]
        .clone();
    let login = s
        .http(None)
        .post(
            "auth/approle/login",
            json!({"role_id": role_id, "secret_id": sid}),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.text);
}

#[tokio::test]
async fn rewrap_expiry_bad_headers_and_policy_bounds() {
    let s = Server::dev_kv_v1();
    let root = s.http(Some("root"));
    let info = wrapped(
        &root,
        "POST",
        "sys/wrapping/wrap",
        Some(json!({"k": "v"})),
        "10m",
    )
    .await;
    let re = root
        .post("sys/wrapping/rewrap", json!({"token": tok(&info)}))
        .await;
    assert_eq!(re.status, 200, "{}", re.text);
    let new = re.json()["wrap_info"].clone();
    assert_eq!(new["ttl"], 600);
    assert_ne!(new["token"], info["token"]);
    assert_eq!(
        root.post("sys/wrapping/unwrap", json!({"token": tok(&info)}))
            .await
            .status,
        400,
        "old token dead"
    );
    assert_eq!(
        root.post("sys/wrapping/unwrap", json!({"token": tok(&new)}))
            .await
            .json()["data"]["k"],
        "v"
    );

    let short = wrapped(
        &root,
        "POST",
        "sys/wrapping/wrap",
        Some(json!({"k": "v"})),
        "1s",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        root.post("sys/wrapping/unwrap", json!({"token": tok(&short)}))
            .await
            .status,
        400,
        "expired"
    );

    for bad in ["-5", "soon"] {
        let r = root
            .send("GET", "sys/mounts", None, &[("X-Vault-Wrap-TTL", bad)])
            .await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.text.contains("X-Vault-Wrap-TTL"));
    }

    root.put(
        "sys/policies/acl/wrapped-only",
        json!({"policy": "path \"secret/*\" {\n capabilities = [\"read\"]\n min_wrapping_ttl = \"1m\"\n max_wrapping_ttl = \"10m\"\n}"}),
    )
    .await;
    root.post("secret/x", json!({"k": 1})).await;
    let t = root
        .post("auth/token/create", json!({"policies": ["wrapped-only"]}))
        .await
        .json();
    let h = s.http(Some(t["auth"]["client_token"].as_str().unwrap()));
    assert_eq!(h.get("secret/x").await.status, 403, "must be wrapped");
    assert_eq!(
        h.send("GET", "secret/x", None, &[("X-Vault-Wrap-TTL", "30s")])
            .await
            .status,
        403,
        "below min"
    );
    assert_eq!(
        h.send("GET", "secret/x", None, &[("X-Vault-Wrap-TTL", "1h")])
            .await
            .status,
        403,
        "above max"
    );
    assert_eq!(
        h.send("GET", "secret/x", None, &[("X-Vault-Wrap-TTL", "5m")])
            .await
            .status,
        200
    );
    // Tidy drops wrapped responses whose token has gone.
    assert_eq!(root.post("auth/token/tidy", json!({})).await.status, 200);
}
