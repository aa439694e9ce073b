//! `coffer scan` end to end on trees and stdin: what is scanned and skipped,
//! a user's gitleaks config, reports and exit codes.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

fn scan(dir: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coffer"));
    cmd.arg("scan").args(args).current_dir(dir);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run coffer");
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        std::io::Write::write_all(&mut input, text.as_bytes()).expect("stdin");
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `File` of each finding, in report order.
fn files_in(report: &[serde_json::Value]) -> Vec<&str> {
    report
        .iter()
        .map(|f| f["File"].as_str().unwrap_or(""))
        .collect()
}

/// A made-up token of the GitHub classic format (not a live one).
const GHP: &str = "ghp_q8Zr2LmX0vTk5NwPb7Yc4HsJ1dFg6AeR3uWo";

#[test]
fn a_tree_is_scanned_whole_and_gitignore_only_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    git(d, &["init", "-q"]);
    std::fs::create_dir_all(d.join("app/.hidden")).expect("mkdir");
    std::fs::write(
        d.join("app/config.env"),
        format!("A=1\nGITHUB_TOKEN={GHP}\n"),
    )
    .expect("w");
    std::fs::write(d.join("app/.hidden/x.yaml"), format!("token: {GHP}\n")).expect("w");
    std::fs::write(d.join("app/ok.txt"), format!("{GHP} # coffer:allow\n")).expect("w");
    std::fs::write(d.join(".gitignore"), "build/\n.env.local\n").expect("w");
    std::fs::write(d.join(".env.local"), format!("STRIPE={GHP}\n")).expect("w");
    std::fs::create_dir_all(d.join("build")).expect("mkdir");
    std::fs::write(d.join("build/out.txt"), GHP).expect("w");
    let mut binary = b"\x00\x01binary".to_vec();
    binary.extend_from_slice(GHP.as_bytes());
    std::fs::write(d.join("app/blob.bin"), binary).expect("w");
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("secret.txt"), GHP).expect("w");
    std::os::unix::fs::symlink(outside.path(), d.join("app/link")).expect("symlink");

    let (code, out, err) = scan(d, &["dir", ".", "-f", "json"], None);
    assert_eq!(code, 1, "{err}");
    let report: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    let files = files_in(&report);
    // Ignored files are scanned, as gitleaks does: local secrets live there.
    assert_eq!(
        files,
        [
            ".env.local",
            "app/.hidden/x.yaml",
            "app/config.env",
            "build/out.txt"
        ],
        "{out}"
    );
    assert_eq!(report[2]["RuleID"], "github-pat");
    assert_eq!(report[2]["StartLine"], 2);
    assert_eq!(report[2]["Secret"], "REDACTED");
    assert_eq!(report[2]["Fingerprint"], "app/config.env:github-pat:2");
    assert_eq!(report[2]["Commit"], "", "gitleaks' keys, empty in a tree");
    assert_eq!(report[2]["SymlinkFile"], "");
    // Asked to respect .gitignore, the summary says what was left out and
    // how to include it; `.env*` files are never left out.
    let (_, out, err) = scan(d, &["dir", "--respect-gitignore", "-f", "json"], None);
    let report: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    let files = files_in(&report);
    assert_eq!(
        files,
        [".env.local", "app/.hidden/x.yaml", "app/config.env"]
    );
    assert!(
        err.contains("1 ignored by .gitignore (drop --respect-gitignore to scan them)"),
        "{err}"
    );
    // Links are followed when asked.
    let (_, out, _) = scan(
        d,
        &["dir", "-s", "app", "--follow-symlinks", "-f", "csv"],
        None,
    );
    assert!(out.contains("link/secret.txt"), "{out}");
    assert!(
        out.starts_with("RuleID,Commit,File,SymlinkFile,Secret,Match,StartLine,EndLine,StartColumn,EndColumn,Author,Message,Date,Email,Fingerprint,Tags\n"),
        "{out}"
    );

    let (code, out, _) = scan(d, &["dir", "app", "--no-redact"], None);
    assert_eq!(code, 1);
    assert!(out.contains(GHP) && out.contains("2 leaks found"), "{out}");
    let (code, _, _) = scan(d, &["dir", ".", "--exit-code", "7"], None);
    assert_eq!(code, 7);
}

