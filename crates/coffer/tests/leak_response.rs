//! Leak response end to end: a credential coffer handed out is committed to
//! a git repository, `coffer scan git --staged --check-store --respond
//! revoke` finds it live in coffer and ends it (the database refuses the
//! login), each step audited with the finding's fingerprint; and what
//! `sys/leak/check` must never do (report a value coffer does not hold,
//! serve a token without the capability, answer guessing at full speed).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{Http, PrivatePostgres, Server, Setup, configure_pg, pg_login, ready};
use serde_json::{Value, json};

/// Runs `coffer` in `dir` against `s` with `token`.
fn coffer(dir: &Path, s: &Server, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(args)
        .current_dir(dir)
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", token)
        .env_remove("COFFER_ADDR")
        .env_remove("COFFER_TOKEN")
        .output()
        .expect("run coffer")
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=T", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// A repository with `files` staged, as a developer about to commit them.
fn staged_repo(files: &[(&str, String)]) -> tempfile::TempDir {
    let repo = tempfile::tempdir().expect("tempdir");
    git(repo.path(), &["init", "-q"]);
    for (name, text) in files {
        std::fs::write(repo.path().join(name), text).expect("write");
        git(repo.path(), &["add", name]);
    }
    repo
}

/// `coffer scan git --staged --check-store --respond <mode> -f json`:
/// (exit code, report, stderr).
fn respond(repo: &Path, s: &Server, token: &str, mode: &str) -> (i32, Vec<Value>, String) {
    let out = coffer(
        repo,
        s,
        token,
        &[
            "scan",
            "git",
            "--staged",
            "--check-store",
            "--respond",
            mode,
            "-f",
            "json",
        ],
    );
    let report: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("report is not JSON ({e}): {out:?}"));
    (
        out.status.code().unwrap_or(-1),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn check(h: &Http, candidates: &[&str]) -> Value {
    let r = h
        .post("sys/leak/check", json!({ "candidates": candidates }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["data"].clone()
}

fn live(answer: &Value, i: usize) -> bool {
    answer["results"][i]["live"] == true
}

/// Audit entries (requests) carrying the finding header.
fn responses_in(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .expect("audit log")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| {
            e["type"] == "request" && !e["request"]["headers"]["x-coffer-leak-finding"].is_null()
        })
        .collect()
}

fn audited_server() -> (Setup, std::path::PathBuf) {
    let setup =
        Setup::embedded_with("audit \"file\" \"main\" {\n  file_path = \"{DIR}/audit.log\"\n}\n");
    let log = setup.dir.path().join("audit.log");
    (setup, log)
}

#[tokio::test]
async fn a_leaked_dynamic_credential_is_revoked_and_the_database_refuses_it() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let (setup, log) = audited_server();
    let (s, keys, root) = ready(&setup).await;
    let h = s.http(Some(&root));
    configure_pg(&h, &pg, "1h", "2h").await;
    h.post(
        "sys/mounts/secret",
        json!({"type": "kv", "options": {"version": "2"}}),
    )
    .await;
    h.post("secret/data/unrelated", json!({"data": {"a": "b"}}))
        .await;
    h.post(
        "sys/policies/acl/creds-reader",
        json!({"policy": "path \"database/creds/app\" { capabilities = [\"read\"] }\npath \"secret/data/*\" { capabilities = [\"read\"] }"}),
    )
    .await;
    let app_token = h
        .post(
            "auth/token/create",
            json!({"policies": ["creds-reader"], "display_name": "reader"}),
        )
        .await
        .json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let app = s.http(Some(&app_token));
    assert_eq!(app.get("secret/data/unrelated").await.status, 200);
    let creds = app.get("database/creds/app").await.json();
    let (lease, user, pass) = (
        creds["lease_id"].as_str().unwrap().to_owned(),
        creds["data"]["username"].as_str().unwrap().to_owned(),
        creds["data"]["password"].as_str().unwrap().to_owned(),
    );
    let other = h.get("database/creds/app").await.json();
    pg_login(&pg, &user, &pass)
        .await
        .expect("the credential works");
    // A restart in between: the index is rebuilt from the stored leases.
    s.stop();
    let s = Server::with_config(&setup.config, &[]);
    common::unseal(&s.http(None), &keys).await;
    let h = s.http(Some(&root));
    for _ in 0..100 {
        if check(&h, &[&pass]).await["complete"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let repo = staged_repo(&[(
        "app.env",
        format!("DB_HOST=127.0.0.1\nDB_USER={user}\nDB_PASSWORD={pass}\n"),
    )]);
    // Report only: marked live, nothing ended.
    let (code, report, err) = respond(repo.path(), &s, &root, "report");
    assert_eq!(code, 1, "{err}");
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!(report[0]["LiveInCoffer"], true, "{report:?}");
    assert!(!err.contains(&pass) && !report[0].to_string().contains(&pass));
    pg_login(&pg, &user, &pass)
        .await
        .expect("report changes nothing");

    let (code, _, err) = respond(repo.path(), &s, &root, "revoke");
    assert_eq!(
        code, 1,
        "findings exit 1; a failed response would be 2: {err}"
    );
    assert!(err.contains(&format!("lease {lease}: revoked")), "{err}");
    let refused = pg_login(&pg, &user, &pass).await.expect_err("revoked");
    assert!(
        refused.contains("does not exist") || refused.contains("authentication"),
        "{refused}"
    );
    assert_eq!(
        h.post("sys/leases/lookup", json!({"lease_id": lease}))
            .await
            .status,
        400,
        "the lease is gone"
    );
    // Only that credential: the other one still logs in.
    let (u2, p2) = (
        other["data"]["username"].as_str().unwrap(),
        other["data"]["password"].as_str().unwrap(),
    );
    pg_login(&pg, u2, p2)
        .await
        .expect("an unrelated credential");

    // Now nothing about it is live; the response is in the audit log under
    // the finding's fingerprint, in clear. The checks are audited too, the
    // candidates as HMACs: the password is nowhere in the log.
    assert!(!live(&check(&h, &[&pass]).await, 0));
    let text = std::fs::read_to_string(&log).expect("audit log");
    assert!(text.contains("\"path\":\"sys/leak/check\""));
    assert!(
        !text.contains(&pass),
        "a candidate in clear in the audit log"
    );
    let steps = responses_in(&log);
    let step = steps
        .iter()
        .find(|e| e["request"]["path"] == format!("sys/leases/revoke/{lease}"))
        .unwrap_or_else(|| panic!("no audited revocation in {steps:?}"));
    assert_eq!(
        step["request"]["headers"]["x-coffer-leak-finding"][0],
        "app.env:generic-secret-assignment:3"
    );

    // The incident report, from the finding: the credential's issuing read
    // (by the app's token, from where), what that token did, who could
    // read it, and the response.
    let out = coffer(
        repo.path(),
        &s,
        &root,
        &[
            "incident",
            "report",
            "--finding",
            "app.env:generic-secret-assignment:3",
            "--log",
            log.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let r: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(r["leases"][0], lease.as_str(), "{r:#}");
    let reads = r["reads"].as_array().unwrap();
    assert!(
        reads.iter().any(|e| e["path"] == "database/creds/app"
            && e["who"] == "token-reader"
            && e["remote_address"] == "127.0.0.1"),
        "{r:#}"
    );
    let ids = r["identities"].as_array().unwrap();
    assert!(
        ids.iter().any(|i| i["display_name"] == "token-reader"
            && i["activity"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["path"] == "secret/data/unrelated")),
        "{r:#}"
    );
    let could = &r["could_read"];
    assert!(
        could["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "creds-reader"),
        "{r:#}"
    );
    assert!(
        could["holders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "token"),
        "{r:#}"
    );
    assert_eq!(
        r["response"][0]["path"],
        format!("sys/leases/revoke/{lease}")
    );
    let md = coffer(
        repo.path(),
        &s,
        &root,
        &[
            "incident",
            "report",
            "--lease",
            &lease,
            "--log",
            log.to_str().unwrap(),
        ],
    );
    let md = String::from_utf8_lossy(&md.stdout);
    assert!(
        md.contains("## Reads (1)") && md.contains("token-reader"),
        "{md}"
    );
    assert!(!md.contains(&pass), "never a value");
}

#[tokio::test]
async fn a_leaked_token_is_revoked_with_its_children() {
    let (setup, _log) = audited_server();
    let (s, _keys, root) = ready(&setup).await;
    let h = s.http(Some(&root));
    h.post(
        "sys/policies/acl/creator",
        json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }"}),
    )
    .await;
    let parent = h
        .post("auth/token/create", json!({"policies": ["creator"]}))
        .await
        .json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let child = s
        .http(Some(&parent))
        .post("auth/token/create", json!({}))
        .await
        .json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bystander = h.post("auth/token/create", json!({})).await.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // An AppRole secret ID, next to it.
    h.post("sys/auth/approle", json!({"type": "approle"})).await;
    h.post(
        "auth/approle/role/ci",
        json!({"token_policies": ["default"]}),
    )
    .await;
    let role_id = h.get("auth/approle/role/ci/role-id").await.json()["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A custom one: the scanner's generic rule does not take UUIDs.
    let secret_id = "Qe7Rw2Ty9Ui4Op1As6Df3Gh8Jk5Lz0X".to_owned();
    let r = h
        .post(
            "auth/approle/role/ci/custom-secret-id",
            json!({"secret_id": secret_id}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let login = json!({"role_id": role_id, "secret_id": secret_id});
    assert_eq!(
        s.http(None)
            .post("auth/approle/login", login.clone())
            .await
            .status,
        200
    );
    let repo = staged_repo(&[(
        "deploy.sh",
        format!("export COFFER_TOKEN={parent}\nexport APPROLE_SECRET={secret_id}\n"),
    )]);
    let (code, report, err) = respond(repo.path(), &s, &root, "revoke");
    assert_eq!(code, 1, "{err}");
    assert!(
        report.iter().any(|f| f["RuleID"] == "coffer-token"),
        "{report:?}"
    );
    assert!(err.contains("revoked with its children"), "{err}");
    assert!(
        err.contains("AppRole secret ID of auth/approle/role/ci"),
        "{err}"
    );
    assert_eq!(
        s.http(None).post("auth/approle/login", login).await.status,
        400
    );
    for (t, alive) in [(&parent, false), (&child, false), (&bystander, true)] {
        let r = s.http(Some(t)).get("auth/token/lookup-self").await;
        assert_eq!(r.status == 200, alive, "{}", r.text);
    }
}

#[tokio::test]
async fn a_leaked_static_role_password_is_rotated_and_the_app_fetches_the_new_one() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let admin = pg.dsn("postgres", &pg.password);
    let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .batch_execute("CREATE ROLE billing LOGIN PASSWORD 'initial-pw'")
        .await
        .expect("role");
    let (setup, _log) = audited_server();
    let (s, _keys, root) = ready(&setup).await;
    let h = s.http(Some(&root));
    configure_pg(&h, &pg, "1h", "2h").await;
    let r = h
        .post("database/config/pg", json!({"allowed_roles": "*"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = h
        .post(
            "database/static-roles/billing",
            json!({"db_name": "pg", "username": "billing", "rotation_period": "24h"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let leaked = h.get("database/static-creds/billing").await.json()["data"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    pg_login(&pg, "billing", &leaked).await.expect("works");

    let repo = staged_repo(&[("config.yaml", format!("db:\n  password: \"{leaked}\"\n"))]);
    let (code, _, err) = respond(repo.path(), &s, &root, "rotate");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("static role database/static-roles/billing: rotated"),
        "{err}"
    );
    assert!(
        pg_login(&pg, "billing", &leaked).await.is_err(),
        "the old password fails"
    );
    let fresh = h.get("database/static-creds/billing").await.json()["data"]["password"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(fresh, leaked);
    pg_login(&pg, "billing", &fresh)
        .await
        .expect("the app's next fetch works");
}

#[tokio::test]
async fn a_leaked_kv_value_is_replaced_or_marked_compromised() {
    let (setup, log) = audited_server();
    let (s, _keys, root) = ready(&setup).await;
    let h = s.http(Some(&root));
    h.post(
        "sys/mounts/secret",
        json!({"type": "kv", "options": {"version": "2"}}),
    )
    .await;
    let r = h
        .post(
            "sys/policies/password/api-keys",
            json!({"policy": "length = 32\nrule \"charset\" {\n  charset = \"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\"\n}\n"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let key = "sk9Qv2Lx7Tn4Pw8Zr1Yb6Hc3Jd5Kf0Mg";
    h.post(
        "secret/data/payments",
        json!({"data": {"api_key": key, "region": "eu-west-1"}}),
    )
    .await;
    h.post(
        "secret/metadata/payments",
        json!({"custom_metadata": {"password_policy": "api-keys", "owner": "pay-team"}}),
    )
    .await;
    let unmanaged = "Zx81Qm4Rt7Vn2Kp5Ws9Yc3Hb6Jd0Lf1G";
    h.post("secret/data/legacy", json!({"data": {"token": unmanaged}}))
        .await;

    let repo = staged_repo(&[
        ("a.env", format!("PAYMENTS_API_KEY={key}\n")),
        ("b.env", format!("LEGACY_TOKEN={unmanaged}\n")),
    ]);
    let (code, report, err) = respond(repo.path(), &s, &root, "revoke");
    assert_eq!(
        code, 2,
        "a KV value nobody can replace fails the run: {err}"
    );
    assert_eq!(report.len(), 2, "{report:?}");
    assert!(
        report.iter().all(|f| f["LiveInCoffer"] == true),
        "{report:?}"
    );
    assert!(
        err.contains("KV secret secret/payments (field api_key, version 1): replaced by version 2"),
        "{err}"
    );
    assert!(err.contains("marked compromised"), "{err}");

    // Replaced: a new value of the policy's shape, the leaked version destroyed.
    let now = h.get("secret/data/payments").await.json();
    let fresh = now["data"]["data"]["api_key"].as_str().unwrap();
    assert_eq!(fresh.len(), 32);
    assert_ne!(fresh, key);
    assert_eq!(now["data"]["data"]["region"], "eu-west-1");
    let old = h.get("secret/data/payments?version=1").await;
    assert_eq!(old.status, 404);
    assert_eq!(old.json()["data"]["metadata"]["destroyed"], true);
    assert!(!live(&check(&h, &[key]).await, 0));
    assert!(live(&check(&h, &[fresh]).await, 0));

    // Not replaceable: marked, still live, left for a person.
    let meta = h.get("secret/metadata/legacy").await.json();
    let note = meta["data"]["custom_metadata"]["compromised"]
        .as_str()
        .unwrap();
    assert!(note.contains("field token of version 1 leaked"), "{note}");
    assert!(live(&check(&h, &[unmanaged]).await, 0));

    // Who read it, from the logs: this test's own reads (root, after the
    // response); the scanner's reads are response steps, not reads.
    let report = |extra: &[&str]| {
        let mut a = vec!["incident", "report", "--secret", "secret/payments"];
        a.extend(["--log", log.to_str().unwrap(), "--format", "json"]);
        a.extend(extra);
        let out = coffer(repo.path(), &s, &root, &a);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<Value>(&out.stdout).expect("json")
    };
    let r = report(&["--offline"]);
    let reads = r["reads"].as_array().unwrap().clone();
    assert!(!reads.is_empty(), "{r:#}");
    assert!(
        reads
            .iter()
            .all(|e| e["who"] == "root" && e["operation"] == "read" && e["finding"] == ""),
        "{r:#}"
    );
    let steps: Vec<&str> = r["response"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert!(steps.contains(&"secret/destroy/payments"), "{r:#}");
    assert_eq!(r["could_read"]["skipped"], "--offline");
    h.get("secret/data/payments").await;
    let r = report(&[]);
    assert_eq!(
        r["reads"].as_array().unwrap().len(),
        reads.len() + 1,
        "{r:#}"
    );
    assert_eq!(r["could_read"]["policies"], json!(["root"]), "{r:#}");

    // Every step carries the finding it answered.
    let steps = responses_in(&log);
    let paths: Vec<&str> = steps
        .iter()
        .map(|e| e["request"]["path"].as_str().unwrap())
        .collect();
    for p in [
        "secret/data/payments",
        "secret/destroy/payments",
        "secret/metadata/legacy",
    ] {
        assert!(
            paths.contains(&p),
            "{p} not audited as a response: {paths:?}"
        );
    }
}

#[tokio::test]
async fn the_check_reports_only_what_coffer_holds_now() {
    let s = Server::dev();
    let h = s.http(Some("root"));
    h.post("secret/data/app", json!({"data": {"password": "first-Secret-value-1", "nested": {"list": ["second-secret-value-2"]}, "port": "5432"}}))
        .await;
    let answer = check(
        &h,
        &[
            "first-Secret-value-1",
            "second-secret-value-2",
            "5432",
            "first-Secret-value-2",
            "never-stored-anywhere-9",
        ],
    )
    .await;
    assert!(live(&answer, 0) && live(&answer, 1));
    let m = &answer["results"][1]["matches"][0];
    assert_eq!(
        (m["type"].as_str(), m["mount"].as_str(), m["name"].as_str()),
        (Some("kv"), Some("secret/"), Some("app"))
    );
    assert_eq!(m["field"], "nested.list[0]");
    assert_eq!(answer["results"][2]["checked"], false, "too short to check");
    assert!(!live(&answer, 3) && !live(&answer, 4));
    assert!(
        !answer.to_string().contains("first-Secret"),
        "values never come back"
    );

    // A new version replaces the old values; soft delete keeps them live
    // (it can be undone), destroy and metadata delete do not.
    h.post(
        "secret/data/app",
        json!({"data": {"password": "third-secret-value-3"}}),
    )
    .await;
    let a = check(&h, &["first-Secret-value-1", "third-secret-value-3"]).await;
    assert!(!live(&a, 0) && live(&a, 1));
    h.delete("secret/data/app").await;
    let a = check(&h, &["third-secret-value-3"]).await;
    assert_eq!(a["results"][0]["matches"][0]["deleted"], true);
    h.post("secret/destroy/app", json!({"versions": [2]})).await;
    assert!(!live(&check(&h, &["third-secret-value-3"]).await, 0));

    // Hammer one path with concurrent writes: afterwards exactly the last
    // stored value is live, none of the others.
    let mut tasks = Vec::new();
    for i in 0..64 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let v = format!("concurrent-value-{i:03}");
            let r = h.post("secret/data/race", json!({"data": {"v": v}})).await;
            assert_eq!(r.status, 200, "{}", r.text);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stored = h.get("secret/data/race").await.json()["data"]["data"]["v"]
        .as_str()
        .unwrap()
        .to_owned();
    let all: Vec<String> = (0..64)
        .map(|i| format!("concurrent-value-{i:03}"))
        .collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let a = check(&h, &refs).await;
    for (i, v) in all.iter().enumerate() {
        assert_eq!(live(&a, i), *v == stored, "{v} (stored: {stored})");
    }
    // Exportable transit keys are live in every form export/ gives; keys
    // that cannot leave coffer are not indexed.
    h.post("sys/mounts/transit", json!({"type": "transit"}))
        .await;
    h.post(
        "transit/keys/out",
        json!({"exportable": true, "deletion_allowed": true}),
    )
    .await;
    h.post("transit/keys/kept", json!({})).await;
    let exported = h.get("transit/export/encryption-key/out/1").await.json()["data"]["keys"]["1"]
        .as_str()
        .unwrap()
        .to_owned();
    let a = check(&h, &[&exported]).await;
    let m = &a["results"][0]["matches"][0];
    assert_eq!(
        (m["type"].as_str(), m["name"].as_str()),
        (Some("transit-key"), Some("out")),
        "{a}"
    );
    assert_eq!(m["export_type"], "encryption-key");
    h.post("transit/keys/out/rotate", json!({})).await;
    assert!(
        live(&check(&h, &[&exported]).await, 0),
        "old versions still decrypt"
    );
    h.post("transit/keys/out/config", json!({"deletion_allowed": true}))
        .await;
    assert_eq!(h.delete("transit/keys/out").await.status, 204);
    assert!(!live(&check(&h, &[&exported]).await, 0));

    let status = h.get("sys/leak/status").await.json()["data"].clone();
    assert!(status["values"].as_u64().unwrap() >= 1, "{status}");
}

#[tokio::test]
async fn the_check_needs_its_capability_and_cannot_be_used_to_guess() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    root.post(
        "secret/data/app",
        json!({"data": {"password": "guess-me-if-you-can-1"}}),
    )
    .await;
    root.post(
        "sys/policies/acl/leak-check",
        json!({"policy": "path \"sys/leak/check\" { capabilities = [\"update\"] }"}),
    )
    .await;
    let token = |policies: Value| {
        let root = root.clone();
        async move {
            root.post("auth/token/create", json!({"policies": policies}))
                .await
                .json()["auth"]["client_token"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let ci = s.http(Some(&token(json!(["leak-check"])).await));
    let plain = s.http(Some(&token(json!(["default"])).await));
    // Without the capability: refused. With it: checks, but reads nothing.
    let r = plain
        .post(
            "sys/leak/check",
            json!({"candidates": ["guess-me-if-you-can-1"]}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(live(&check(&ci, &["guess-me-if-you-can-1"]).await, 0));
    assert_eq!(ci.get("secret/data/app").await.status, 403);

    // At most 1000 per call; 2000 per minute per token, then 429.
    let many: Vec<String> = (0..1001).map(|i| format!("guess-{i:08}")).collect();
    let r = ci.post("sys/leak/check", json!({"candidates": many})).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let batch: Vec<String> = (0..1000).map(|i| format!("guess-{i:08}")).collect();
    // One candidate was checked above: 999 + 1000 fill the minute.
    for n in [999, 1000] {
        let r = ci
            .post("sys/leak/check", json!({"candidates": batch[..n]}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = ci
        .post("sys/leak/check", json!({"candidates": batch}))
        .await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(r.text.contains("candidates per minute"), "{}", r.text);
    // Another token has its own allowance.
    let other = s.http(Some(&token(json!(["leak-check"])).await));
    assert!(live(&check(&other, &["guess-me-if-you-can-1"]).await, 0));
    // Malformed input is refused with a reason.
    for (body, msg) in [
        (json!({}), "missing candidates"),
        (json!({"candidates": [1]}), "candidates[0] is not a string"),
        (json!({"candidates": {"a": 1}}), "list of strings"),
        (
            json!({"candidates": ["x".repeat(16 * 1024 + 1)]}),
            "at most 16384",
        ),
    ] {
        let r = other.post("sys/leak/check", body).await;
        assert_eq!(r.status, 400);
        assert!(r.text.contains(msg), "{}", r.text);
    }
}

#[tokio::test]
async fn the_index_is_rebuilt_after_a_restart() {
    let setup = Setup::embedded();
    let (s, keys, root) = ready(&setup).await;
    let h = s.http(Some(&root));
    for (path, body) in [
        ("kv/app", json!({"password": "kv-one-value-before-restart"})),
        (
            "sys/mounts/secret",
            json!({"type": "kv", "options": {"version": "2"}}),
        ),
        (
            "secret/data/app",
            json!({"data": {"password": "kv-two-value-before-restart"}}),
        ),
    ] {
        let r = h.post(path, body).await;
        assert!(r.status < 300, "{path}: {}", r.text);
    }
    let token = h.post("auth/token/create", json!({})).await.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    s.stop();
    let s = Server::with_config(&setup.config, &[]);
    common::unseal(&s.http(None), &keys).await;
    let h = s.http(Some(&root));
    let mut answer = Value::Null;
    for _ in 0..100 {
        answer = check(
            &h,
            &[
                "kv-one-value-before-restart",
                "kv-two-value-before-restart",
                &token,
            ],
        )
        .await;
        if answer["complete"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(answer["complete"], true);
    for i in 0..3 {
        assert!(
            live(&answer, i),
            "{answer} {} {}",
            h.get("secret/data/app").await.text,
            h.get("sys/leak/status").await.text
        );
    }
    assert_eq!(answer["results"][2]["matches"][0]["type"], "token");
}

#[tokio::test]
async fn a_live_value_under_the_rules_entropy_floor_is_still_found() {
    let s = Server::dev();
    let h = s.http(Some("root"));
    // Random passwords fall under the generic rule's entropy floor now and
    // then; these two are far under it.
    let live_value = "aaaa1111bbbb2222cc";
    let r = h
        .post("secret/data/db", json!({"data": {"password": live_value}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let repo = staged_repo(&[(
        "app.env",
        format!("DB_PASSWORD={live_value}\nOTHER_PASSWORD=cccc3333dddd4444ee\n"),
    )]);
    let plain = coffer(
        repo.path(),
        &s,
        "root",
        &["scan", "git", "--staged", "-f", "json"],
    );
    assert_eq!(plain.status.code(), Some(0), "{plain:?}");
    let (code, report, err) = respond(repo.path(), &s, "root", "report");
    assert_eq!(code, 1, "{err}");
    assert_eq!(report.len(), 1, "only the live one: {report:?}");
    assert_eq!(report[0]["StartLine"], 1);
    assert_eq!(report[0]["LiveInCoffer"], true);
    assert!(
        report[0]["Tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "coffer:below-entropy"),
        "{report:?}"
    );
}
