//! Static-key auto-unseal, TLS, and configuration errors from the real binary.

mod common;

use std::process::Command;

use common::{Server, Setup, TestTls};
use serde_json::json;

const KEY_A: &str = "0001020304050607080910111213141516171819202122232425262728293031";
const KEY_B: &str = "3130292827262524232221201918171615141312111009080706050403020100";

fn static_setup() -> Setup {
    Setup::embedded_with("seal \"static\" {\n  key_env = \"COFFER_TEST_SEAL_KEY\"\n}")
}

#[tokio::test]
async fn static_seal_unseals_itself_and_refuses_a_wrong_key() {
    let setup = static_setup();
    let s = Server::with_config(&setup.config, &[("COFFER_TEST_SEAL_KEY", KEY_A)]);
    let anon = s.http(None);
    let st = anon.get("sys/seal-status").await.json();
    assert_eq!(
        (st["type"].clone(), st["initialized"].clone()),
        (json!("static"), json!(false))
    );
    let r = anon.put("sys/init", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let init = r.json();
    assert_eq!(init["keys"], json!([]));
    let root = init["root_token"].as_str().unwrap().to_owned();
    assert_eq!(
        anon.get("sys/health").await.status,
        200,
        "unsealed right after init"
    );
    let r = anon.put("sys/unseal", json!({"key": KEY_A})).await;
    assert_eq!(r.status, 200, "already unsealed: status only");
    let h = s.http(Some(&root));
    h.post("sys/mounts/kv", json!({"type": "kv"})).await;
    h.post("kv/a", json!({"v": 1})).await;
    s.stop();

    let s = Server::with_config(&setup.config, &[("COFFER_TEST_SEAL_KEY", KEY_A)]);
    assert_eq!(
        s.http(None).get("sys/health").await.status,
        200,
        "auto-unsealed at start"
    );
    assert_eq!(s.http(Some(&root)).get("kv/a").await.json()["data"]["v"], 1);
    s.stop();

    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["server", "--config", setup.config.to_str().unwrap()])
        .env("COFFER_TEST_SEAL_KEY", KEY_B)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not decrypt"), "{err}");
}

#[test]
fn config_errors_name_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "storage \"file\" {\n  path = \"x\"\n  paht = \"y\"\n}\n",
            "line 3",
            "unknown key \"paht\"",
        ),
        (
            "listener \"tcp\" {\n  address = \"127.0.0.1:0\"\n}\n",
            "line 1",
            "tls_cert_file",
        ),
        ("seal \"static\" {\n}\n", "line 1", "key_file or key_env"),
        (
            "seal \"static\" {\n  key_env = \"COFFER_NOPE_UNSET\"\n}\nstorage \"inmem\" {}\nlistener \"tcp\" {\n address = \"127.0.0.1:0\"\n tls_disable = true\n}\n",
            "",
            "COFFER_NOPE_UNSET is not set",
        ),
    ];
    for (i, (src, line, needle)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.hcl"));
        std::fs::write(&path, src).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
            .args(["server", "--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "case {i} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(line) && err.contains(needle),
            "case {i}: {err}"
        );
    }
}

#[tokio::test]
async fn tls_listener_serves_https() {
    let dir = tempfile::tempdir().unwrap();
    let tls = TestTls::make(dir.path(), "IP:127.0.0.1");
    let config = dir.path().join("tls.hcl");
    std::fs::write(
        &config,
        format!(
            "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n address = \"127.0.0.1:0\"\n tls_cert_file = \"{}\"\n tls_key_file = \"{}\"\n}}\n",
            tls.cert, tls.key
        ),
    )
    .unwrap();
    let s = Server::with_config(&config, &[]);
    assert!(s.addr.starts_with("https://"), "{}", s.addr);
    assert_eq!(
        tls.http(&s.addr, None).get("sys/seal-status").await.status,
        200
    );
    // Plain HTTP to the TLS port does not get an answer.
    let plain = reqwest::get(format!(
        "{}/v1/sys/seal-status",
        s.addr.replace("https", "http")
    ))
    .await;
    assert!(plain.is_err() || plain.unwrap().status().as_u16() >= 400);
}

/// `VAULT_CACERT` naming the server's own self-signed certificate (what
/// `openssl req -x509` makes: marked as a CA) works as it does for the Go
/// client; a certificate for another name is still refused.
#[tokio::test]
async fn the_cli_trusts_a_self_signed_server_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    common::self_signed(&cert, &key, "IP:127.0.0.1");
    common::self_signed(
        &dir.path().join("o.pem"),
        &dir.path().join("ok.pem"),
        "DNS:other.test",
    );
    let config = dir.path().join("tls.hcl");
    std::fs::write(
        &config,
        format!("storage \"inmem\" {{}}\nlistener \"tcp\" {{\n address = \"127.0.0.1:0\"\n tls_cert_file = \"{cert_s}\"\n tls_key_file = \"{key_s}\"\n}}\n"),
    )
    .unwrap();
    let s = Server::with_config(&config, &[]);
    let status = |ca: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
            .args(["status", "-format=json"])
            .env("VAULT_ADDR", &s.addr)
            .env("VAULT_CACERT", ca)
            .env_remove("COFFER_CACERT")
            .env_remove("COFFER_ADDR")
            .output()
            .unwrap()
    };
    let ok = status(&cert);
    // Sealed and uninitialised: exit 2 with the status printed, not a TLS error.
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        out.contains("\"sealed\": true"),
        "{out}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let other = status(&dir.path().join("o.pem"));
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(err.contains("certificate"), "{err}");
}

/// A server without a configuration file listens where `--address` says
/// (its data in `./coffer-data`), and dev mode on configured storage says
/// that it persists.
#[tokio::test]
async fn address_flag_and_dev_mode_on_configured_storage() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(common::server_binary());
    cmd.args(["server", "--address", "127.0.0.1:0"])
        .current_dir(dir.path());
    let s = Server::spawn_command(cmd);
    assert_eq!(s.http(None).get("sys/seal-status").await.status, 200);
    assert!(dir.path().join("coffer-data").is_dir());
    drop(s);

    let config = dir.path().join("file.hcl");
    std::fs::write(
        &config,
        format!(
            "storage \"file\" {{\n path = \"{}\"\n}}\n",
            dir.path().join("dev-data").display()
        ),
    )
    .unwrap();
    let run_dev = || {
        std::process::Command::new(common::server_binary())
            .args([
                "server",
                "--dev",
                "--dev-listen-address",
                "127.0.0.1:0",
                "--config",
            ])
            .arg(&config)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = run_dev();
    let mut banner = String::new();
    {
        use std::io::BufRead as _;
        let out = first.stdout.take().unwrap();
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            banner.push_str(&line);
            if line.starts_with("Listening on") {
                break;
            }
        }
    }
    assert!(banner.contains("it persists"), "{banner}");
    let _ = first.kill();
    let _ = first.wait();
    let second = run_dev().wait_with_output().unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("already holds an initialised coffer"), "{err}");
}
