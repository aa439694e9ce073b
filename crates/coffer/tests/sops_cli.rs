//! `coffer sops encrypt|decrypt` end to end (interop with the real `sops` is
//! tested in `crates/coffer-sops/tests/sops_interop.rs`).

use std::path::Path;
use std::process::Command;

fn coffer(dir: &Path, args: &[&str], keys: Option<&Path>) -> (i32, Vec<u8>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffer"));
    cmd.arg("sops")
        .args(args)
        .current_dir(dir)
        .env_remove("SOPS_AGE_KEY")
        .env("HOME", dir);
    match keys {
        Some(k) => cmd.env("SOPS_AGE_KEY_FILE", k),
        None => cmd.env_remove("SOPS_AGE_KEY_FILE"),
    };
    let out = cmd.output().expect("run coffer");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh age identity in `<name>.txt`: (recipient, keys file).
fn identity(d: &Path, name: &str) -> (String, std::path::PathBuf) {
    let (secret, recipient) = coffer_sops::age_keys::generate();
    let file = d.join(format!("{name}.txt"));
    std::fs::write(&file, format!("{}\n", secret.as_str())).expect("keys");
    (recipient, file)
}

#[test]
fn json_and_binary_files_round_trip_and_tampering_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (secret, recipient) = coffer_sops::age_keys::generate();
    let keys = d.join("keys.txt");
    std::fs::write(&keys, format!("# test key\n{}\n", secret.as_str())).expect("keys");
    std::fs::write(
        d.join("app.json"),
        r#"{"db": {"password": "pw-MARKER", "port": 5432}, "tags": ["a", "b"], "note_unencrypted": "visible"}"#,
    )
    .expect("plain");

    let (code, enc, err) = coffer(d, &["encrypt", "--age", &recipient, "app.json"], None);
    assert_eq!(code, 0, "{err}");
    let enc = String::from_utf8(enc).expect("utf-8");
    assert!(
        !enc.contains("pw-MARKER") && enc.contains("visible") && enc.contains("\"sops\""),
        "{enc}"
    );
    std::fs::write(d.join("app.enc.json"), &enc).expect("write");

    let (code, out, err) = coffer(
        d,
        &[
            "decrypt",
            "app.enc.json",
            "--extract",
            r#"["db"]["password"]"#,
        ],
        Some(&keys),
    );
    assert_eq!(
        (code, out.as_slice()),
        (0, b"pw-MARKER".as_slice()),
        "{err}"
    );
    let (code, out, err) = coffer(d, &["decrypt", "app.enc.json"], Some(&keys));
    assert_eq!(code, 0, "{err}");
    let plain: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(plain["db"]["port"], 5432);
    assert_eq!(plain["tags"][1], "b");

    // A changed cleartext value, and no identity at all.
    std::fs::write(d.join("bad.json"), enc.replace("visible", "changed")).expect("write");
    let (code, _, err) = coffer(d, &["decrypt", "bad.json"], Some(&keys));
    assert_ne!(code, 0);
    assert!(err.contains("MAC mismatch"), "{err}");
    let (code, _, err) = coffer(d, &["decrypt", "app.enc.json"], None);
    assert_ne!(code, 0);
    assert!(
        err.contains(&recipient),
        "names the recipients it needs: {err}"
    );

    // Any bytes as one value; the plaintext written back is private.
    let blob: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    std::fs::write(d.join("blob.bin"), &blob).expect("blob");
    let (code, _, err) = coffer(
        d,
        &[
            "encrypt",
            "--age",
            &recipient,
            "blob.bin",
            "--output",
            "blob.sops",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = coffer(
        d,
        &["decrypt", "blob.sops", "--output", "blob.out"],
        Some(&keys),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(d.join("blob.out")).expect("read"), blob);
    let mode = std::fs::metadata(d.join("blob.out"))
        .expect("stat")
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    // YAML that SOPS refuses is refused with the line, and nothing is written.
    std::fs::write(d.join("x.yaml"), "a: 1\na: 2\n").expect("yaml");
    let (code, _, err) = coffer(
        d,
        &["encrypt", "--age", &recipient, "--output", "x.enc.yaml", "x.yaml"],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("line 2: mapping key \"a\" is defined twice"), "{err}");
    assert!(!d.join("x.enc.yaml").exists());
}

#[test]
fn creation_rules_pick_keys_and_a_secret_left_in_clear_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (secret, recipient) = coffer_sops::age_keys::generate();
    let keys = d.join("keys.txt");
    std::fs::write(&keys, format!("{}\n", secret.as_str())).expect("keys");
    std::fs::create_dir(d.join("prod")).expect("mkdir");
    std::fs::write(
        d.join(".sops.yaml"),
        format!(
            "creation_rules:\n  - path_regex: prod/.*\\.json$\n    age: {recipient}\n    encrypted_regex: ^(password|data)$\n  - path_regex: \\.json$\n    age: {recipient}\n"
        ),
    )
    .expect("config");
    std::fs::write(
        d.join("prod/app.json"),
        r#"{"user": "app", "password": "pw-MARKER", "data": {"key": "v"}}"#,
    )
    .expect("plain");
    let (code, out, err) = coffer(d, &["encrypt", "prod/app.json"], None);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("creation rules 2 also match"), "{err}");
    let enc = String::from_utf8(out).expect("utf-8");
    assert!(
        enc.contains("\"user\": \"app\"") && !enc.contains("pw-MARKER"),
        "{enc}"
    );
    assert!(
        enc.contains("\"encrypted_regex\": \"^(password|data)$\""),
        "{enc}"
    );
    std::fs::write(d.join("prod/app.enc.json"), &enc).expect("write");
    let (code, out, err) = coffer(
        d,
        &[
            "decrypt",
            "prod/app.enc.json",
            "--extract",
            r#"["password"]"#,
        ],
        Some(&keys),
    );
    assert_eq!(
        (code, out.as_slice()),
        (0, b"pw-MARKER".as_slice()),
        "{err}"
    );

    // A rule that leaves a password in clear is caught before writing.
    std::fs::write(
        d.join("leaky.json"),
        r#"{"db_password_unencrypted": "hunter2-MARKER", "host": "db"}"#,
    )
    .expect("plain");
    let (code, out, err) = coffer(d, &["encrypt", "leaky.json"], None);
    assert_ne!(code, 0);
    assert!(
        out.is_empty() && err.contains("db_password_unencrypted"),
        "{err}"
    );
    let (code, out, err) = coffer(d, &["encrypt", "--allow-plaintext", "leaky.json"], None);
    assert_eq!(code, 0, "{err}");
    assert!(String::from_utf8_lossy(&out).contains("hunter2-MARKER"));

    // No rule matches: said so.
    std::fs::write(d.join("notes.txt"), "x").expect("plain");
    let (code, _, err) = coffer(d, &["encrypt", "notes.txt"], None);
    assert_ne!(code, 0);
    assert!(err.contains("no creation rule matches"), "{err}");
}

