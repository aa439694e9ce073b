//! A Vault user's day with the real OpenBao CLI (`bao`, the Go client that
//! `vault`, Terraform, ESO and the CSI provider share), run command by
//! command against an OpenBao dev server and a coffer dev server: every
//! command must exit the same way and give the same data fields (the same
//! list, for lists). Known differences are in `EXCEPTIONS`, each with its
//! reason, and in docs/compatibility.md.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};

use common::{Server, postgres_available, start_bao};
use serde_json::Value;

/// One command per line: `bao` arguments (single quotes group words), then
/// after ` ## ` options: `save=NAME:json.path` keeps a value of this
/// server's answer for `{NAME}` in later lines; `exit` compares the exit
/// status only (the output is text that differs, or values that do);
/// `stdin=NAME` feeds a file's text; `db` needs PostgreSQL.
const DAY: &str = r#"
status ## exit
secrets list ## exit
secrets enable -path=kv1 kv
secrets enable -path=kv2 -version=2 kv
secrets enable -path=kv1 kv
secrets tune -default-lease-ttl=1h -max-lease-ttl=2h kv1/
read -format=json sys/mounts/kv1/tune
kv put kv1/app user=ann password=s3cret
kv get -format=json kv1/app
kv get -field=password kv1/app
kv list -format=json kv1/
kv put kv1/dir/a x=1
kv list -format=json kv1/dir
kv delete kv1/app
kv get kv1/app
kv put -format=json kv2/app a=1
kv put -format=json kv2/app a=2
kv get -format=json kv2/app
kv get -format=json -version=1 kv2/app
kv get -field=a kv2/app
kv metadata get -format=json kv2/app
kv metadata put -max-versions=5 -custom-metadata=owner=ops kv2/app
kv metadata get -format=json kv2/app
kv put -cas=2 -format=json kv2/app a=3
kv put -cas=1 kv2/app a=4
kv patch -format=json kv2/app b=5
kv get -format=json kv2/app
kv rollback -version=1 -format=json kv2/app
kv delete -versions=1 kv2/app
kv get -format=json -version=1 kv2/app ## exit
kv undelete -versions=1 kv2/app
kv destroy -versions=2 kv2/app
kv get -version=2 kv2/app ## exit
kv put kv2/dir/x v=1
kv list -format=json kv2/
kv list -format=json kv2/dir
kv metadata delete kv2/app
kv get kv2/app
kv get kv2/nothing
write kv1/raw foo=bar
read -format=json kv1/raw
read -field=foo kv1/raw
list -format=json kv1/
delete kv1/raw
read kv1/raw
secrets enable transit
write -f transit/keys/k
write transit/keys/k2 type=ed25519
write transit/keys/k3 type=ecdsa-p256
read -format=json transit/keys/k ## exit
list -format=json transit/keys
write -format=json transit/encrypt/k plaintext=aGVsbG8gd29ybGQ= ## save=ct:data.ciphertext
write -format=json transit/decrypt/k ciphertext={ct}
write -field=plaintext transit/decrypt/k ciphertext={ct} ## exit
write -f transit/keys/k/rotate
write -format=json transit/rewrap/k ciphertext={ct}
write transit/keys/k/config min_decryption_version=1
write -format=json -f transit/datakey/plaintext/k
write -format=json transit/hmac/k input=aGVsbG8=
write -format=json transit/sign/k2 input=aGVsbG8= ## save=sig:data.signature
write -format=json transit/verify/k2 input=aGVsbG8= signature={sig}
write -format=json transit/sign/k3 input=aGVsbG8=
write -format=json transit/hash input=aGVsbG8=
write -format=json transit/random/16
write transit/encrypt/nokey plaintext=aGVsbG8= ## exit
write transit/decrypt/k ciphertext=vault:v9:AAAA
delete transit/keys/k
write transit/keys/k/config deletion_allowed=true
delete transit/keys/k
policy write reader - ## stdin=reader
policy read reader ## exit
policy list -format=json
policy write broken - ## stdin=broken
token create -format=json -policy=reader -ttl=1h -display-name=app ## save=tok:auth.client_token save=acc:auth.accessor
token lookup -format=json {tok}
token lookup -format=json -accessor {acc}
token renew -format=json -increment=30m {tok}
token capabilities {tok} kv1/app
token capabilities {tok} kv2/data/app
token create -format=json -orphan -policy=default -ttl=10m
token create -format=json -use-limit=2 -policy=default
token create -format=json -period=1h -policy=default
token revoke -accessor {acc}
token lookup {tok}
token lookup nope
write -format=json auth/token/roles/ci allowed_policies=reader orphan=true
read -format=json auth/token/roles/ci
token create -format=json -role=ci -policy=reader
auth enable userpass
auth tune -default-lease-ttl=30m userpass/
read -format=json sys/auth/userpass/tune
auth list ## exit
write auth/userpass/users/ann password=pw-123456789 token_policies=reader
read -format=json auth/userpass/users/ann
list -format=json auth/userpass/users
login -format=json -no-store -method=userpass username=ann password=pw-123456789
login -no-store -method=userpass username=ann password=wrong
auth enable approle
write auth/approle/role/app token_policies=reader secret_id_ttl=10m token_ttl=20m
read -format=json auth/approle/role/app
read -format=json auth/approle/role/app/role-id ## save=rid:data.role_id
write -format=json -f auth/approle/role/app/secret-id ## save=sid:data.secret_id save=sida:data.secret_id_accessor
write -format=json auth/approle/role/app/secret-id-accessor/lookup secret_id_accessor={sida}
list -format=json auth/approle/role
write -format=json auth/approle/login role_id={rid} secret_id={sid}
write auth/approle/login role_id={rid} secret_id=wrong
auth move auth/approle auth/apps ## exit
list -format=json auth/apps/role
auth disable apps
secrets move kv1/ kv1moved/ ## exit
kv get -format=json kv1moved/dir/a
kv get kv1/dir/a
path-help kv2/data/x ## exit
path-help nomount/x
secrets enable database ## db
write database/config/pg plugin_name=postgresql-database-plugin 'connection_url=postgresql://{{username}}:{{password}}@127.0.0.1:5432/postgres?sslmode=disable' username=postgres password=unused allowed_roles=ro ## db
read -format=json database/config/pg ## db
write database/roles/ro db_name=pg creation_statements=@{files}/create.sql default_ttl=1h max_ttl=24h ## db
read -format=json database/roles/ro ## db
list -format=json database/roles ## db
read -format=json database/creds/ro ## db save=lease:lease_id
lease lookup -format=json {lease} ## db
lease renew -format=json -increment=2h {lease} ## db
lease revoke {lease} ## db
lease lookup {lease} ## db
read -format=json database/creds/ro ## db
lease revoke -prefix database/creds/ro ## db
list sys/leases/lookup/database/creds/ro ## db
secrets disable database ## db
operator key-status ## exit
operator rotate ## exit
operator seal
status
kv get kv2/dir/x
operator unseal {unseal_key} ## exit
kv get -format=json kv2/dir/x
secrets disable kv2/
secrets list -format=json ## exit
read sys/nothing
"#;