#[test]
fn a_gitleaks_config_extends_the_defaults_and_bad_ones_exit_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(
        d.join(".gitleaks.toml"),
        "[extend]\nuseDefault = true\n\n[[rules]]\nid = 'acme-key'\ndescription = 'ACME key'\nregex = '''acme_[a-z0-9]{16}'''\nkeywords = ['acme_']\n\n[allowlist]\npaths = ['''^fixtures/''']\n",
    )
    .expect("config");
    std::fs::create_dir(d.join("fixtures")).expect("mkdir");
    std::fs::write(
        d.join("fixtures/t.txt"),
        format!("{GHP}\nacme_0123456789abcdef\n"),
    )
    .expect("w");
    std::fs::write(
        d.join("main.rs"),
        format!("let k = \"acme_0123456789abcdef\";\n// {GHP}\n"),
    )
    .expect("w");
    let (code, out, err) = scan(d, &["dir", "."], None);
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("main.rs:1:10  acme-key"), "{out}");
    assert!(out.contains("main.rs:2:4  github-pat"), "{out}");
    assert!(!out.contains("fixtures"), "{out}");

    std::fs::write(d.join("bad.toml"), "[[rules]]\nid = 'x'\nregex = '('\n").expect("w");
    let (code, _, err) = scan(d, &["dir", ".", "--config", "bad.toml"], None);
    assert_eq!(code, 1, "an error exits 1, as in gitleaks");
    assert!(err.contains("bad.toml: rule 1 (x)"), "{err}");
    std::fs::write(d.join("odd.toml"), "[extend]\nuseDefault = true\nfoo = 1\n").expect("w");
    let (code, _, err) = scan(d, &["dir", "main.rs", "--config", "odd.toml"], None);
    assert_eq!(code, 1);
    assert!(err.contains("`foo` is not a key coffer knows"), "{err}");
}

#[test]
fn stdin_is_scanned_under_a_label() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out, _) = scan(
        dir.path(),
        &["stdin", "--label", "paste.txt", "-f", "json"],
        Some(&format!("export TOKEN={GHP}\n")),
    );
    assert_eq!(code, 1);
    assert!(out.contains("\"File\": \"paste.txt\""), "{out}");
    let (code, out, _) = scan(dir.path(), &["stdin"], Some("nothing to see\n"));
    assert_eq!((code, out.as_str()), (0, "no leaks found\n"));
}

#[test]
fn ignore_files_baselines_and_other_report_formats() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("a.env"), format!("T={GHP}\n")).expect("w");
    std::fs::write(d.join("b.env"), format!("\nT={GHP}\n")).expect("w");
    // A baseline taken now leaves nothing; a new leak still shows.
    let (code, _, _) = scan(d, &["dir", ".", "-f", "json", "-r", "base.json"], None);
    assert_eq!(code, 1);
    std::fs::write(d.join("c.env"), format!("T={GHP}\n")).expect("w");
    let (code, out, err) = scan(d, &["dir", ".", "--baseline-path", "base.json"], None);
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains("c.env:1:3") && out.contains("1 leak found"),
        "{out}"
    );
    // .gitleaksignore fingerprints are left out.
    std::fs::write(
        d.join(".gitleaksignore"),
        "# reviewed\nc.env:github-pat:1\nb.env:github-pat:2\n",
    )
    .expect("w");
    let (code, out, _) = scan(d, &["dir", ".", "-f", "csv"], None);
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("RuleID,Commit,File,SymlinkFile,Secret,Match"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("github-pat,,a.env,,REDACTED,REDACTED,1,1,3,"),
        "{out}"
    );
    let (code, out, _) = scan(d, &["dir", ".", "-f", "junit"], None);
    assert_eq!(code, 1);
    assert!(
        out.contains("<testsuite name=\"coffer scan\" tests=\"1\" failures=\"1\">"),
        "{out}"
    );
    std::fs::write(d.join("bad.json"), "{").expect("w");
    let (code, _, err) = scan(d, &["dir", ".", "-b", "bad.json"], None);
    assert_eq!(code, 1, "{err}");
}