#[test]
fn rotate_changes_the_data_key_and_recipients_and_exec_env_runs_a_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (a, keys_a) = identity(d, "a");
    let (b, keys_b) = identity(d, "b");
    std::fs::write(d.join("app.env"), "DB_PASSWORD=pw-MARKER\nDB_HOST=db\n").expect("plain");
    let (code, out, err) = coffer(
        d,
        &["encrypt", "--age", &a, "app.env", "--output", "app.enc.env"],
        None,
    );
    assert_eq!(code, 0, "{err}{}", String::from_utf8_lossy(&out));
    let before = std::fs::read_to_string(d.join("app.enc.env")).expect("read");
    assert!(
        coffer(d, &["decrypt", "app.enc.env"], Some(&keys_b)).0 != 0,
        "b cannot read it yet"
    );

    let (code, _, err) = coffer(
        d,
        &["rotate", "-i", "--add-age", &b, "app.enc.env"],
        Some(&keys_a),
    );
    assert_eq!(code, 0, "{err}");
    let after = std::fs::read_to_string(d.join("app.enc.env")).expect("read");
    let value = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("DB_PASSWORD="))
            .unwrap_or("")
            .to_owned()
    };
    assert_ne!(
        value(&before),
        value(&after),
        "re-encrypted under a new key"
    );
    let (code, out, err) = coffer(d, &["decrypt", "app.enc.env"], Some(&keys_b));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "DB_PASSWORD=pw-MARKER\nDB_HOST=db\n"
    );

    let (code, _, err) = coffer(
        d,
        &["rotate", "-i", "--rm-age", &a, "app.enc.env"],
        Some(&keys_b),
    );
    assert_eq!(code, 0, "{err}");
    assert_ne!(
        coffer(d, &["decrypt", "app.enc.env"], Some(&keys_a)).0,
        0,
        "a was removed"
    );
    let (code, _, err) = coffer(
        d,
        &["rotate", "-i", "--rm-age", &b, "app.enc.env"],
        Some(&keys_b),
    );
    assert_ne!(code, 0);
    assert!(err.contains("without any master key"), "{err}");

    // exec-env: the values reach the command's environment, nothing on disk.
    let (code, out, err) = coffer(
        d,
        &[
            "exec-env",
            "app.enc.env",
            "--",
            "sh",
            "-c",
            "printf '%s@%s' \"$DB_PASSWORD\" \"$DB_HOST\"",
        ],
        Some(&keys_b),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8_lossy(&out), "pw-MARKER@db");
    let (code, out, _) = coffer(
        d,
        &["exec-env", "app.enc.env", "printf %s \"$DB_HOST\""],
        Some(&keys_b),
    );
    assert_eq!(
        (code, String::from_utf8_lossy(&out).into_owned()),
        (0, "db".to_owned())
    );
    let (code, _, _) = coffer(
        d,
        &["exec-env", "app.enc.env", "--", "sh", "-c", "exit 3"],
        Some(&keys_b),
    );
    assert_eq!(code, 3, "the command's exit code");
    let (code, out, _) = coffer(
        d,
        &[
            "exec-env",
            "--pristine",
            "app.enc.env",
            "--",
            "/usr/bin/env",
        ],
        Some(&keys_b),
    );
    assert_eq!(code, 0);
    let env = String::from_utf8_lossy(&out);
    assert!(
        env.contains("DB_HOST=db") && !env.contains("HOME="),
        "{env}"
    );
}