const FILES: &[(&str, &str)] = &[
    (
        "reader",
        "path \"kv1/*\" {\n  capabilities = [\"read\", \"list\"]\n}\npath \"kv2/data/*\" { capabilities = [\"read\"] }\n",
    ),
    (
        "broken",
        "path \"kv1/*\" {\n  capabilities = [\"reed\"]\n}\n",
    ),
    (
        "create.sql",
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
    ),
];

/// Differences known and accepted: (command prefix, field, reason).
const EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "kv metadata get",
        "data.current_metadata_version",
        "OpenBao's metadata check-and-set, not in Vault",
    ),
    (
        "kv metadata get",
        "data.metadata_cas_required",
        "OpenBao's metadata check-and-set, not in Vault",
    ),
    (
        "read -format=json auth/token/roles/",
        "data.bound_cidrs",
        "Vault's deprecated alias of token_bound_cidrs, which OpenBao 2 dropped",
    ),
    (
        "read -format=json auth/token/roles/",
        "data.token_bound_cidrs",
        "Vault returns it; OpenBao 2.7 omits it when empty",
    ),
    (
        "read -format=json auth/token/roles/",
        "data.token_num_uses",
        "Vault returns it; OpenBao 2.7 omits it",
    ),
    (
        "read -format=json auth/userpass/users/",
        "",
        "Vault's deprecated aliases (policies, ttl, max_ttl, period, bound_cidrs) kept; OpenBao's token_strictly_bind_ip not implemented",
    ),
    (
        "read -format=json auth/approle/role/",
        "",
        "Vault's deprecated aliases (policies, ttl, max_ttl, period, bound_cidrs) kept; OpenBao's token_strictly_bind_ip not implemented",
    ),
    (
        "read -format=json database/config/",
        "data.username_template",
        "returned as Vault does; OpenBao moves it into connection_details",
    ),
    (
        "read -format=json database/config/",
        "data.verify_connection",
        "returned as Vault does",
    ),
    (
        "read -format=json database/roles/",
        "data.credential_config",
        "returned as Vault does (empty for passwords)",
    ),
];