fn git(dir: &Path, args: &[&str]) -> String {
    git_at(dir, args, "2026-01-02T03:04:05Z")
}

/// Runs git as a fixed author, with `date` as author and committer date.
fn git_at(dir: &Path, args: &[&str], date: &str) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=Test Author",
            "-c",
            "user.email=author@example.com",
        ])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Commits what is staged at second `seconds`; returns the commit id.
fn commit(dir: &Path, message: &str, seconds: u32) -> String {
    let date = format!("2026-01-02T03:04:{seconds:02}Z");
    git_at(dir, &["commit", "-q", "-m", message], &date);
    git(dir, &["rev-parse", "HEAD"])
}

#[test]
fn history_finds_each_key_in_the_commit_that_added_it_and_staged_only_additions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    git(d, &["init", "-q"]);
    let k1 = "ghp_AAAAbbbbCCCCdddd1111eeeeFFFFgggg2222";
    let k2 = "ghp_q8Zr2LmX0vTk5NwPb7Yc4HsJ1dFg6AeR3uWo";
    let k3 = "glpat-Zq8r2LmX0vTk5NwPb7Yc";
    let k4 = "npm_q8Zr2LmX0vTk5NwPb7Yc4HsJ1dFg6AeR3uWo";
    std::fs::write(d.join("app.env"), format!("A=1\nTOKEN={k1}\n")).expect("w");
    git(d, &["add", "."]);
    let c1 = commit(d, "add config", 1);
    // The key is removed later: history still has it, under c1 only.
    std::fs::write(d.join("app.env"), "A=2\n").expect("w");
    std::fs::write(d.join("old.txt"), format!("x\n{k2}\n")).expect("w");
    git(d, &["add", "."]);
    let c2 = commit(d, "rotate", 2);
    git(d, &["rm", "-q", "old.txt"]);
    let _c3 = commit(d, "delete old file", 3);
    git(d, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(d.join("feature.yaml"), format!("token: {k3}\n")).expect("w");
    git(d, &["add", "."]);
    let c4 = commit(d, "feature work", 4);
    git(d, &["checkout", "-q", "main"]);
    assert!(!d.join("feature.yaml").exists());

    let (code, out, err) = scan(d, &["git", ".", "-f", "json", "--no-redact"], None);
    assert_eq!(code, 1, "{err}");
    let report: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    let got: Vec<(String, String, String)> = report
        .iter()
        .map(|f| {
            (
                f["Secret"].as_str().unwrap_or("").to_owned(),
                f["Commit"].as_str().unwrap_or("").to_owned(),
                f["File"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (k1.to_owned(), c1.clone(), "app.env".to_owned()),
            (k2.to_owned(), c2.clone(), "old.txt".to_owned()),
            (k3.to_owned(), c4.clone(), "feature.yaml".to_owned()),
        ],
        "{out}"
    );
    assert_eq!(report[0]["Author"], "Test Author");
    assert_eq!(report[0]["Email"], "author@example.com");
    assert_eq!(report[0]["Date"], "2026-01-02T03:04:01Z");
    assert_eq!(report[0]["Message"], "add config");
    assert_eq!(report[0]["StartLine"], 2);
    assert_eq!(
        report[0]["Fingerprint"].as_str(),
        Some(format!("{c1}:app.env:github-pat:2").as_str())
    );
    // A range: only what main added after c1.
    let (_, out, err) = scan(
        d,
        &[
            "git",
            ".",
            "--log-opts",
            &format!("{c1}..main"),
            "-f",
            "json",
        ],
        None,
    );
    let report: Vec<serde_json::Value> = serde_json::from_str(&out).expect(&err);
    assert_eq!(report.len(), 1, "{out}");
    assert_eq!(report[0]["Commit"].as_str(), Some(c2.as_str()));

    // --staged: only the staged addition, not the working tree, not HEAD.
    let lines: String = (0..40).map(|i| format!("line {i}\n")).collect();
    std::fs::write(d.join("notes.txt"), &lines).expect("w");
    git(d, &["add", "notes.txt"]);
    commit(d, "notes", 5);
    std::fs::write(d.join("notes.txt"), format!("{lines}TOKEN={k4}\n")).expect("w");
    git(d, &["add", "notes.txt"]);
    std::fs::write(d.join("unstaged.txt"), format!("{k2}\n")).expect("w");
    let (code, out, err) = scan(d, &["git", "--staged", "-f", "json"], None);
    assert_eq!(code, 1, "{err}");
    let report: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    assert_eq!(report.len(), 1, "{out}");
    assert_eq!(report[0]["File"], "notes.txt");
    assert_eq!(report[0]["StartLine"], 41);
}

#[test]
fn the_installed_hook_stops_a_commit_with_a_credential() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    git(d, &["init", "-q"]);
    std::fs::write(d.join(".git/hooks/pre-commit"), "#!/bin/sh\nexit 0\n").expect("w");
    let (code, _, err) = scan(d, &["install-hook"], None);
    assert_eq!(code, 1, "a hook of someone else's is kept: {err}");
    let (code, _, err) = scan(d, &["install-hook", "--force"], None);
    assert_eq!(code, 0, "{err}");
    let hook = std::fs::read_to_string(d.join(".git/hooks/pre-commit")).expect("hook");
    assert!(hook.contains("scan git --staged"), "{hook}");
    let (code, _, _) = scan(d, &["install-hook"], None);
    assert_eq!(code, 0, "coffer's own hook is replaced without --force");
    std::fs::write(d.join("ok.txt"), "nothing secret\n").expect("w");
    git(d, &["add", "."]);
    commit(d, "clean", 1);
    std::fs::write(d.join("leak.env"), format!("TOKEN={GHP}\n")).expect("w");
    git(d, &["add", "."]);
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-q",
            "-m",
            "leak",
        ])
        .current_dir(d)
        .output()
        .expect("git commit");
    assert!(!out.status.success(), "the hook let the credential through");
    // git hands a hook's output to its own stderr.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("leak.env:1:7"), "{said}");
}

