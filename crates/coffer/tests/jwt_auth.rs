//! JWT auth with tokens shaped like Kubernetes projected service-account
//! tokens: static PEM keys, a JWKS URL, and every way a token must be refused.

mod common;

use std::path::Path;

use common::{Http, Server, keypair};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const SUBJECT: &str = "system:serviceaccount:apps:eso";

struct Keys {
    rsa: (Vec<u8>, String),
    ec: (Vec<u8>, String),
    ed: (Vec<u8>, String),
    other_rsa: (Vec<u8>, String),
}

fn keys(dir: &Path) -> Keys {
    let rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
    Keys {
        rsa: keypair(dir, "rsa", &rsa),
        ec: keypair(
            dir,
            "ec",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        ),
        ed: keypair(dir, "ed", &["-algorithm", "ed25519"]),
        other_rsa: keypair(dir, "other", &rsa),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The claims of a projected service-account token for `apps/eso`.
fn sa_claims() -> Value {
    let t = now();
    json!({
        "iss": ISSUER,
        "sub": SUBJECT,
        "aud": ["vault"],
        "exp": t + 600,
        "iat": t,
        "nbf": t,
        "kubernetes.io": {
            "namespace": "apps",
            "serviceaccount": {"name": "eso", "uid": "1c0a2a30-0000-4000-8000-000000000001"},
            "pod": {"name": "eso-7d9c", "uid": "9e1b-0000"}
        }
    })
}

fn sign(alg: Algorithm, pem: &[u8], claims: &Value, kid: Option<&str>) -> String {
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
        _ => EncodingKey::from_rsa_pem(pem),
    }
    .unwrap();
    let mut h = Header::new(alg);
    h.kid = kid.map(String::from);
    jsonwebtoken::encode(&h, claims, &key).unwrap()
}

fn b64url(v: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

async fn role(root: &Http, mount: &str) {
    let r = root
        .post(
            &format!("auth/{mount}/role/eso"),
            json!({
                "role_type": "jwt",
                "bound_audiences": "vault",
                "bound_subject": SUBJECT,
                "bound_claims": {"/kubernetes.io/namespace": ["apps", "tools"]},
                "user_claim": "sub",
                "claim_mappings": {"/kubernetes.io/namespace": "namespace", "/kubernetes.io/serviceaccount/name": "service_account"},
                "token_policies": "reader",
                "token_ttl": "15m"
            }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

async fn login(s: &Server, mount: &str, jwt: &str) -> (u16, Value) {
    let r = s
        .http(None)
        .post(
            &format!("auth/{mount}/login"),
            json!({"role": "eso", "jwt": jwt}),
        )
        .await;
    (r.status, r.json())
}

#[tokio::test]
async fn service_account_tokens_log_in_with_static_keys() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let s = Server::dev_kv_v1();
    let root = s.http(Some("root"));
    root.put(
        "sys/policies/acl/reader",
        json!({"policy": "path \"secret/*\" { capabilities = [\"read\"] }"}),
    )
    .await;
    root.post("secret/app", json!({"password": "pw"})).await;
    assert_eq!(
        root.post("sys/auth/kubernetes", json!({"type": "jwt"}))
            .await
            .status,
        204
    );
    let c = root
        .post(
            "auth/kubernetes/config",
            json!({"jwt_validation_pubkeys": [k.rsa.1, k.ec.1, k.ed.1], "bound_issuer": ISSUER}),
        )
        .await;
    assert_eq!(c.status, 204, "{}", c.text);
    assert_eq!(
        root.get("auth/kubernetes/config").await.json()["data"]["bound_issuer"],
        ISSUER
    );
    role(&root, "kubernetes").await;
    assert_eq!(
        root.get("auth/kubernetes/role/eso").await.json()["data"]["user_claim"],
        "sub"
    );

    for (alg, pem) in [
        (Algorithm::RS256, &k.rsa.0),
        (Algorithm::ES256, &k.ec.0),
        (Algorithm::EdDSA, &k.ed.0),
    ] {
        let (status, v) = login(&s, "kubernetes", &sign(alg, pem, &sa_claims(), None)).await;
        assert_eq!(status, 200, "{alg:?}: {v}");
        assert_eq!(v["auth"]["policies"], json!(["default", "reader"]));
        assert_eq!(v["auth"]["lease_duration"], 900);
        let meta = &v["auth"]["metadata"];
        assert_eq!(
            (
                meta["role"].clone(),
                meta["namespace"].clone(),
                meta["service_account"].clone()
            ),
            (json!("eso"), json!("apps"), json!("eso"))
        );
        let t = s.http(Some(v["auth"]["client_token"].as_str().unwrap()));
        assert_eq!(t.get("secret/app").await.json()["data"]["password"], "pw");
        let look = t.get("auth/token/lookup-self").await.json();
        assert_eq!(look["data"]["meta"]["role"], "eso");
        assert_eq!(look["data"]["display_name"], format!("jwt-{SUBJECT}"));
    }

    // Every way a token must be refused.
    let mut wrong_aud = sa_claims();
    wrong_aud["aud"] = json!(["kubernetes"]);
    let mut expired = sa_claims();
    expired["exp"] = json!(now() - 1000);
    let mut future = sa_claims();
    future["nbf"] = json!(now() + 3600);
    let mut other_iss = sa_claims();
    other_iss["iss"] = json!("https://evil.example");
    let mut other_sub = sa_claims();
    other_sub["sub"] = json!("system:serviceaccount:apps:other");
    let mut other_ns = sa_claims();
    other_ns["kubernetes.io"]["namespace"] = json!("kube-system");
    let mut no_exp = sa_claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    let alg_none = format!(
        "{}.{}.",
        b64url(&json!({"alg": "none", "typ": "JWT"})),
        b64url(&sa_claims())
    );
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &sa_claims(),
        &EncodingKey::from_secret(k.rsa.1.as_bytes()),
    )
    .unwrap();
    let rsa = |c: &Value| sign(Algorithm::RS256, &k.rsa.0, c, None);
    let mut tampered = rsa(&sa_claims());
    tampered.replace_range(tampered.len() - 5.., "AAAAA");
    let cases = [
        ("wrong audience", rsa(&wrong_aud), "aud"),
        ("expired", rsa(&expired), "expired"),
        ("not yet valid", rsa(&future), "not valid yet"),
        ("other issuer", rsa(&other_iss), "iss"),
        ("other subject", rsa(&other_sub), "sub"),
        ("namespace not bound", rsa(&other_ns), "bound claim"),
        ("no exp", rsa(&no_exp), "exp"),
        (
            "signed by another key",
            sign(Algorithm::RS256, &k.other_rsa.0, &sa_claims(), None),
            "signature",
        ),
        ("alg none", alg_none, "malformed"),
        ("HMAC with the public key", hs256, "not allowed"),
        ("tampered signature", tampered, "signature"),
        ("garbage", "not.a.jwt".to_string(), "malformed"),
    ];
    for (what, jwt, needle) in cases {
        let (status, v) = login(&s, "kubernetes", &jwt).await;
        assert_eq!(status, 400, "{what}: {v}");
        assert!(v.to_string().contains(needle), "{what}: {v}");
    }
    let (status, _) = {
        let r = s
            .http(None)
            .post(
                "auth/kubernetes/login",
                json!({"role": "nope", "jwt": rsa(&sa_claims())}),
            )
            .await;
        (r.status, r.text)
    };
    assert_eq!(status, 400);
}

#[tokio::test]
async fn config_and_role_errors_are_clear() {
    let s = Server::dev_kv_v1();
    let root = s.http(Some("root"));
    root.post("sys/auth/jwt", json!({"type": "jwt"})).await;
    for (body, needle) in [
        (json!({}), "exactly one of"),
        (
            json!({"jwt_validation_pubkeys": ["not a key"]}),
            "error parsing public key",
        ),
        (
            json!({"jwks_url": "http://127.0.0.1:1/jwks", "jwt_validation_pubkeys": ["x"]}),
            "exactly one of",
        ),
        (
            json!({"jwks_url": "http://127.0.0.1:1/jwks", "jwt_supported_algs": ["HS256"]}),
            "shared secret",
        ),
    ] {
        let r = root.post("auth/jwt/config", body.clone()).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(r.text.contains(needle), "{body}: {}", r.text);
    }
    for (body, needle) in [
        (
            json!({"user_claim": "sub"}),
            "at least one bound constraint",
        ),
        (json!({"bound_audiences": "vault"}), "user claim"),
        (
            json!({"role_type": "oidc", "user_claim": "sub", "bound_audiences": "x"}),
            "not supported",
        ),
    ] {
        let r = root.post("auth/jwt/role/r", body.clone()).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(r.text.contains(needle), "{body}: {}", r.text);
    }
    let r = s
        .http(None)
        .post("auth/jwt/login", json!({"role": "r", "jwt": "x"}))
        .await;
    assert_eq!(r.status, 400, "not configured: {}", r.text);
}

/// Serves one JSON document to every request, for as long as the test runs.
async fn serve_json(body: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut sock, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/keys")
}

#[tokio::test]
async fn jwks_url_keys_are_found_by_kid() {
    let dir = tempfile::tempdir().unwrap();
    let k = keys(dir.path());
    let mut jwk = Jwk::from_encoding_key(
        &EncodingKey::from_rsa_pem(&k.rsa.0).unwrap(),
        Algorithm::RS256,
    )
    .unwrap();
    jwk.common.key_id = Some("key-1".into());
    let url = serve_json(serde_json::to_string(&JwkSet { keys: vec![jwk] }).unwrap()).await;
    let s = Server::dev_kv_v1();
    let root = s.http(Some("root"));
    root.post("sys/auth/jwt", json!({"type": "jwt"})).await;
    let c = root
        .post(
            "auth/jwt/config",
            json!({"jwks_url": url, "bound_issuer": ISSUER}),
        )
        .await;
    assert_eq!(c.status, 204, "{}", c.text);
    role(&root, "jwt").await;
    let (status, v) = login(
        &s,
        "jwt",
        &sign(Algorithm::RS256, &k.rsa.0, &sa_claims(), Some("key-1")),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, _) = login(
        &s,
        "jwt",
        &sign(
            Algorithm::RS256,
            &k.other_rsa.0,
            &sa_claims(),
            Some("key-1"),
        ),
    )
    .await;
    assert_eq!(status, 400, "right kid, wrong key");
    let (status, _) = login(
        &s,
        "jwt",
        &sign(Algorithm::RS256, &k.rsa.0, &sa_claims(), Some("key-2")),
    )
    .await;
    assert_eq!(status, 400, "unknown kid");
}
