//! The `coffer` CLI against a real server, with Vault's flag style.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Server, Setup};
use serde_json::Value;

fn coffer(addr: &str, token: Option<&str>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffer"));
    cmd.args(args)
        .env_remove("COFFER_ADDR")
        .env_remove("COFFER_TOKEN")
        .env("VAULT_ADDR", addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match token {
        Some(t) => cmd.env("VAULT_TOKEN", t),
        None => cmd.env_remove("VAULT_TOKEN"),
    };
    let mut child = cmd.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn read_write_list_delete_with_files_and_stdin() {
    let s = Server::dev_kv_v1();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw.txt");
    std::fs::write(&pw, "from-a-file").unwrap();
    let at_file = format!("password=@{}", pw.display());
    let w = coffer(
        &s.addr,
        Some("root"),
        &["write", "secret/cli", &at_file, "user=app", "pin=-"],
        Some("1234\n"),
    );
    assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
    assert!(stdout(&w).contains("Success! Data written to: secret/cli"));

    let r = coffer(
        &s.addr,
        Some("root"),
        &["read", "-field=password", "secret/cli"],
        None,
    );
    assert_eq!(stdout(&r), "from-a-file");
    let r = coffer(
        &s.addr,
        Some("root"),
        &["read", "-field=pin", "secret/cli"],
        None,
    );
    assert_eq!(stdout(&r), "1234");
    let r = coffer(
        &s.addr,
        Some("root"),
        &["read", "-format=json", "secret/cli"],
        None,
    );
    let v: Value = serde_json::from_str(&stdout(&r)).unwrap();
    assert_eq!(v["data"]["user"], "app");
    let r = coffer(&s.addr, Some("root"), &["read", "secret/cli"], None);
    let table = stdout(&r);
    assert!(
        table.contains("refresh_interval    768h") && table.contains("user"),
        "{table}"
    );

    let l = coffer(&s.addr, Some("root"), &["list", "secret/"], None);
    assert_eq!(stdout(&l), "Keys\n----\ncli\n");
    let d = coffer(&s.addr, Some("root"), &["delete", "secret/cli"], None);
    assert!(d.status.success());
    let missing = coffer(&s.addr, Some("root"), &["read", "secret/cli"], None);
    assert_eq!(missing.status.code(), Some(2));
    let denied = coffer(&s.addr, Some("bad"), &["read", "secret/cli"], None);
    assert_eq!(denied.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&denied.stderr).contains("permission denied"));
    let usage = coffer(
        &s.addr,
        Some("root"),
        &["write", "secret/x", "novalue"],
        None,
    );
    assert_eq!(usage.status.code(), Some(1));
}

#[tokio::test]
async fn operator_init_unseal_rotate_seal_and_status_codes() {
    let setup = Setup::embedded();
    let s = Server::with_config(&setup.config, &[]);
    let st = coffer(&s.addr, None, &["status"], None);
    assert_eq!(
        st.status.code(),
        Some(2),
        "not initialised counts as sealed"
    );

    let init = coffer(
        &s.addr,
        None,
        &[
            "operator",
            "init",
            "-key-shares=3",
            "-key-threshold=2",
            "-format=json",
        ],
        None,
    );
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let v: Value = serde_json::from_str(&stdout(&init)).unwrap();
    let keys: Vec<String> = v["keys_base64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().into())
        .collect();
    let root = v["root_token"].as_str().unwrap().to_owned();

    let u1 = coffer(&s.addr, None, &["operator", "unseal", &keys[0]], None);
    assert!(
        stdout(&u1).contains("Unseal Progress    1/2"),
        "{}",
        stdout(&u1)
    );
    // The second share comes from stdin so it never appears in a process list.
    let u2 = coffer(
        &s.addr,
        None,
        &["operator", "unseal"],
        Some(&format!("{}\n", keys[1])),
    );
    assert!(u2.status.success());
    assert_eq!(
        coffer(&s.addr, None, &["status"], None).status.code(),
        Some(0)
    );

    let rot = coffer(&s.addr, Some(&root), &["operator", "rotate"], None);
    assert!(
        stdout(&rot).contains("Key Term            2"),
        "{}",
        stdout(&rot)
    );
    let ks = coffer(
        &s.addr,
        Some(&root),
        &["operator", "key-status", "-format=json"],
        None,
    );
    let v: Value = serde_json::from_str(&stdout(&ks)).unwrap();
    assert_eq!(v["data"]["term"], 2);

    let seal = coffer(&s.addr, Some(&root), &["operator", "seal"], None);
    assert!(seal.status.success());
    assert_eq!(
        coffer(&s.addr, None, &["status"], None).status.code(),
        Some(2)
    );
}

fn coffer_home(
    addr: &str,
    home: &std::path::Path,
    token: Option<&str>,
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffer"));
    cmd.args(args)
        .env_remove("COFFER_ADDR")
        .env_remove("COFFER_TOKEN")
        .env_remove("VAULT_TOKEN")
        .env_remove("COFFER_TOKEN_FILE")
        .env("HOME", home)
        .env("VAULT_ADDR", addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        cmd.env("VAULT_TOKEN", t);
    }
    let mut child = cmd.spawn().unwrap();
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn login_token_policy_and_auth_commands() {
    let s = Server::dev_kv_v1();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let root = |args: &[&str]| coffer_home(&s.addr, h, Some("root"), args, None);
    let pol = h.join("reader.hcl");
    std::fs::write(
        &pol,
        "path \"secret/*\" {\n  capabilities = [\"read\"]\n}\n",
    )
    .unwrap();
    let w = root(&["policy", "write", "reader", pol.to_str().unwrap()]);
    assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
    assert_eq!(
        stdout(&root(&["policy", "list"])),
        "default\nreader\nroot\n"
    );
    assert!(stdout(&root(&["policy", "read", "reader"])).contains("capabilities = [\"read\"]"));
    assert!(root(&["auth", "enable", "userpass"]).status.success());
    assert!(stdout(&root(&["auth", "list"])).contains("userpass/"));
    assert!(
        root(&[
            "write",
            "auth/userpass/users/eve",
            "password=pw-eve",
            "token_policies=reader"
        ])
        .status
        .success()
    );
    assert!(root(&["write", "secret/x", "v=1"]).status.success());

    // Login stores the token 0600 and later commands use it.
    let l = coffer_home(
        &s.addr,
        h,
        None,
        &["login", "-method=userpass", "username=eve", "password=-"],
        Some("pw-eve\n"),
    );
    assert!(l.status.success(), "{}", String::from_utf8_lossy(&l.stderr));
    let file = h.join(".coffer-token");
    let meta = std::fs::metadata(&file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let r = coffer_home(&s.addr, h, None, &["read", "-field=v", "secret/x"], None);
    assert_eq!(stdout(&r), "1");
    let denied = coffer_home(&s.addr, h, None, &["write", "secret/x", "v=2"], None);
    assert_eq!(denied.status.code(), Some(2));

    let t = root(&[
        "token",
        "create",
        "-policy=reader",
        "-ttl=1h",
        "-format=json",
    ]);
    let v: Value = serde_json::from_str(&stdout(&t)).unwrap();
    let child = v["auth"]["client_token"].as_str().unwrap().to_owned();
    assert_eq!(v["auth"]["lease_duration"], 3600);
    let look = coffer_home(
        &s.addr,
        h,
        Some(&child),
        &["token", "lookup", "-format=json"],
        None,
    );
    let lv: Value = serde_json::from_str(&stdout(&look)).unwrap();
    assert_eq!(
        lv["data"]["policies"],
        serde_json::json!(["default", "reader"])
    );
    assert!(root(&["token", "revoke", &child]).status.success());
    let gone = coffer_home(&s.addr, h, Some(&child), &["token", "lookup"], None);
    assert_eq!(gone.status.code(), Some(2));
    assert!(root(&["auth", "disable", "userpass"]).status.success());
    assert!(root(&["policy", "delete", "reader"]).status.success());
}

#[test]
fn policy_fmt_rewrites_in_place_and_refuses_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.hcl");
    std::fs::write(
        &file,
        "# keep me\npath \"a/*\"{\ncapabilities=[\"read\"]\n}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["policy", "fmt", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# keep me\npath \"a/*\" {\n  capabilities = [\"read\"]\n}\n"
    );
    let bad = dir.path().join("bad.hcl");
    std::fs::write(&bad, "path \"a\" { capabilities = [\"fly\"] }\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["policy", "fmt", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown capability"));
    assert_eq!(
        std::fs::read_to_string(&bad).unwrap(),
        "path \"a\" { capabilities = [\"fly\"] }\n",
        "left unchanged"
    );
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(o)
}

/// `coffer kv` against dev mode's KV v2 `secret/`, then a v1 mount upgraded
/// with `kv enable-versioning`.
#[tokio::test]
async fn kv_commands_cover_versions_metadata_and_upgrade() {
    let s = Server::dev();
    let kv = |args: &[&str], stdin: Option<&str>| {
        let mut all = vec!["kv"];
        all.extend_from_slice(args);
        coffer(&s.addr, Some("root"), &all, stdin)
    };
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw.txt");
    std::fs::write(&pw, "file-secret").unwrap();
    let at_file = format!("password=@{}", pw.display());

    let put = ok(&kv(
        &["put", "secret/app", &at_file, "pin=-"],
        Some("1234\n"),
    ));
    assert!(put.contains("secret/data/app"), "{put}");
    assert!(put.contains("version            1"), "{put}");
    // Stale check-and-set fails with Vault's exit code 2.
    let stale = kv(&["put", "-cas=0", "secret/app", "x=y"], None);
    assert_eq!(stale.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&stale.stderr).contains("check-and-set"));
    ok(&kv(
        &["put", "-mount=secret", "-cas=1", "app", "password=two"],
        None,
    ));
    ok(&kv(&["patch", "secret/app", "pin=9999"], None));
    ok(&kv(
        &[
            "patch",
            "-method=rw",
            "-remove-data=pin",
            "secret/app",
            "note=rw",
        ],
        None,
    ));

    assert_eq!(
        ok(&kv(&["get", "-field=password", "secret/app"], None)),
        "two"
    );
    assert_eq!(
        ok(&kv(
            &["get", "-version=1", "-field=password", "secret/app"],
            None
        )),
        "file-secret"
    );
    assert_eq!(
        ok(&kv(
            &["get", "-version=1", "-field=pin", "secret/app"],
            None
        )),
        "1234"
    );
    let latest: Value =
        serde_json::from_str(&ok(&kv(&["get", "-format=json", "secret/app"], None))).unwrap();
    assert_eq!(
        latest["data"]["data"],
        serde_json::json!({"password": "two", "note": "rw"})
    );
    assert_eq!(latest["data"]["metadata"]["version"], 4);
    let yaml = ok(&kv(&["get", "-format=yaml", "secret/app"], None));
    assert!(yaml.contains("password: two"), "{yaml}");
    let table = ok(&kv(&["get", "secret/app"], None));
    assert!(
        table.contains("Data") && table.contains("note        rw"),
        "{table}"
    );

    ok(&kv(&["delete", "secret/app"], None));
    // As in Vault's CLI: the metadata is shown and the command succeeds.
    let deleted = kv(&["get", "secret/app"], None);
    assert_eq!(deleted.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&deleted.stderr).contains("is deleted"));
    ok(&kv(&["undelete", "-versions=4", "secret/app"], None));
    assert_eq!(ok(&kv(&["get", "-field=note", "secret/app"], None)), "rw");
    ok(&kv(&["destroy", "-versions=1", "secret/app"], None));
    ok(&kv(&["delete", "-versions=2", "secret/app"], None));
    let no_versions = kv(&["undelete", "secret/app"], None);
    assert_eq!(no_versions.status.code(), Some(1));

    ok(&kv(
        &[
            "metadata",
            "put",
            "-max-versions=3",
            "-custom-metadata=owner=web",
            "secret/app",
        ],
        None,
    ));
    ok(&kv(
        &["metadata", "patch", "-cas-required", "secret/app"],
        None,
    ));
    let meta: Value = serde_json::from_str(&ok(&kv(
        &["metadata", "get", "-format=json", "secret/app"],
        None,
    )))
    .unwrap();
    assert_eq!(meta["data"]["max_versions"], 3);
    assert_eq!(meta["data"]["cas_required"], true);
    assert_eq!(meta["data"]["custom_metadata"]["owner"], "web");
    assert_eq!(meta["data"]["versions"]["1"]["destroyed"], true);
    let meta_table = ok(&kv(&["metadata", "get", "secret/app"], None));
    assert!(meta_table.contains("Version 4"), "{meta_table}");

    // Rollback writes version 3's data as version 5 (check-and-set on 4).
    ok(&kv(&["rollback", "-version=3", "secret/app"], None));
    let back: Value =
        serde_json::from_str(&ok(&kv(&["get", "-format=json", "secret/app"], None))).unwrap();
    assert_eq!(back["data"]["metadata"]["version"], 5);
    assert_eq!(back["data"]["data"]["pin"], "9999");
    let gone = kv(&["rollback", "-version=1", "secret/app"], None);
    assert_eq!(
        gone.status.code(),
        Some(1),
        "version 1 trimmed by max_versions=3"
    );

    ok(&kv(&["put", "secret/dir/a", "-"], Some(r#"{"k":"v"}"#)));
    let listed = ok(&kv(&["list", "secret/"], None));
    assert!(
        listed.contains("app") && listed.contains("dir/"),
        "{listed}"
    );
    assert_eq!(
        ok(&kv(&["list", "-mount=secret", "-format=json", "dir"], None)).trim(),
        "[\n  \"a\"\n]"
    );
    ok(&kv(&["metadata", "delete", "secret/dir/a"], None));
    assert_eq!(kv(&["get", "secret/dir/a"], None).status.code(), Some(2));

    // A v1 mount: put/get/list work; v2-only commands say so; then upgrade it.
    let h = s.http(Some("root"));
    assert_eq!(
        h.post("sys/mounts/old", serde_json::json!({"type": "kv"}))
            .await
            .status,
        204
    );
    assert!(ok(&kv(&["put", "old/a", "k=v"], None)).contains("Success! Data written to: old/a"));
    assert_eq!(ok(&kv(&["get", "-field=k", "old/a"], None)), "v");
    let patch_v1 = kv(&["patch", "old/a", "k=w"], None);
    assert_eq!(patch_v1.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&patch_v1.stderr).contains("enable-versioning"));
    let up = kv(&["enable-versioning", "old"], None);
    ok(&up);
    assert!(String::from_utf8_lossy(&up.stderr).contains("Upgraded mount"));
    let after: Value =
        serde_json::from_str(&ok(&kv(&["get", "-format=json", "old/a"], None))).unwrap();
    assert_eq!(after["data"]["data"]["k"], "v");
    assert_eq!(after["data"]["metadata"]["version"], 1);
}

#[tokio::test]
async fn transit_commands_and_envelope_round_trip() {
    let s = Server::dev();
    let run = |args: &[&str], stdin: Option<&str>| coffer(&s.addr, Some("root"), args, stdin);
    ok(&run(&["write", "sys/mounts/transit", "type=transit"], None));
    let created = ok(&run(&["transit", "create-key", "app"], None));
    assert!(created.contains("Success"), "{created}");
    let enc = ok(&run(
        &["transit", "encrypt", "-format=json", "app", "-"],
        Some("db password"),
    ));
    let ct = serde_json::from_str::<serde_json::Value>(&enc).unwrap()["data"]["ciphertext"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(ct.starts_with("vault:v1:"), "{ct}");
    assert_eq!(
        ok(&run(&["transit", "decrypt", "app", &ct], None)),
        "db password"
    );
    ok(&run(&["transit", "rotate", "app"], None));
    let rw = ok(&run(&["transit", "rewrap", "app", &ct], None));
    assert!(rw.contains("vault:v2:"), "{rw}");
    let dk = ok(&run(&["transit", "datakey", "-plaintext", "app"], None));
    assert!(dk.contains("plaintext") && dk.contains("vault:v2:"), "{dk}");
    // A derived key needs the context on both sides.
    ok(&run(
        &["transit", "create-key", "-derived", "per-user"],
        None,
    ));
    let enc = ok(&run(
        &[
            "transit",
            "encrypt",
            "-format=json",
            "-context=alice",
            "per-user",
            "x",
        ],
        None,
    ));
    let ct = serde_json::from_str::<serde_json::Value>(&enc).unwrap()["data"]["ciphertext"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        ok(&run(
            &["transit", "decrypt", "-context=alice", "per-user", &ct],
            None
        )),
        "x"
    );
    let wrong = run(
        &["transit", "decrypt", "-context=bob", "per-user", &ct],
        None,
    );
    assert_eq!(wrong.status.code(), Some(2));

    // Envelope: only the wrapped data key sits beside the local ciphertext.
    let dir = tempfile::tempdir().unwrap();
    let (plain, sealed, back) = (
        dir.path().join("in.bin"),
        dir.path().join("in.env"),
        dir.path().join("out.bin"),
    );
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&plain, &data).unwrap();
    ok(&run(
        &[
            "transit",
            "envelope",
            "encrypt",
            "-key=app",
            "-o",
            sealed.to_str().unwrap(),
            plain.to_str().unwrap(),
        ],
        None,
    ));
    let env: serde_json::Value = serde_json::from_slice(&std::fs::read(&sealed).unwrap()).unwrap();
    assert!(
        env["wrapped_key"]
            .as_str()
            .unwrap()
            .starts_with("vault:v2:"),
        "{env}"
    );
    assert_eq!(env["key"], "app");
    ok(&run(
        &[
            "transit",
            "envelope",
            "decrypt",
            "-o",
            back.to_str().unwrap(),
            sealed.to_str().unwrap(),
        ],
        None,
    ));
    assert_eq!(std::fs::read(&back).unwrap(), data);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&back).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o600,
            "decrypted output is readable by its owner only"
        );
    }
    // A changed envelope does not open.
    let mut bad = env.clone();
    let mut ctb = B64.decode(env["ciphertext"].as_str().unwrap()).unwrap();
    ctb[20] ^= 1;
    bad["ciphertext"] = serde_json::json!(B64.encode(ctb));
    std::fs::write(&sealed, bad.to_string()).unwrap();
    let tampered = run(
        &["transit", "envelope", "decrypt", sealed.to_str().unwrap()],
        None,
    );
    assert_ne!(tampered.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&tampered.stderr).contains("does not decrypt"));
    let usage = run(
        &["transit", "envelope", "encrypt", plain.to_str().unwrap()],
        None,
    );
    assert_eq!(
        usage.status.code(),
        Some(1),
        "missing -key is a usage error"
    );
}

