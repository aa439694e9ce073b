//! `coffer sops` commands end to end (interop with the real `sops` is
//! tested in `sops_interop.rs`).

use std::path::Path;
use std::process::Command;

fn coffer(dir: &Path, args: &[&str], keys: Option<&Path>) -> (i32, Vec<u8>, String) {
    coffer_env(dir, args, keys, &[])
}

fn coffer_env(
    dir: &Path,
    args: &[&str],
    keys: Option<&Path>,
    env: &[(&str, &str)],
) -> (i32, Vec<u8>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffer"));
    cmd.arg("sops")
        .args(args)
        .current_dir(dir)
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_EDITOR")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
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
        &[
            "encrypt",
            "--age",
            &recipient,
            "--output",
            "x.enc.yaml",
            "x.yaml",
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("line 2: mapping key \"a\" is defined twice"),
        "{err}"
    );
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
    // A master key coffer cannot wrap for (here a PGP one) stops a rotation
    // instead of being dropped.
    let mut with_pgp = std::fs::read_to_string(d.join("app.enc.env")).expect("read");
    with_pgp.push_str("sops_pgp__list_0__map_fp=85D77543B3D624B63CEA9E6DBC17301B491B3F21\n");
    std::fs::write(d.join("pgp.enc.env"), &with_pgp).expect("write");
    let (code, _, pgp_err) = coffer(d, &["rotate", "-i", "pgp.enc.env"], Some(&keys_b));
    assert_ne!(code, 0);
    assert!(pgp_err.contains("pgp master keys"), "{pgp_err}");
    assert_eq!(
        std::fs::read_to_string(d.join("pgp.enc.env")).expect("read"),
        with_pgp
    );
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

#[test]
fn edit_goes_through_a_private_temp_file_and_exec_file_through_a_fifo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (recipient, keys) = identity(d, "keys");
    let plain = "# settings\napp:\n    name: billing\n    # the password\n    password: hunter2\n    port: 5432\n";
    std::fs::write(d.join("app.yaml"), plain).expect("plain");
    let (code, enc, err) = coffer(d, &["encrypt", "--age", &recipient, "app.yaml"], None);
    assert_eq!(code, 0, "{err}");
    std::fs::write(d.join("app.enc.yaml"), &enc).expect("write");
    let log = d.join("editor.log");
    // The editor notes where it was given the plaintext and its modes, then
    // changes one value.
    let editor = d.join("edit.sh");
    std::fs::write(
        &editor,
        format!(
            "#!/bin/sh\nstat -c '%a' \"$1\" \"$(dirname \"$1\")\" > '{log}'\necho \"$1\" >> '{log}'\nsed -i 's/billing/payroll/' \"$1\"\n",
            log = log.display()
        ),
    )
    .expect("editor");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let ed = editor.to_str().expect("path");
    let (code, _, err) = coffer_env(d, &["edit", "app.enc.yaml"], Some(&keys), &[("EDITOR", ed)]);
    assert_eq!(code, 0, "{err}");
    let seen = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(&lines[..2], ["600", "700"], "{seen}");
    assert!(
        !Path::new(lines[2]).exists(),
        "the plaintext was left behind"
    );
    assert!(!Path::new(lines[2]).parent().expect("dir").exists());
    let after = std::fs::read_to_string(d.join("app.enc.yaml")).expect("read");
    let before = String::from_utf8(enc).expect("utf-8");
    // Only the edited value, the MAC and the date change: other values and
    // the comments keep their ciphertext.
    let changed: Vec<&str> = after
        .lines()
        .filter(|l| !before.lines().any(|b| b == *l))
        .map(|l| l.trim_start().split(':').next().unwrap_or(""))
        .collect();
    assert!(
        changed
            .iter()
            .all(|k| ["name", "mac", "lastmodified"].contains(k)),
        "{changed:?}"
    );
    let (code, out, err) = coffer(d, &["decrypt", "app.enc.yaml"], Some(&keys));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        String::from_utf8(out).expect("utf-8"),
        plain.replace("billing", "payroll")
    );

    // No change, a failing editor, a broken result: the file stays as it is
    // and no plaintext is left.
    for (editor, want) in [
        ("true", "not changed"),
        ("false", "failed"),
        ("no-such-editor-here", "was not found"),
        ("sh -c 'echo \"a: [\" > $0'", "does not parse"),
    ] {
        let (code, _, err) = coffer_env(
            d,
            &["edit", "app.enc.yaml"],
            Some(&keys),
            &[("EDITOR", editor)],
        );
        // sops' codes: no change 200, no editor 201, other failures 1.
        let expected = match want {
            "not changed" => 200,
            "was not found" => 201,
            _ => 1,
        };
        assert_eq!(code, expected, "{editor}: {err}");
        assert!(err.contains(want), "{editor}: {err}");
        assert_eq!(
            std::fs::read_to_string(d.join("app.enc.yaml")).expect("read"),
            after
        );
    }
    let leftovers = std::fs::read_dir(std::env::temp_dir())
        .expect("tmp")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("coffer-sops-"))
        .filter(|e| {
            std::fs::read_dir(e.path())
                .map(|mut r| r.any(|f| f.is_ok_and(|f| f.file_name() == "app.enc.yaml")))
                .unwrap_or(false)
        })
        .count();
    assert_eq!(leftovers, 0);

    // exec-file: a FIFO by default, a 0600 file with --no-fifo; the
    // command's exit code comes back.
    let (code, out, err) = coffer(
        d,
        &[
            "exec-file",
            "app.enc.yaml",
            "test -p {} && grep -c payroll {}",
        ],
        Some(&keys),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(String::from_utf8(out).expect("utf-8").trim(), "1");
    let (code, out, err) = coffer(
        d,
        &[
            "exec-file",
            "--no-fifo",
            "--filename",
            "config.yaml",
            "app.enc.yaml",
            "stat -c '%a %n' {}; grep -q hunter2 {} && exit 3",
        ],
        Some(&keys),
    );
    assert_eq!(code, 3, "{err}");
    let out = String::from_utf8(out).expect("utf-8");
    assert!(
        out.starts_with("600 ") && out.trim_end().ends_with("/config.yaml"),
        "{out}"
    );
    let file = out
        .trim_end()
        .split_once(' ')
        .expect("name")
        .1
        .trim_matches('\'');
    assert!(!Path::new(file).exists());
}

