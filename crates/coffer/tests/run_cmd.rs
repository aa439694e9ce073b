//! `coffer run -- cmd`: secrets from KV version 1 and 2 in a command's
//! environment, the command's exit code passed through, and mistakes caught
//! before anything runs.

mod common;

use std::process::{Command, Output};

use common::Server;
use serde_json::json;

fn coffer(addr: &str, home: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(args)
        .env_remove("COFFER_ADDR")
        .env_remove("COFFER_TOKEN")
        .env("VAULT_ADDR", addr)
        .env("VAULT_TOKEN", "root")
        .env("HOME", home)
        .current_dir(home)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn a_command_gets_secrets_in_its_environment_and_nothing_else() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    let r = root
        .post(
            "secret/data/app/db",
            json!({"data": {"password": "s3cret value", "user": "app", "port": 5432}}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = root
        .post(
            "sys/mounts/kv1",
            json!({"type": "kv", "options": {"version": "1"}}),
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        root.post("kv1/legacy", json!({"api-key": "k-1", "token": "t-1"}))
            .await
            .status,
        204
    );
    let home = tempfile::tempdir().unwrap();
    let h = home.path();

    let show = "printf '%s|%s|%s|%s|%s' \"$DB_PASSWORD\" \"$PORT\" \"$OLD_API_KEY\" \"$OLD_TOKEN\" \"${VAULT_TOKEN:-no token}\"";
    let o = coffer(
        &s.addr,
        h,
        &[
            "run",
            "--env",
            "DB_PASSWORD=secret/app/db#password",
            "--env",
            "PORT=secret/app/db#port",
            "--from",
            "kv1/legacy",
            "--prefix",
            "OLD_",
            "--",
            "sh",
            "-c",
            show,
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), "s3cret value|5432|k-1|t-1|no token");

    // The same from a file; --keep-token passes coffer's token on.
    std::fs::write(
        h.join("coffer-env.yaml"),
        "env:\n  DB_PASSWORD: secret/app/db#password\n  PORT: secret/app/db#port\nfrom:\n  - kv1/legacy\n",
    )
    .unwrap();
    let o = coffer(
        &s.addr,
        h,
        &[
            "run",
            "--file",
            "coffer-env.yaml",
            "--prefix",
            "OLD_",
            "--keep-token",
            "--",
            "sh",
            "-c",
            show,
        ],
    );
    assert_eq!(
        text(&o.stdout),
        "s3cret value|5432|k-1|t-1|root",
        "{}",
        text(&o.stderr)
    );

    // The command's exit code is coffer's; flags after -- are the command's.
    let o = coffer(
        &s.addr,
        h,
        &["run", "--from", "kv1/legacy", "--", "sh", "-c", "exit 7"],
    );
    assert_eq!(o.status.code(), Some(7));
    let o = coffer(
        &s.addr,
        h,
        &["run", "--from", "kv1/legacy", "--", "ls", "-la", "."],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = coffer(
        &s.addr,
        h,
        &["run", "--from", "kv1/legacy", "--", "no-such-program-here"],
    );
    assert_eq!(o.status.code(), Some(127), "{}", text(&o.stderr));

    // Mistakes are caught before the command runs.
    let marker = h.join("ran");
    let touch = ["--", "touch", marker.to_str().unwrap()];
    // Usage mistakes exit 1, a secret that is not there 2 (as Vault's CLI).
    for (args, code, says) in [
        (
            vec!["--env", "P=secret/app/db#pass"],
            1,
            "has no field \"pass\" (it has: password, port, user)",
        ),
        (
            vec!["--env", "P=secret/app/nothing#x"],
            2,
            "secret/app/nothing",
        ),
        (vec!["--env", "P=secret/app/db"], 1, "use NAME=PATH#FIELD"),
        (
            vec!["--env", "9P=secret/app/db#user"],
            1,
            "is not a variable name",
        ),
        (
            vec!["--env", "TOKEN=secret/app/db#user", "--from", "kv1/legacy"],
            1,
            "TOKEN is set twice",
        ),
        (vec![], 1, "nothing to inject"),
    ] {
        let mut all = vec!["run"];
        all.extend(args);
        all.extend(touch);
        let o = coffer(&s.addr, h, &all);
        assert_eq!(o.status.code(), Some(code), "{all:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains(says),
            "{all:?}: {}",
            text(&o.stderr)
        );
        assert!(!marker.exists(), "{all:?} ran the command");
    }
    // A token that may not read the secret: refused, and nothing runs.
    let o = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args(["run", "--env", "P=secret/app/db#user"])
        .args(touch)
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", "not-a-token")
        .env_remove("COFFER_TOKEN")
        .env("HOME", h)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("permission denied"),
        "{}",
        text(&o.stderr)
    );
    assert!(!marker.exists());
}

/// docs/delivery.md's migration: store the .env file, delete it, run with it.
#[tokio::test]
async fn a_dotenv_file_moves_into_coffer_in_two_commands() {
    let s = Server::dev();
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    std::fs::write(
        h.join(".env"),
        "# app settings\nexport DB_URL=postgres://app@db/app\nDB_PASSWORD='pa$$word with spaces'\nGREETING=\"hi\\nthere\"\n",
    )
    .unwrap();
    let o = coffer(&s.addr, h, &["kv", "put", "secret/app", "@.env"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    std::fs::remove_file(h.join(".env")).unwrap();
    let o = coffer(
        &s.addr,
        h,
        &[
            "run",
            "--from",
            "secret/app",
            "--",
            "sh",
            "-c",
            "printf '%s|%s|%s' \"$DB_URL\" \"$DB_PASSWORD\" \"$GREETING\"",
        ],
    );
    assert_eq!(
        text(&o.stdout),
        "postgres://app@db/app|pa$$word with spaces|hi\nthere",
        "{}",
        text(&o.stderr)
    );
    // A line that is not KEY=value is refused, naming the line and not the value.
    std::fs::write(h.join("bad.env"), "A=1\ns3cret-without-key\n").unwrap();
    let o = coffer(&s.addr, h, &["kv", "put", "secret/bad", "@bad.env"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("bad.env: line 2: expected KEY=value") && !err.contains("s3cret"),
        "{err}"
    );
}

#[tokio::test]
async fn watch_restarts_the_command_when_a_value_it_gets_changes() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    root.post(
        "secret/data/app/db",
        json!({"data": {"password": "pw-1", "user": "u"}}),
    )
    .await;
    let home = tempfile::tempdir().unwrap();
    let seen = home.path().join("seen");
    let mut child = Command::new(env!("CARGO_BIN_EXE_coffer"))
        .args([
            "run",
            "--watch",
            "--env",
            "PW=secret/app/db#password",
            "--",
            "sh",
            "-c",
            "echo \"$PW ${VAULT_TOKEN:-no-token}\" >> seen; exec sleep 600",
        ])
        .env_remove("COFFER_ADDR")
        .env_remove("COFFER_TOKEN")
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", "root")
        .env("HOME", home.path())
        .current_dir(home.path())
        .spawn()
        .unwrap();
    let read = || std::fs::read_to_string(&seen).unwrap_or_default();
    async fn wait(seen: &std::path::Path, want: &str) {
        for _ in 0..200 {
            if std::fs::read_to_string(seen).unwrap_or_default() == want {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("never saw {want:?}");
    }
    wait(&seen, "pw-1 no-token\n").await;
    // A field the command does not get: no restart.
    root.post(
        "secret/data/app/db",
        json!({"data": {"password": "pw-1", "user": "v"}}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(read(), "pw-1 no-token\n");
    root.post(
        "secret/data/app/db",
        json!({"data": {"password": "pw-2", "user": "v"}}),
    )
    .await;
    wait(&seen, "pw-1 no-token\npw-2 no-token\n").await;
    // SIGTERM to coffer stops the command too, and coffer exits.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}
