//! `coffer kms-plugin` over its real unix socket, called by a gRPC client
//! that grpcio-tools generates from proto/kms_v2.proto (Python, from PyPI),
//! as kube-apiserver calls a KMS v2 plugin: status, encrypt, decrypt, a key
//! rotation, coffer going away and coming back, a revoked token, a token
//! file that is replaced.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use common::{Http, Server};
use serde_json::{Value, json};

const POLICY: &str = r#"
path "transit/encrypt/etcd" { capabilities = ["update"] }
path "transit/decrypt/etcd" { capabilities = ["update"] }
path "transit/keys/etcd"    { capabilities = ["read"] }
"#;

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The Python side: a venv with grpcio-tools and the stubs it generates.
struct GrpcClient {
    python: PathBuf,
    stubs: PathBuf,
}

impl GrpcClient {
    fn new(dir: &Path) -> Option<GrpcClient> {
        let venv = common::pip_venv("grpc-venv", "grpcio-tools==1.85.1")?;
        let python = venv.join("bin/python");
        let stubs = dir.join("stubs");
        std::fs::create_dir_all(&stubs).unwrap();
        let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
        let out = Command::new(&python)
            .args(["-m", "grpc_tools.protoc", "-I", proto_dir])
            .arg(format!("--python_out={}", stubs.display()))
            .arg(format!("--grpc_python_out={}", stubs.display()))
            .arg("kms_v2.proto")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(GrpcClient { python, stubs })
    }

    /// Decrypts what an `encrypt` call answered, passing its key ID back
    /// as kube-apiserver does.
    fn decrypt(&self, socket: &Path, encrypted: &Value) -> Value {
        let text = |k: &str| encrypted[k].as_str().unwrap_or_default().to_owned();
        self.call(
            socket,
            &["decrypt", &text("ciphertext_b64"), &text("key_id")],
        )
    }

    fn call(&self, socket: &Path, args: &[&str]) -> Value {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kms/client.py");
        let out = Command::new(&self.python)
            .arg(script)
            .arg(&self.stubs)
            .arg(socket)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    }
}

/// A running plugin; killed on drop.
struct PluginProcess {
    child: Child,
    socket: PathBuf,
}

impl Drop for PluginProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_plugin(addr: &str, socket: &Path, auth: &[&str]) -> PluginProcess {
    let mut child = Command::new(common::server_binary())
        .args([
            "kms-plugin",
            "--key",
            "transit/keys/etcd",
            "--address",
            addr,
        ])
        .arg("--listen")
        .arg(format!("unix://{}", socket.display()))
        .args(auth)
        .env_remove("VAULT_TOKEN")
        .env_remove("COFFER_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("Listening on unix://") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("kms-plugin did not start listening");
    PluginProcess {
        child,
        socket: socket.to_owned(),
    }
}

/// A coffer on a fixed port with file storage, so it can be stopped and
/// started again at the same address with its keys.
struct Coffer {
    config: PathBuf,
    keys: Vec<String>,
    root: String,
    addr: String,
}

impl Coffer {
    async fn start(dir: &Path) -> (Coffer, Server) {
        let port = common::free_port();
        let config = dir.join("coffer.hcl");
        std::fs::write(
            &config,
            format!(
                "storage \"file\" {{\n  path = \"{}/data\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n",
                dir.display()
            ),
        )
        .unwrap();
        let s = Server::with_config(&config, &[]);
        let (keys, root) = common::init(&s.http(None), 1, 1).await;
        common::unseal(&s.http(None), &keys).await;
        let addr = s.addr.clone();
        (
            Coffer {
                config,
                keys,
                root,
                addr,
            },
            s,
        )
    }

    async fn restart(&self) -> Server {
        let s = Server::with_config(&self.config, &[]);
        common::unseal(&s.http(None), &self.keys).await;
        s
    }