/// The README's database lines: a leased read shows its lease, as Vault's CLI does.
#[tokio::test]
async fn database_tour_from_the_readme() {
    if !common::postgres_available().await {
        return;
    }
    let s = Server::dev();
    let ok = |o: Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        stdout(&o)
    };
    ok(coffer(
        &s.addr,
        Some("root"),
        &["write", "sys/mounts/database", "type=database"],
        None,
    ));
    ok(coffer(
        &s.addr,
        Some("root"),
        &[
            "write",
            "database/config/pg",
            "plugin_name=postgresql-database-plugin",
            "allowed_roles=app",
            "connection_url=postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable",
            "username=postgres",
            "password=-",
        ],
        Some("unused-with-trust-auth"),
    ));
    ok(coffer(
        &s.addr,
        Some("root"),
        &[
            "write",
            "database/roles/app",
            "db_name=pg",
            "default_ttl=1h",
            "creation_statements=CREATE ROLE \"{{name}}\" LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
        ],
        None,
    ));
    let out = ok(coffer(
        &s.addr,
        Some("root"),
        &["read", "database/creds/app"],
        None,
    ));
    for row in [
        "lease_id",
        "database/creds/app/",
        "lease_duration",
        "1h",
        "lease_renewable",
        "true",
        "username",
        "v-root-app-",
    ] {
        assert!(out.contains(row), "{row} missing in:\n{out}");
    }
    let lease = out
        .lines()
        .find_map(|l| l.strip_prefix("lease_id"))
        .map(|v| v.trim().to_owned())
        .unwrap();
    let r = coffer(
        &s.addr,
        Some("root"),
        &["write", "sys/leases/revoke", &format!("lease_id={lease}")],
        None,
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let status = ok(coffer(&s.addr, Some("root"), &["rotation", "status"], None));
    assert!(status.contains("Nothing rotates"), "{status}");
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The commands a Vault user types that coffer lacked: `secrets`, `lease`,
/// `unwrap`, `token capabilities`, `path-help`, `print token`, `version`,
/// `completion`.
#[tokio::test]
async fn vault_users_everyday_commands() {
    let s = Server::dev();
    let run = |args: &[&str]| coffer(&s.addr, Some("root"), args, None);
    assert!(
        ok(&run(&["secrets", "enable", "-path=kv1", "kv"]))
            .contains("Enabled the kv secrets engine at: kv1/")
    );
    ok(&run(&[
        "secrets",
        "enable",
        "-version=2",
        "-path=kv2",
        "-default-lease-ttl=1h",
        "kv",
    ]));
    let list = ok(&run(&["secrets", "list"]));
    assert!(
        list.starts_with("Path ") && list.contains("\nkv1/ ") && list.contains("\nkv2/ "),
        "{list}"
    );
    let mounts: Value =
        serde_json::from_str(&ok(&run(&["secrets", "list", "-format=json"]))).unwrap();
    assert_eq!(mounts["data"]["kv2/"]["options"]["version"], "2");
    ok(&run(&["secrets", "tune", "-max-lease-ttl=2h", "kv1/"]));
    ok(&run(&["kv", "put", "kv1/app", "pw=x"]));
    assert!(
        ok(&run(&["secrets", "move", "kv1/", "kv1moved/"]))
            .contains("Finished moving secrets engine kv1/ to kv1moved/")
    );
    assert_eq!(ok(&run(&["kv", "get", "-field=pw", "kv1moved/app"])), "x");
    ok(&run(&["secrets", "disable", "kv1moved"]));

    let t: Value = serde_json::from_str(&ok(&run(&[
        "token",
        "create",
        "-format=json",
        "-policy=default",
    ])))
    .unwrap();
    let token = t["auth"]["client_token"].as_str().unwrap();
    assert_eq!(
        ok(&run(&["token", "capabilities", token, "secret/data/x"])),
        "deny\n"
    );
    assert_eq!(
        ok(&run(&["token", "capabilities", "secret/data/x"])),
        "root\n"
    );
    assert!(ok(&run(&["path-help", "secret/data/x"])).starts_with("Request:        data/x"));
    assert_eq!(ok(&run(&["print", "token"])), "root\n");
    assert!(ok(&run(&["version"])).starts_with("coffer v"));
    assert!(ok(&run(&["completion", "bash"])).contains("coffer"));

    // TTLs read as durations in tables, as Vault's CLI shows them.
    ok(&run(&["auth", "enable", "approle"]));
    ok(&run(&[
        "write",
        "auth/approle/role/r",
        "secret_id_ttl=10m",
        "token_ttl=1h",
    ]));
    let role = ok(&run(&["read", "auth/approle/role/r"]));
    assert!(
        role.lines()
            .any(|l| l.split_whitespace().eq(["secret_id_ttl", "10m"])),
        "{role}"
    );
    assert!(
        role.lines()
            .any(|l| l.split_whitespace().eq(["secret_id_num_uses", "0"])),
        "{role}"
    );

    // -wrap-ttl: the answer comes wrapped; -field=wrapping_token keeps the token.
    let wt = ok(&run(&[
        "write",
        "-f",
        "-wrap-ttl=60s",
        "-field=wrapping_token",
        "auth/approle/role/r/secret-id",
    ]));
    assert!(wt.starts_with("cvs."), "{wt}");
    assert_eq!(ok(&run(&["unwrap", "-field=secret_id_ttl", &wt])), "600");

    // unwrap, once.
    let h = s.http(Some("root"));
    let wrapped = h
        .send(
            "POST",
            "sys/wrapping/wrap",
            Some(br#"{"k":"v"}"#.to_vec()),
            &[("X-Vault-Wrap-TTL", "60")],
        )
        .await
        .json();
    let wt = wrapped["wrap_info"]["token"].as_str().unwrap();
    assert_eq!(ok(&run(&["unwrap", "-field=k", wt])), "v");
    assert_eq!(run(&["unwrap", wt]).status.code(), Some(2));

    // lease lookup/renew/revoke on a lease that does not exist: the server's word, exit 2.
    let r = run(&["lease", "lookup", "nothing/here/x"]);
    assert_eq!(r.status.code(), Some(2));
    assert!(stderr(&r).contains("invalid lease"), "{}", stderr(&r));
    assert_eq!(
        run(&["lease", "revoke", "-force", "x"]).status.code(),
        Some(1)
    );
}

/// Mistakes get a message that says what to do, and Vault's exit codes.
#[tokio::test]
async fn mistakes_say_what_to_do() {
    let s = Server::dev();
    // Usage errors exit 1, as docs/cli.md and Vault's CLI say.
    assert_eq!(
        coffer(&s.addr, Some("root"), &["kv", "frobnicate"], None)
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        coffer(&s.addr, Some("root"), &["--help"], None)
            .status
            .code(),
        Some(0)
    );
    let r = coffer("127.0.0.1:8200", Some("root"), &["status"], None);
    assert!(
        stderr(&r).contains("has no http:// or https:// scheme"),
        "{}",
        stderr(&r)
    );
    let port = common::free_port();
    let r = coffer(
        &format!("http://127.0.0.1:{port}"),
        Some("root"),
        &["status"],
        None,
    );
    assert!(
        stderr(&r).contains("is the server running there?"),
        "{}",
        stderr(&r)
    );
    let https = s.addr.replace("http://", "https://");
    let r = coffer(&https, Some("root"), &["status"], None);
    assert!(stderr(&r).contains("does not speak TLS"), "{}", stderr(&r));
    let home = tempfile::tempdir().unwrap();
    let r = coffer_home(&s.addr, home.path(), None, &["kv", "get", "secret/x"], None);
    assert!(
        stderr(&r).contains("no token is set: run `coffer login`"),
        "{}",
        stderr(&r)
    );
    // A login while VAULT_TOKEN is set warns that the variable wins.
    let r = coffer_home(&s.addr, home.path(), Some("root"), &["login", "root"], None);
    assert!(
        stderr(&r).contains("WARNING! VAULT_TOKEN is set"),
        "{}",
        stderr(&r)
    );
    // Dev flags without --dev are refused, not ignored.
    let r = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["server", "--dev-listen-address", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!r.status.success());
    assert!(
        stderr(&r).contains("apply only with --dev"),
        "{}",
        stderr(&r)
    );
}