#[test]
fn set_and_unset_change_one_value_and_leave_the_others_ciphertext_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (secret, recipient) = coffer_sops::age_keys::generate();
    let keys = d.join("keys.txt");
    std::fs::write(&keys, format!("{}\n", secret.as_str())).expect("keys");
    std::fs::write(
        d.join("app.json"),
        r#"{"db": {"password": "old", "user": "app"}, "n": 1}"#,
    )
    .expect("plain");
    let (code, _, err) = coffer(
        d,
        &[
            "encrypt",
            "--age",
            &recipient,
            "app.json",
            "--output",
            "app.enc.json",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let before = std::fs::read_to_string(d.join("app.enc.json")).expect("read");
    let line = |t: &str, key: &str| t.lines().find(|l| l.contains(key)).unwrap_or("").to_owned();

    let (code, _, err) = coffer(
        d,
        &[
            "set",
            "app.enc.json",
            r#"["db"]["password"]"#,
            r#""new-MARKER""#,
        ],
        Some(&keys),
    );
    assert_eq!(code, 0, "{err}");
    let after = std::fs::read_to_string(d.join("app.enc.json")).expect("read");
    assert!(!after.contains("new-MARKER"));
    assert_eq!(
        line(&before, "\"user\""),
        line(&after, "\"user\""),
        "unchanged values keep their ciphertext"
    );
    assert_ne!(line(&before, "\"password\""), line(&after, "\"password\""));
    let (code, out, _) = coffer(
        d,
        &[
            "decrypt",
            "app.enc.json",
            "--extract",
            r#"["db"]["password"]"#,
        ],
        Some(&keys),
    );
    assert_eq!((code, out.as_slice()), (0, b"new-MARKER".as_slice()));

    let (code, _, err) = coffer(
        d,
        &["set", "app.enc.json", r#"["extra"]["k"]"#, "5"],
        Some(&keys),
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = coffer(
        d,
        &["unset", "app.enc.json", r#"["db"]["user"]"#],
        Some(&keys),
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = coffer(d, &["decrypt", "app.enc.json"], Some(&keys));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"db": {"password": "new-MARKER"}, "n": 1, "extra": {"k": 5}})
    );
    let (code, _, err) = coffer(
        d,
        &["set", "app.enc.json", r#"["n"]"#, "not json"],
        Some(&keys),
    );
    assert_ne!(code, 0);
    assert!(err.contains("must be JSON"), "{err}");
}

#[test]
fn updatekeys_rewraps_the_data_key_for_the_rules_keys_and_leaves_values_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (a, keys_a) = identity(d, "a");
    let (b, keys_b) = identity(d, "b");
    std::fs::write(d.join("app.json"), r#"{"password": "pw-MARKER"}"#).expect("plain");
    let (code, _, err) = coffer(
        d,
        &[
            "encrypt",
            "--age",
            &a,
            "app.json",
            "--output",
            "app.enc.json",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let before = std::fs::read_to_string(d.join("app.enc.json")).expect("read");
    std::fs::write(
        d.join(".sops.yaml"),
        format!("creation_rules:\n  - age: {b}\n"),
    )
    .expect("config");
    let (code, _, err) = coffer(d, &["updatekeys", "-y", "app.enc.json"], Some(&keys_a));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("+ {b}")) && err.contains(&format!("- {a}")),
        "{err}"
    );
    let after = std::fs::read_to_string(d.join("app.enc.json")).expect("read");
    let line = |t: &str, k: &str| t.lines().find(|l| l.contains(k)).unwrap_or("").to_owned();
    for k in ["\"password\"", "\"mac\"", "\"lastmodified\""] {
        assert_eq!(line(&before, k), line(&after, k), "{k} is untouched");
    }
    let (code, out, err) = coffer(
        d,
        &["decrypt", "app.enc.json", "--extract", r#"["password"]"#],
        Some(&keys_b),
    );
    assert_eq!(
        (code, out.as_slice()),
        (0, b"pw-MARKER".as_slice()),
        "{err}"
    );
    assert_ne!(coffer(d, &["decrypt", "app.enc.json"], Some(&keys_a)).0, 0);
    let (code, _, err) = coffer(d, &["updatekeys", "-y", "app.enc.json"], Some(&keys_b));
    assert_eq!(code, 0);
    assert!(err.contains("already up to date"), "{err}");
}