#[test]
fn commits_with_one_timestamp_keep_parents_first() {
    // A rebase gives a whole series one committer time; the key must still
    // be reported for the commit that added it, not a later one.
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    git(d, &["init", "-q"]);
    let mut ids = Vec::new();
    for i in 0..6 {
        let text = if i == 0 {
            format!("TOKEN={GHP}\n0\n")
        } else {
            format!("TOKEN={GHP}\n{i}\n")
        };
        std::fs::write(d.join("a.env"), text).expect("w");
        git(d, &["add", "."]);
        ids.push(commit(d, &format!("c{i}"), 7));
    }
    let (code, out, err) = scan(d, &["git", ".", "-f", "json"], None);
    assert_eq!(code, 1, "{err}");
    let report: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    assert_eq!(report.len(), 1, "{out}");
    assert_eq!(report[0]["Commit"].as_str(), Some(ids[0].as_str()));
}

/// SARIF reports of a tree scan and a history scan validate against the
/// SARIF 2.1.0 JSON schema (OASIS' published schema, a fixture here) with
/// Python's `jsonschema`, and carry what code scanning reads.
#[test]
fn sarif_reports_validate_against_the_schema() {
    let Some(venv) = common::pip_venv("jsonschema-venv", "jsonschema==4.26.0") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    git(d, &["init", "-q"]);
    std::fs::create_dir_all(d.join("conf dir")).expect("mkdir");
    std::fs::write(
        d.join("conf dir/app%1.env"),
        format!("A=1\nGITHUB_TOKEN={GHP}\n"),
    )
    .expect("w");
    git(d, &["add", "-A"]);
    let id = commit(d, "add config", 0);

    let tree = d.join("tree.sarif");
    let (code, _, err) = scan(d, &["dir", ".", "-f", "sarif", "-r", "tree.sarif"], None);
    assert_eq!(code, 1, "{err}");
    let history = d.join("history.sarif");
    let (code, _, err) = scan(d, &["git", ".", "-f", "sarif", "-r", "history.sarif"], None);
    assert_eq!(code, 1, "{err}");
    let clean = d.join("clean.sarif");
    let (code, _, err) = scan(
        d,
        &["stdin", "-f", "sarif", "-r", "clean.sarif"],
        Some("nothing\n"),
    );
    assert_eq!(code, 0, "{err}");

    let schema =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sarif-schema-2.1.0.json");
    let check = "import json, sys, jsonschema\n\
        schema = json.load(open(sys.argv[1]))\n\
        jsonschema.Draft7Validator.check_schema(schema)\n\
        for p in sys.argv[2:]:\n    \
            jsonschema.Draft7Validator(schema).validate(json.load(open(p)))\n";
    let out = Command::new(venv.join("bin/python"))
        .args(["-c", check])
        .arg(&schema)
        .args([&tree, &history, &clean])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json")
    };
    let log = read(&tree);
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    assert!(rules.len() >= 95, "every rule in force is listed");
    let result = &run["results"][0];
    assert_eq!(result["ruleId"], "github-pat");
    assert_eq!(
        rules[result["ruleIndex"].as_u64().expect("index") as usize]["id"],
        "github-pat"
    );
    let location = &result["locations"][0]["physicalLocation"];
    assert_eq!(
        location["artifactLocation"]["uri"],
        "conf%20dir/app%251.env"
    );
    assert_eq!(location["region"]["startLine"], 2);
    assert_eq!(location["region"]["startColumn"], 14);
    assert_eq!(location["region"]["endColumn"], 14 + GHP.len());
    assert!(
        !location["region"]["snippet"]["text"]
            .as_str()
            .unwrap_or("")
            .contains(GHP),
        "redacted"
    );

    let log = read(&history);
    let result = &log["runs"][0]["results"][0];
    assert_eq!(result["partialFingerprints"]["commitSha"], id.as_str());
    assert_eq!(result["partialFingerprints"]["author"], "Test Author");
    assert!(
        read(&clean)["runs"][0]["results"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
}

/// Made-up credentials (none live) for the history below.
const AWS_ID: &str = "AKIAQ7ZR2LMX5VTK4NWP";
const GHP_GONE: &str = "ghp_Zt5NwPb7Yc4HsJ1dFg6AeR3uWoq8Zr2LmX0v";
const SLACK_HOOK: &str =
    "https://hooks.slack.com/services/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";
const NPM: &str = "npm_q8Zr2LmX0vTk5NwPb7Yc4HsJ1dFg6AeR3uWo";
const DB_URL: &str = "postgres://app:Xk29fQmz81LpTw7Rv@db.internal:5432/app";

/// The (file, rule, commit) of each finding in a JSON report.
fn found(report: &str) -> Vec<(String, String, String)> {
    let rows: Vec<serde_json::Value> = serde_json::from_str(report).expect("json report");
    let mut out: Vec<(String, String, String)> = rows
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
            (s("File"), s("RuleID"), s("Commit"))
        })
        .collect();
    out.sort();
    out
}

