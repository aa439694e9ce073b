//! The `kubernetes` auth method against a fake API server (see
//! `common/apiserver.rs`: no cluster runs here, so the tests serve the
//! TokenReview API themselves over HTTPS with a test CA), with tokens shaped
//! like projected and legacy service-account tokens, signed by test keys.

mod common;

use std::path::Path;
use std::process::Command;

use common::apiserver::{Account, FakeApiServer};
use common::{Http, Server};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const APP_UID: &str = "5b1e0c4a-7c55-4f7e-9a0e-000000000001";

struct Key {
    private: Vec<u8>,
    public: String,
}

fn rsa_key(dir: &Path, name: &str) -> Key {
    let (private, public) = common::keypair(
        dir,
        name,
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    );
    Key { private, public }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Claims of a projected token as kubelet mounts it.
fn projected(ns: &str, name: &str, uid: &str, aud: &[&str]) -> Value {
    let t = now();
    json!({
        "aud": aud,
        "exp": t + 3600,
        "iat": t,
        "nbf": t,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "sub": format!("system:serviceaccount:{ns}:{name}"),
        "kubernetes.io": {
            "namespace": ns,
            "pod": {"name": format!("{name}-7d9c5"), "uid": "0a0b0c0d-0000-4000-8000-00000000aaaa"},
            "serviceaccount": {"name": name, "uid": uid}
        }
    })
}

fn sign(key: &Key, claims: &Value, kid: Option<&str>) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = kid.map(String::from);
    jsonwebtoken::encode(
        &h,
        claims,
        &EncodingKey::from_rsa_pem(&key.private).unwrap(),
    )
    .unwrap()
}

