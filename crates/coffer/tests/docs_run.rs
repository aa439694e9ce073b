//! The README's tour and docs/getting-started.md, run as written: every
//! `sh` block, top to bottom, in bash with `set -euo pipefail`, so the docs
//! cannot drift from what coffer does. The servers the docs start are
//! started here (on free ports) and the blocks are pointed at them.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Server, postgres_available};

/// The `sh` blocks of a markdown file, in order, and its first `hcl` block.
fn blocks(markdown: &str) -> (String, Option<String>) {
    let (mut sh, mut hcl) = (String::new(), None);
    let mut current: Option<(&str, String)> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```sh") => current = Some(("sh", String::new())),
            (None, l) if l.starts_with("```hcl") => current = Some(("hcl", String::new())),
            (Some(_), "```") => {
                if let Some((kind, text)) = current.take() {
                    if kind == "sh" {
                        sh.push_str(&text);
                    } else if hcl.is_none() {
                        hcl = Some(text);
                    }
                }
            }
            (Some((_, text)), _) => {
                text.push_str(line);
                text.push('\n');
            }
            _ => {}
        }
    }
    (sh, hcl)
}

/// Runs a document's commands against a dev server (and, when the document
/// starts one from its configuration, that server too).
fn run_doc(doc: &str, dev: &Server, dir: &Path) {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(doc),
    )
    .expect("read the document");
    let (sh, hcl) = blocks(&text);
    let mut script = String::from("set -euo pipefail\n");
    assert!(
        sh.matches("coffer ").count() >= 10,
        "{doc}: too few commands found:\n{sh}"
    );
    let mut _configured = None;
    for line in sh.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("cargo ") || trimmed.starts_with("coffer server --dev") {
            continue;
        }
        if trimmed.starts_with("coffer server --config") {
            let s = start_configured(hcl.as_deref().expect("a config block"), dir);
            script.push_str(&format!(
                "export VAULT_ADDR={} VAULT_CACERT={}\n",
                s.addr,
                dir.join("self.pem").display()
            ));
            _configured = Some(s);
            continue;
        }
        script.push_str(&line.replace("http://127.0.0.1:8200", &dev.addr));
        script.push('\n');
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_coffer"))
        .parent()
        .expect("bin dir");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir)
        .env("PATH", path)
        .env("HOME", dir)
        .env_remove("VAULT_TOKEN")
        .env_remove("COFFER_TOKEN")
        .env_remove("COFFER_ADDR")
        .env_remove("VAULT_CACERT")
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "{doc} failed (exit {:?})\n--- script\n{script}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The document's configuration with its paths and address made local,
/// and a self-signed certificate for its TLS files.
fn start_configured(hcl: &str, dir: &Path) -> Server {
    let (cert, key) = (dir.join("self.pem"), dir.join("self.key"));
    common::self_signed(&cert, &key, "IP:127.0.0.1");
    let config = hcl
        .replace("/var/lib/coffer", &dir.join("data").display().to_string())
        .replace("0.0.0.0:8200", "127.0.0.1:0")
        .replace("/etc/coffer/tls/cert.pem", &cert.display().to_string())
        .replace("/etc/coffer/tls/key.pem", &key.display().to_string());
    let file = dir.join("coffer.hcl");
    std::fs::write(&file, config).expect("write config");
    Server::with_config(&file, &[])
}

#[tokio::test]
async fn the_readme_tour_runs() {
    if !postgres_available().await {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = Server::dev();
    run_doc("README.md", &dev, dir.path());
}

#[tokio::test]
async fn getting_started_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = Server::dev();
    run_doc("docs/getting-started.md", &dev, dir.path());
}
