//! External Secrets Operator's `vault` provider and the Vault CSI provider,
//! replayed request by request against coffer. The manifests are read from
//! docs/kubernetes.md, so the page cannot name a field, path or role that
//! does not work; the calls are the ones ESO and the CSI provider make for
//! them (see their sources: ESO's providers/v1/vault, vault-csi-provider's
//! internal/client and internal/provider).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::apiserver::{Account, FakeApiServer};
use common::{Http, Server};
use serde_json::{Value, json};

/// The YAML documents and `# policy: NAME` HCL blocks of a markdown page.
struct Page {
    docs: Vec<Value>,
    policies: BTreeMap<String, String>,
}

fn page() -> Page {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/kubernetes.md");
    let text = std::fs::read_to_string(path).expect("docs/kubernetes.md");
    let (mut docs, mut policies) = (vec![], BTreeMap::new());
    let mut block: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut block, line.trim_end()) {
            (None, l) if l.starts_with("```") => block = Some((l[3..].to_owned(), String::new())),
            (Some(_), "```") => {
                let (lang, body) = block.take().unwrap();
                if lang == "yaml" {
                    for d in body.split("\n---\n") {
                        let v: Value = serde_norway::from_str(d).unwrap_or_else(|e| {
                            panic!("a YAML manifest in docs/kubernetes.md does not parse: {e}\n{d}")
                        });
                        docs.push(v);
                    }
                } else if lang == "hcl"
                    && let Some(name) = body
                        .lines()
                        .next()
                        .and_then(|l| l.strip_prefix("# policy: "))
                {
                    policies.insert(name.trim().to_owned(), body.clone());
                }
            }
            (Some((_, body)), l) => {
                body.push_str(l);
                body.push('\n');
            }
            (None, _) => {}
        }
    }
    Page { docs, policies }
}

impl Page {
    fn kind(&self, kind: &str) -> &Value {
        self.docs
            .iter()
            .find(|d| d["kind"] == kind)
            .unwrap_or_else(|| panic!("docs/kubernetes.md has no {kind}"))
    }
}