/// The first finding in a JSON report for `file`.
fn finding_in(report: &str, file: &str) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = serde_json::from_str(report).expect("json report");
    rows.into_iter()
        .find(|f| f["File"] == file)
        .unwrap_or_else(|| panic!("no finding in {file}: {report}"))
}

/// A history like a real project's: keys added over several commits, a
/// leak added then deleted, an ignore file, an inline allow, and a last
/// commit that adds one leak while editing a file that holds an old one.
/// The full history blames each leak on the commit that added it; a
/// pull-request range (`A..B`, `-n 1`) reports only what its commits add;
/// `-- paths`, `--since` and `--no-merges` select as git log does;
/// `--staged` sees a rename as nothing new.
#[test]
fn ranges_blame_only_the_commits_in_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let w = |path: &str, text: &str| {
        let p = d.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    git(d, &["init", "-q"]);
    w(
        "config/aws.env",
        &format!("AWS_ACCESS_KEY_ID={AWS_ID}\nREGION=eu-west-1\n"),
    );
    w(".env", &format!("DATABASE_URL={DB_URL}\n"));
    git(d, &["add", "-A"]);
    let c1 = commit(d, "config", 10);
    w("src/github.py", &format!("TOKEN = \"{GHP}\"\n"));
    git(d, &["add", "-A"]);
    let c2 = commit(d, "github client", 20);
    w("ops/slack.txt", &format!("{SLACK_HOOK}\n"));
    git(d, &["add", "-A"]);
    let c3 = commit(d, "alerts", 30);
    w("tmp/leak.txt", &format!("gh = {GHP_GONE}\n"));
    git(d, &["add", "-A"]);
    let c4 = commit(d, "oops", 40);
    git(d, &["rm", "-q", "tmp/leak.txt"]);
    w(
        "docs/setup.md",
        &format!("export GH={GHP_GONE} # gitleaks:allow\n"),
    );
    git(d, &["add", "-A"]);
    commit(d, "remove leak", 45);
    w(
        "config/aws.env",
        &format!("AWS_ACCESS_KEY_ID={AWS_ID}\nREGION=eu-west-1\nRETRIES=3\n"),
    );
    w(
        ".npmrc.env",
        &format!("//registry.npmjs.org/:_authToken={NPM}\n"),
    );
    git(d, &["add", "-A"]);
    let c6 = commit(d, "npm publishing", 55);

    let row = |f: &str, r: &str, c: &str| (f.to_owned(), r.to_owned(), c.to_owned());
    let (code, out, err) = scan(d, &["git", "-f", "json"], None);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        found(&out),
        vec![
            row(".env", "database-url-password", &c1),
            row(".npmrc.env", "npm-access-token", &c6),
            row("config/aws.env", "aws-access-token", &c1),
            row("ops/slack.txt", "slack-webhook-url", &c3),
            row("src/github.py", "github-pat", &c2),
            row("tmp/leak.txt", "github-pat", &c4),
        ],
        "{out}"
    );
    let npm = finding_in(&out, ".npmrc.env");
    assert_eq!(npm["Author"], "Test Author");
    assert_eq!(npm["Email"], "author@example.com");
    assert_eq!(npm["Message"], "npm publishing");
    assert_eq!(npm["Date"], "2026-01-02T03:04:55Z");

    // What a `--log-opts` scan finds.
    let range = |opts: &str| {
        let (code, out, err) = scan(d, &["git", "--log-opts", opts, "-f", "json"], None);
        assert!(code <= 1, "{opts}: {err}");
        found(&out)
    };
    // The pull request: only the npm token, though HEAD also rewrote a
    // file holding an older key.
    for opts in ["HEAD~1..HEAD", "-n 1", "--max-count=1 HEAD", "HEAD ^HEAD~1"] {
        assert_eq!(
            range(opts),
            vec![row(".npmrc.env", "npm-access-token", &c6)],
            "{opts}"
        );
    }
    // Further back: the deleted leak's commit is outside, then inside.
    assert_eq!(
        range(&format!("{c4}..HEAD")),
        vec![row(".npmrc.env", "npm-access-token", &c6)]
    );
    let since_c4 = vec![
        row(".npmrc.env", "npm-access-token", &c6),
        row("tmp/leak.txt", "github-pat", &c4),
    ];
    assert_eq!(range(&format!("{c3}..HEAD")), since_c4);
    // Paths and dates, as git log reads them.
    assert_eq!(
        range("--all -- src ops"),
        vec![
            row("ops/slack.txt", "slack-webhook-url", &c3),
            row("src/github.py", "github-pat", &c2),
        ]
    );
    assert_eq!(range("--since=2026-01-02T03:04:35Z --no-merges"), since_c4);
    let (code, _, err) = scan(d, &["git", "--log-opts", "nosuchref..HEAD"], None);
    assert_eq!(code, 1);
    assert!(err.contains("nosuchref"), "{err}");

    // A short .gitleaksignore entry (path:rule:line) holds in every commit.
    w(".gitleaksignore", "ops/slack.txt:slack-webhook-url:1\n");
    let (_, out, _) = scan(d, &["git", "-f", "json"], None);
    assert!(!out.contains("ops/slack.txt"), "{out}");
    assert_eq!(found(&out).len(), 5);
    std::fs::remove_file(d.join(".gitleaksignore")).expect("rm");

    // Staged: a rename adds nothing; a new token does.
    git(d, &["mv", ".env", "renamed.env"]);
    let (code, out, err) = scan(d, &["git", "--staged", "-f", "json"], None);
    assert_eq!((code, out.trim()), (0, "[]"), "{err}");
    w("app.env", &format!("GH={GHP_GONE}\n"));
    git(d, &["add", "app.env"]);
    let (code, out, _) = scan(d, &["git", "--staged", "-f", "json"], None);
    assert_eq!(code, 1);
    assert_eq!(found(&out), vec![row("app.env", "github-pat", "")]);
}