/// `sops -i`: encrypt and decrypt in place, and `set --value-stdin` /
/// `--value-file`, which keep a secret out of the process list.
#[test]
fn in_place_and_values_off_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (recipient, keys) = identity(d, "k");
    let plain = "db:\n  password: pw-MARKER\nport: 5432\n";
    std::fs::write(d.join("app.yaml"), plain).expect("plain");
    let (code, out, err) = coffer(d, &["encrypt", "-i", "--age", &recipient, "app.yaml"], None);
    assert_eq!((code, out.len()), (0, 0), "{err}");
    let enc = std::fs::read_to_string(d.join("app.yaml")).expect("enc");
    assert!(
        enc.contains("ENC[AES256_GCM") && !enc.contains("pw-MARKER"),
        "{enc}"
    );
    // Encrypting it again is refused and leaves the file as it was.
    let (code, _, err) = coffer(d, &["encrypt", "-i", "--age", &recipient, "app.yaml"], None);
    assert_ne!(code, 0);
    assert!(err.contains("already encrypted"), "{err}");
    assert_eq!(
        std::fs::read_to_string(d.join("app.yaml")).expect("same"),
        enc
    );

    // set with the value from stdin and from a file.
    let mut child = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args([
            "sops",
            "set",
            "--value-stdin",
            "app.yaml",
            r#"["db"]["password"]"#,
        ])
        .current_dir(d)
        .env("SOPS_AGE_KEY_FILE", &keys)
        .env("HOME", d)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("set");
    {
        use std::io::Write as _;
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(b"\"from-stdin\"\n").expect("write");
    }
    assert!(child.wait().expect("wait").success());
    std::fs::write(d.join("v.json"), "\"from-a-file\"").expect("value file");
    let (code, _, err) = coffer(
        d,
        &["set", "--value-file", "app.yaml", r#"["token"]"#, "v.json"],
        Some(&keys),
    );
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = coffer(d, &["decrypt", "-i", "app.yaml"], Some(&keys));
    assert_eq!((code, out.len()), (0, 0), "{err}");
    let back = std::fs::read_to_string(d.join("app.yaml")).expect("plain again");
    assert!(
        back.contains("password: from-stdin") && back.contains("token: from-a-file"),
        "{back}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("app.yaml"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "plaintext written in place is private");
    }
    // -i needs a file and does not go with --output.
    let (code, _, err) = coffer(
        d,
        &["decrypt", "-i", "--input-type", "yaml", "-"],
        Some(&keys),
    );
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = coffer(
        d,
        &["decrypt", "-i", "--output", "x", "app.yaml"],
        Some(&keys),
    );
    assert_eq!(code, 1, "{err}");
}

