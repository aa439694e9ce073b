//! `coffer read|write|list|delete`: any path, Vault's CLI semantics.

use std::io::Read as _;

use anyhow::Context;
use serde_json::{Map, Value};

use super::output::{cell, go_duration, json, table};
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
    /// Print only this field's value.
    #[arg(long)]
    field: Option<String>,
    /// Path below /v1/.
    path: String,
}

/// Flags of `coffer write`.
#[derive(clap::Args, Debug)]
pub struct WriteArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Path below /v1/.
    path: String,
    /// `key=value`, `key=@file` or `key=-` (stdin); a lone `-` reads a JSON object from stdin.
    pairs: Vec<String>,
}

fn trim(path: &str) -> &str {
    path.trim_start_matches('/')
}

/// Parses `k=v` arguments; `@file` and `-` keep secrets out of shell history.
fn parse_pairs(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
    if pairs.len() == 1 && pairs[0] == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return match serde_json::from_str(&s).context("stdin is not JSON")? {
            Value::Object(m) => Ok(m),
            _ => Err(UsageError("stdin must hold a JSON object".into()).into()),
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
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s)?;
            s.trim_end_matches('\n').to_owned()
        } else {
            v.to_owned()
        };
        out.insert(k.to_owned(), Value::String(value));
    }
    Ok(out)
}

fn print_secret(body: &Value, format: Format) {
    if format == Format::Json {
        return json(body);
    }
    let mut rows = Vec::new();
    if let Some(ttl) = body
        .get("lease_duration")
        .and_then(Value::as_u64)
        .filter(|t| *t > 0)
    {
        rows.push(("refresh_interval".to_string(), go_duration(ttl)));
    }
    if let Some(Value::Object(d)) = body.get("data") {
        for (k, v) in d {
            rows.push((k.clone(), cell(v)));
        }
    }
    table(&rows);
}

/// `coffer read`.
pub async fn read(a: ReadArgs) -> anyhow::Result<u8> {
    let c = a.client.client()?;
    let Some(body) = c.read(trim(&a.path)).await? else {
        eprintln!("No value found at {}", a.path);
        return Ok(2);
    };
    if let Some(f) = &a.field {
        let v = body
            .pointer(&format!("/data/{f}"))
            .ok_or_else(|| UsageError(format!("field {f:?} not present in secret")))?;
        println!("{}", cell(v));
        return Ok(0);
    }
    print_secret(&body, a.client.format);
    Ok(0)
}

/// `coffer write`.
pub async fn write(a: WriteArgs) -> anyhow::Result<u8> {
    let data = parse_pairs(&a.pairs)?;
    let c = a.client.client()?;
    match c.write(trim(&a.path), &Value::Object(data)).await? {
        None => println!("Success! Data written to: {}", a.path),
        Some(body) => print_secret(&body, a.client.format),
    }
    Ok(0)
}

/// `coffer list`.
pub async fn list(a: PathArgs) -> anyhow::Result<u8> {
    let c = a.client.client()?;
    let keys = c.list(trim(&a.path)).await?;
    if keys.is_empty() {
        eprintln!("No value found at {}", a.path);
        return Ok(2);
    }
    if a.client.format == Format::Json {
        json(&Value::from(keys));
    } else {
        println!("Keys\n----");
        for k in keys {
            println!("{k}");
        }
    }
    Ok(0)
}

/// `coffer delete`.
pub async fn delete(a: PathArgs) -> anyhow::Result<u8> {
    let c = a.client.client()?;
    c.delete(trim(&a.path)).await?;
    println!("Success! Data deleted (if it existed) at: {}", a.path);
    Ok(0)
}