/// A server with a file audit device, its log (stderr) kept in the
/// setup's directory, initialised and unsealed: (server, root token).
async fn server(setup: &common::Setup, env: &[(&str, &str)]) -> (Server, String) {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("exec \"$0\" server --config \"$1\" 2>>\"$2\"")
        .arg(common::server_binary())
        .arg(&setup.config)
        .arg(setup.dir.path().join("server.log"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let s = Server::spawn_command(cmd);
    let (keys, root) = common::init(&s.http(None), 1, 1).await;
    common::unseal(&s.http(None), &keys).await;
    (s, root)
}

struct Fixture {
    _setup: common::Setup,
    dir: std::path::PathBuf,
    server: Server,
    root: Http,
    api: FakeApiServer,
    signer: Key,
    reviewer: String,
}

impl Fixture {
    async fn new(env: &[(&str, &str)]) -> Fixture {
        let setup = common::Setup::embedded_with(
            "audit \"file\" \"file\" {\n  file_path = \"{DIR}/audit.log\"\n}\n",
        );
        let dir = setup.dir.path().to_owned();
        let api = FakeApiServer::start(&dir).await;
        let signer = rsa_key(&dir, "sa-signer");
        let (server, root_token) = server(&setup, env).await;
        let root = server.http(Some(&root_token));
        common::enable(&root, "sys/auth/kubernetes", "kubernetes").await;
        // The reviewer: a service account bound to system:auth-delegator.
        let reviewer_acct = Account::new(
            "coffer",
            "coffer-auth",
            "rv-uid",
            &["https://kubernetes.default.svc"],
        );
        let reviewer = sign(
            &signer,
            &projected(
                "coffer",
                "coffer-auth",
                "rv-uid",
                &["https://kubernetes.default.svc"],
            ),
            None,
        );
        api.issue(&reviewer, reviewer_acct.clone());
        api.allow_review(&reviewer_acct);
        Fixture {
            _setup: setup,
            dir,
            server,
            root,
            api,
            signer,
            reviewer,
        }
    }

    async fn configure(&self, extra: Value) {
        let mut body = json!({
            "kubernetes_host": self.api.url,
            "kubernetes_ca_cert": self.api.ca_pem,
            "token_reviewer_jwt": self.reviewer,
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        let r = self.root.post("auth/kubernetes/config", body).await;
        assert_eq!(r.status, 204, "{}", r.text);
    }

    async fn role(&self, name: &str, body: Value) {
        let r = self
            .root
            .post(&format!("auth/kubernetes/role/{name}"), body)
            .await;
        assert!(r.status == 204 || r.status == 200, "{}", r.text);
    }

    /// A live token for `ns/name` that the fake cluster knows.
    fn token(&self, ns: &str, name: &str, uid: &str, aud: &[&str]) -> String {
        let t = sign(&self.signer, &projected(ns, name, uid, aud), None);
        self.api.issue(&t, Account::new(ns, name, uid, aud));
        t
    }

    async fn login(&self, role: &str, jwt: &str) -> (u16, Value) {
        let r = self
            .server
            .http(None)
            .post("auth/kubernetes/login", json!({"role": role, "jwt": jwt}))
            .await;
        (r.status, r.json())
    }

    /// The error an audit response entry recorded for the last refused login.
    fn last_audit_error(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("audit.log")).unwrap_or_default();
        log.lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["type"] == "response" && e["request"]["path"] == "auth/kubernetes/login")
            .filter_map(|e| e["error"].as_str().map(String::from))
            .next()
            .unwrap_or_default()
    }

    fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Asserts a bare 403 whose reason the audit entry and the log hold.
    async fn refused(&self, role: &str, jwt: &str, reason: &str) {
        let (status, body) = self.login(role, jwt).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(
            body,
            json!({"errors": ["permission denied"]}),
            "the client sees no reason"
        );
        let audited = self.last_audit_error();
        assert!(
            audited.starts_with("permission denied: ") && audited.contains(reason),
            "audit error {audited:?} should hold {reason:?}"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while !self.server_log().contains(reason) {
            assert!(
                std::time::Instant::now() < deadline,
                "server log lacks {reason:?}:\n{}",
                self.server_log()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

fn app_role() -> Value {
    json!({
        "bound_service_account_names": ["app", "web-*"],
        "bound_service_account_namespaces": "apps",
        "audience": "vault",
        "token_policies": "app-read",
        "token_ttl": "20m",
    })
}

#[tokio::test]
async fn config_and_roles_read_back_as_vaults_do() {
    let f = Fixture::new(&[]).await;
    let root = &f.root;
    let r = root.get("auth/kubernetes/config").await;
    assert_eq!(r.status, 404, "no config yet");
    f.configure(json!({})).await;
    let c = root.get("auth/kubernetes/config").await.json()["data"].clone();
    assert_eq!(c["kubernetes_host"], f.api.url);
    assert_eq!(c["kubernetes_ca_cert"], f.api.ca_pem.trim());
    assert_eq!(c["token_reviewer_jwt_set"], true);
    assert!(
        c.get("token_reviewer_jwt").is_none(),
        "the reviewer token is never read back: {c}"
    );
    assert_eq!(
        c["disable_iss_validation"], true,
        "Vault's default since 1.9"
    );
    assert_eq!(c["disable_local_ca_jwt"], false);
    assert_eq!(c["use_annotations_as_alias_metadata"], false);
    assert_eq!(c["pem_keys"], json!([]));
    assert_eq!(c["review"], "tokenreview");

    for (body, why) in [
        (json!({}), "no host provided"),
        (
            json!({"kubernetes_host": "https://k8s", "kubernetes_ca_cert": "not a cert"}),
            "kubernetes_ca_cert",
        ),
        (
            json!({"kubernetes_host": "https://k8s", "token_reviewer_jwt": "abc"}),
            "token_reviewer_jwt is not a JWT",
        ),
        (
            json!({"kubernetes_host": "https://k8s", "pem_keys": ["-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"]}),
            "pem_keys",
        ),
        (
            json!({"kubernetes_host": "https://k8s", "review": "local"}),
            "set pem_keys, jwks_url or oidc_discovery_url",
        ),
        (
            json!({"kubernetes_host": "https://k8s", "review": "maybe"}),
            "review must be",
        ),
    ] {
        let r = root.post("auth/kubernetes/config", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.text.contains(why), "{body}: {}", r.text);
    }
    // A refused write leaves the old configuration in place.
    assert_eq!(
        root.get("auth/kubernetes/config").await.json()["data"]["token_reviewer_jwt_set"],
        true
    );

    let r = root.post("auth/kubernetes/role/app", app_role()).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = root
        .post(
            "auth/kubernetes/role/open",
            json!({"bound_service_account_names": "*", "bound_service_account_namespaces": "*", "policies": "a,b", "ttl": 60}),
        )
        .await;
    assert_eq!(
        r.status, 200,
        "a role without an audience is written with a warning"
    );
    assert!(
        r.json()["warnings"][0]
            .as_str()
            .unwrap()
            .contains("audience"),
        "{}",
        r.text
    );
    let role = root.get("auth/kubernetes/role/app").await.json()["data"].clone();
    assert_eq!(role["bound_service_account_names"], json!(["app", "web-*"]));
    assert_eq!(role["bound_service_account_namespaces"], json!(["apps"]));
    assert_eq!(role["audience"], "vault");
    assert_eq!(role["alias_name_source"], "serviceaccount_uid");
    assert_eq!(role["token_policies"], json!(["app-read"]));
    assert_eq!(role["token_ttl"], 1200);
    let open = root.get("auth/kubernetes/role/open").await.json()["data"].clone();
    assert_eq!(
        open["token_policies"],
        json!(["a", "b"]),
        "deprecated aliases are read"
    );
    assert_eq!(open["token_ttl"], 60);
    let list = root.list("auth/kubernetes/role").await.json();
    assert_eq!(list["data"]["keys"], json!(["app", "open"]));
    for (body, why) in [
        (
            json!({"bound_service_account_namespaces": "a"}),
            "bound_service_account_names",
        ),
        (
            json!({"bound_service_account_names": "a"}),
            "bound_service_account_namespace_selector",
        ),
        (
            json!({"bound_service_account_names": "a", "bound_service_account_namespace_selector": "{matchLabels: ["}),
            "label selector",
        ),
        (
            json!({"bound_service_account_names": "a", "bound_service_account_namespaces": "b", "alias_name_source": "pod"}),
            "alias_name_source",
        ),
        (
            json!({"bound_service_account_names": "a", "bound_service_account_namespaces": "b", "token_type": "batch"}),
            "batch",
        ),
    ] {
        let r = root.post("auth/kubernetes/role/bad", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.text.contains(why), "{body}: {}", r.text);
    }
    assert_eq!(root.get("auth/kubernetes/role/bad").await.status, 404);
    assert_eq!(root.delete("auth/kubernetes/role/open").await.status, 204);
    assert_eq!(root.get("auth/kubernetes/role/open").await.status, 404);
}

#[tokio::test]
async fn a_pod_logs_in_through_the_tokenreview_vault_makes() {
    let f = Fixture::new(&[]).await;
    f.configure(json!({})).await;
    f.role("app", app_role()).await;
    let jwt = f.token("apps", "web-frontend", APP_UID, &["vault"]);
    f.api.take_requests();
    let (status, body) = f.login("app", &jwt).await;
    assert_eq!(status, 200, "{body}");
    let auth = &body["auth"];
    assert_eq!(
        auth["metadata"],
        json!({
            "role": "app",
            "service_account_name": "web-frontend",
            "service_account_namespace": "apps",
            "service_account_secret_name": "",
            "service_account_uid": APP_UID,
        })
    );
    assert_eq!(auth["policies"], json!(["app-read", "default"]));
    assert_eq!(auth["lease_duration"], 1200);
    assert_eq!(auth["renewable"], true);

    // The one call made: as Vault makes it.
    let calls = f.api.take_requests();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let c = &calls[0];
    assert_eq!(
        (c.method, c.path.as_str()),
        ("POST", "/apis/authentication.k8s.io/v1/tokenreviews")
    );
    assert_eq!(c.authorization, format!("Bearer {}", f.reviewer));
    assert_eq!(c.content_type, "application/json");
    assert_eq!(
        c.body["spec"],
        json!({"token": jwt, "audiences": ["vault"]})
    );

    // The token works and says who it is.
    let token = auth["client_token"].as_str().unwrap();
    let me = f
        .server
        .http(Some(token))
        .get("auth/token/lookup-self")
        .await
        .json();
    assert_eq!(me["data"]["display_name"], "kubernetes-apps-web-frontend");
    assert_eq!(me["data"]["meta"]["service_account_uid"], APP_UID);

    // Without an audience on the role, the token's own audiences are asked for.
    f.role(
        "any-aud",
        json!({"bound_service_account_names": "app", "bound_service_account_namespaces": "apps"}),
    )
    .await;
    let jwt2 = f.token("apps", "app", APP_UID, &["vault", "other"]);
    assert_eq!(f.login("any-aud", &jwt2).await.0, 200);
    let calls = f.api.take_requests();
    assert_eq!(
        calls[0].body["spec"]["audiences"],
        json!(["vault", "other"])
    );

    // Legacy secret-based tokens (no exp, flat claims) log in too.
    let legacy_claims = json!({
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": "apps",
        "kubernetes.io/serviceaccount/secret.name": "app-token-x7k2p",
        "kubernetes.io/serviceaccount/service-account.name": "app",
        "kubernetes.io/serviceaccount/service-account.uid": APP_UID,
        "sub": "system:serviceaccount:apps:app"
    });
    let legacy = sign(&f.signer, &legacy_claims, None);
    f.api.issue(
        &legacy,
        Account::new("apps", "app", APP_UID, &["https://kubernetes.default.svc"]),
    );
    let (status, body) = f.login("any-aud", &legacy).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["auth"]["metadata"]["service_account_secret_name"],
        "app-token-x7k2p"
    );

    // Renewal asks the role first: once it is deleted, the token is not renewed.
    let h = f.server.http(Some(token));
    assert_eq!(h.put("auth/token/renew-self", json!({})).await.status, 200);
    assert_eq!(f.root.delete("auth/kubernetes/role/app").await.status, 204);
    let r = h.put("auth/token/renew-self", json!({})).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        h.get("auth/token/lookup-self").await.status,
        200,
        "still valid until its TTL"
    );
    f.role("app", app_role()).await;

    // Bad requests say what is wrong, as Vault does.
    let anon = f.server.http(None);
    for (body, status, msg) in [
        (json!({"jwt": jwt}), 400, "missing role"),
        (json!({"role": "app"}), 400, "missing jwt"),
        (
            json!({"role": "nope", "jwt": jwt}),
            400,
            "invalid role name \\\"nope\\\"",
        ),
    ] {
        let r = anon.post("auth/kubernetes/login", body).await;
        assert_eq!(r.status, status, "{}", r.text);
        assert!(r.text.contains(msg), "{}", r.text);
    }
}

#[tokio::test]
async fn every_refused_login_says_why_in_the_audit_log_and_the_server_log() {
    let f = Fixture::new(&[]).await;
    f.configure(json!({})).await;
    f.role("app", app_role()).await;

    // Rejected before any API call, with Vault's messages.
    let other_name = f.token("apps", "db", "u-db", &["vault"]);
    let (s, b) = f.login("app", &other_name).await;
    assert_eq!(
        (s, b["errors"][0].as_str()),
        (403, Some("service account name not authorized"))
    );
    let other_ns = f.token("kube-system", "app", "u-ks", &["vault"]);
    let (s, b) = f.login("app", &other_ns).await;
    assert_eq!(
        (s, b["errors"][0].as_str()),
        (403, Some("namespace not authorized"))
    );
    let wrong_aud = f.token("apps", "app", APP_UID, &["nats"]);
    let (s, b) = f.login("app", &wrong_aud).await;
    assert_eq!(s, 403);
    assert!(
        b["errors"][0]
            .as_str()
            .unwrap()
            .contains("invalid audience (aud) claim"),
        "{b}"
    );
    let mut expired_claims = projected("apps", "app", APP_UID, &["vault"]);
    expired_claims["exp"] = json!(now() - 600);
    let expired = sign(&f.signer, &expired_claims, None);
    let (s, b) = f.login("app", &expired).await;
    assert_eq!(s, 403);
    assert!(b["errors"][0].as_str().unwrap().contains("expired"), "{b}");
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = None;
    let hmac = jsonwebtoken::encode(
        &hs,
        &projected("apps", "app", APP_UID, &["vault"]),
        &EncodingKey::from_secret(b"k"),
    )
    .unwrap();
    assert_eq!(
        f.login("app", &hmac).await.0,
        403,
        "HMAC tokens are not service-account tokens"
    );
    assert!(
        f.api.take_requests().is_empty(),
        "none of these reached the API server"
    );

    // Refused by the API server: the client sees Vault's bare 403.
    let invalidated = f.token("apps", "app", APP_UID, &["vault"]);
    f.api.invalidate(&invalidated);
    f.refused(
        "app",
        &invalidated,
        "service account token has been invalidated",
    )
    .await;

    let not_for_vault = sign(
        &f.signer,
        &projected("apps", "app", APP_UID, &["vault"]),
        None,
    );
    f.api.issue(
        &not_for_vault,
        Account::new("apps", "app", APP_UID, &["https://kubernetes.default.svc"]),
    );
    f.refused("app", &not_for_vault, "is invalid for the target audiences")
        .await;

    let good = f.token("apps", "app", APP_UID, &["vault"]);
    f.api
        .lie_about_audiences(Some(&["https://kubernetes.default.svc"]));
    f.refused("app", &good, "is not valid for audience [\"vault\"]")
        .await;
    f.api.lie_about_audiences(None);

    let recreated = sign(
        &f.signer,
        &projected("apps", "app", APP_UID, &["vault"]),
        None,
    );
    f.api.issue(
        &recreated,
        Account::new("apps", "app", "a-new-uid", &["vault"]),
    );
    f.refused("app", &recreated, "JWT UIDs did not match").await;

    // The reviewer token expired (copied once from a pod, say).
    f.api.invalidate(&f.reviewer);
    f.refused("app", &good, "deleted or recreated with a new token")
        .await;

    // The reviewer lost its RBAC binding.
    let no_rbac = f.token(
        "coffer",
        "plain",
        "u-plain",
        &["https://kubernetes.default.svc"],
    );
    f.configure(json!({"token_reviewer_jwt": no_rbac})).await;
    f.refused("app", &good, "cannot create resource \"tokenreviews\"")
        .await;

    // The API server cannot be reached.
    f.configure(json!({"kubernetes_host": "https://127.0.0.1:1"}))
        .await;
    f.refused("app", &good, "could not be reached").await;

    // The wrong CA: TLS fails, and says so.
    let other_dir = f.dir.join("other-ca");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other = common::TestTls::make(&other_dir, "IP:127.0.0.1");
    f.configure(json!({"kubernetes_ca_cert": std::fs::read_to_string(&other.ca).unwrap(), "token_reviewer_jwt": f.token("coffer", "coffer-auth", "rv-uid", &["x"])})).await;
    f.refused("app", &good, "could not be reached").await;

    // The source address is outside the role's CIDRs.
    f.configure(json!({})).await;
    f.role("app", json!({"token_bound_cidrs": "10.0.0.0/8"}))
        .await;
    f.refused("app", &good, "outside the role's token_bound_cidrs")
        .await;
}

#[tokio::test]
async fn without_a_reviewer_token_the_pods_own_is_used_and_reread_as_it_rotates() {
    let sa_dir = tempfile::tempdir().unwrap();
    let sa_path = sa_dir.path().to_str().unwrap().to_owned();
    let f = Fixture::new(&[("COFFER_KUBERNETES_SERVICEACCOUNT_DIR", &sa_path)]).await;
    f.role("app", app_role()).await;
    let good = f.token("apps", "app", APP_UID, &["vault"]);

    // No reviewer and no local token: the client's JWT is the bearer, so the
    // app's own account needs system:auth-delegator.
    f.configure(json!({"token_reviewer_jwt": null, "disable_local_ca_jwt": true}))
        .await;
    f.refused("app", &good, "made with the client's own JWT")
        .await;
    let calls = f.api.take_requests();
    assert_eq!(
        calls.last().unwrap().authorization,
        format!("Bearer {good}")
    );
    f.api
        .allow_review(&Account::new("apps", "app", APP_UID, &["vault"]));
    assert_eq!(f.login("app", &good).await.0, 200);

    // Inside a pod: the mounted token and CA are used when none is configured.
    let first = f.token(
        "coffer",
        "coffer-auth",
        "rv-uid",
        &["https://kubernetes.default.svc"],
    );
    std::fs::write(sa_dir.path().join("token"), format!("{first}\n")).unwrap();
    std::fs::write(sa_dir.path().join("ca.crt"), &f.api.ca_pem).unwrap();
    f.configure(json!({"token_reviewer_jwt": null, "kubernetes_ca_cert": null}))
        .await;
    f.api.take_requests();
    assert_eq!(f.login("app", &good).await.0, 200);
    assert_eq!(
        f.api.take_requests()[0].authorization,
        format!("Bearer {first}")
    );

    // kubelet rotates the token; the old one stops working at once.
    let second = f.token(
        "coffer",
        "coffer-auth",
        "rv-uid",
        &["https://kubernetes.default.svc", "rotated"],
    );
    f.api.invalidate(&first);
    let tmp = sa_dir.path().join("..token.tmp");
    std::fs::write(&tmp, &second).unwrap();
    std::fs::rename(&tmp, sa_dir.path().join("token")).unwrap();
    let (status, body) = f.login("app", &good).await;
    assert_eq!(status, 200, "the rotated token is read again: {body}");
    assert_eq!(
        f.api.take_requests()[0].authorization,
        format!("Bearer {second}")
    );
}

#[tokio::test]
async fn namespace_selectors_and_annotation_metadata() {
    let f = Fixture::new(&[]).await;
    f.configure(json!({"use_annotations_as_alias_metadata": true}))
        .await;
    f.role(
        "billing",
        json!({
            "bound_service_account_names": "app",
            "bound_service_account_namespace_selector": "matchLabels:\n  team: payments\nmatchExpressions:\n  - {key: env, operator: In, values: [prod, stage]}\n",
            "audience": "vault",
        }),
    )
    .await;
    f.api
        .namespace("pay-prod", &[("team", "payments"), ("env", "prod")]);
    f.api
        .namespace("pay-dev", &[("team", "payments"), ("env", "dev")]);
    f.api.annotate(
        "pay-prod",
        "app",
        &[
            ("vault.hashicorp.com/alias-metadata-cost-center", "cc-42"),
            ("unrelated/annotation", "x"),
        ],
    );
    let prod = f.token("pay-prod", "app", "u-prod", &["vault"]);
    let (status, body) = f.login("billing", &prod).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["auth"]["metadata"]["cost-center"], "cc-42");
    assert!(
        body["auth"]["metadata"]
            .get("unrelated/annotation")
            .is_none()
    );
    let calls = f.api.take_requests();
    let paths: Vec<&str> = calls.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/namespaces/pay-prod",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            "/api/v1/namespaces/pay-prod/serviceaccounts/app"
        ]
    );
    assert!(
        calls
            .iter()
            .all(|c| c.authorization == format!("Bearer {}", f.reviewer))
    );

    let dev = f.token("pay-dev", "app", "u-dev", &["vault"]);
    let (s, b) = f.login("billing", &dev).await;
    assert_eq!(
        (s, b["errors"][0].as_str()),
        (403, Some("namespace not authorized"))
    );
    let (s, b) = f
        .login("billing", &f.token("nowhere", "app", "u-x", &["vault"]))
        .await;
    assert_eq!(s, 403);
    assert!(
        b["errors"][0]
            .as_str()
            .unwrap()
            .contains("namespace not authorized err="),
        "{b}"
    );

    // Annotations may not overwrite the metadata coffer sets.
    f.api.annotate(
        "pay-prod",
        "app",
        &[(
            "vault.hashicorp.com/alias-metadata-service_account_name",
            "admin",
        )],
    );
    let (s, b) = f.login("billing", &prod).await;
    assert_eq!(s, 400, "{b}");
    assert!(b["errors"][0].as_str().unwrap().contains("reserved"), "{b}");

    // A namespace claim that is not a name never reaches an API path.
    let mut claims = projected("../../apis", "app", "u", &["vault"]);
    claims["kubernetes.io"]["namespace"] = json!("../../apis");
    let evil = sign(&f.signer, &claims, None);
    f.api.take_requests();
    f.refused("billing", &evil, "is not a Kubernetes namespace name")
        .await;
    assert!(f.api.take_requests().is_empty());
}

#[tokio::test]
async fn local_review_verifies_signatures_and_survives_an_unreachable_api_server() {
    let mut f = Fixture::new(&[]).await;
    let stranger = rsa_key(&f.dir, "stranger");
    f.role("app", app_role()).await;
    let good = f.token("apps", "app", APP_UID, &["vault"]);

    // pem_keys with TokenReview (Vault's behaviour): both checks are made.
    f.configure(json!({"pem_keys": [f.signer.public]})).await;
    assert_eq!(f.login("app", &good).await.0, 200);
    assert_eq!(f.api.take_requests().len(), 1);
    let forged = sign(
        &stranger,
        &projected("apps", "app", APP_UID, &["vault"]),
        None,
    );
    f.api
        .issue(&forged, Account::new("apps", "app", APP_UID, &["vault"]));
    f.refused("app", &forged, "signature does not verify").await;

    // review = "local" with pem_keys: no API call at all.
    f.configure(json!({"pem_keys": [f.signer.public], "review": "local"}))
        .await;
    f.api.take_requests();
    assert_eq!(f.login("app", &good).await.0, 200);
    assert!(f.api.take_requests().is_empty());
    f.refused("app", &forged, "signature does not verify").await;
    let mut no_exp = projected("apps", "app", APP_UID, &["vault"]);
    no_exp.as_object_mut().unwrap().remove("exp");
    f.refused(
        "app",
        &sign(&f.signer, &no_exp, None),
        "accepts only tokens that expire",
    )
    .await;

    // review = "local" with the API server's own key set, fetched as the
    // reviewer and cached: logins go on when the API server goes away.
    let mut jwk = Jwk::from_encoding_key(
        &EncodingKey::from_rsa_pem(&f.signer.private).unwrap(),
        Algorithm::RS256,
    )
    .unwrap();
    jwk.common.key_id = Some("sa-key-1".into());
    f.api
        .set_jwks(serde_json::to_value(JwkSet { keys: vec![jwk] }).unwrap());
    f.configure(json!({"review": "local", "jwks_url": format!("{}/openid/v1/jwks", f.api.url)}))
        .await;
    let kid_token = sign(
        &f.signer,
        &projected("apps", "app", APP_UID, &["vault"]),
        Some("sa-key-1"),
    );
    let (status, body) = f.login("app", &kid_token).await;
    assert_eq!(status, 200, "{body}");
    let calls = f.api.take_requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].path, "/openid/v1/jwks");
    assert_eq!(calls[0].authorization, format!("Bearer {}", f.reviewer));
    f.api.stop();
    for _ in 0..3 {
        let (status, body) = f.login("app", &kid_token).await;
        assert_eq!(status, 200, "the cached key set still verifies: {body}");
    }
    // With TokenReview, the same outage refuses every login.
    f.configure(json!({})).await;
    f.refused("app", &good, "could not be reached").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_logins_and_role_updates() {
    let f = Fixture::new(&[]).await;
    f.configure(json!({})).await;
    f.role("app", app_role()).await;
    let tokens: Vec<String> = (0..24)
        .map(|_| f.token("apps", "app", APP_UID, &["vault"]))
        .collect();
    let anon = f.server.http(None);
    let logins: Vec<_> = tokens
        .iter()
        .map(|t| {
            let anon = anon.clone();
            let t = t.clone();
            tokio::spawn(async move {
                anon.post("auth/kubernetes/login", json!({"role": "app", "jwt": t}))
                    .await
            })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for l in logins {
        let r = l.await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(
            seen.insert(
                r.json()["auth"]["client_token"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            )
        );
    }
    assert_eq!(f.api.take_requests().len(), 24);

    // Partial role updates of different fields at once: none is lost.
    let fields = [
        ("token_ttl", json!(111)),
        ("token_max_ttl", json!(2222)),
        ("token_num_uses", json!(5)),
        ("token_period", json!(66)),
        ("audience", json!("coffer")),
        ("alias_name_source", json!("serviceaccount_name")),
    ];
    for _ in 0..4 {
        let writes: Vec<_> = fields
            .iter()
            .cloned()
            .map(|(k, v)| {
                let root = f.root.clone();
                tokio::spawn(
                    async move { root.post("auth/kubernetes/role/app", json!({ k: v })).await },
                )
            })
            .collect();
        for w in writes {
            assert_eq!(w.await.unwrap().status, 204);
        }
        let role = f.root.get("auth/kubernetes/role/app").await.json();
        for (k, v) in &fields {
            assert_eq!(&role["data"][*k], v, "{k} lost: {role}");
        }
        f.role("app", app_role()).await;
        f.role("app", json!({"token_num_uses": 0, "token_period": 0, "alias_name_source": "serviceaccount_uid"})).await;
    }
}

/// An unmodified Vault client (`vaultrs`) configures the method, manages a
/// role and logs in; with no reviewer token set (vaultrs cannot send one),
/// the client's own JWT is the TokenReview bearer.
#[tokio::test]
async fn vaultrs_configures_and_logs_in_unchanged() {
    use vaultrs::api::auth::kubernetes::requests::{
        ConfigureKubernetesAuthRequest, CreateKubernetesRoleRequest,
    };
    use vaultrs::auth::kubernetes;
    let f = Fixture::new(&[]).await;
    let root_token = f.root.token.clone().unwrap();
    let client = common::vaultrs_client(&f.server.addr, &root_token);
    kubernetes::configure(
        &client,
        "kubernetes",
        &f.api.url,
        Some(
            ConfigureKubernetesAuthRequest::builder()
                .kubernetes_ca_cert(f.api.ca_pem.clone())
                .disable_local_ca_jwt(true),
        ),
    )
    .await
    .unwrap();
    let cfg = kubernetes::read_config(&client, "kubernetes")
        .await
        .unwrap();
    assert_eq!(cfg.kubernetes_host, f.api.url);
    assert!(cfg.disable_local_ca_jwt);
    kubernetes::role::create(
        &client,
        "kubernetes",
        "app",
        Some(
            CreateKubernetesRoleRequest::builder()
                .bound_service_account_names(vec!["app".to_string()])
                .bound_service_account_namespaces(vec!["apps".to_string()])
                .audience("vault")
                .token_policies(vec!["app-read".to_string()])
                .token_ttl("10m"),
        ),
    )
    .await
    .unwrap();
    let role = kubernetes::role::read(&client, "kubernetes", "app")
        .await
        .unwrap();
    assert_eq!(role.token_ttl, 600);
    assert_eq!(role.token_policies, ["app-read"]);
    let roles = kubernetes::role::list(&client, "kubernetes").await.unwrap();
    assert_eq!(roles.keys, ["app"]);

    let jwt = f.token("apps", "app", APP_UID, &["vault"]);
    f.api
        .allow_review(&Account::new("apps", "app", APP_UID, &["vault"]));
    let anon = common::vaultrs_client(&f.server.addr, "");
    let auth = kubernetes::login(&anon, "kubernetes", "app", &jwt)
        .await
        .unwrap();
    assert_eq!(auth.policies, ["app-read", "default"]);
    assert_eq!(auth.lease_duration, 600);
    assert_eq!(auth.metadata.unwrap()["service_account_namespace"], "apps");
    let calls = f.api.take_requests();
    assert_eq!(calls.last().unwrap().authorization, format!("Bearer {jwt}"));
    let e = kubernetes::login(&anon, "kubernetes", "nope", &jwt)
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("invalid role name"), "{e:?}");
}

/// `coffer login -method=kubernetes` in a pod: the mounted token is the JWT.
/// (Multi-threaded: the fake API server answers while the CLI runs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coffer_login_reads_the_pods_token() {
    let f = Fixture::new(&[]).await;
    f.configure(json!({})).await;
    f.role("app", app_role()).await;
    let pod = tempfile::tempdir().unwrap();
    let jwt = f.token("apps", "app", APP_UID, &["vault"]);
    std::fs::write(pod.path().join("token"), format!("{jwt}\n")).unwrap();
    let login = |args: &[&str]| {
        Command::new(common::server_binary())
            .args(["login", "-method=kubernetes", "-no-store"])
            .args(args)
            .env("VAULT_ADDR", &f.server.addr)
            .env_remove("VAULT_TOKEN")
            .env_remove("COFFER_TOKEN")
            .env("HOME", pod.path())
            .env("COFFER_KUBERNETES_SERVICEACCOUNT_DIR", pod.path())
            .output()
            .unwrap()
    };
    let o = login(&["role=app"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("Success!"), "{out}");
    assert!(
        out.contains("app-read"),
        "the token's policies are shown: {out}"
    );
    let o = login(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs role=NAME"));
    // A refused login says so, without a hint about VAULT_TOKEN.
    f.api.invalidate(&jwt);
    let o = login(&["role=app"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("permission denied") && !err.contains("VAULT_TOKEN"),
        "{err}"
    );
}
