//! `coffer run -- cmd`: reads secrets, puts them in the environment of a
//! command, and becomes that command. Nothing is written to disk.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use serde::Deserialize;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{ClientArgs, UsageError};

#[derive(Args, Debug)]
pub struct RunArgs {
    /// `NAME=PATH#FIELD`: set NAME to one field of the secret at PATH
    /// (e.g. `DB_PASSWORD=secret/app/db#password`); repeatable.
    #[arg(long = "env", value_name = "NAME=PATH#FIELD")]
    pub env: Vec<String>,
    /// Every field of the secret at PATH, each as a variable named after the
    /// field (upper case, `-` and `.` as `_`); repeatable.
    #[arg(long = "from", value_name = "PATH")]
    pub from: Vec<String>,
    /// Put this in front of the names `--from` makes (e.g. `APP_`).
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// A YAML or JSON file with `env: {NAME: PATH#FIELD}` and `from: [PATH]`.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Pass coffer's own token (VAULT_TOKEN, COFFER_TOKEN) on to the command.
    #[arg(long)]
    pub keep_token: bool,
    /// Stay as the command's supervisor: when a value changes (told by
    /// change events, and a leased secret near its end), restart the
    /// command with the new values.
    #[arg(long)]
    pub watch: bool,
    /// With --watch: send this signal instead of restarting (for commands
    /// that fetch their secrets again themselves), e.g. SIGHUP.
    #[arg(long, value_name = "SIGNAL", requires = "watch")]
    pub signal: Option<String>,
    /// With --watch: the signal that stops the command before a restart
    /// (SIGKILL 30 s later if it is still there).
    #[arg(
        long,
        value_name = "SIGNAL",
        default_value = "SIGTERM",
        requires = "watch"
    )]
    pub stop_signal: String,
    #[command(flatten)]
    pub client: ClientArgs,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// What `--file` holds.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EnvFile {
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    from: Vec<String>,
}

/// One variable to set.
struct Wanted {
    name: String,
    path: String,
    field: String,
}

fn valid_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `NAME=PATH#FIELD`.
fn parse_env(spec: &str) -> Result<Wanted, UsageError> {
    let bad = || {
        UsageError(format!(
            "--env {spec:?}: use NAME=PATH#FIELD, e.g. DB_PASSWORD=secret/app/db#password"
        ))
    };
    let (name, reference) = spec.split_once('=').ok_or_else(bad)?;
    let (path, field) = reference.rsplit_once('#').ok_or_else(bad)?;
    if path.is_empty() || field.is_empty() {
        return Err(bad());
    }
    if !valid_name(name) {
        return Err(UsageError(format!(
            "--env {spec:?}: {name:?} is not a variable name (letters, digits and _, not starting with a digit)"
        )));
    }
    Ok(Wanted {
        name: name.into(),
        path: path.into(),
        field: field.into(),
    })
}

/// The variable name `--from` gives a field.
fn name_of(prefix: &str, field: &str) -> String {
    let mut n: String = field
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    n.insert_str(0, prefix);
    if n.starts_with(|c: char| c.is_ascii_digit()) {
        n.insert(0, '_');
    }
    n
}

