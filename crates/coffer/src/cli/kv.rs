//! `coffer kv ...`: Vault's `kv` commands. Each asks the server which mount
//! holds the path and which KV version it runs, then uses the v1 path or the
//! v2 `data/`, `metadata/`, `delete/`, `undelete/` and `destroy/` paths.

use anyhow::Context;
use coffer_client::Client;
use serde_json::{Map, Value, json};

use super::generic::{parse_pairs, print_keys, print_secret};
use super::output::{cell, structured, table};
use super::{ClientArgs, Format, UsageError};

/// `coffer kv` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum KvCommand {
    /// Write a new version (v2) or replace the value (v1): `k=v`, `k=@file`, `k=-`, or `-` for JSON on stdin.
    Put(PutArgs),
    /// Read the latest or a given version.
    Get(GetArgs),
    /// Merge keys into the latest version, as a new version (v2 only).
    Patch(PatchArgs),
    /// Soft-delete the latest version, or the `-versions` given (v1: delete the value).
    Delete(VersionsArgs),
    /// Restore soft-deleted versions (v2 only).
    Undelete(VersionsArgs),
    /// Destroy versions for good (v2 only).
    Destroy(VersionsArgs),
    /// List the keys under a path.
    List(ListArgs),
    /// Read, write, patch or delete a key's metadata (v2 only).
    #[command(subcommand)]
    Metadata(MetadataCommand),
    /// Write an older version's data as the newest version (v2 only).
    Rollback(RollbackArgs),
    /// Upgrade a KV version 1 mount to version 2, keeping its data.
    EnableVersioning(EnableArgs),
}

/// `coffer kv metadata` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum MetadataCommand {
    /// Show a key's settings and the state of each version.
    Get(KeyArgs),
    /// Replace a key's settings (created if the key has none yet).
    Put(MetadataArgs),
    /// Change only the settings given.
    Patch(MetadataArgs),
    /// Delete the key: its metadata and every version.
    Delete(KeyArgs),
}

/// A KV path and where its mount is.
#[derive(clap::Args, Debug)]
pub struct KeyArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Mount path; the path argument is then relative to it.
    #[arg(long)]
    mount: Option<String>,
    /// Secret path, e.g. `secret/app` (or `app` with `-mount=secret`).
    path: String,
}

/// Flags of `coffer kv list`.
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Mount path; the path argument is then relative to it.
    #[arg(long)]
    mount: Option<String>,
    /// Folder to list (may be empty with `-mount`).
    #[arg(default_value = "")]
    path: String,
}

/// Flags of `coffer kv put`.
#[derive(clap::Args, Debug)]
pub struct PutArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Check-and-set: write only if the current version is this (0: only if new).
    #[arg(long, allow_hyphen_values = true)]
    cas: Option<i64>,
    /// `key=value`, `key=@file`, `key=-` (stdin), `@file.json` or `-` (a JSON object).
    pairs: Vec<String>,
}

/// Flags of `coffer kv get`.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Version to read (default: the latest).
    #[arg(long)]
    version: Option<u64>,
}

/// Flags of `coffer kv patch`.
#[derive(clap::Args, Debug)]
pub struct PatchArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Check-and-set: patch only if the current version is this.
    #[arg(long, allow_hyphen_values = true)]
    cas: Option<i64>,
    /// `patch` sends an HTTP PATCH (needs the `patch` capability); `rw`
    /// reads, merges here and writes back with check-and-set.
    #[arg(long, default_value = "patch", value_parser = ["patch", "rw"])]
    method: String,
    /// Remove this key (repeatable).
    #[arg(long = "remove-data")]
    remove: Vec<String>,
    /// `key=value`, `key=@file`, `key=-` (stdin), `@file.json` or `-` (a JSON object).
    pairs: Vec<String>,
}

/// Flags of `coffer kv delete|undelete|destroy`.
#[derive(clap::Args, Debug)]
pub struct VersionsArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Comma-separated version numbers, e.g. `1,3`.
    #[arg(long, value_delimiter = ',')]
    versions: Vec<u64>,
}

/// Flags of `coffer kv rollback`.
#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The version whose data becomes the newest version.
    #[arg(long)]
    version: u64,
}

/// Flags of `coffer kv metadata put|patch`.
#[derive(clap::Args, Debug)]
pub struct MetadataArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Versions kept for this key (0: the mount's setting).
    #[arg(long)]
    max_versions: Option<u64>,
    /// Require check-and-set on every write to this key.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    cas_required: Option<bool>,
    /// Soft-delete each version this long after it is written (`0s`: never).
    #[arg(long)]
    delete_version_after: Option<String>,
    /// `key=value` to store beside the secret (repeatable).
    #[arg(long)]
    custom_metadata: Vec<String>,
}

