//! The `coffer` CLI against a real server, with Vault's flag style.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

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
    let s = Server::dev();
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
    assert_eq!(stdout(&r), "from-a-file\n");
    let r = coffer(
        &s.addr,
        Some("root"),
        &["read", "-field=pin", "secret/cli"],
        None,
    );
    assert_eq!(stdout(&r), "1234\n");
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