    fn root(&self) -> Http {
        Http::new(&self.addr, Some(&self.root))
    }
}

async fn prepare(root: &Http, dir: &Path) -> (PathBuf, PathBuf) {
    common::enable(root, "sys/mounts/transit", "transit").await;
    let r = root.post("transit/keys/etcd", json!({})).await;
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    common::put_policy(root, "kms", POLICY).await;
    common::enable(root, "sys/auth/approle", "approle").await;
    let (role_id, secret_id) = common::approle(root, "kms", "kms").await;
    let (r, s) = (dir.join("role-id"), dir.join("secret-id"));
    std::fs::write(&r, role_id).unwrap();
    std::fs::write(&s, secret_id).unwrap();
    (r, s)
}

/// Revokes every token the AppRole mount issued (the plugin's session).
async fn revoke_approle_tokens(root: &Http) {
    let list = root.list("auth/token/accessors").await.json();
    for a in list["data"]["keys"].as_array().unwrap() {
        let info = root
            .post("auth/token/lookup-accessor", json!({"accessor": a}))
            .await
            .json();
        if info["data"]["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("auth/approle/"))
        {
            let r = root
                .post("auth/token/revoke-accessor", json!({"accessor": a}))
                .await;
            assert_eq!(r.status, 204, "{}", r.text);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_apiserver_calls_over_the_socket_with_approle() {
    let dir = tempfile::tempdir().unwrap();
    let Some(grpc) = GrpcClient::new(dir.path()) else {
        return;
    };
    let (coffer, server) = Coffer::start(dir.path()).await;
    let root = coffer.root();
    let (role_id, secret_id) = prepare(&root, dir.path()).await;
    let plugin = start_plugin(
        &coffer.addr,
        &dir.path().join("run/kms.sock"),
        &[
            "--approle-role-id-file",
            role_id.to_str().unwrap(),
            "--approle-secret-id-file",
            secret_id.to_str().unwrap(),
        ],
    );
    let sock = &plugin.socket;
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(sock).unwrap().permissions().mode() & 0o777,
        0o600,
        "only the owner may talk to the plugin"
    );

    let status = grpc.call(sock, &["status"]);
    assert_eq!(
        status,
        json!({"version": "v2", "healthz": "ok", "key_id": "coffer:transit/keys/etcd:v1"})
    );
    let seed = [7u8; 32];
    let e1 = grpc.call(sock, &["encrypt", &b64(&seed)]);
    let e2 = grpc.call(sock, &["encrypt", &b64(&seed)]);
    assert_eq!(e1["key_id"], status["key_id"], "Encrypt and Status agree");
    assert_ne!(
        e1["ciphertext_b64"], e2["ciphertext_b64"],
        "each encryption is distinct"
    );
    let ct1 = base64::engine::general_purpose::STANDARD
        .decode(e1["ciphertext_b64"].as_str().unwrap())
        .unwrap();
    assert!(ct1.starts_with(b"vault:v1:") && ct1.len() < 1024);
    let d = grpc.decrypt(sock, &e1);
    assert_eq!(d["plaintext_b64"], b64(&seed));

    // A rotation shows up as a new key_id; old data still decrypts.
    assert_eq!(
        root.post("transit/keys/etcd/rotate", json!({}))
            .await
            .status
            / 100,
        2
    );
    let status = grpc.call(sock, &["status"]);
    assert_eq!(status["key_id"], "coffer:transit/keys/etcd:v2");
    let e3 = grpc.call(sock, &["encrypt", &b64(&seed)]);
    assert_eq!(e3["key_id"], "coffer:transit/keys/etcd:v2");
    let d = grpc.decrypt(sock, &e1);
    assert_eq!(d["plaintext_b64"], b64(&seed));

    // Bad input: gRPC's INVALID_ARGUMENT, with the reason.
    let bad = grpc.call(sock, &["decrypt", &b64(b"not a ciphertext"), ""]);
    assert_eq!(bad["code"], "INVALID_ARGUMENT", "{bad}");
    let empty = grpc.call(sock, &["encrypt", ""]);
    assert_eq!(empty["code"], "INVALID_ARGUMENT", "{empty}");
    let tampered = {
        let mut ct = ct1.clone();
        let n = ct.len() - 3;
        ct[n] ^= 1;
        grpc.call(sock, &["decrypt", &b64(&ct), ""])
    };
    assert_ne!(
        tampered.get("code"),
        None,
        "a changed ciphertext is refused: {tampered}"
    );

    // The plugin's token is revoked: it logs in again by itself.
    revoke_approle_tokens(&root).await;
    let again = grpc.call(sock, &["encrypt", &b64(&seed)]);
    assert_eq!(again["key_id"], "coffer:transit/keys/etcd:v2", "{again}");

    // coffer goes away: Status is unhealthy, Decrypt fails cleanly.
    server.stop();
    let down = grpc.call(sock, &["status"]);
    assert_eq!(down["version"], "v2");
    assert_ne!(down["healthz"], "ok");
    assert!(
        down["healthz"].as_str().unwrap().contains("coffer"),
        "{down}"
    );
    assert_eq!(
        down["key_id"], "coffer:transit/keys/etcd:v2",
        "the last key_id is kept"
    );
    let failed = grpc.call(
        sock,
        &["decrypt", e3["ciphertext_b64"].as_str().unwrap(), ""],
    );
    assert_eq!(failed["code"], "UNAVAILABLE", "{failed}");

    // ...and comes back: healthy again without a restart of the plugin.
    let _server = coffer.restart().await;
    let up = grpc.call(sock, &["status"]);
    assert_eq!(up["healthz"], "ok", "{up}");
    let d = grpc.decrypt(sock, &e3);
    assert_eq!(d["plaintext_b64"], b64(&seed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_is_read_again_when_it_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let Some(grpc) = GrpcClient::new(dir.path()) else {
        return;
    };
    let (coffer, _server) = Coffer::start(dir.path()).await;
    let root = coffer.root();
    prepare(&root, dir.path()).await;
    let token = |root: Http| async move {
        root.post(
            "auth/token/create",
            json!({"policies": ["kms"], "ttl": "1h"}),
        )
        .await
        .json()["auth"]["client_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let file = dir.path().join("token");
    let first = token(root.clone()).await;
    std::fs::write(&file, format!("{first}\n")).unwrap();
    let plugin = start_plugin(
        &coffer.addr,
        &dir.path().join("kms.sock"),
        &["--token-file", file.to_str().unwrap()],
    );
    let status = grpc.call(&plugin.socket, &["status"]);
    assert_eq!(status["healthz"], "ok", "{status}");
    // The node agent writes a new token and the old one is revoked.
    let second = token(root.clone()).await;
    let tmp = dir.path().join("token.tmp");
    std::fs::write(&tmp, &second).unwrap();
    std::fs::rename(&tmp, &file).unwrap();
    assert_eq!(
        root.post("auth/token/revoke", json!({"token": first}))
            .await
            .status,
        204
    );
    let e = grpc.call(&plugin.socket, &["encrypt", &b64(&[1u8; 32])]);
    assert_eq!(e["key_id"], "coffer:transit/keys/etcd:v1", "{e}");
    // A plugin with no way to log in says so.
    let out = Command::new(common::server_binary())
        .args([
            "kms-plugin",
            "--key",
            "transit/keys/etcd",
            "--address",
            &coffer.addr,
        ])
        .env_remove("VAULT_TOKEN")
        .env_remove("COFFER_TOKEN")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs a token"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
