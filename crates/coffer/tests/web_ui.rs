//! The web UI at /ui/: served from the binary with its security headers,
//! small enough, and driven end to end in headless Chromium (Playwright's
//! playwright-core from npm, Debian's chromium) against a real server.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Http, Server};
use serde_json::{Value, json};

fn ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

async fn get(url: &str, gzip: bool) -> reqwest::Response {
    let mut req = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(url);
    if gzip {
        req = req.header("accept-encoding", "gzip");
    }
    req.send().await.unwrap()
}

/// Files the first load of /ui/ fetches: the page, its stylesheet, and every
/// ES module (all are imported before the first paint).
fn first_load_files() -> Vec<String> {
    let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../coffer-ui/web");
    let mut out = vec!["index.html".to_owned(), "css/app.css".to_owned()];
    let mut stack = vec![web.join("js")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "js") {
                out.push(p.strip_prefix(&web).unwrap().to_str().unwrap().to_owned());
            }
        }
    }
    out
}

#[tokio::test]
async fn ui_is_served_with_strict_headers_and_under_300_kb_compressed() {
    let s = Server::dev();
    let r = get(&format!("{}/", s.addr), false).await;
    assert_eq!(r.status(), 307);
    assert_eq!(r.headers()["location"], "/ui/");
    let mut total = 0usize;
    for f in first_load_files() {
        let r = get(&format!("{}/ui/{f}", s.addr), true).await;
        assert_eq!(r.status(), 200, "{f}");
        let h = r.headers().clone();
        let csp = h["content-security-policy"].to_str().unwrap();
        for want in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(want), "{f}: {csp}");
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(h["x-frame-options"], "DENY", "{f}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{f}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{f}");
        assert_eq!(h["content-encoding"], "gzip", "{f}");
        total += r.bytes().await.unwrap().len();
    }
    eprintln!("first load of /ui/: {total} bytes compressed");
    assert!(total < 300 * 1024, "first load is {total} bytes compressed");
    // Any route of the page gets the page; a missing file is a 404.
    let r = get(&format!("{}/ui/open", s.addr), false).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<div id=\"app\">"));
    assert_eq!(
        get(&format!("{}/ui/js/none.js", s.addr), false)
            .await
            .status(),
        404
    );
    // The API is not served as the UI, and the UI does not answer writes.
    let r = reqwest::Client::new()
        .post(format!("{}/ui/", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn a_server_without_ui_true_serves_no_ui() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.hcl");
    std::fs::write(
        &cfg,
        "storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \"127.0.0.1:0\"\n  tls_disable = true\n}\n",
    )
    .unwrap();
    let s = Server::with_config(&cfg, &[]);
    assert_eq!(get(&format!("{}/ui/", s.addr), false).await.status(), 404);
}

/// playwright-core installed (from the committed lock file) next to a copy
/// of the test script; `None` outside CI when Node.js or npm is missing.
fn e2e_dir() -> Option<PathBuf> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-e2e");
    std::fs::create_dir_all(&dir).unwrap();
    let lock = std::fs::read(src.join("package-lock.json")).unwrap();
    let installed = std::fs::read(dir.join("package-lock.json")).ok();
    for f in ["package.json", "package-lock.json", "e2e.mjs"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    if installed.as_deref() != Some(&lock[..]) || !dir.join("node_modules/playwright-core").exists()
    {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--quiet"])
            .current_dir(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(!ci(), "npm ci of playwright-core must work in CI");
            eprintln!("skipping: npm ci failed; CI=true makes this a failure");
            return None;
        }
    }
    Some(dir)
}

fn chromium() -> Option<String> {
    let c = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if Path::new(&c).exists() {
        return Some(c);
    }
    assert!(
        !ci(),
        "Chromium ({c}) is required in CI: apt-get install chromium"
    );
    eprintln!("skipping: no Chromium at {c}; CI=true makes this a failure");
    None
}

async fn ok(r: common::Reply, what: &str) -> Value {
    assert!(r.status < 300, "{what}: {} {}", r.status, r.text);
    if r.text.is_empty() {
        Value::Null
    } else {
        r.json()
    }
}

/// A JWT for the `ui` role, signed by an ed25519 key `auth/jwt` trusts.
async fn jwt_for_ui(h: &Http, dir: &Path) -> String {
    let (private, public) = common::keypair(dir, "idp", &["-algorithm", "ed25519"]);
    ok(
        h.post(
            "auth/jwt/config",
            json!({"jwt_validation_pubkeys": [public], "bound_issuer": "https://idp.test"}),
        )
        .await,
        "jwt config",
    )
    .await;
    ok(
        h.post(
            "auth/jwt/role/ui",
            json!({"role_type": "jwt", "bound_audiences": "coffer-ui", "user_claim": "email",
                   "token_policies": "app-reader", "token_ttl": "1h"}),
        )
        .await,
        "jwt role",
    )
    .await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({"iss": "https://idp.test", "aud": "coffer-ui", "sub": "u-17", "email": "bob@example.com",
                        "iat": now, "exp": now + 3600});
    let key = jsonwebtoken::EncodingKey::from_ed_pem(&private).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA),
        &claims,
        &key,
    )
    .unwrap()
}