/// Flags of `coffer kv enable-versioning`.
#[derive(clap::Args, Debug)]
pub struct EnableArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The KV version 1 mount, e.g. `kv/`.
    path: String,
}

/// A path resolved to its mount.
struct KvPath {
    /// Mount path with its trailing slash, e.g. `secret/`.
    mount: String,
    /// The key below the mount.
    key: String,
    v2: bool,
}

impl KvPath {
    /// The API path: v2 puts `section` between mount and key; v1 has no sections.
    fn api(&self, section: &str) -> String {
        if self.v2 {
            format!("{}{section}/{}", self.mount, self.key)
        } else {
            format!("{}{}", self.mount, self.key)
        }
    }

    fn require_v2(&self, what: &str) -> anyhow::Result<()> {
        if self.v2 {
            return Ok(());
        }
        Err(UsageError(format!(
            "{what} needs KV version 2, but {} is version 1; upgrade it with `coffer kv enable-versioning {}`",
            self.mount, self.mount
        ))
        .into())
    }
}

/// Asks `sys/internal/ui/mounts` which mount serves the path and its version.
async fn resolve(c: &Client, mount: Option<&str>, path: &str) -> anyhow::Result<KvPath> {
    let path = path.trim_start_matches('/');
    let probe = match mount {
        Some(m) => format!("{}/", m.trim_matches('/')),
        None => path.to_owned(),
    };
    let body = c
        .read(&format!("sys/internal/ui/mounts/{probe}"))
        .await
        .with_context(|| format!("finding the mount of {probe:?}"))?
        .ok_or_else(|| anyhow::anyhow!("no mount serves {probe:?}"))?;
    let data = &body["data"];
    let mount_path = data["path"]
        .as_str()
        .context("sys/internal/ui/mounts answered without a path")?
        .to_owned();
    let kind = data["type"].as_str().unwrap_or_default();
    if kind != "kv" && kind != "generic" {
        return Err(UsageError(format!("{mount_path} is a {kind:?} mount, not a KV mount")).into());
    }
    let key = match mount {
        Some(_) => path.to_owned(),
        None => path
            .strip_prefix(mount_path.as_str())
            .or_else(|| path.strip_prefix(mount_path.trim_end_matches('/')))
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned(),
    };
    let v2 = data.pointer("/options/version").and_then(Value::as_str) == Some("2");
    Ok(KvPath {
        mount: mount_path,
        key,
        v2,
    })
}

/// The fields of the secret at `path`, wherever it lives: the latest
/// version's `data` on KV version 2, the stored object on version 1, and the
/// answer's `data` on any other engine (`database/creds/app`). Also the
/// lease, when the answer has one.
pub(crate) async fn read_fields(
    c: &Client,
    path: &str,
) -> anyhow::Result<(Map<String, Value>, Option<(String, u64)>)> {
    let path = path.trim_start_matches('/');
    let api = match resolve(c, None, path).await {
        Ok(kp) => kp.api("data"),
        // Not KV (or no mount answered): read the path as it is.
        Err(_) => path.to_owned(),
    };
    let body = c
        .read(&api)
        .await
        .with_context(|| format!("reading {path}"))?
        .ok_or_else(|| anyhow::anyhow!("no secret at {path}"))?;
    let data = match (&body["data"]["data"], &body["data"]["metadata"]) {
        (Value::Object(d), Value::Object(_)) if api.contains("/data/") => d.clone(),
        _ => object(&body["data"]),
    };
    let lease = body["lease_id"]
        .as_str()
        .filter(|l| !l.is_empty())
        .map(|l| (l.to_owned(), body["lease_duration"].as_u64().unwrap_or(0)));
    Ok((data, lease))
}

/// A metadata value the way Vault's CLI prints it.
fn meta_cell(v: &Value) -> String {
    match v {
        Value::String(s) if s.is_empty() => "n/a".into(),
        Value::Null => "<nil>".into(),
        Value::Object(m) => {
            let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{}", cell(v))).collect();
            format!("map[{}]", parts.join(" "))
        }
        other => cell(other),
    }
}

/// `== Title ==`, padded with `=` to about the width of the table below it.
fn header(title: &str, width: usize) {
    let pad = width.saturating_sub(title.len() + 2).max(4) / 2;
    let bar = "=".repeat(pad);
    println!("{bar} {title} {bar}");
}