struct Target<'a> {
    name: &'a str,
    /// The CLI binary this target runs.
    cli: String,
    url: String,
    home: std::path::PathBuf,
    saved: BTreeMap<String, String>,
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Splits a line into words; single quotes group words (no escapes:
/// text with quotes goes in `FILES` and is passed as `@{files}/NAME`).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut cur, mut quoted, mut any) = (String::new(), false, false);
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn run(t: &Target<'_>, args: &[String], stdin: Option<&str>) -> Outcome {
    let mut cmd = Command::new(&t.cli);
    cmd.args(args)
        .env("VAULT_ADDR", &t.url)
        .env("VAULT_TOKEN", "root")
        .env_remove("COFFER_ADDR")
        .env_remove("COFFER_TOKEN")
        .env("HOME", &t.home)
        .env_remove("VAULT_FORMAT")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run bao");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        pipe.write_all(text.as_bytes()).expect("stdin");
    }
    let out = child.wait_with_output().expect("bao output");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn at<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// Field names of an answer worth comparing: `data` and `auth` keys (and
/// a KV v2 read's `data.metadata`), or the items of a list.
fn fields(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    match v {
        Value::Array(items) => {
            for i in items {
                out.insert(format!("item {}", i.as_str().unwrap_or("?")));
            }
        }
        Value::Object(m) => {
            for part in ["data", "auth"] {
                if let Some(Value::Object(inner)) = m.get(part) {
                    for (k, val) in inner {
                        out.insert(format!("{part}.{k}"));
                        if part == "data"
                            && k == "metadata"
                            && let Value::Object(meta) = val
                        {
                            out.extend(meta.keys().map(|mk| format!("data.metadata.{mk}")));
                        }
                    }
                }
            }
            if !m.contains_key("data") && !m.contains_key("auth") {
                out.extend(m.keys().map(|k| format!("top.{k}")));
            }
        }
        _ => {}
    }
    out
}

fn excepted(line: &str, field: &str) -> bool {
    EXCEPTIONS
        .iter()
        .any(|(prefix, f, _)| line.starts_with(prefix) && (*f == field || f.is_empty()))
}

fn substitute(word: &str, saved: &BTreeMap<String, String>) -> String {
    let mut w = word.to_owned();
    for (k, v) in saved {
        w = w.replace(&format!("{{{k}}}"), v);
    }
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bao_cli_gets_the_same_answers_from_coffer_and_openbao() {
    day(common::bao_binary()).await;
}

/// coffer's own CLI through the same day, against coffer, answering as
/// `bao` answers against OpenBao.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coffers_cli_answers_as_the_bao_cli_does() {
    day(env!("CARGO_BIN_EXE_coffer")).await;
}

async fn day(coffer_side_cli: &str) {
    let Some(bao) = start_bao(&[]).await else {
        return;
    };
    let coffer = Server::dev();
    let with_db = postgres_available().await;
    assert!(
        with_db || std::env::var("CI").as_deref() != Ok("true"),
        "PostgreSQL is required in CI"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut targets = [
        Target {
            name: "openbao",
            cli: common::bao_binary().to_owned(),
            url: bao.url.clone(),
            home: dir.path().join("openbao"),
            saved: BTreeMap::new(),
        },
        Target {
            name: "coffer",
            cli: coffer_side_cli.to_owned(),
            url: coffer.addr.clone(),
            home: dir.path().join("coffer"),
            saved: BTreeMap::new(),
        },
    ];
    for (t, key) in targets
        .iter_mut()
        .zip([bao.unseal_key.clone(), coffer.dev_unseal_key.clone()])
    {
        std::fs::create_dir_all(&t.home).expect("home");
        t.saved.insert(
            "unseal_key".into(),
            key.expect("the dev server printed its unseal key"),
        );
    }
    let files: BTreeMap<&str, &str> = FILES.iter().copied().collect();
    for (name, text) in FILES {
        std::fs::write(dir.path().join(name), text).expect("write file");
    }
    for t in targets.iter_mut() {
        t.saved
            .insert("files".into(), dir.path().display().to_string());
    }
    let mut problems = Vec::new();
    let mut ran = 0;
    for line in DAY.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (cmd, opts) = line.split_once(" ## ").unwrap_or((line, ""));
        let opts: Vec<&str> = opts.split_whitespace().collect();
        if opts.contains(&"db") && !with_db {
            continue;
        }
        let stdin = opts
            .iter()
            .find_map(|o| o.strip_prefix("stdin="))
            .map(|n| files[n]);
        let runs: Vec<Outcome> = std::thread::scope(|scope| {
            let handles: Vec<_> = targets
                .iter()
                .map(|t| {
                    let args: Vec<String> =
                        words(cmd).iter().map(|w| substitute(w, &t.saved)).collect();
                    scope.spawn(move || run(t, &args, stdin))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("bao run"))
                .collect()
        });
        let mut outcomes = Vec::new();
        for (t, out) in targets.iter_mut().zip(runs) {
            let json: Option<Value> = serde_json::from_str(&out.stdout).ok();
            for save in opts.iter().filter_map(|o| o.strip_prefix("save=")) {
                let (name, path) = save.split_once(':').expect("save=NAME:path");
                match json
                    .as_ref()
                    .and_then(|j| at(j, path))
                    .and_then(Value::as_str)
                {
                    Some(v) => {
                        t.saved.insert(name.to_owned(), v.to_owned());
                    }
                    None => problems.push(format!(
                        "{line}\n    {}: nothing at {path}: {}{}",
                        t.name, out.stdout, out.stderr
                    )),
                }
            }
            outcomes.push((out, json));
        }
        ran += 1;
        let [(b, bj), (c, cj)] = [&outcomes[0], &outcomes[1]];
        if b.code != c.code {
            problems.push(format!(
                "{line}\n    exit: openbao {} coffer {}\n    openbao: {}{}\n    coffer: {}{}",
                b.code,
                c.code,
                b.stdout.trim(),
                b.stderr.trim(),
                c.stdout.trim(),
                c.stderr.trim()
            ));
            continue;
        }
        if opts.contains(&"exit") || b.code != 0 {
            continue;
        }
        match (bj, cj) {
            (Some(bj), Some(cj)) => {
                let (bf, cf) = (fields(bj), fields(cj));
                for f in bf.symmetric_difference(&cf) {
                    if excepted(cmd, f) {
                        continue;
                    }
                    let side = if bf.contains(f) {
                        "only openbao"
                    } else {
                        "only coffer"
                    };
                    problems.push(format!("{line}\n    {f}: {side}"));
                }
            }
            (None, None) => {
                // Tables hold values (times, keys) that differ; the
                // confirmation line must not.
                if cmd.contains("-field=") && b.stdout != c.stdout {
                    problems.push(format!(
                        "{line}\n    -field output differs: openbao {:?} coffer {:?}",
                        b.stdout, c.stdout
                    ));
                }
                let first = |o: &Outcome| o.stdout.lines().next().unwrap_or("").to_owned();
                let success = first(b).starts_with("Success!");
                if success && first(b) != first(c) && !excepted(cmd, "") {
                    problems.push(format!(
                        "{line}\n    output differs:\n    openbao: {}\n    coffer: {}",
                        b.stdout.trim(),
                        c.stdout.trim()
                    ));
                }
            }
            _ => problems.push(format!(
                "{line}\n    only one answer is JSON:\n    openbao: {}\n    coffer: {}",
                b.stdout.trim(),
                c.stdout.trim()
            )),
        }
    }
    assert!(ran >= 100 || !with_db, "only {ran} commands ran");
    assert!(
        problems.is_empty(),
        "{} of {ran} commands differ:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
