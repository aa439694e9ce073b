//! `coffer read|write|list|delete`: any path, Vault's CLI semantics.

use std::io::Read as _;

use anyhow::Context;
use serde_json::{Map, Value};

use super::output::{cell, go_duration, structured, table};
use super::{ClientArgs, Format, UsageError};

/// Flags of commands that take just a path.
#[derive(clap::Args, Debug)]
pub struct PathArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Path below /v1/, e.g. secret/app.
    path: String,
}

/// Flags of `coffer read`.
#[derive(clap::Args, Debug)]
pub struct ReadArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Path below /v1/.
    path: String,
}

/// Flags of `coffer write`.
#[derive(clap::Args, Debug)]
pub struct WriteArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Write even with no data (Vault's `write -f`, e.g. `write -f transit/keys/k`).
    #[arg(short = 'f', long = "force")]
    force: bool,
    /// Path below /v1/.
    path: String,
    /// `key=value`, `key=@file` or `key=-` (stdin); a lone `-` reads a JSON object from stdin.
    pairs: Vec<String>,
}

fn trim(path: &str) -> &str {
    path.trim_start_matches('/')
}

/// Parses `k=v` arguments; `@file` and `-` keep secrets out of shell history.
/// A lone `-` or `@file` argument is a whole JSON object (a dotenv file
/// when the name says so: `.env`, `.env.prod`, `app.env`).
pub(super) fn parse_pairs(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
    if let [only] = pairs
        && (only == "-" || (only.starts_with('@') && !only.contains('=')))
    {
        let (what, text) = if only == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            ("stdin".to_owned(), s)
        } else {
            let file = &only[1..];
            let s = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
            // A .env file moves into coffer as it is: one key per variable.
            if super::dotenv::is_dotenv_name(file) {
                return super::dotenv::parse(&s)
                    .map_err(|e| UsageError(format!("{file}: {e}")).into());
            }
            (file.to_owned(), s)
        };
        return match serde_json::from_str(&text).with_context(|| format!("{what} is not JSON"))? {
            Value::Object(m) => Ok(m),
            _ => Err(UsageError(format!("{what} must hold a JSON object")).into()),
        };
    }
    let mut out = Map::new();
    let mut stdin_used = false;
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| UsageError(format!("argument {p:?} must be key=value")))?;
        let value = if let Some(file) = v.strip_prefix('@') {
            std::fs::read_to_string(file)
                .with_context(|| format!("reading {file} for key {k:?}"))?
        } else if v == "-" {
            if std::mem::replace(&mut stdin_used, true) {
                return Err(UsageError("only one value can come from stdin".into()).into());
            }
            super::prompt::secret(&format!("{k} (will be hidden): "))?
        } else {
            v.to_owned()
        };
        out.insert(k.to_owned(), Value::String(value));
    }
    Ok(out)
}

/// A wrapped answer's fields as Vault's CLI names them, and their keys in
/// `wrap_info`.
const WRAP_FIELDS: &[(&str, &str)] = &[
    ("wrapping_token", "token"),
    ("wrapping_accessor", "accessor"),
    ("wrapping_token_ttl", "ttl"),
    ("wrapping_token_creation_time", "creation_time"),
    ("wrapping_token_creation_path", "creation_path"),
    ("wrapped_accessor", "wrapped_accessor"),
];

pub(super) fn print_secret(body: &Value, format: Format) {
    if format != Format::Table {
        return structured(body, format);
    }
    let mut rows = Vec::new();
    if let Some(Value::Object(w)) = body.get("wrap_info") {
        // A wrapped answer shows its wrapping token, named as Vault's CLI names it.
        for (name, key) in WRAP_FIELDS {
            if let Some(v) = w.get(*key).filter(|v| !v.is_null()) {
                let shown = if *key == "ttl" {
                    go_duration(v.as_u64().unwrap_or(0))
                } else {
                    cell(v)
                };
                rows.push((format!("{name}:"), shown));
            }
        }
        table(&rows);
        return;
    }
    let ttl = body
        .get("lease_duration")
        .and_then(Value::as_u64)
        .filter(|t| *t > 0);
    let lease_id = body.get("lease_id").and_then(Value::as_str).unwrap_or("");
    if !lease_id.is_empty() {
        // A leased secret shows its lease, as Vault's CLI does.
        rows.push(("lease_id".to_string(), lease_id.to_owned()));
        rows.push(("lease_duration".into(), go_duration(ttl.unwrap_or(0))));
        rows.push(("lease_renewable".into(), cell(&body["renewable"])));
    } else if let Some(ttl) = ttl {
        rows.push(("refresh_interval".to_string(), go_duration(ttl)));
    }
    if let Some(Value::Object(d)) = body.get("data") {
        for (k, v) in d {
            rows.push((k.clone(), duration_or_cell(k, v)));
        }
    }
    table(&rows);
}