/// What gitleaks' flags do here: `--redact=N`, `--enable-rule`,
/// `--ignore-gitleaks-allow`, `--max-target-megabytes`, the log level, an
/// unknown flag's exit code (126), and a reader that closes the pipe early.
#[test]
fn gitleaks_flags_do_what_they_say() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(
        d.join("a.env"),
        format!("GH={GHP}\nNPM={NPM}\nOK={GHP_GONE} # gitleaks:allow\n"),
    )
    .expect("w");
    let (code, out, _) = scan(d, &["dir", "--redact=50", "-f", "json"], None);
    assert_eq!(code, 1);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    assert_eq!(rows[0]["Secret"], format!("{}...", &GHP[..20]));
    let (_, out, _) = scan(d, &["dir", "--redact", "-f", "json"], None);
    assert!(out.contains("\"Secret\": \"REDACTED\""), "{out}");
    let (_, out, _) = scan(d, &["dir", "--redact=0", "-f", "json"], None);
    assert!(out.contains(GHP), "{out}");
    let (_, out, _) = scan(
        d,
        &[
            "dir",
            "--enable-rule",
            "npm-access-token",
            "--ignore-gitleaks-allow",
            "-f",
            "json",
        ],
        None,
    );
    assert_eq!(
        found(&out),
        vec![("a.env".into(), "npm-access-token".into(), String::new())]
    );
    let (_, out, _) = scan(d, &["dir", "--ignore-gitleaks-allow", "-f", "json"], None);
    assert_eq!(found(&out).len(), 3, "{out}");
    let (code, _, err) = scan(d, &["dir", "--enable-rule", "no-such-rule"], None);
    assert_eq!(code, 1);
    assert!(err.contains("no-such-rule"), "{err}");
    let (code, out, err) = scan(
        d,
        &[
            "dir",
            "--max-target-megabytes",
            "0",
            "-l",
            "warn",
            "--no-banner",
            "--no-color",
            "-v",
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(!err.contains("scanned"), "warn hides the summary: {err}");
    assert!(
        err.contains("a.env:1:4  github-pat"),
        "-v lists findings: {err}"
    );
    assert!(out.contains("2 leaks found"), "{out}");
    let (code, _, err) = scan(d, &["dir", "--no-such-flag"], None);
    assert_eq!(code, 126, "{err}");
    // A report template, as gitleaks' markdown example writes it.
    std::fs::create_dir(d.join("tmpl")).expect("mkdir");
    std::fs::write(
        d.join("tmpl/md.tmpl"),
        "| File | Line | Secret |\n|:-----|-----:|--------|\n{{ range . -}}\n| {{ .File }} | {{ .StartLine }} | {{ quote .Secret }} |\n{{ end -}}\n",
    )
    .expect("w");
    let (code, out, err) = scan(
        d,
        &[
            "dir",
            "a.env",
            "-f",
            "template",
            "--report-template",
            "tmpl/md.tmpl",
            "--redact=0",
        ],
        None,
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        out,
        format!(
            "| File | Line | Secret |\n|:-----|-----:|--------|\n| a.env | 1 | \"{GHP}\" |\n| a.env | 2 | \"{NPM}\" |\n"
        )
    );
    std::fs::write(d.join("tmpl/bad.tmpl"), "{{ range . }}no end").expect("w");
    let (code, _, err) = scan(
        d,
        &[
            "dir",
            "-f",
            "template",
            "--report-template",
            "tmpl/bad.tmpl",
        ],
        None,
    );
    assert_eq!(code, 1);
    assert!(err.contains("range without end"), "{err}");
    // GITLEAKS_CONFIG names the rules.
    std::fs::write(
        d.join("only-npm.toml"),
        "[[rules]]\nid = 'npm'\nregex = '''npm_[A-Za-z0-9]{36}'''\nkeywords = ['npm_']\n",
    )
    .expect("w");
    let out = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["scan", "dir", "-f", "json"])
        .current_dir(d)
        .env("GITLEAKS_CONFIG", d.join("only-npm.toml"))
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        found(&text),
        vec![("a.env".into(), "npm".into(), String::new())]
    );
    // `| head -1`: the report (far larger than a pipe's buffer) stops
    // being read; that is not an error.
    std::fs::write(d.join("many.env"), format!("GH={GHP}\n").repeat(2000)).expect("w");
    let piped = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{}' scan dir -f sarif -l error . | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}",
            env!("CARGO_BIN_EXE_coffer")
        ))
        .current_dir(d)
        .output()
        .expect("bash");
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(stderr.is_empty(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&piped.stdout).trim(), "1");
}