/// The commands and flags a sops user reaches for beyond encrypt and
/// decrypt: `filestatus`, `groups add|delete`, `set --idempotent`,
/// `exec-env --same-process`, `edit -s`, the bare `sops FILE` and `-d`
/// spellings, `--version`, `SOPS_CONFIG`, `--ignore-mac`,
/// `--decryption-order`, `updatekeys` on a file whose MAC was changed.
#[test]
fn the_rest_of_sops_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (r1, k1) = identity(d, "one");
    let (r2, k2) = identity(d, "two");
    let both = d.join("both.txt");
    let text = format!(
        "{}{}",
        std::fs::read_to_string(&k1).expect("k1"),
        std::fs::read_to_string(&k2).expect("k2")
    );
    std::fs::write(&both, text).expect("both");
    std::fs::write(d.join("app.yaml"), "user: app\npassword: x\n").expect("w");
    let (code, _, err) = coffer(d, &["encrypt", "-i", "--age", &r1, "app.yaml"], None);
    assert_eq!(code, 0, "{err}");

    let (code, out, _) = coffer(d, &["filestatus", "app.yaml"], None);
    assert_eq!(
        (code, String::from_utf8_lossy(&out).trim()),
        (0, "{\"encrypted\":true}")
    );
    std::fs::write(d.join("plain.yaml"), "a: 1\n").expect("w");
    let (_, out, _) = coffer(d, &["filestatus", "plain.yaml"], None);
    assert_eq!(
        String::from_utf8_lossy(&out).trim(),
        "{\"encrypted\":false}"
    );

    // groups: a second group with another key; both are then needed.
    let (code, _, err) = coffer(
        d,
        &["groups", "add", "-i", "--file", "app.yaml", "--age", &r2],
        Some(&k1),
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = coffer(d, &["-d", "app.yaml"], Some(&k1));
    assert_eq!(code, 128, "one group of two opens nothing: {err}");
    let (code, out, _) = coffer(d, &["-d", "app.yaml"], Some(&both));
    assert_eq!(
        (code, String::from_utf8_lossy(&out).contains("user: app")),
        (0, true)
    );
    let (code, _, err) = coffer(
        d,
        &["groups", "delete", "-i", "-f", "app.yaml", "0"],
        Some(&both),
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = coffer(d, &["decrypt", "app.yaml"], Some(&k2));
    assert_eq!(code, 0, "only the second key is left");
    let (code, _, err) = coffer(
        d,
        &["groups", "delete", "-i", "-f", "app.yaml", "0"],
        Some(&k2),
    );
    assert_eq!(code, 1, "the last group stays: {err}");

    // set --idempotent leaves the file alone when nothing changes.
    let before = std::fs::read(d.join("app.yaml")).expect("r");
    let (code, _, err) = coffer(
        d,
        &["set", "--idempotent", "app.yaml", "[\"user\"]", "\"app\""],
        Some(&k2),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(d.join("app.yaml")).expect("r"), before);

    // exec-env --same-process: the command replaces coffer.
    let (code, out, err) = coffer(
        d,
        &[
            "exec-env",
            "--same-process",
            "app.yaml",
            "--",
            "sh",
            "-c",
            "echo $password; exit 7",
        ],
        Some(&k2),
    );
    assert_eq!(
        (code, String::from_utf8_lossy(&out).trim()),
        (7, "x"),
        "{err}"
    );

    // `sops -s FILE` edits with the metadata shown; changing it is refused.
    let (code, _, err) = coffer_env(
        d,
        &["-s", "app.yaml"],
        Some(&k2),
        &[("EDITOR", "sh -c 'grep -q \"^sops:\" $0 && exit 0'")],
    );
    assert_eq!(code, 200, "shown, not changed: {err}");
    let script = d.join("edit-meta.sh");
    std::fs::write(
        &script,
        "sed -i 's/lastmodified: \"/lastmodified: \"1/' \"$1\"\n",
    )
    .expect("w");
    let (code, _, err) = coffer_env(
        d,
        &["-s", "app.yaml"],
        Some(&k2),
        &[("EDITOR", &format!("sh {}", script.display()))],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the sops block was changed"), "{err}");
    let (code, out, _) = coffer(d, &["--version"], None);
    assert_eq!(code, 0);
    assert!(String::from_utf8_lossy(&out).starts_with("coffer sops "));

    // SOPS_CONFIG names the rules.
    std::fs::create_dir(d.join("cfg")).expect("mkdir");
    std::fs::write(
        d.join("cfg/rules.yaml"),
        format!("creation_rules:\n  - age: {r1}\n"),
    )
    .expect("w");
    std::fs::write(d.join("new.yaml"), "k: v\n").expect("w");
    let (code, _, err) = coffer_env(
        d,
        &["encrypt", "-i", "new.yaml"],
        None,
        &[("SOPS_CONFIG", "cfg/rules.yaml")],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, _) = coffer(
        d,
        &["decrypt", "--decryption-order", "hc_vault,age", "new.yaml"],
        Some(&k1),
    );
    assert_eq!(code, 0);

    // A changed MAC: decrypt says 51 unless --ignore-mac; updatekeys
    // names the MAC, not a timestamp.
    let text = std::fs::read_to_string(d.join("new.yaml")).expect("r");
    let cut: Vec<&str> = text.lines().collect();
    let mac_at = cut
        .iter()
        .position(|l| l.trim_start().starts_with("mac:"))
        .expect("mac");
    let mut lines: Vec<String> = cut.iter().map(|l| (*l).to_owned()).collect();
    let other = {
        let (_, enc, _) = coffer(d, &["encrypt", "--age", &r1, "plain.yaml"], None);
        let enc = String::from_utf8(enc).expect("utf-8");
        enc.lines()
            .find(|l| l.trim_start().starts_with("mac:"))
            .expect("mac")
            .to_owned()
    };
    lines[mac_at] = other;
    std::fs::write(d.join("new.yaml"), lines.join("\n") + "\n").expect("w");
    let (code, _, err) = coffer(d, &["decrypt", "new.yaml"], Some(&k1));
    assert_eq!(code, 24, "{err}");
    assert!(err.contains("MAC does not decrypt"), "{err}");
    let (code, out, err) = coffer(d, &["decrypt", "--ignore-mac", "new.yaml"], Some(&k1));
    assert_eq!(
        (code, String::from_utf8_lossy(&out).as_ref()),
        (0, "k: v\n"),
        "{err}"
    );
    assert!(err.contains("--ignore-mac"), "{err}");
    let (code, _, err) = coffer_env(
        d,
        &["updatekeys", "-y", "new.yaml"],
        Some(&k1),
        &[("SOPS_CONFIG", "cfg/rules.yaml")],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("MAC does not decrypt") && !err.contains("value at"),
        "{err}"
    );
}