/// A table cell; TTLs and periods in seconds read as Go durations
/// (`secret_id_ttl 10m`), as Vault's CLI shows them.
fn duration_or_cell(key: &str, v: &Value) -> String {
    let is_duration =
        key == "ttl" || key == "period" || key.ends_with("_ttl") || key.ends_with("_period");
    match v.as_u64() {
        Some(secs) if is_duration => go_duration(secs),
        _ => cell(v),
    }
}

/// `coffer read`.
pub async fn read(a: ReadArgs) -> anyhow::Result<u8> {
    let c = a.client.client()?;
    let Some(body) = c.read(trim(&a.path)).await? else {
        eprintln!("No value found at {}", a.path);
        return Ok(2);
    };
    if let Some(f) = &a.client.field {
        let v = body
            .pointer(&format!("/data/{f}"))
            .ok_or_else(|| UsageError(format!("field {f:?} not present in secret")))?;
        super::output::field(v);
        return Ok(0);
    }
    print_secret(&body, a.client.format);
    Ok(0)
}

/// `coffer write`.
pub async fn write(a: WriteArgs) -> anyhow::Result<u8> {
    if a.pairs.is_empty() && !a.force {
        return Err(UsageError(format!(
            "no data to write to {}: give key=value pairs, or -f to write with no data",
            a.path
        ))
        .into());
    }
    let data = parse_pairs(&a.pairs)?;
    let c = a.client.client()?;
    match c.write(trim(&a.path), &Value::Object(data)).await? {
        None => println!("Success! Data written to: {}", a.path),
        Some(body) => {
            return print_field_or_secret(&body, a.client.field.as_deref(), a.client.format);
        }
    }
    Ok(0)
}

/// `coffer list`.
pub async fn list(a: PathArgs) -> anyhow::Result<u8> {
    let c = a.client.client()?;
    let keys = c.list(trim(&a.path)).await?;
    Ok(print_keys(keys, a.client.format, &a.path))
}

/// Prints listed keys; none is "No value found" and exit code 2, as Vault's CLI.
pub(super) fn print_keys(keys: Vec<String>, format: Format, path: &str) -> u8 {
    if keys.is_empty() {
        eprintln!("No value found at {path}");
        return 2;
    }
    if format != Format::Table {
        structured(&Value::from(keys), format);
    } else {
        println!("Keys\n----");
        for k in keys {
            println!("{k}");
        }
    }
    0
}

/// `coffer delete`.
pub async fn delete(a: PathArgs) -> anyhow::Result<u8> {
    let c = a.client.client()?;
    c.delete(trim(&a.path)).await?;
    println!("Success! Data deleted (if it existed) at: {}", a.path);
    Ok(0)
}

/// Flags of `coffer unwrap`.
#[derive(clap::Args, Debug)]
pub struct UnwrapArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The wrapping token (default: the client token, as Vault's CLI does).
    token: Option<String>,
}

/// `coffer unwrap`: the wrapped answer, once.
pub async fn unwrap(a: UnwrapArgs) -> anyhow::Result<u8> {
    let (c, body) = match &a.token {
        Some(t) => (a.client.client()?, serde_json::json!({ "token": t })),
        None => (a.client.client()?, serde_json::json!({})),
    };
    let Some(answer) = c.write("sys/wrapping/unwrap", &body).await? else {
        eprintln!("The wrapped response was empty");
        return Ok(0);
    };
    print_field_or_secret(&answer, a.client.field.as_deref(), a.client.format)
}

/// `-field`: a `data` field, else an `auth` field (`token` names the
/// client token, as in Vault's CLI); otherwise the whole answer.
pub(super) fn print_field_or_secret(
    body: &Value,
    field: Option<&str>,
    format: Format,
) -> anyhow::Result<u8> {
    let Some(f) = field else {
        print_secret(body, format);
        return Ok(0);
    };
    let auth_key = if f == "token" { "client_token" } else { f };
    let wrap_key = WRAP_FIELDS
        .iter()
        .find(|(name, _)| *name == f)
        .map(|(_, k)| *k);
    let v = body
        .pointer(&format!("/data/{f}"))
        .or_else(|| body.pointer(&format!("/auth/{auth_key}")))
        .or_else(|| body.get("wrap_info")?.get(wrap_key?))
        .ok_or_else(|| UsageError(format!("field {f:?} not present in the answer")))?;
    super::output::field(v);
    Ok(0)
}

/// `coffer path-help`.
pub async fn path_help(a: PathArgs) -> anyhow::Result<u8> {
    let c = a.client.client()?;
    let r = c
        .raw("GET", &format!("{}?help=1", trim(&a.path)), None)
        .await?;
    let body =
        coffer_client::Client::judge("GET", &a.path, r)?.context("the server sent no help")?;
    if a.client.format != Format::Table {
        structured(&body, a.client.format);
    } else {
        println!("{}", body["help"].as_str().unwrap_or_default().trim_end());
    }
    Ok(0)
}
