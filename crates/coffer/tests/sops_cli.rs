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

    // Formats not supported yet say so.
    std::fs::write(d.join("x.yaml"), "a: 1\n").expect("yaml");
    let (code, _, err) = coffer(d, &["encrypt", "--age", &recipient, "x.yaml"], None);
    assert_ne!(code, 0);
    assert!(err.contains("not supported"), "{err}");
}