fn s(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

/// The coffer side of the page: the policies, the kubernetes roles, and
/// the data the manifests refer to.
struct Cluster {
    server: Server,
    root: Http,
    api: FakeApiServer,
    _dir: tempfile::TempDir,
    db: bool,
}

async fn cluster(p: &Page) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let api = FakeApiServer::start(dir.path()).await;
    let server = Server::dev();
    let root = server.http(Some("root"));
    for (name, text) in &p.policies {
        common::put_policy(&root, name, text).await;
    }
    // The reviewer coffer uses (coffer in a pod would use its own token).
    const REVIEWER: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXZpZXdlciJ9.c2ln";
    let reviewer = Account::new(
        "coffer",
        "coffer-auth",
        "rv",
        &["https://kubernetes.default.svc"],
    );
    api.issue(REVIEWER, reviewer.clone());
    api.allow_review(&reviewer);
    common::enable(&root, "sys/auth/kubernetes", "kubernetes").await;
    let r = root
        .post(
            "auth/kubernetes/config",
            json!({"kubernetes_host": api.url, "kubernetes_ca_cert": api.ca_pem,
                   "token_reviewer_jwt": REVIEWER}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // The roles of the page's `sh` blocks.
    for (role, sa, policy) in [("eso", "eso-reader", "eso"), ("csi-app", "app", "csi-app")] {
        let r = root
            .post(
                &format!("auth/kubernetes/role/{role}"),
                json!({"bound_service_account_names": sa, "bound_service_account_namespaces": "apps",
                       "audience": "vault", "token_policies": policy, "token_ttl": "10m"}),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
    }
    // Data the manifests name: a nested tree, two versions, tags.
    for (key, data) in [
        ("app/db", json!({"password": "first", "user": "app"})),
        ("app/db", json!({"password": "second", "user": "app"})),
        ("app/api", json!({"key": "k-1"})),
        ("app/nested/deep", json!({"x": "1"})),
        ("app/nested/deeper/leaf", json!({"y": "2"})),
        ("other/thing", json!({"z": "3"})),
    ] {
        let r = root
            .post(&format!("secret/data/{key}"), json!({"data": data}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    for key in ["app/db", "app/nested/deeper/leaf"] {
        let r = root
            .post(
                &format!("secret/metadata/{key}"),
                json!({"custom_metadata": {"team": "payments"}}),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
    }
    let r = root
        .post(
            "sys/mounts/kv1",
            json!({"type": "kv", "options": {"version": "1"}}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(
        root.post("kv1/app/token", json!({"token": "legacy-t"}))
            .await
            .status,
        204
    );
    common::enable(&root, "sys/mounts/transit", "transit").await;
    let r = root.post("transit/keys/app", json!({})).await;
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    let db = common::postgres_available().await;
    if db {
        common::enable(&root, "sys/mounts/database", "database").await;
        let r = root
            .post(
                "database/config/pg",
                json!({"plugin_name": "postgresql-database-plugin",
                       "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
                       "username": "postgres", "password": "unused", "allowed_roles": "app"}),
            )
            .await;
        assert!(r.status == 200 || r.status == 204, "{}", r.text);
        let r = root
            .post(
                "database/roles/app",
                json!({"db_name": "pg", "default_ttl": "1h",
                       "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"}),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
    }
    Cluster {
        server,
        root,
        api,
        _dir: dir,
        db,
    }
}

impl Cluster {
    /// A projected token for `apps/<sa>` with `audiences`, as a TokenRequest
    /// gives ESO (600 s) or kubelet gives the CSI driver.
    fn pod_token(&self, sa: &str, audiences: &[&str]) -> String {
        use base64::Engine;
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let jwt = format!(
            "{}.{}.c2ln",
            b64(json!({"alg": "RS256", "kid": "k"})),
            b64(
                json!({"aud": audiences, "exp": now + 600, "iat": now, "iss": "https://kubernetes.default.svc",
                       "sub": format!("system:serviceaccount:apps:{sa}"),
                       "kubernetes.io": {"namespace": "apps", "serviceaccount": {"name": sa, "uid": format!("uid-{sa}")}},
                       "n": rand_suffix()})
            )
        );
        self.api.issue(
            &jwt,
            Account::new("apps", sa, &format!("uid-{sa}"), audiences),
        );
        jwt
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// ESO's `checkToken`: lookup-self must give `type`, a numeric `ttl` and an
/// `expire_time` key (its Go code asserts these types).
async fn check_token(h: &Http) {
    let r = h.get("auth/token/lookup-self").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = &r.json()["data"];
    assert_eq!(d["type"], "service");
    assert!(d["ttl"].is_u64(), "ttl must be a JSON number: {d}");
    assert!(d["ttl"].as_u64().unwrap() >= 60, "{d}");
    assert!(
        d.get("expire_time").is_some(),
        "expire_time must be present: {d}"
    );
    assert!(
        d["expire_time"].is_string() || d["expire_time"].is_null(),
        "{d}"
    );
}

/// ESO's `Close()`: revoke-self, after which the token is dead.
async fn close(h: &Http) {
    assert_eq!(h.put("auth/token/revoke-self", json!({})).await.status, 204);
    assert_eq!(h.get("auth/token/lookup-self").await.status, 403);
}

async fn login(c: &Cluster, path: &str, body: Value) -> Http {
    let r = c.server.http(None).put(path, body).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    let token = r.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    c.server.http(Some(&token))
}

/// ESO's store login from the SecretStore's `auth.kubernetes`.
async fn eso_login(c: &Cluster, auth: &Value) -> Http {
    let k = &auth["kubernetes"];
    let audiences: Vec<&str> = k["serviceAccountRef"]["audiences"]
        .as_array()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    let jwt = c.pod_token(s(&k["serviceAccountRef"]["name"]), &audiences);
    login(
        c,
        &format!("auth/{}/login", s(&k["mountPath"])),
        json!({"jwt": jwt, "role": s(&k["role"])}),
    )
    .await
}

/// GetSecret for one `remoteRef` (KV v2): the value ESO puts in the Secret.
async fn get_secret(h: &Http, mount: &str, remote: &Value) -> String {
    if remote["metadataPolicy"] == "Fetch" {
        let r = h
            .get(&format!("{mount}/metadata/{}", s(&remote["key"])))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let m = &r.json()["data"];
        let mut out: BTreeMap<String, String> = BTreeMap::new();
        for k in ["created_time", "current_version", "delete_version_after"] {
            out.insert(k.into(), m[k].to_string().trim_matches('"').to_owned());
        }
        for (k, v) in m["custom_metadata"].as_object().unwrap() {
            out.insert(k.clone(), s(v).to_owned());
        }
        return serde_json::to_string(&out).unwrap();
    }
    let mut path = format!("{mount}/data/{}", s(&remote["key"]));
    if let Some(v) = remote["version"].as_str() {
        path.push_str(&format!("?version={v}"));
    }
    let r = h.get(&path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    let data = r.json()["data"]["data"].clone();
    match remote["property"].as_str() {
        Some(p) => s(&data[p]).to_owned(),
        None => data.to_string(),
    }
}

/// `dataFrom.find`'s walk: LIST from `<mount>/metadata/<path>/`, recursing
/// into every folder.
async fn walk(h: &Http, mount: &str, path: &str) -> Vec<String> {
    let mut found = vec![];
    let mut dirs = vec![format!("{path}/")];
    while let Some(dir) = dirs.pop() {
        let r = h.list(&format!("{mount}/metadata/{dir}")).await;
        assert_eq!(r.status, 200, "{dir}: {}", r.text);
        for k in r.json()["data"]["keys"].as_array().unwrap() {
            let k = format!("{dir}{}", s(k));
            if k.ends_with('/') {
                dirs.push(k);
            } else {
                found.push(k);
            }
        }
    }
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_secrets_operator_replayed_from_the_docs_manifests() {
    let p = page();
    let c = cluster(&p).await;
    let store = &p.kind("SecretStore")["spec"]["provider"]["vault"];
    assert_eq!(store["version"], "v2");
    let mount = s(&store["path"]);

    // One reconcile of the ExternalSecret.
    let es = &p.kind("ExternalSecret")["spec"];
    assert_eq!(
        es["secretStoreRef"]["name"],
        p.kind("SecretStore")["metadata"]["name"]
    );
    let h = eso_login(&c, &store["auth"]).await;
    check_token(&h).await;
    let mut secret = BTreeMap::new();
    for d in es["data"].as_array().unwrap() {
        secret.insert(
            s(&d["secretKey"]).to_owned(),
            get_secret(&h, mount, &d["remoteRef"]).await,
        );
    }
    assert_eq!(secret["password"], "second");
    assert_eq!(secret["first-password"], "first");
    let meta: Value = serde_json::from_str(&secret["db-meta"]).unwrap();
    assert_eq!(meta["team"], "payments");
    assert_eq!(meta["current_version"], "2");

    for from in es["dataFrom"].as_array().unwrap() {
        let find = &from["find"];
        let keys = walk(&h, mount, s(&find["path"])).await;
        assert_eq!(
            keys,
            [
                "app/api",
                "app/db",
                "app/nested/deep",
                "app/nested/deeper/leaf"
            ]
        );
        let chosen: Vec<String> = if let Some(re) = find["name"]["regexp"].as_str() {
            // ESO matches the whole relative path with Go's regexp; these
            // patterns mean the same in a literal comparison table.
            assert_eq!(re, "^app/(db|api)$");
            keys.iter()
                .filter(|k| *k == "app/db" || *k == "app/api")
                .cloned()
                .collect()
        } else {
            // find.tags: one metadata read per key (ESO today)...
            let tags = find["tags"].as_object().unwrap();
            let mut hit = vec![];
            for k in &keys {
                let m = h.get(&format!("{mount}/metadata/{k}")).await.json();
                let custom = &m["data"]["custom_metadata"];
                if tags.iter().all(|(t, v)| custom[t] == *v) {
                    hit.push(k.clone());
                }
            }
            // ...or one call: detailed-metadata with every key's custom_metadata.
            let r = h
                .send(
                    "SCAN",
                    &format!("{mount}/detailed-metadata/{}/", s(&find["path"])),
                    None,
                    &[],
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            let info = r.json()["data"]["key_info"].clone();
            let one_call: Vec<String> = info
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, m)| tags.iter().all(|(t, v)| m["custom_metadata"][t] == *v))
                .map(|(k, _)| format!("{}/{k}", s(&find["path"])))
                .collect();
            assert_eq!(
                one_call, hit,
                "the single call finds what the per-key reads find"
            );
            hit
        };
        for k in &chosen {
            let r = h.get(&format!("{mount}/data/{k}")).await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
        if find.get("tags").is_some() {
            assert_eq!(chosen, ["app/db", "app/nested/deeper/leaf"]);
        } else {
            assert_eq!(chosen, ["app/api", "app/db"]);
        }
    }
    // A soft-deleted version: 404 with the envelope, which ESO treats as "no secret".
    assert_eq!(
        c.root
            .delete(&format!("{mount}/data/other/thing"))
            .await
            .status,
        204
    );
    let gone = c.root.get(&format!("{mount}/data/other/thing")).await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.json()["data"]["data"], Value::Null);
    close(&h).await;

    // PushSecret: data first read, then metadata, then the writes in ESO's order.
    let push = &p.kind("PushSecret")["spec"];
    let remote = &push["data"][0]["match"]["remoteRef"];
    let key = s(&remote["remoteKey"]);
    let property = s(&remote["property"]);
    let h = eso_login(&c, &store["auth"]).await;
    assert_eq!(h.get(&format!("{mount}/data/{key}")).await.status, 404);
    // ESO's two writes: the metadata that marks the key as its own, then
    // the value under check-and-set.
    let push_value = |value: &'static str, cas: u64| {
        let h = h.clone();
        let (meta_path, data_path) = (
            format!("{mount}/metadata/{key}"),
            format!("{mount}/data/{key}"),
        );
        let body = json!({"data": {property: value}, "options": {"cas": cas}});
        async move {
            let managed = json!({"custom_metadata": {"managed-by": "external-secrets"}});
            assert_eq!(h.put(&meta_path, managed).await.status, 204);
            h.put(&data_path, body).await
        }
    };
    let r = push_value("v1", 0).await;
    assert_eq!(
        r.status, 200,
        "cas=0 works while only metadata exists: {}",
        r.text
    );
    // The next push: managed-by checked, current_version used for CAS.
    let m = h.get(&format!("{mount}/metadata/{key}")).await.json();
    assert_eq!(
        m["data"]["custom_metadata"]["managed-by"],
        "external-secrets"
    );
    let cas = m["data"]["current_version"].as_u64().unwrap();
    let r = push_value("v2", cas).await;
    assert_eq!(
        (r.status, r.json()["data"]["version"].as_u64()),
        (200, Some(2)),
        "{}",
        r.text
    );
    let stale = push_value("v3", cas).await;
    assert_eq!(stale.status, 400, "a stale cas is refused: {}", stale.text);
    // DeleteSecret: the data, then the metadata.
    assert_eq!(h.delete(&format!("{mount}/data/{key}")).await.status, 204);
    assert_eq!(
        h.delete(&format!("{mount}/metadata/{key}")).await.status,
        204
    );
    assert_eq!(
        c.root.get(&format!("{mount}/metadata/{key}")).await.status,
        404
    );
    close(&h).await;

    // The VaultDynamicSecret generator: a GET of its path (resultType Data),
    // and auth/token/create (resultType Auth). Its tokens are never revoked.
    let generator = &p.kind("VaultDynamicSecret")["spec"];
    let h = eso_login(&c, &generator["provider"]["auth"]).await;
    let t = h
        .put(
            "auth/token/create",
            json!({"ttl": "5m", "policies": ["default"]}),
        )
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert!(t.json()["auth"]["client_token"].is_string());
    if c.db {
        assert_eq!(generator["method"], "GET");
        let r = h.get(s(&generator["path"])).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let b = r.json();
        assert!(
            b["lease_id"]
                .as_str()
                .unwrap()
                .starts_with("database/creds/app/")
        );
        assert_eq!(b["lease_duration"], 3600);
        let (user, pass) = (s(&b["data"]["username"]), s(&b["data"]["password"]));
        let dsn = format!("host=127.0.0.1 port=5432 dbname=postgres user={user} password={pass}");
        let (_client, _conn) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
            .await
            .expect("the generated credential logs in");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_eso_login_flavour_is_checked_and_revoked() {
    let p = page();
    let c = cluster(&p).await;
    let root = &c.root;
    // AppRole, as the ClusterSecretStore names it.
    let approle = &p.kind("ClusterSecretStore")["spec"]["provider"]["vault"]["auth"]["appRole"];
    let path = s(&approle["path"]);
    common::enable(root, &format!("sys/auth/{path}"), "approle").await;
    assert_eq!(
        root.post(
            &format!("auth/{path}/role/eso"),
            json!({"token_policies": "eso", "token_ttl": "10m"})
        )
        .await
        .status,
        204
    );
    let role_id = root
        .get(&format!("auth/{path}/role/eso/role-id"))
        .await
        .json()["data"]["role_id"]
        .clone();
    let secret_id = root
        .post(&format!("auth/{path}/role/eso/secret-id"), json!({}))
        .await
        .json()["data"]["secret_id"]
        .clone();
    // userpass and jwt, with ESO's default mount paths.
    common::enable(root, "sys/auth/userpass", "userpass").await;
    root.post(
        "auth/userpass/users/eso",
        json!({"password": "eso-pass-1", "token_policies": "eso"}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = common::keypair(
        dir.path(),
        "k",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
    common::enable(root, "sys/auth/jwt", "jwt").await;
    let r = root
        .post(
            "auth/jwt/config",
            json!({"jwt_validation_pubkeys": [public]}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    root.post(
        "auth/jwt/role/eso",
        json!({"role_type": "jwt", "user_claim": "sub", "bound_audiences": "vault", "token_policies": "eso"}),
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &json!({"sub": "system:serviceaccount:apps:eso-reader", "aud": ["vault"], "exp": now + 600, "iat": now}),
        &jsonwebtoken::EncodingKey::from_ec_pem(&private).unwrap(),
    )
    .unwrap();

    let store = &p.kind("SecretStore")["spec"]["provider"]["vault"];
    let flavours: Vec<(&str, Http)> = vec![
        (
            "appRole",
            login(
                &c,
                &format!("auth/{path}/login"),
                json!({"role_id": role_id, "secret_id": secret_id}),
            )
            .await,
        ),
        (
            "userPass",
            login(
                &c,
                "auth/userpass/login/eso",
                json!({"password": "eso-pass-1"}),
            )
            .await,
        ),
        (
            "jwt",
            login(&c, "auth/jwt/login", json!({"role": "eso", "jwt": jwt})).await,
        ),
        ("kubernetes", eso_login(&c, &store["auth"]).await),
    ];
    for (name, h) in flavours {
        check_token(&h).await;
        let r = h.get("secret/data/app/db").await;
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        close(&h).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csi_provider_replayed_from_the_docs_manifest() {
    let p = page();
    let c = cluster(&p).await;
    let spc = &p.kind("SecretProviderClass")["spec"];
    assert_eq!(spc["provider"], "vault");
    let params = &spc["parameters"];
    let objects: Vec<Value> = serde_norway::from_str(s(&params["objects"])).unwrap();
    let mount = s(&params["vaultAuthMountPath"]);
    let role = s(&params["roleName"]);
    let audience = s(&params["audience"]);
    // The pod's token for the audience, from csi.storage.k8s.io/serviceAccount.tokens.
    let pod_login = |c: &Cluster| {
        let jwt = c.pod_token("app", &[audience]);
        (
            format!("auth/{mount}/login"),
            json!({"jwt": jwt, "role": role}),
        )
    };
    let (path, body) = pod_login(&c);
    let r = c.server.http(None).post(&path, body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut token = r.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // One request per object; identical (path, method) pairs once.
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let mut fetched = BTreeSet::new();
    for (round, o) in objects.iter().enumerate() {
        let secret_path = s(&o["secretPath"]);
        if secret_path.starts_with("database/") && !c.db {
            continue;
        }
        let method = o["method"].as_str().unwrap_or("GET");
        assert!(fetched.insert((secret_path, method)));
        let body = o.get("secretArgs").map(|a| a.to_string().into_bytes());
        if round == 1 {
            // The cached token died (revoked, expired): 403, one new login, retry.
            let r = c
                .root
                .put("auth/token/revoke", json!({"token": token}))
                .await;
            assert_eq!(r.status, 204);
        }
        let mut r = c
            .server
            .http(Some(&token))
            .send(method, secret_path, body.clone(), &[])
            .await;
        if r.status == 403 {
            let (path, login_body) = pod_login(&c);
            let l = c.server.http(None).post(&path, login_body).await;
            assert_eq!(l.status, 200, "{}", l.text);
            token = l.json()["auth"]["client_token"]
                .as_str()
                .unwrap()
                .to_owned();
            r = c
                .server
                .http(Some(&token))
                .send(method, secret_path, body, &[])
                .await;
        }
        assert_eq!(r.status, 200, "{secret_path}: {}", r.text);
        let reply = r.json();
        // keyFromData: data.data when it is a map (KV v2), else data.
        let data = match &reply["data"]["data"] {
            Value::Object(_) => &reply["data"]["data"],
            _ => &reply["data"],
        };
        let value = match o["secretKey"].as_str() {
            Some(k) => match &data[k] {
                Value::String(v) => v.clone(),
                other => other.to_string(),
            },
            None => reply.to_string(),
        };
        files.insert(s(&o["objectName"]).to_owned(), value);
    }
    assert_eq!(files["db-password"], "second");
    assert_eq!(files["first-db-password"], "first");
    assert_eq!(files["legacy-token"], "legacy-t");
    assert!(files["sealed-note"].starts_with("vault:v1:"), "{files:?}");
    if c.db {
        assert!(files["db-username"].starts_with("v-"), "{files:?}");
    }
    // The policy the page gives the CSI role allows nothing else.
    let h = c.server.http(Some(&token));
    assert_eq!(h.get("secret/data/other/thing").await.status, 403);
    assert_eq!(h.get("secret/metadata/app/db").await.status, 403);
}