fn rows_of(m: &Map<String, Value>) -> Vec<(String, String)> {
    m.iter().map(|(k, v)| (k.clone(), meta_cell(v))).collect()
}

fn table_width(rows: &[(String, String)]) -> usize {
    let k = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(3).max(3);
    let v = rows.iter().map(|(_, v)| v.len()).max().unwrap_or(5).max(5);
    k + 4 + v
}

/// Secret path, then version metadata (and data, for reads), as tables.
fn print_version(api_path: &str, metadata: &Map<String, Value>, data: Option<&Map<String, Value>>) {
    header("Secret Path", api_path.len());
    println!("{api_path}");
    println!();
    let meta = rows_of(metadata);
    header("Metadata", table_width(&meta));
    table(&meta);
    if let Some(d) = data {
        let rows: Vec<(String, String)> = d.iter().map(|(k, v)| (k.clone(), cell(v))).collect();
        println!();
        header("Data", table_width(&rows));
        table(&rows);
    }
}

fn object(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn cas_options(cas: Option<i64>) -> Value {
    match cas {
        Some(n) if n >= 0 => json!({"cas": n}),
        _ => json!({}),
    }
}

fn print_written(kp: &KvPath, body: Option<Value>, format: Format) {
    match body {
        Some(b) if format != Format::Table => structured(&b, format),
        Some(b) if kp.v2 => print_version(&kp.api("data"), &object(&b["data"]), None),
        Some(b) => print_secret(&b, format),
        None => println!("Success! Data written to: {}", kp.api("data")),
    }
}

/// Runs a `coffer kv` subcommand; the exit code follows Vault's CLI.
pub async fn run(cmd: KvCommand) -> anyhow::Result<u8> {
    match cmd {
        KvCommand::Put(a) => put(a).await,
        KvCommand::Get(a) => get(a).await,
        KvCommand::Patch(a) => patch(a).await,
        KvCommand::Delete(a) => delete(a).await,
        KvCommand::Undelete(a) => versions_op(a, "undelete").await,
        KvCommand::Destroy(a) => versions_op(a, "destroy").await,
        KvCommand::List(a) => list(a).await,
        KvCommand::Metadata(m) => metadata(m).await,
        KvCommand::Rollback(a) => rollback(a).await,
        KvCommand::EnableVersioning(a) => enable_versioning(a).await,
    }
}

async fn put(a: PutArgs) -> anyhow::Result<u8> {
    let data = parse_pairs(&a.pairs)?;
    if data.is_empty() {
        return Err(UsageError("Must supply data: key=value pairs, @file.json or -".into()).into());
    }
    let c = a.key.client.client()?;
    let kp = resolve(&c, a.key.mount.as_deref(), &a.key.path).await?;
    let body = if kp.v2 {
        json!({"data": data, "options": cas_options(a.cas)})
    } else {
        if a.cas.is_some() {
            return Err(UsageError("-cas needs KV version 2".into()).into());
        }
        Value::Object(data)
    };
    let resp = c.write(&kp.api("data"), &body).await?;
    print_written(&kp, resp, a.key.client.format);
    Ok(0)
}

async fn get(a: GetArgs) -> anyhow::Result<u8> {
    let c = a.key.client.client()?;
    let kp = resolve(&c, a.key.mount.as_deref(), &a.key.path).await?;
    let format = a.key.client.format;
    if !kp.v2 {
        if a.version.is_some() {
            return Err(UsageError("-version needs KV version 2".into()).into());
        }
        let Some(body) = c.read(&kp.api("data")).await? else {
            eprintln!("No value found at {}", kp.api("data"));
            return Ok(2);
        };
        return print_field_or(&body["data"], a.key.client.field.as_deref(), || {
            print_secret(&body, format)
        });
    }
    let mut path = kp.api("data");
    if let Some(v) = a.version {
        path.push_str(&format!("?version={v}"));
    }
    // A deleted or destroyed version answers 404 with its metadata.
    let r = c.raw("GET", &path, None).await?;
    let body = match (r.status, &r.body) {
        (404, Some(b)) if b["data"]["metadata"].is_object() => {
            if format != Format::Table {
                structured(b, format);
            } else {
                print_version(&kp.api("data"), &object(&b["data"]["metadata"]), None);
            }
            let m = &b["data"]["metadata"];
            let state = if m["destroyed"] == true {
                "destroyed"
            } else {
                "deleted"
            };
            // Vault's CLI shows the metadata and succeeds; say why there is no data.
            eprintln!(
                "\nVersion {} of {} is {state}: it has no data.",
                m["version"], kp.key
            );
            return Ok(0);
        }
        (404, _) => {
            eprintln!("No value found at {}", kp.api("data"));
            return Ok(2);
        }
        _ => Client::judge("GET", &path, r)?
            .with_context(|| format!("GET {path} answered with no body"))?,
    };
    print_field_or(&body["data"]["data"], a.key.client.field.as_deref(), || {
        if format != Format::Table {
            structured(&body, format);
        } else {
            print_version(
                &kp.api("data"),
                &object(&body["data"]["metadata"]),
                Some(&object(&body["data"]["data"])),
            );
        }
    })
}

/// With `-field`, prints that field of `data` alone; otherwise calls `all`.
fn print_field_or(data: &Value, field: Option<&str>, all: impl FnOnce()) -> anyhow::Result<u8> {
    match field {
        None => {
            all();
            Ok(0)
        }
        Some(f) => {
            let v = data
                .get(f)
                .ok_or_else(|| UsageError(format!("Field {f:?} not present in secret")))?;
            super::output::field(v);
            Ok(0)
        }
    }
}

async fn patch(a: PatchArgs) -> anyhow::Result<u8> {
    let mut data = parse_pairs(&a.pairs)?;
    for k in &a.remove {
        data.insert(k.clone(), Value::Null);
    }
    if data.is_empty() {
        return Err(UsageError("Must supply data: key=value pairs or -remove-data".into()).into());
    }
    let c = a.key.client.client()?;
    let kp = resolve(&c, a.key.mount.as_deref(), &a.key.path).await?;
    kp.require_v2("kv patch")?;
    let path = kp.api("data");
    let resp = if a.method == "rw" {
        let Some(cur) = c.read(&path).await? else {
            eprintln!("No value found at {path}");
            return Ok(2);
        };
        let version = cur["data"]["metadata"]["version"].as_i64().unwrap_or(0);
        let mut merged = object(&cur["data"]["data"]);
        for (k, v) in data {
            if v.is_null() {
                merged.remove(&k);
            } else {
                merged.insert(k, v);
            }
        }
        let cas = a.cas.unwrap_or(version);
        c.write(&path, &json!({"data": merged, "options": {"cas": cas}}))
            .await?
    } else {
        match c
            .patch(&path, &json!({"data": data, "options": cas_options(a.cas)}))
            .await
        {
            Err(e) if e.status() == Some(404) => {
                eprintln!("No value found at {path}");
                return Ok(2);
            }
            other => other?,
        }
    };
    print_written(&kp, resp, a.key.client.format);
    Ok(0)
}

async fn delete(a: VersionsArgs) -> anyhow::Result<u8> {
    let c = a.key.client.client()?;
    let kp = resolve(&c, a.key.mount.as_deref(), &a.key.path).await?;
    let shown = if a.versions.is_empty() {
        c.delete(&kp.api("data")).await?;
        kp.api("data")
    } else {
        kp.require_v2("-versions")?;
        c.write(&kp.api("delete"), &json!({"versions": a.versions}))
            .await?;
        // Vault's CLI names the data path here too.
        kp.api("data")
    };
    println!("Success! Data deleted (if it existed) at: {shown}");
    Ok(0)
}

async fn versions_op(a: VersionsArgs, op: &str) -> anyhow::Result<u8> {
    if a.versions.is_empty() {
        return Err(UsageError(format!(
            "No versions provided, use the \"-versions\" flag to specify the version to {op}."
        ))
        .into());
    }
    let c = a.key.client.client()?;
    let kp = resolve(&c, a.key.mount.as_deref(), &a.key.path).await?;
    kp.require_v2(&format!("kv {op}"))?;
    c.write(&kp.api(op), &json!({"versions": a.versions}))
        .await?;
    println!("Success! Data written to: {}", kp.api(op));
    Ok(0)
}

async fn list(a: ListArgs) -> anyhow::Result<u8> {
    if a.path.is_empty() && a.mount.is_none() {
        return Err(UsageError("give a path to list, or -mount".into()).into());
    }
    let c = a.client.client()?;
    let kp = resolve(&c, a.mount.as_deref(), &a.path).await?;
    let path = kp.api("metadata");
    let keys = c.list(&path).await?;
    Ok(print_keys(keys, a.client.format, &path))
}

async fn metadata(cmd: MetadataCommand) -> anyhow::Result<u8> {
    match cmd {
        MetadataCommand::Get(k) => {
            let c = k.client.client()?;
            let kp = resolve(&c, k.mount.as_deref(), &k.path).await?;
            kp.require_v2("kv metadata")?;
            let path = kp.api("metadata");
            let Some(body) = c.read(&path).await? else {
                eprintln!("No value found at {path}");
                return Ok(2);
            };
            if k.client.format != Format::Table {
                structured(&body, k.client.format);
                return Ok(0);
            }
            let mut d = object(&body["data"]);
            let versions = d.remove("versions").map(|v| object(&v)).unwrap_or_default();
            header("Metadata Path", path.len());
            println!("{path}");
            println!();
            let rows = rows_of(&d);
            header("Metadata", table_width(&rows));
            table(&rows);
            let mut numbered: Vec<(u64, &Value)> = versions
                .iter()
                .filter_map(|(n, v)| n.parse().ok().map(|n| (n, v)))
                .collect();
            numbered.sort_by_key(|(n, _)| *n);
            for (n, v) in numbered {
                let rows = rows_of(&object(v));
                println!();
                header(&format!("Version {n}"), table_width(&rows));
                table(&rows);
            }
            Ok(0)
        }
        MetadataCommand::Put(m) => metadata_write(m, false).await,
        MetadataCommand::Patch(m) => metadata_write(m, true).await,
        MetadataCommand::Delete(k) => {
            let c = k.client.client()?;
            let kp = resolve(&c, k.mount.as_deref(), &k.path).await?;
            kp.require_v2("kv metadata")?;
            c.delete(&kp.api("metadata")).await?;
            println!(
                "Success! Data deleted (if it existed) at: {}",
                kp.api("metadata")
            );
            Ok(0)
        }
    }
}

async fn metadata_write(m: MetadataArgs, patch: bool) -> anyhow::Result<u8> {
    let mut body = Map::new();
    if let Some(n) = m.max_versions {
        body.insert("max_versions".into(), json!(n));
    }
    if let Some(b) = m.cas_required {
        body.insert("cas_required".into(), json!(b));
    }
    if let Some(d) = &m.delete_version_after {
        body.insert("delete_version_after".into(), json!(d));
    }
    if !m.custom_metadata.is_empty() {
        let mut custom = Map::new();
        for pair in &m.custom_metadata {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                UsageError(format!("-custom-metadata {pair:?} must be key=value"))
            })?;
            custom.insert(k.to_owned(), json!(v));
        }
        body.insert("custom_metadata".into(), Value::Object(custom));
    }
    let c = m.key.client.client()?;
    let kp = resolve(&c, m.key.mount.as_deref(), &m.key.path).await?;
    kp.require_v2("kv metadata")?;
    let path = kp.api("metadata");
    let body = Value::Object(body);
    if patch {
        c.patch(&path, &body).await?;
    } else {
        c.write(&path, &body).await?;
    }
    println!("Success! Data written to: {path}");
    Ok(0)
}