/// Policies, users, engines and a failing static role for the browser test.
async fn prepare(h: &Http, tag: &str) -> (String, String) {
    ok(
        h.post("sys/auth/userpass", json!({"type": "userpass"}))
            .await,
        "userpass",
    )
    .await;
    ok(
        h.put(
            "sys/policies/acl/app-reader",
            json!({"policy": "path \"secret/data/app/*\" {\n  capabilities = [\"read\"]\n}\n\npath \"secret/metadata/app/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n"}),
        )
        .await,
        "policy",
    )
    .await;
    ok(
        h.post(
            "auth/userpass/users/alice",
            json!({"password": "alice-browser-pw-7f3a", "token_policies": "app-reader"}),
        )
        .await,
        "user",
    )
    .await;
    ok(
        h.post(
            "secret/data/ops/root",
            json!({"data": {"password": "ops-only"}}),
        )
        .await,
        "ops secret",
    )
    .await;
    ok(
        h.post("sys/mounts/transit", json!({"type": "transit"}))
            .await,
        "transit",
    )
    .await;
    ok(h.post("transit/keys/ui-key", json!({})).await, "key").await;

    ok(
        h.post("sys/mounts/database", json!({"type": "database"}))
            .await,
        "database",
    )
    .await;
    ok(
        h.post(
            "database/config/uipg",
            json!({"plugin_name": "postgresql-database-plugin", "allowed_roles": "*",
                   "connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
                   "username": "postgres", "password": "unused-with-trust"}),
        )
        .await,
        "connection",
    )
    .await;
    // A static role whose database user then disappears: its rotation fails.
    let user = format!("coffer_ui_static_{tag}");
    let (pg, conn) = tokio_postgres::connect(&common::pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    pg.batch_execute(&format!(
        "DROP ROLE IF EXISTS {user}; CREATE ROLE {user} LOGIN PASSWORD 'x'"
    ))
    .await
    .unwrap();
    ok(
        h.post(
            "database/static-roles/ui-static",
            json!({"db_name": "uipg", "username": user, "rotation_period": "1h"}),
        )
        .await,
        "static role",
    )
    .await;
    pg.batch_execute(&format!("DROP ROLE {user}"))
        .await
        .unwrap();
    let r = h.post("database/rotate-role/ui-static", json!({})).await;
    assert_eq!(r.status, 500, "the rotation should fail: {}", r.text);
    ok(
        h.post(
            "database/roles/ui-dyn",
            json!({"db_name": "uipg", "default_ttl": "1h", "max_ttl": "24h",
                   "creation_statements": "CREATE ROLE \"{{name}}\" LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"}),
        )
        .await,
        "dynamic role",
    )
    .await;
    for _ in 0..2 {
        ok(h.get("database/creds/ui-dyn").await, "creds").await;
    }
    // Logins from an identity provider: a JWT role reading app secrets.
    ok(h.post("sys/auth/jwt", json!({"type": "jwt"})).await, "jwt").await;
    (
        "database/static-roles/ui-static".into(),
        "database/creds/ui-dyn/".into(),
    )
}

#[tokio::test]
async fn the_ui_end_to_end_in_chromium() {
    if !common::postgres_available().await {
        return;
    }
    let Some(chrome) = chromium() else { return };
    let Some(dir) = e2e_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("coffer.hcl");
    let audit = tmp.path().join("audit.log");
    let log_path = tmp.path().join("server.log");
    std::fs::write(
        &cfg,
        format!(
            "storage \"inmem\" {{}}\nui = true\nlog_requests_level = \"info\"\naudit \"file\" \"file\" {{\n  file_path = {:?}\n}}\n",
            audit.to_str().unwrap()
        ),
    )
    .unwrap();
    let root = format!("root-{}", uuid::Uuid::new_v4().simple());
    let mut cmd = Command::new(common::server_binary());
    cmd.args([
        "server",
        "--dev",
        "--dev-listen-address",
        "127.0.0.1:0",
        "--dev-root-token-id",
        &root,
        "--config",
    ])
    .arg(&cfg);
    let server = Server::spawn_logging(cmd, Some(std::fs::File::create(&log_path).unwrap()));
    let h = Http::new(&server.addr, Some(&root));
    let tag = format!("{}", std::process::id());
    let (failing, leases) = prepare(&h, &tag).await;
    let jwt = jwt_for_ui(&h, tmp.path()).await;

    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-e2e-out");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let run = Command::new("node")
        .arg(dir.join("e2e.mjs"))
        .current_dir(&dir)
        .env("COFFER_ADDR", &server.addr)
        .env("ROOT_TOKEN", &root)
        .env("ALICE_PASSWORD", "alice-browser-pw-7f3a")
        .env("FAILING_ROLE", &failing)
        .env("LEASE_PREFIX", &leases)
        .env("TRANSIT_KEY", "ui-key")
        .env("JWT", &jwt)
        .env("OUT", &out)
        .env("CHROMIUM", &chrome)
        .output()
        .expect("node runs");
    let _ = h
        .put("sys/leases/revoke-prefix/database/creds/ui-dyn", json!({}))
        .await;
    assert!(
        run.status.success(),
        "the browser test failed (screenshots in {}):\n{}\n{}",
        out.display(),
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&run.stdout));

    // The server's access log saw every request, and no secret in any of them.
    drop(server);
    let log = std::fs::read_to_string(&log_path).unwrap();
    let requests = log
        .lines()
        .filter(|l| l.contains("completed request"))
        .count();
    assert!(requests > 100, "only {requests} requests logged:\n{log}");
    assert!(
        log.contains("/ui/open"),
        "the share page's loads are logged"
    );
    let secrets: Vec<String> =
        serde_json::from_slice(&std::fs::read(out.join("secrets.json")).unwrap()).unwrap();
    assert!(secrets.len() >= 7, "{secrets:?}");
    for s in &secrets {
        assert!(
            !log.contains(s.as_str()),
            "the server log holds a secret the browser handled"
        );
    }
    let audit = std::fs::read_to_string(&audit).unwrap();
    for s in &secrets {
        assert!(
            !audit.contains(s.as_str()),
            "the audit log holds a secret in clear"
        );
    }
}
