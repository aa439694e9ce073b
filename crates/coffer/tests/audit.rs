//! Audit devices against a real server: the log's shape and HMACs, fail-closed
//! behaviour, the hash chain across restarts and tampering, API enablement
//! rules, and incident queries.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Http, Server, init, unseal};
use serde_json::{Value, json};

/// A temp dir with a config: embedded storage, plain listener, `extra` HCL
/// where `{DIR}` is the temp dir.
struct Sandbox {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Sandbox {
    fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8").to_owned();
        let config = dir.path().join("coffer.hcl");
        std::fs::write(
            &config,
            format!(
                "storage \"file\" {{\n  path = \"{d}/data\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:0\"\n  tls_disable = true\n}}\n{}\n",
                extra.replace("{DIR}", &d)
            ),
        )
        .expect("write config");
        Self { dir, config }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn start(&self) -> Server {
        Server::with_config(&self.config, &[])
    }
}

async fn ready(b: &Sandbox) -> (Server, Vec<String>, String) {
    let s = b.start();
    let (keys, root) = init(&s.http(None), 1, 1).await;
    unseal(&s.http(None), &keys).await;
    (s, keys, root)
}

fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read audit log");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn coffer(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffer"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run coffer");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn hangup(s: &Server) {
    let ok = Command::new("kill")
        .args(["-HUP", &s.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(ok.success());
    // The handler runs on the server's runtime; give it a moment.
    std::thread::sleep(Duration::from_millis(400));
}

async fn audit_hash(h: &Http, device: &str, input: &str) -> String {
    let r = h
        .post(
            &format!("sys/audit-hash/{device}"),
            json!({ "input": input }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["hash"], v["data"]["hash"], "top-level copy, as Vault");
    v["hash"].as_str().expect("hash").to_owned()
}

#[tokio::test]
async fn a_scenario_is_logged_in_vaults_shape_with_values_only_as_hmacs() {
    let b = Sandbox::new("audit \"file\" \"file\" {\n  file_path = \"{DIR}/audit.log\"\n}\n");
    let (s, _, root_token) = ready(&b).await;
    let root = s.http(Some(&root_token));
    for (path, body) in [
        ("sys/auth/userpass", json!({"type": "userpass"})),
        (
            "sys/mounts/secret",
            json!({"type": "kv", "options": {"version": "2"}}),
        ),
        ("sys/mounts/transit", json!({"type": "transit"})),
    ] {
        assert_eq!(root.post(path, body).await.status, 204);
    }
    let password = "pw-MARKER-7f3a";
    assert_eq!(
        root.post(
            "auth/userpass/users/alice",
            json!({"password": password, "policies": "default"})
        )
        .await
        .status,
        204
    );
    let login = s
        .http(None)
        .post("auth/userpass/login/alice", json!({ "password": password }))
        .await
        .json();
    let user_token = login["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let user_accessor = login["auth"]["accessor"]
        .as_str()
        .expect("accessor")
        .to_owned();

    let secret = "db-MARKER-91c2";
    let write = root
        .post("secret/data/prod/db", json!({"data": {"password": secret}}))
        .await;
    assert_eq!(write.status, 200, "{}", write.text);
    let read = root.get("secret/data/prod/db").await.json();
    let read_id = read["request_id"].as_str().expect("request_id").to_owned();
    assert!(root.post("transit/keys/app", json!({})).await.status < 300);
    let plaintext_b64 = "dHJhbnNpdC1NQVJLRVItNWQ="; // "transit-MARKER-5d"
    let enc = root
        .post("transit/encrypt/app", json!({ "plaintext": plaintext_b64 }))
        .await;
    assert_eq!(enc.status, 200);
    let failed = root
        .post("transit/encrypt/app", json!({ "plaintext": "%%%" }))
        .await;
    assert_eq!(failed.status, 400);
    let denied = s.http(Some(&user_token)).get("secret/data/prod/db").await;
    assert_eq!(denied.status, 403);
    let denied_id_absent = denied.json().get("request_id").is_none();
    assert!(denied_id_absent, "errors carry no envelope");

    let log_path = b.path("audit.log");
    let text = std::fs::read_to_string(&log_path).expect("log");
    for marker in [
        password,
        secret,
        plaintext_b64,
        root_token.as_str(),
        user_token.as_str(),
        user_accessor.as_str(),
    ] {
        assert!(
            !text.contains(marker),
            "{marker:?} appears in the audit log"
        );
    }
    let mode = std::fs::metadata(&log_path).expect("stat").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    let entries = lines(&log_path);
    for e in &entries {
        assert!(e["time"].is_string() && e["type"].is_string(), "{e}");
        for k in [
            "client_token",
            "accessor",
            "display_name",
            "policies",
            "token_policies",
            "metadata",
            "entity_id",
            "token_type",
        ] {
            assert!(e["auth"].get(k).is_some(), "auth.{k} missing in {e}");
        }
        for k in [
            "id",
            "operation",
            "mount_type",
            "client_token",
            "client_token_accessor",
            "namespace",
            "path",
            "data",
            "remote_address",
            "wrap_ttl",
            "headers",
        ] {
            assert!(e["request"].get(k).is_some(), "request.{k} missing in {e}");
        }
        if e["type"] == "response" && e["response"].is_object() {
            for k in ["data", "secret", "auth", "wrap_info"] {
                assert!(
                    e["response"].get(k).is_some(),
                    "response.{k} missing in {e}"
                );
            }
        }
        assert!(e["seq"].is_u64() && e["prev"].is_string());
    }

    // The KV read: one request and one response entry under the id the client got.
    let of_read: Vec<&Value> = entries
        .iter()
        .filter(|e| e["request"]["id"] == read_id.as_str())
        .collect();
    assert_eq!(of_read.len(), 2);
    assert_eq!(of_read[0]["type"], "request");
    assert_eq!(of_read[1]["type"], "response");
    assert_eq!(of_read[0]["request"]["operation"], "read");
    assert_eq!(of_read[0]["request"]["mount_type"], "kv");
    assert_eq!(of_read[0]["request"]["path"], "secret/data/prod/db");
    assert_eq!(of_read[0]["request"]["remote_address"], "127.0.0.1");
    assert_eq!(of_read[0]["auth"]["policies"], json!(["root"]));
    let root_hmac = audit_hash(&root, "file", &root_token).await;
    assert_eq!(of_read[0]["auth"]["client_token"], root_hmac.as_str());
    assert_eq!(of_read[0]["request"]["client_token"], root_hmac.as_str());
    assert_eq!(
        of_read[1]["response"]["data"]["data"]["password"],
        audit_hash(&root, "file", secret).await.as_str()
    );
    assert_eq!(
        of_read[1]["response"]["data"]["metadata"]["version"], 1,
        "numbers stay"
    );

    // The login: the password and the issued token and accessor as HMACs.
    let login_resp = entries
        .iter()
        .find(|e| e["type"] == "response" && e["request"]["path"] == "auth/userpass/login/alice")
        .expect("login response entry");
    assert_eq!(
        login_resp["request"]["data"]["password"],
        audit_hash(&root, "file", password).await.as_str()
    );
    assert_eq!(
        login_resp["response"]["auth"]["client_token"],
        audit_hash(&root, "file", &user_token).await.as_str()
    );
    assert_eq!(
        login_resp["response"]["auth"]["accessor"],
        audit_hash(&root, "file", &user_accessor).await.as_str()
    );
    assert_eq!(login_resp["request"]["mount_type"], "userpass");

    // Transit: the plaintext is an HMAC; the failed call is a response with its error.
    let encs: Vec<&Value> = entries
        .iter()
        .filter(|e| e["request"]["path"] == "transit/encrypt/app")
        .collect();
    assert_eq!(encs.len(), 4);
    assert_eq!(
        encs[0]["request"]["data"]["plaintext"],
        audit_hash(&root, "file", plaintext_b64).await.as_str()
    );
    assert!(
        encs[3]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{}",
        encs[3]
    );

    // The denied read: a request entry carrying the error, with the user's identity.
    let denied_entry = entries
        .iter()
        .find(|e| e["error"] == "permission denied")
        .expect("denied request is logged");
    assert_eq!(denied_entry["type"], "request");
    assert_eq!(
        denied_entry["auth"]["accessor"],
        audit_hash(&root, "file", &user_accessor).await.as_str()
    );
    assert_eq!(denied_entry["auth"]["policies"], json!(["default"]));

    // sys/audit lists the device (top-level copy too), unknown devices are 400.
    let list = root.get("sys/audit").await.json();
    assert_eq!(list["file/"]["type"], "file");
    assert_eq!(
        list["data"]["file/"]["options"]["file_path"],
        log_path.to_str().unwrap_or("")
    );
    let unknown = root
        .post("sys/audit-hash/nope", json!({"input": "x"}))
        .await;
    assert_eq!(unknown.status, 400);
    assert!(
        unknown.text.contains("unknown audit backend"),
        "{}",
        unknown.text
    );

    // Incident questions on the real log: what the user's token did (by its
    // HMAC), and who read the secret (accessors translated by the server).
    let log_s = log_path.to_str().unwrap_or("").to_owned();
    let user_hmac = audit_hash(&root, "file", &user_token).await;
    let (code, out) = coffer(
        &[
            "audit",
            "query",
            &log_s,
            "--token-hmac",
            &user_hmac,
            "--format",
            "lines",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}");
    let mine: Vec<Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a log line"))
        .collect();
    assert_eq!(mine.len(), 1, "only the denied read: {out}");
    assert_eq!(mine[0]["request"]["path"], "secret/data/prod/db");
    assert_eq!(mine[0]["error"], "permission denied");
    let env = [
        ("VAULT_TOKEN", root_token.as_str()),
        ("VAULT_ADDR", s.addr.as_str()),
    ];
    let (code, out) = coffer(
        &[
            "audit",
            "query",
            &log_s,
            "--path",
            "secret/data/prod/*",
            "--accessor",
            &user_accessor,
            "--device",
            "file",
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("secret/data/prod/db") && out.contains("read"),
        "{out}"
    );
    assert!(
        !out.contains(&user_accessor),
        "the table shows HMACs only: {out}"
    );

    // The untouched log verifies, also against the server's head.
    let (code, out) = coffer(
        &[
            "audit",
            "verify",
            log_path.to_str().unwrap_or(""),
            "--device",
            "file",
            "--address",
            &s.addr,
        ],
        &[("VAULT_TOKEN", &root_token)],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("chain intact"), "{out}");
}

#[tokio::test]
async fn requests_fail_closed_when_no_device_can_record_them() {
    let b = Sandbox::new("audit \"file\" \"file\" {\n  file_path = \"{DIR}/audit.log\"\n}\n");
    let real = b.path("real.log");
    std::fs::write(&real, b"").expect("create");
    std::os::unix::fs::symlink(&real, b.path("audit.log")).expect("symlink");
    let (s, _, root_token) = ready(&b).await;
    let root = s.http(Some(&root_token));
    assert_eq!(
        root.post("sys/mounts/kv", json!({"type": "kv"}))
            .await
            .status,
        204
    );
    assert_eq!(root.post("kv/before", json!({"v": "1"})).await.status, 204);

    // The file becomes unwritable (every write fails with ENOSPC).
    std::fs::remove_file(b.path("audit.log")).expect("rm link");
    std::os::unix::fs::symlink("/dev/full", b.path("audit.log")).expect("symlink");
    hangup(&s);
    let refused = root.post("kv/during", json!({"v": "never-written"})).await;
    assert_eq!(refused.status, 500, "{}", refused.text);
    assert!(refused.text.contains("audit"), "{}", refused.text);
    let refused_read = root.get("kv/before").await;
    assert_eq!(refused_read.status, 500);

    // Writable again: the refused write never reached the engine.
    std::fs::remove_file(b.path("audit.log")).expect("rm link");
    std::os::unix::fs::symlink(&real, b.path("audit.log")).expect("symlink");
    hangup(&s);
    assert_eq!(root.get("kv/during").await.status, 404);
    assert_eq!(root.get("kv/before").await.status, 200);
    let entries = lines(&real);
    assert!(entries.iter().any(|e| e["request"]["path"] == "kv/before"));
    assert!(
        !entries
            .iter()
            .any(|e| e["request"]["path"] == "kv/during" && e["request"]["operation"] != "read"),
        "the refused write is in no log"
    );
    let metrics = root.get("sys/metrics?format=prometheus").await.text;
    assert!(
        metrics.contains("coffer_audit_refused_requests_total 2"),
        "{metrics}"
    );
}

/// A TCP peer that collects lines until dropped.
struct Collector {
    addr: String,
    stop: std::sync::mpsc::Sender<()>,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn collector() -> Collector {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr").to_string();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let sink = lines.clone();
    std::thread::spawn(move || {
        let mut conns = Vec::new();
        loop {
            if stopped.try_recv().is_ok() {
                // Listener and connections close here: the peer goes away.
                return;
            }
            if let Ok((c, _)) = listener.accept() {
                c.set_nonblocking(false).ok();
                c.set_read_timeout(Some(Duration::from_millis(20))).ok();
                conns.push(BufReader::new(c));
            }
            for c in conns.iter_mut() {
                let mut l = String::new();
                while c.read_line(&mut l).map(|n| n > 0).unwrap_or(false) {
                    if l.ends_with('\n') {
                        sink.lock().expect("lock").push(std::mem::take(&mut l));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    Collector { addr, stop, lines }
}

#[tokio::test]
async fn a_failing_device_is_reported_while_another_keeps_recording() {
    let peer = collector();
    let b = Sandbox::new(&format!(
        "audit \"file\" \"file\" {{\n  file_path = \"{{DIR}}/audit.log\"\n}}\naudit \"socket\" \"net\" {{\n  address = \"{}\"\n  socket_type = \"tcp\"\n  write_timeout = \"1s\"\n}}\n",
        peer.addr
    ));
    let (s, _, root_token) = ready(&b).await;
    let root = s.http(Some(&root_token));
    assert_eq!(root.get("sys/mounts").await.status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let got = peer.lines.lock().expect("lock").clone();
    assert!(got.iter().any(|l| l.contains("\"sys/mounts\"")), "{got:?}");
    let first: Value = serde_json::from_str(&got[0]).expect("json line");
    assert_eq!(first["seq"], 1, "each device has its own chain");

    // The socket's peer goes away; the file device still records.
    peer.stop.send(()).expect("stop");
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..3 {
        let r = root.get("sys/mounts").await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let denied = s.http(Some("cvs.nonexistent")).get("sys/mounts").await;
    assert_eq!(denied.status, 403);
    let entries = lines(&b.path("audit.log"));
    assert!(entries.iter().any(|e| e["error"] == "permission denied"));
    let metrics = root.get("sys/metrics?format=prometheus").await.text;
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("coffer_audit_device_failures_total "))
        .and_then(|n| n.trim().parse().ok())
        .expect("failure counter");
    assert!(failures >= 2, "{metrics}");
    drop(s);

    // With the socket as the only device, its peer's absence refuses requests.
    let peer = collector();
    let b = Sandbox::new(&format!(
        "audit \"socket\" \"net\" {{\n  address = \"{}\"\n}}\n",
        peer.addr
    ));
    let (s, _, root_token) = ready(&b).await;
    let root = s.http(Some(&root_token));
    assert_eq!(root.get("sys/mounts").await.status, 200);
    peer.stop.send(()).expect("stop");
    std::thread::sleep(Duration::from_millis(200));
    let r = root.get("sys/mounts").await;
    assert_eq!(r.status, 500, "{}", r.text);
}

/// Changes the lines of a copy of the log.
type Tamper = dyn FnOnce(&mut Vec<Vec<u8>>);

fn edit(src: &Path, dst: &Path, f: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let bytes = std::fs::read(src).expect("read");
    let mut lines: Vec<Vec<u8>> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    f(&mut lines);
    let mut out = std::fs::File::create(dst).expect("create");
    for l in &lines {
        out.write_all(l).expect("write");
        out.write_all(b"\n").expect("write");
    }
}

#[tokio::test]
async fn the_chain_survives_restarts_and_shows_every_kind_of_tampering() {
    let b = Sandbox::new("audit \"file\" \"file\" {\n  file_path = \"{DIR}/audit.log\"\n}\n");
    let (s, keys, root_token) = ready(&b).await;
    for _ in 0..3 {
        assert_eq!(
            s.http(Some(&root_token)).get("sys/mounts").await.status,
            200
        );
    }
    s.stop();
    // Graceful restart: the head stored at shutdown continues the chain.
    let s = b.start();
    unseal(&s.http(None), &keys).await;
    for _ in 0..3 {
        assert_eq!(s.http(Some(&root_token)).get("sys/auth").await.status, 200);
    }
    // A crash: the stored head may lag; the file's last line continues it.
    s.kill9();
    let s = b.start();
    unseal(&s.http(None), &keys).await;
    assert_eq!(
        s.http(Some(&root_token)).get("sys/policy").await.status,
        200
    );

    let log = b.path("audit.log");
    let log_s = log.to_str().unwrap_or("").to_owned();
    let env = [("VAULT_TOKEN", root_token.as_str())];
    let (code, out) = coffer(
        &[
            "audit",
            "verify",
            &log_s,
            "--device",
            "file",
            "--address",
            &s.addr,
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}");
    let n = lines(&log).len();
    assert!(out.contains(&format!("{n} line(s), seq 1..{n}")), "{out}");

    let check = |name: &str, f: Box<Tamper>, expect: &str| {
        let copy = b.path(name);
        edit(&log, &copy, f);
        let (code, out) = coffer(&["audit", "verify", copy.to_str().unwrap_or("")], &[]);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(out.contains(expect), "{name}: expected {expect:?} in {out}");
    };
    check(
        "edited.log",
        Box::new(|l| {
            let at = l[4].iter().position(|b| *b == b'"').unwrap_or(0) + 1;
            l[4][at] ^= 0x01;
        }),
        "line 5 (seq 5) was altered",
    );
    check(
        "deleted.log",
        Box::new(|l| {
            l.remove(6);
        }),
        "line 7: 1 line(s) removed between seq 6 and seq 8",
    );
    check(
        "swapped.log",
        Box::new(|l| l.swap(2, 3)),
        "line 3 (seq 4) is out of order",
    );

    // A truncated tail: cut in the middle of the last line.
    let bytes = std::fs::read(&log).expect("read");
    let cut = b.path("cut.log");
    std::fs::write(&cut, &bytes[..bytes.len() - 40]).expect("write");
    let (code, out) = coffer(&["audit", "verify", cut.to_str().unwrap_or("")], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("line {n} is incomplete")), "{out}");
    assert!(
        out.contains(&format!("intact up to seq {}", n - 1)),
        "{out}"
    );
    // Whole lines cut from the end are visible only against the server's head.
    edit(&log, &cut, |l| l.truncate(l.len() - 2));
    let (code, out) = coffer(&["audit", "verify", cut.to_str().unwrap_or("")], &[]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = coffer(
        &[
            "audit",
            "verify",
            cut.to_str().unwrap_or(""),
            "--device",
            "file",
            "--address",
            &s.addr,
        ],
        &env,
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("line(s) at the end are missing"), "{out}");
}

#[tokio::test]
async fn the_api_enables_devices_only_when_configured_and_only_inside_audit_dir() {
    let dev = Server::dev();
    let r = dev
        .http(Some("root"))
        .put(
            "sys/audit/file",
            json!({"type": "file", "options": {"file_path": "/tmp/x.log"}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("audit_api"), "{}", r.text);
    assert_eq!(
        dev.http(Some("root")).delete("sys/audit/file").await.status,
        204
    );
    drop(dev);

    let b = Sandbox::new(
        "audit_api = true\naudit_dir = \"{DIR}/audit\"\naudit \"file\" \"main\" {\n  file_path = \"{DIR}/main.log\"\n}\n",
    );
    std::fs::create_dir(b.path("audit")).expect("mkdir");
    std::fs::create_dir(b.path("audit-evil")).expect("mkdir");
    std::os::unix::fs::symlink("/etc", b.path("audit/etc")).expect("symlink");
    let (s, _, root_token) = ready(&b).await;
    let root = s.http(Some(&root_token));
    let dir = b.path("audit");
    let outside = b.path("audit-evil/x.log");
    for (options, why) in [
        (json!({"file_path": outside}), "outside audit_dir"),
        (json!({"file_path": "../x.log"}), "'..'"),
        (json!({"file_path": "etc/x.log"}), "outside audit_dir"),
        (
            json!({"file_path": dir.join("ok.log"), "mode": "0644"}),
            "0600 or stricter",
        ),
        (
            json!({"file_path": dir.join("ok.log"), "prefix": "x\n{"}),
            "control characters",
        ),
        (
            json!({"file_path": dir.join("ok.log"), "colour": "blue"}),
            "unknown option",
        ),
    ] {
        let r = root
            .put(
                "sys/audit/extra",
                json!({"type": "file", "options": options}),
            )
            .await;
        assert_eq!(r.status, 400, "{options}: {}", r.text);
        assert!(
            r.text.contains(why),
            "{options}: expected {why:?} in {}",
            r.text
        );
    }
    // hvac's legacy `path` option, relative to audit_dir.
    let r = root
        .put(
            "sys/audit/extra",
            json!({"type": "file", "description": "api", "options": {"path": "extra.log"}}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let dup = root
        .put(
            "sys/audit/extra",
            json!({"type": "file", "options": {"path": "other.log"}}),
        )
        .await;
    assert!(dup.text.contains("already in use"), "{}", dup.text);
    let list = root.get("sys/audit").await.json();
    assert_eq!(list["extra/"]["options"]["file_path"], "extra.log");
    assert_eq!(list["extra/"]["description"], "api");
    assert_eq!(list["main/"]["type"], "file");
    assert_eq!(root.get("sys/mounts").await.status, 200);
    let extra = lines(&dir.join("extra.log"));
    assert!(extra.iter().any(|e| e["request"]["path"] == "sys/mounts"));
    let main_hash = audit_hash(&root, "main", "x").await;
    assert_ne!(
        main_hash,
        audit_hash(&root, "extra", "x").await,
        "salts are per device"
    );

    // The CLI's Vault-shaped commands over the same API.
    let env = [
        ("VAULT_TOKEN", root_token.as_str()),
        ("VAULT_ADDR", s.addr.as_str()),
    ];
    let (code, out) = coffer(
        &[
            "audit",
            "enable",
            "file",
            "-path=cli",
            "file_path=cli.log",
            "mode=0400",
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Enabled the file audit device at: cli/"),
        "{out}"
    );
    let (code, out) = coffer(&["audit", "list", "-detailed"], &env);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("cli/") && out.contains("file_path=cli.log mode=0400"),
        "{out}"
    );
    let (code, out) = coffer(&["audit", "hash", "cli", "x"], &env);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), audit_hash(&root, "cli", "x").await);
    let mode = std::fs::metadata(dir.join("cli.log"))
        .expect("stat")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o400
    );
    let (code, out) = coffer(&["audit", "disable", "cli"], &env);
    assert_eq!(code, 0, "{out}");

    let config_device = root.delete("sys/audit/main").await;
    assert_eq!(config_device.status, 400);
    assert!(
        config_device.text.contains("server configuration"),
        "{}",
        config_device.text
    );
    assert_eq!(root.delete("sys/audit/extra").await.status, 204);
    assert_eq!(
        root.delete("sys/audit/extra").await.status,
        204,
        "missing is fine"
    );
    assert!(root.get("sys/audit").await.json().get("extra/").is_none());
    // Non-root tokens need sudo on sys/audit.
    let t = root
        .post("auth/token/create", json!({"policies": ["default"]}))
        .await
        .json();
    let user = s.http(t["auth"]["client_token"].as_str());
    assert_eq!(user.get("sys/audit").await.status, 403);
}

#[tokio::test]
async fn query_answers_incident_questions_over_a_million_lines() {
    // A synthetic log in the server's format: who read prod/db in the last
    // 24 h, and everything one accessor touched.
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("big.log");
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let leaked = format!("hmac-sha256:{}", "ab".repeat(32));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&log).expect("create"));
    let mut seq = 0u64;
    let (mut prod_recent, mut prod_old) = (0u64, 0u64);
    let mut leaked_paths = std::collections::BTreeMap::new();
    let mut prod_recent_accessors = std::collections::BTreeSet::new();
    for i in 0..500_000u64 {
        let hours_ago = (i % 48) as i64;
        let when = fmt(now - time::Duration::hours(hours_ago) - time::Duration::minutes(1));
        let accessor = if i % 1000 == 7 {
            leaked.clone()
        } else {
            format!("hmac-sha256:{:064x}", i % 97)
        };
        let path = match i % 10 {
            0 => "secret/data/prod/db".to_owned(),
            _ => format!("secret/data/app{}/cfg", i % 50),
        };
        let op = if i % 20 == 0 { "update" } else { "read" };
        if path == "secret/data/prod/db" && op == "read" {
            if hours_ago < 24 {
                prod_recent += 1;
                prod_recent_accessors.insert(accessor.clone());
            } else {
                prod_old += 1;
            }
        }
        if accessor == leaked {
            *leaked_paths.entry((path.clone(), op)).or_insert(0u64) += 1;
        }
        // Written by hand rather than through serde: this loop runs a million
        // times in an unoptimised test build. The shape is the server's.
        let token = format!("hmac-sha256:{:064x}", i % 89);
        for kind in ["request", "response"] {
            let response = if kind == "response" {
                r#""response":{"data":{"data":{"password":"hmac-sha256:00"}},"mount_type":"kv"},"#
            } else {
                ""
            };
            seq += 1;
            writeln!(
                out,
                r#"{{"auth":{{"accessor":"{accessor}","client_token":"{token}","display_name":"approle","policies":["app"]}},"request":{{"client_token":"{token}","client_token_accessor":"{accessor}","id":"req-{i}","mount_type":"kv","operation":"{op}","path":"{path}","remote_address":"10.0.0.1"}},{response}"time":"{when}","type":"{kind}","seq":{seq},"prev":"{}"}}"#,
                coffer_core::audit::chain::GENESIS
            )
            .expect("write");
        }
    }
    drop(out);
    assert_eq!(seq, 1_000_000);
    assert!(prod_old > 0 && prod_recent > 0);
    let log_s = log.to_str().unwrap_or("");

    let (code, text) = coffer(
        &[
            "audit",
            "query",
            log_s,
            "--path",
            "secret/data/prod/db",
            "--operation",
            "read",
            "--since",
            "24h",
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{text}");
    let json_start = text.find('{').unwrap_or(0);
    let v: Value = serde_json::from_str(&text[json_start..]).expect("json summary");
    assert_eq!(v["lines"], 1_000_000);
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1, "{v}");
    assert_eq!(rows[0]["count"], prod_recent);
    assert_eq!(
        rows[0]["accessors"].as_array().map(Vec::len),
        Some(prod_recent_accessors.len())
    );

    let (code, text) = coffer(
        &[
            "audit",
            "query",
            log_s,
            "--accessor",
            &leaked,
            "--format",
            "json",
        ],
        &[],
    );
    assert_eq!(code, 0, "{text}");
    let v: Value =
        serde_json::from_str(&text[text.find('{').unwrap_or(0)..]).expect("json summary");
    let got: std::collections::BTreeMap<(String, String), u64> = v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                (
                    r["path"].as_str().unwrap_or("").to_owned(),
                    r["operation"].as_str().unwrap_or("").to_owned(),
                ),
                r["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let want: std::collections::BTreeMap<(String, String), u64> = leaked_paths
        .into_iter()
        .map(|((p, o), n)| ((p, o.to_owned()), n))
        .collect();
    assert_eq!(got, want);

    // The table form names the path and the count.
    let (code, text) = coffer(
        &[
            "audit",
            "query",
            log_s,
            "--path",
            "secret/data/prod/*",
            "--operation",
            "read",
        ],
        &[],
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("secret/data/prod/db")
            && text.contains(&(prod_recent + prod_old).to_string()),
        "{text}"
    );
}

#[tokio::test]
async fn a_saved_head_signed_by_transit_catches_a_shortened_log() {
    let b = Sandbox::new(
        "audit \"file\" \"file\" {\n  file_path = \"{DIR}/audit.log\"\n  head_key = \"transit/audit-head\"\n}\n",
    );
    let (s, _, root_token) = ready(&b).await;
    let root = s.http(Some(&root_token));
    let env = [
        ("VAULT_TOKEN", root_token.as_str()),
        ("VAULT_ADDR", s.addr.as_str()),
    ];
    // The key does not exist yet: the head cannot be signed, and says why.
    let early = root.get("sys/audit-head/file").await;
    assert_eq!(early.status, 400, "{}", early.text);
    assert!(early.text.contains("transit/audit-head"), "{}", early.text);

    assert_eq!(
        root.post("sys/mounts/transit", json!({"type": "transit"}))
            .await
            .status,
        204
    );
    let key = root
        .post("transit/keys/audit-head", json!({"type": "ed25519"}))
        .await;
    assert!(key.status < 300, "{}", key.text);
    for _ in 0..5 {
        assert_eq!(root.get("sys/mounts").await.status, 200);
    }
    let (code, saved) = coffer(&["audit", "head", "file"], &env);
    assert_eq!(code, 0, "{saved}");
    let head: Value = serde_json::from_str(&saved).expect("head JSON");
    assert!(
        head["signature"]
            .as_str()
            .is_some_and(|s| s.starts_with("vault:v1:")),
        "{head}"
    );
    assert_eq!(head["key"], "transit/audit-head");
    let head_file = b.path("head.json");
    std::fs::write(&head_file, &saved).expect("save head");
    for _ in 0..3 {
        assert_eq!(root.get("sys/auth").await.status, 200);
    }

    let log = b.path("audit.log");
    let (code, out) = coffer(
        &[
            "audit",
            "verify",
            log.to_str().unwrap_or(""),
            "--head",
            head_file.to_str().unwrap_or(""),
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("signature verifies") && out.contains("chain intact"),
        "{out}"
    );

    // Someone drops the lines since a point before the saved head: the chain
    // in the file is intact, the saved head shows what is gone.
    let seq = head["sequence"].as_u64().expect("sequence") as usize;
    let short = b.path("short.log");
    edit(&log, &short, |l| l.truncate(seq - 3));
    let (code, out) = coffer(&["audit", "verify", short.to_str().unwrap_or("")], &env);
    assert_eq!(code, 0, "{out}");
    let (code, out) = coffer(
        &[
            "audit",
            "verify",
            short.to_str().unwrap_or(""),
            "--head",
            head_file.to_str().unwrap_or(""),
        ],
        &env,
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("3 line(s) at the end are missing"), "{out}");

    // A forged head (another position) fails its signature.
    let mut forged = head.clone();
    forged["sequence"] = json!(seq - 3);
    let short_bytes = std::fs::read(&short).expect("read");
    let last = short_bytes
        .split(|b| *b == b'\n')
        .nth(seq - 4)
        .expect("line");
    forged["hash"] = json!(coffer_core::audit::chain::line_hash(last));
    std::fs::write(&head_file, forged.to_string()).expect("forge");
    let (code, out) = coffer(
        &[
            "audit",
            "verify",
            short.to_str().unwrap_or(""),
            "--head",
            head_file.to_str().unwrap_or(""),
        ],
        &env,
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("does not verify"), "{out}");
}

#[tokio::test]
async fn a_rotated_log_links_to_the_new_file() {
    let b = Sandbox::new("audit \"file\" \"file\" {\n  file_path = \"{DIR}/audit.log\"\n}\n");
    let (s, _, root_token) = ready(&b).await;
    let root = s.http(Some(&root_token));
    for _ in 0..3 {
        assert_eq!(root.get("sys/mounts").await.status, 200);
    }
    // logrotate's way: move the file, then SIGHUP.
    let log = b.path("audit.log");
    let old = b.path("audit.log.1");
    std::fs::rename(&log, &old).expect("rotate");
    hangup(&s);
    for _ in 0..3 {
        assert_eq!(root.get("sys/auth").await.status, 200);
    }
    let new_lines = lines(&log);
    let old_lines = lines(&old);
    assert_eq!(
        new_lines[0]["seq"].as_u64(),
        old_lines
            .last()
            .and_then(|l| l["seq"].as_u64())
            .map(|s| s + 1)
    );
    let env = [("VAULT_TOKEN", root_token.as_str())];
    let (o, n) = (old.to_str().unwrap_or(""), log.to_str().unwrap_or(""));
    let (code, out) = coffer(
        &[
            "audit",
            "verify",
            o,
            n,
            "--device",
            "file",
            "--address",
            &s.addr,
        ],
        &env,
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = coffer(&["audit", "verify", n], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("continues an earlier file"), "{out}");
    // Given in the wrong order, the files do not link.
    let (code, out) = coffer(&["audit", "verify", n, o], &[]);
    assert_eq!(code, 1, "{out}");
}

#[tokio::test]
async fn a_device_that_cannot_reopen_fails_closed_and_recovers() {
    let b = Sandbox::new("audit \"file\" \"file\" {\n  file_path = \"{DIR}/logs/audit.log\"\n}\n");
    std::fs::create_dir(b.path("logs")).expect("mkdir");
    let (s, _, root_token) = ready(&b).await;
    let root = s.http(Some(&root_token));
    assert_eq!(root.get("sys/mounts").await.status, 200);
    // The directory goes (a mistaken cleanup, a full volume swapped out),
    // then a reopen: the device cannot write where it is configured to.
    std::fs::remove_dir_all(b.path("logs")).expect("rm");
    hangup(&s);
    let r = root.get("sys/mounts").await;
    assert_eq!(
        r.status, 500,
        "served with no audit device able to record: {}",
        r.text
    );
    // Once the path can be opened again the next request creates the file
    // and is recorded there.
    std::fs::create_dir(b.path("logs")).expect("mkdir");
    assert_eq!(root.get("sys/auth").await.status, 200);
    let after = lines(&b.path("logs/audit.log"));
    assert!(
        after.iter().any(|l| l["request"]["path"] == "sys/auth"),
        "{after:?}"
    );
}

#[tokio::test]
async fn lines_cut_from_the_start_are_caught_against_the_head() {
    let b = Sandbox::new("audit \"file\" \"file\" {\n  file_path = \"{DIR}/audit.log\"\n}\n");
    let (s, _, root_token) = ready(&b).await;
    let root = s.http(Some(&root_token));
    for _ in 0..4 {
        assert_eq!(root.get("sys/mounts").await.status, 200);
    }
    let head = root.get("sys/audit-head/file").await.json();
    assert_eq!(head["data"]["file_first_sequence"], 1, "{head}");
    let log = b.path("audit.log");
    let env = [("VAULT_TOKEN", root_token.as_str())];
    let verify = |file: &Path| {
        coffer(
            &[
                "audit",
                "verify",
                file.to_str().unwrap_or(""),
                "--device",
                "file",
                "--address",
                &s.addr,
            ],
            &env,
        )
    };
    let (code, out) = verify(&log);
    assert_eq!(code, 0, "{out}");
    // Someone removes the first lines: the rest still links, the head knows.
    let cut = b.path("cut.log");
    edit(&log, &cut, |l| {
        l.drain(..2);
    });
    let (code, out) = verify(&cut);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("at the start are missing"), "{out}");
}

#[tokio::test]
async fn head_key_signs_only_with_a_transit_key() {
    let b = Sandbox::new(
        "audit \"file\" \"file\" {\n  file_path = \"{DIR}/audit.log\"\n  head_key = \"kv1/prod-db\"\n}\n",
    );
    let (s, _, root_token) = ready(&b).await;
    let root = s.http(Some(&root_token));
    assert_eq!(
        root.post("sys/mounts/kv1", json!({"type": "kv"}))
            .await
            .status,
        204
    );
    assert_eq!(
        root.put("kv1/prod-db", json!({"password": "keep-me"}))
            .await
            .status,
        204
    );
    let r = root.get("sys/audit-head/file").await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("transit"), "{}", r.text);
    // Nothing was written anywhere in the KV mount.
    assert_eq!(
        root.get("kv1/prod-db").await.json()["data"]["password"],
        "keep-me"
    );
    assert_eq!(root.get("kv1/sign/prod-db").await.status, 404);
}

#[tokio::test]
async fn a_full_disk_never_leaves_a_torn_line() {
    let b = Sandbox::new("audit \"file\" \"file\" {\n  file_path = \"{DIR}/audit.log\"\n}\n");
    // In-memory storage, so the file-size limit below only bites the log.
    let config = std::fs::read_to_string(&b.config).expect("config");
    let config = config.replace(
        &format!(
            "storage \"file\" {{\n  path = \"{}/data\"\n}}",
            b.dir.path().display()
        ),
        "storage \"inmem\" {}",
    );
    std::fs::write(&b.config, config).expect("config");
    // A 64 KiB file-size limit stands in for a full disk: the write that
    // crosses it is cut short (EFBIG) instead of killing the process.
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "trap '' XFSZ; ulimit -f 128; exec \"$0\" server --config \"$1\"",
        &common::server_binary(),
        b.config.to_str().expect("utf-8"),
    ]);
    let s = Server::spawn_command(cmd);
    let (keys, root_token) = init(&s.http(None), 1, 1).await;
    unseal(&s.http(None), &keys).await;
    let root = s.http(Some(&root_token));
    let mut refused = 0;
    for i in 0..400 {
        let r = root
            .put(
                &format!("sys/policies/acl/p{i}"),
                json!({"policy": format!("path \"kv/{i}/*\" {{ capabilities = [\"read\"] }}")}),
            )
            .await;
        if r.status == 500 {
            refused += 1;
            if refused == 3 {
                break;
            }
        }
    }
    assert!(refused > 0, "the log never filled up");
    let bytes = std::fs::read(b.path("audit.log")).expect("log");
    assert!(bytes.ends_with(b"\n"), "the log ends with a partial line");
    let (code, out) = coffer(
        &[
            "audit",
            "verify",
            b.path("audit.log").to_str().unwrap_or(""),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn audit_search_answers_who_read_a_path_from_the_file_devices() {
    let peer = collector();
    let b = Sandbox::new(&format!(
        "audit \"file\" \"file\" {{\n  file_path = \"{{DIR}}/audit.log\"\n}}\naudit \"file\" \"copy\" {{\n  file_path = \"{{DIR}}/copy.log\"\n  prefix = \"COPY \"\n}}\naudit \"socket\" \"net\" {{\n  address = \"{}\"\n}}\n",
        peer.addr
    ));
    let (s, _, root_token) = ready(&b).await;
    let root = s.http(Some(&root_token));
    assert_eq!(
        root.post(
            "sys/mounts/kv",
            json!({"type": "kv", "options": {"version": "2"}})
        )
        .await
        .status,
        204
    );
    assert_eq!(
        root.post("kv/data/app", json!({"data": {"pw": "search-me"}}))
            .await
            .status,
        200
    );
    let policy = "path \"kv/data/app\" { capabilities = [\"read\"] }\npath \"sys/audit-search\" { capabilities = [\"read\", \"update\"] }";
    assert_eq!(
        root.put("sys/policies/acl/reader", json!({ "policy": policy }))
            .await
            .status,
        204
    );
    let mk = |name: &'static str, policies: &'static str| {
        let root = root.clone();
        async move {
            let r = root
                .post(
                    "auth/token/create",
                    json!({"display_name": name, "policies": [policies]}),
                )
                .await;
            r.json()["auth"]["client_token"]
                .as_str()
                .expect("token")
                .to_owned()
        }
    };
    let reader = mk("reader", "reader").await;
    let other = mk("other", "default").await;
    let before = time_now();
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(s.http(Some(&reader)).get("kv/data/app").await.status, 200);
    assert_eq!(s.http(Some(&reader)).get("kv/data/app").await.status, 200);
    assert_eq!(s.http(Some(&other)).get("kv/data/app").await.status, 403);
    assert_eq!(root.get("kv/data/app").await.status, 200);

    let r = root.get("sys/audit-search?path=kv/data/app").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let d = r.json()["data"].clone();
    let who: Vec<_> = d["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["display_name"].as_str().unwrap_or_default().to_owned(),
                e["error"].clone(),
            )
        })
        .collect();
    // Newest first; each request once although two files recorded it; the
    // write is not a read.
    assert_eq!(
        who,
        [
            ("root".to_owned(), Value::Null),
            ("token-other".to_owned(), json!("permission denied")),
            ("token-reader".to_owned(), Value::Null),
            ("token-reader".to_owned(), Value::Null),
        ],
        "{d}"
    );
    assert_eq!(d["devices"], json!(["copy/", "file/"]), "{d}");
    let warnings = r.json()["warnings"].to_string();
    assert!(
        warnings.contains("net/"),
        "the socket device is named as not searched: {warnings}"
    );
    assert!(!r.text.contains("search-me"));

    // A window, other operations, a prefix.
    let r = root
        .post(
            "sys/audit-search",
            json!({"path": "kv/data/*", "operations": ["create", "update"], "until": before}),
        )
        .await;
    let entries = r.json()["data"]["entries"].clone();
    assert_eq!(entries.as_array().map(Vec::len), Some(1), "{entries}");
    assert_eq!(entries[0]["display_name"], "root");
    let r = root
        .post(
            "sys/audit-search",
            json!({"path": "kv/data/app", "since": before, "limit": 1}),
        )
        .await;
    assert_eq!(r.json()["data"]["entries"][0]["display_name"], "root");
    assert_eq!(r.json()["data"]["truncated"], true);

    // Bad input says what is wrong; without sudo it is refused.
    for (body, want) in [
        (json!({}), "path is required"),
        (
            json!({"path": "kv/data/app", "since": "yesterday"}),
            "RFC 3339",
        ),
        (
            json!({"path": "kv/data/app", "limit": 0}),
            "limit must be between",
        ),
    ] {
        let r = root.post("sys/audit-search", body).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.text.contains(want), "{}", r.text);
    }
    let r = s
        .http(Some(&reader))
        .get("sys/audit-search?path=kv/data/app")
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
}

fn time_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}
