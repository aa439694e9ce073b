//! Python's `hvac` client (unmodified, installed from PyPI into a venv under
//! `target/`) drives KV v1 and v2, mounts, policies, tokens, userpass, AppRole and
//! wrapping, transit, the database engine, leases and audit devices against a
//! real server.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Server;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A venv with hvac 2.4.0, made once and reused.
fn venv_python() -> Option<PathBuf> {
    common::pip_venv("hvac-venv", "hvac==2.4.0").map(|v| v.join("bin/python"))
}

/// Runs one hvac script against a fresh dev server; it prints "all checks passed".
async fn run_script(script: &str, env: &[(&str, String)]) {
    let s = Server::dev();
    run_script_on(&s, "root", script, env).await;
}

/// Runs one hvac script against `s` with `token`.
async fn run_script_on(s: &Server, token: &str, script: &str, env: &[(&str, String)]) {
    let Some(python) = venv_python() else { return };
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let out = tokio::task::spawn_blocking({
        let addr = s.addr.clone();
        let token = token.to_owned();
        let script = repo_root().join("tests/hvac").join(script);
        move || {
            Command::new(python)
                .arg(script)
                .args([&addr, &token])
                .envs(env)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "hvac {script} failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

// One test, so two processes never build the venv at the same time.
#[tokio::test]
async fn hvac_drives_the_same_flows_kv_v2_transit_database_and_audit() {
    run_script("flows.py", &[]).await;
    run_script("kv_v2.py", &[]).await;
    run_script("transit.py", &[]).await;
    // Audit devices through the API need a configuration that allows them.
    let setup = common::Setup::embedded_with("audit_api = true\naudit_dir = \"AUDIT_DIR\"");
    let audit_dir = setup.dir.path().join("audit");
    std::fs::create_dir(&audit_dir).unwrap();
    let config = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        config.replace("AUDIT_DIR", audit_dir.to_str().unwrap()),
    )
    .unwrap();
    let s = Server::with_config(&setup.config, &[]);
    let (keys, root) = common::init(&s.http(None), 1, 1).await;
    common::unseal(&s.http(None), &keys).await;
    let env = [("AUDIT_DIR", audit_dir.to_str().unwrap().to_owned())];
    run_script_on(&s, &root, "audit.py", &env).await;
    if let Some(pg) = common::PrivatePostgres::start() {
        let env = [
            ("PG_PORT", pg.port.to_string()),
            ("PG_PASSWORD", pg.password.clone()),
        ];
        run_script("database.py", &env).await;
    }
}