async fn rollback(a: RollbackArgs) -> anyhow::Result<u8> {
    let c = a.key.client.client()?;
    let kp = resolve(&c, a.key.mount.as_deref(), &a.key.path).await?;
    kp.require_v2("kv rollback")?;
    let meta_path = kp.api("metadata");
    let Some(meta) = c.read(&meta_path).await? else {
        eprintln!("No value found at {meta_path}");
        return Ok(2);
    };
    let current = meta["data"]["current_version"].as_u64().unwrap_or(0);
    let Some(target) = meta["data"]["versions"].get(a.version.to_string()) else {
        return Err(UsageError(format!(
            "version {} of {} does not exist (current version: {current})",
            a.version, kp.key
        ))
        .into());
    };
    if target["destroyed"] == true
        || target["deletion_time"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(UsageError(format!(
            "cannot roll back to version {}: it is deleted or destroyed",
            a.version
        ))
        .into());
    }
    let old = c
        .read(&format!("{}?version={}", kp.api("data"), a.version))
        .await?
        .with_context(|| format!("version {} has no data", a.version))?;
    let resp = c
        .write(
            &kp.api("data"),
            &json!({"data": old["data"]["data"], "options": {"cas": current}}),
        )
        .await?;
    print_written(&kp, resp, a.key.client.format);
    Ok(0)
}

async fn enable_versioning(a: EnableArgs) -> anyhow::Result<u8> {
    let c = a.client.client()?;
    let mount = format!("{}/", a.path.trim_matches('/'));
    let resp = c
        .write(
            &format!("sys/mounts/{mount}tune"),
            &json!({"options": {"version": "2"}}),
        )
        .await?;
    for w in resp
        .as_ref()
        .and_then(|b| b["warnings"].as_array())
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        eprintln!("WARNING! {w}");
    }
    println!("Success! Tuned the secrets engine at: {mount}");
    Ok(0)
}