/// Text that looks binary at a glance is scanned: a token after a few NUL
/// bytes, one in a UTF-16 PowerShell script, one inside base64.
#[test]
fn nuls_utf16_and_encoded_text_do_not_hide_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("nul.txt"), format!("\0\0\0GH={GHP}\nmore\n")).expect("w");
    let mut ps1 = vec![0xFF, 0xFE];
    for u in format!("$env:NPM_TOKEN = \"{NPM}\"\r\nWrite-Host done\r\n").encode_utf16() {
        ps1.extend_from_slice(&u.to_le_bytes());
    }
    std::fs::write(d.join("deploy.ps1"), ps1).expect("w");
    let b64 = "Z2hfdG9rZW4gPSBnaHBfWnQ1TndQYjdZYzRIc0oxZEZnNkFlUjN1V29xOFpyMkxtWDB2";
    std::fs::write(d.join("values.yaml"), format!("blob: {b64}\n")).expect("w");
    let (code, out, err) = scan(d, &["dir", "-f", "json", "--no-redact"], None);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        found(&out),
        vec![
            (
                "deploy.ps1".into(),
                "npm-access-token".into(),
                String::new()
            ),
            ("nul.txt".into(), "github-pat".into(), String::new()),
            ("values.yaml".into(), "github-pat".into(), String::new()),
        ],
        "{out}"
    );
    let decoded = finding_in(&out, "values.yaml");
    assert_eq!(decoded["Secret"], GHP_GONE);
    assert_eq!(
        (
            decoded["StartLine"].as_u64(),
            decoded["StartColumn"].as_u64()
        ),
        (Some(1), Some(7))
    );
    assert!(
        decoded["Tags"].to_string().contains("decoded:base64"),
        "{decoded}"
    );
    let (_, out, _) = scan(d, &["dir", "-f", "json", "--max-decode-depth", "0"], None);
    assert_eq!(found(&out).len(), 2, "{out}");
}