/// A field as the environment holds it: strings as they are, anything
/// else as JSON.
fn as_env_value(v: &Value) -> Zeroizing<String> {
    Zeroizing::new(match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// Runs `coffer run`; on success it does not return (the command replaces coffer).
pub async fn run(a: RunArgs) -> anyhow::Result<u8> {
    let mut wanted: Vec<Wanted> = a
        .env
        .iter()
        .map(|s| parse_env(s))
        .collect::<Result<_, _>>()?;
    let mut from = a.from.clone();
    if let Some(f) = &a.file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let file: EnvFile = serde_norway::from_str(&text)
            .map_err(|e| UsageError(format!("{}: {e}", f.display())))?;
        for (name, reference) in file.env {
            wanted.push(parse_env(&format!("{name}={reference}"))?);
        }
        from.extend(file.from);
    }
    if wanted.is_empty() && from.is_empty() {
        return Err(UsageError(
            "nothing to inject: give --env NAME=PATH#FIELD, --from PATH or --file FILE".into(),
        )
        .into());
    }
    let client = a.client.client()?;
    if a.watch {
        return watch(&a, &client, &wanted, &from).await;
    }
    let (vars, leases) = resolve(&client, &wanted, &from, &a.prefix).await?;
    for (path, id, ttl) in leases {
        eprintln!(
            "warning: {path} is a lease ({id}, {ttl}s); coffer run does not renew it, so the credential stops working when it ends (--watch fetches a new one and restarts the command)"
        );
    }
    exec(&a.command, vars, a.keep_token)
}

type Vars = BTreeMap<String, Zeroizing<String>>;

/// Reads every secret once and makes the variables; also answers the
/// leases read (path, lease id, seconds).
async fn resolve(
    client: &coffer_client::Client,
    wanted: &[Wanted],
    from: &[String],
    prefix: &str,
) -> anyhow::Result<(Vars, Vec<(String, String, u64)>)> {
    let mut leases = Vec::new();
    // Each secret is read once, however many variables come from it.
    let mut secrets: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for path in wanted.iter().map(|w| &w.path).chain(from.iter()) {
        if secrets.contains_key(path) {
            continue;
        }
        let (data, lease) = super::kv::read_fields(client, path).await?;
        if let Some((id, ttl)) = lease {
            leases.push((path.clone(), id, ttl));
        }
        secrets.insert(path.clone(), data);
    }
    let mut vars: BTreeMap<String, Zeroizing<String>> = BTreeMap::new();
    let mut set = |name: String, value: Zeroizing<String>, from: &str| -> anyhow::Result<()> {
        if vars.insert(name.clone(), value).is_some() {
            return Err(UsageError(format!("{name} is set twice (again from {from})")).into());
        }
        Ok(())
    };
    for path in from {
        for (field, v) in &secrets[path] {
            set(name_of(prefix, field), as_env_value(v), path)?;
        }
    }
    for w in wanted {
        let data = &secrets[&w.path];
        let v = data.get(&w.field).ok_or_else(|| {
            let fields: Vec<&str> = data.keys().map(String::as_str).collect();
            UsageError(format!(
                "{} has no field {:?} (it has: {})",
                w.path,
                w.field,
                fields.join(", ")
            ))
        })?;
        set(w.name.clone(), as_env_value(v), &w.path)?;
    }
    Ok((vars, leases))
}

/// `--watch`: the command runs under coffer, which reads the values again
/// when a change event arrives (or a lease nears its end, or five minutes
/// passed without events) and restarts or signals the command only when a
/// value it gets actually changed.
async fn watch(
    a: &RunArgs,
    client: &coffer_client::Client,
    wanted: &[Wanted],
    from: &[String],
) -> anyhow::Result<u8> {
    use crate::agent::{events, supervisor};
    let signal_of = |s: &str| {
        crate::agent::config::signal_number(s).ok_or_else(|| {
            UsageError(format!(
                "{s:?} is not a signal name such as SIGTERM or SIGHUP"
            ))
        })
    };
    let exec = crate::agent::config::ExecBlock {
        command: a.command.clone(),
        restart: a.signal.is_none(),
        stop_signal: signal_of(&a.stop_signal)?,
        reload_signal: a.signal.as_deref().map(signal_of).transpose()?,
        stdout: None,
        stderr: None,
        line: 0,
        env_remove: if a.keep_token {
            Vec::new()
        } else {
            vec!["VAULT_TOKEN".into(), "COFFER_TOKEN".into()]
        },
    };
    let token = client
        .token()
        .map(|t| Zeroizing::new(t.to_owned()))
        .ok_or_else(|| UsageError("--watch needs a token (VAULT_TOKEN or coffer login)".into()))?;
    let creds = std::sync::Arc::new(crate::session::Credentials::new(
        client.clone(),
        crate::session::Source::Fixed(token),
        "coffer run",
    ));
    let changes = std::sync::Arc::new(events::Changes::default());
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let plain = |v: &Vars| -> BTreeMap<String, String> {
        v.iter().map(|(k, x)| (k.clone(), x.to_string())).collect()
    };
    let (mut vars, mut leases) = resolve(client, wanted, from, &a.prefix).await?;
    tx.send(supervisor::Update {
        env: plain(&vars),
        env_changed: false,
        files_changed: false,
    })
    .await
    .ok();
    let listener = tokio::spawn(events::listen(creds, changes.clone()));
    let watching = async {
        loop {
            // A lease is read again at 90% of its time, else every 5 minutes.
            let wait = leases
                .iter()
                .map(|(_, _, ttl)| std::time::Duration::from_secs(*ttl).mul_f64(0.9))
                .min()
                .unwrap_or(std::time::Duration::from_secs(300))
                .max(std::time::Duration::from_secs(1));
            tokio::select! {
                _ = changes.notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            changes.take();
            match resolve(client, wanted, from, &a.prefix).await {
                Ok((next, l)) => {
                    leases = l;
                    if next != vars {
                        vars = next;
                        let update = supervisor::Update {
                            env: plain(&vars),
                            env_changed: true,
                            files_changed: true,
                        };
                        if tx.send(update).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => eprintln!(
                    "warning: reading the secrets again failed ({e:#}); the command keeps its values"
                ),
            }
        }
    };
    let code = tokio::select! {
        code = supervisor::supervise(exec, rx) => code,
        _ = watching => Ok(0),
    };
    listener.abort();
    code
}

/// Replaces this process with the command (its exit code becomes the
/// caller's); returns only when that fails, with the shell's 127 or 126.
fn exec(
    command: &[String],
    vars: BTreeMap<String, Zeroizing<String>>,
    keep_token: bool,
) -> anyhow::Result<u8> {
    use std::os::unix::process::CommandExt as _;
    let (program, args) = command
        .split_first()
        .ok_or_else(|| UsageError("no command after --".into()))?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    if !keep_token {
        cmd.env_remove("VAULT_TOKEN").env_remove("COFFER_TOKEN");
    }
    for (k, v) in &vars {
        cmd.env(k, v.as_str());
    }
    let e = cmd.exec();
    eprintln!("error: cannot run {program}: {e}");
    Ok(match e.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_and_names() {
        let w = parse_env("DB_PASSWORD=secret/app/db#password").unwrap();
        assert_eq!(
            (w.name.as_str(), w.path.as_str(), w.field.as_str()),
            ("DB_PASSWORD", "secret/app/db", "password")
        );
        let w = parse_env("X=kv/a#b#c").unwrap();
        assert_eq!(
            (w.path.as_str(), w.field.as_str()),
            ("kv/a#b", "c"),
            "the last # splits"
        );
        for bad in [
            "NOEQUALS",
            "A=secret/x",
            "A=#f",
            "A=p#",
            "1A=p#f",
            "A-B=p#f",
            "=p#f",
        ] {
            assert!(parse_env(bad).is_err(), "{bad}");
        }
        assert_eq!(name_of("", "api-key"), "API_KEY");
        assert_eq!(name_of("APP_", "db.url"), "APP_DB_URL");
        assert_eq!(name_of("", "2fa"), "_2FA");
        assert_eq!(as_env_value(&serde_json::json!(5)).as_str(), "5");
        assert_eq!(
            as_env_value(&serde_json::json!({"a": 1})).as_str(),
            r#"{"a":1}"#
        );
    }
}
