//! `coffer audit`: Vault's `list`/`enable`/`disable`, plus `hash`, `verify`
//! (the hash chain) and `query` (incident questions). `verify` and `query`
//! read the HMAC'd log alone; the server is asked only to translate a known
//! value into its HMAC or for a device's chain head.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use coffer_core::audit::chain::{ChainHead, Verifier};
use serde_json::{Map, Value, json};

use super::audit_query::{Filters, Outcome, Query, Row, for_each_line, run_file};
use super::output::{cell, columns, structured};
use super::{ClientArgs, Format, UsageError};

/// Audit subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// List enabled audit devices.
    List {
        /// Show type, options and description.
        #[arg(long)]
        detailed: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Enable a device through the API (the server's configuration must set
    /// audit_api = true and audit_dir).
    Enable {
        /// Device type: file or socket.
        kind: String,
        /// Options as key=value (file_path=..., mode=0600, address=...).
        options: Vec<String>,
        /// Where to enable it (default: the type).
        #[arg(long)]
        path: Option<String>,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Disable a device enabled through the API.
    Disable {
        /// The device's path.
        path: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print the HMAC a device writes for a value ("-" reads it from stdin),
    /// to search the log for a known token, accessor or secret.
    Hash {
        /// The device's path.
        device: String,
        /// The value, or "-" for stdin.
        input: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print a device's chain head as JSON (signed when the device has
    /// `head_key`): keep it somewhere else, and `verify --head` it later.
    Head {
        /// The device's path.
        device: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Check the hash chain of audit log files (given oldest first); exit 1
    /// and name the first altered, removed or reordered line if it is broken.
    Verify(VerifyArgs),
    /// Answer incident questions from a log: who touched a path, everything
    /// an accessor or token did, in a time window.
    Query(QueryArgs),
}

/// Flags of `coffer audit verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// Log files of one device, oldest first (rotated files then the current one).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Also compare with this device's chain head on the server, which
    /// detects lines cut from the end of the log.
    #[arg(long, conflicts_with = "head")]
    device: Option<String>,
    /// Compare with a head saved earlier by `coffer audit head` (its
    /// signature, if any, is checked through the server's transit key).
    #[arg(long)]
    head: Option<PathBuf>,
    /// Server address (with --device).
    #[arg(long)]
    address: Option<String>,
}

/// Output of `coffer audit query`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueryFormat {
    /// Summary table: path, operation, count, errors, first, last, accessors.
    #[default]
    Table,
    /// The summary as JSON.
    Json,
    /// The matching log lines themselves.
    Lines,
}

/// Flags of `coffer audit query`.
#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    /// Log files to read.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Request path glob (`*` matches any characters, `/` included).
    #[arg(long)]
    path: Option<String>,
    /// Accessor: an `hmac-sha256:` value from the log, or a plain accessor
    /// translated through the server with --device (or matched as written,
    /// for devices with hmac_accessor=false).
    #[arg(long)]
    accessor: Option<String>,
    /// A token's HMAC as the log writes it (`coffer audit hash DEVICE TOKEN`).
    #[arg(long)]
    token_hmac: Option<String>,
    /// From this time: RFC 3339, a date, or a duration back from now (24h).
    #[arg(long)]
    since: Option<String>,
    /// Until this time (same forms).
    #[arg(long)]
    until: Option<String>,
    /// Operation: read, create, update, patch, delete, list.
    #[arg(long)]
    operation: Option<String>,
    /// Count response entries too (by default each request counts once).
    #[arg(long)]
    responses: bool,
    /// Output.
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    format: QueryFormat,
    /// Device whose key translates a plain --accessor.
    #[arg(long)]
    device: Option<String>,
    /// Server address (with --device).
    #[arg(long)]
    address: Option<String>,
}

/// Runs an audit command.
pub async fn run(cmd: AuditCommand) -> anyhow::Result<u8> {
    match cmd {
        AuditCommand::List { detailed, client } => list(detailed, &client).await,
        AuditCommand::Enable {
            kind,
            options,
            path,
            description,
            client,
        } => {
            let mut opts = Map::new();
            for kv in &options {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| UsageError(format!("option {kv:?} is not key=value")))?;
                opts.insert(k.to_owned(), Value::String(v.to_owned()));
            }
            let path = path.unwrap_or_else(|| kind.clone());
            let path = path.trim_matches('/').to_owned();
            client
                .client()?
                .write(
                    &format!("sys/audit/{path}"),
                    &json!({"type": kind, "options": opts, "description": description.unwrap_or_default()}),
                )
                .await?;
            println!("Success! Enabled the {kind} audit device at: {path}/");
            Ok(0)
        }
        AuditCommand::Disable { path, client } => {
            let path = path.trim_matches('/').to_owned();
            client
                .client()?
                .delete(&format!("sys/audit/{path}"))
                .await?;
            println!("Success! Disabled audit device (if it was enabled) at: {path}/");
            Ok(0)
        }
        AuditCommand::Hash {
            device,
            input,
            client,
        } => {
            let input = if input == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s.trim_end_matches(['\n', '\r']).to_owned()
            } else {
                input
            };
            println!("{}", hash(&client, &device, &input).await?);
            Ok(0)
        }
        AuditCommand::Head { device, client } => {
            let body = client
                .client()?
                .read(&format!("sys/audit-head/{}", device.trim_matches('/')))
                .await?
                .context("sys/audit-head returned nothing")?;
            println!("{}", serde_json::to_string_pretty(&body["data"])?);
            Ok(0)
        }
        AuditCommand::Verify(args) => verify(args).await,
        AuditCommand::Query(args) => query(args).await,
    }
}

async fn list(detailed: bool, client: &ClientArgs) -> anyhow::Result<u8> {
    let body = client
        .client()?
        .read("sys/audit")
        .await?
        .context("sys/audit returned nothing")?;
    if client.format != Format::Table {
        structured(&body["data"], client.format);
        return Ok(0);
    }
    let devices = body["data"].as_object().cloned().unwrap_or_default();
    if devices.is_empty() {
        println!("No audit devices are enabled.");
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|(path, d)| {
            let mut row = vec![path.clone(), cell(&d["type"]), cell(&d["description"])];
            if detailed {
                let opts = d["options"]
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| format!("{k}={}", cell(v)))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                row.push(opts);
            }
            row
        })
        .collect();
    let mut header = vec!["Path", "Type", "Description"];
    if detailed {
        header.push("Options");
    }
    columns(&header, &rows);
    Ok(0)
}

pub(crate) async fn hash(client: &ClientArgs, device: &str, input: &str) -> anyhow::Result<String> {
    let device = device.trim_matches('/');
    let body = client
        .client()?
        .write(
            &format!("sys/audit-hash/{device}"),
            &json!({ "input": input }),
        )
        .await?
        .context("sys/audit-hash returned nothing")?;
    body["data"]["hash"]
        .as_str()
        .map(str::to_owned)
        .context("sys/audit-hash answered without a hash")
}

async fn verify(args: VerifyArgs) -> anyhow::Result<u8> {
    let mut verifier = match (&args.device, &args.head) {
        (Some(device), _) => {
            let body = ClientArgs::for_address(args.address.clone())
                .client()?
                .read(&format!("sys/audit-head/{}", device.trim_matches('/')))
                .await?
                .context("sys/audit-head returned nothing")?;
            Verifier::with_head(head_of(&body["data"])?)
                .expect_start(body["data"]["file_first_sequence"].as_u64())
        }
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let saved: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a saved head (JSON)", file.display()))?;
            let head = head_of(&saved)?;
            check_head_signature(&args, &saved, &head).await?;
            Verifier::with_head(head).expect_start(saved["file_first_sequence"].as_u64())
        }
        (None, None) => Verifier::new(),
    };
    let mut partial_at: Option<PathBuf> = None;
    for file in &args.files {
        if partial_at.is_some() {
            // Only the last file may end without a newline.
            verifier.truncated();
            break;
        }
        let mut last_line_complete = true;
        for_each_line(file, |line, complete| {
            if complete {
                verifier.push(line);
            } else {
                last_line_complete = false;
            }
        })
        .with_context(|| format!("reading {}", file.display()))?;
        if !last_line_complete {
            partial_at = Some(file.clone());
        }
    }
    if partial_at.is_some() {
        verifier.truncated();
    }
    let report = verifier.finish();
    let range = match (&report.first, &report.last) {
        (Some(f), Some(l)) => format!("seq {}..{}", f.seq, l.seq),
        _ => "no lines".into(),
    };
    match report.broken {
        None => {
            println!("OK: {} line(s), {range}, chain intact.", report.lines);
            if let Some(f) = &report.first
                && f.seq > 1
            {
                println!(
                    "The log starts at seq {}: it continues an earlier file (pass the older files first to check the link).",
                    f.seq
                );
            }
            if args.device.is_none() {
                println!(
                    "Lines cut from the end are only detected against the server's head: add --device NAME."
                );
            }
            Ok(0)
        }
        Some(b) => {
            println!("FAILED: {b}");
            println!(
                "The chain is intact up to seq {}.",
                b.intact_until(report.last.as_ref())
            );
            Ok(1)
        }
    }
}

fn head_of(v: &Value) -> anyhow::Result<ChainHead> {
    match (v["sequence"].as_u64(), v["hash"].as_str()) {
        (Some(seq), Some(hash)) => Ok(ChainHead {
            seq,
            hash: hash.to_owned(),
        }),
        _ => bail!("a chain head needs \"sequence\" and \"hash\" (as `coffer audit head` prints)"),
    }
}

/// A saved head's signature must cover exactly this device, where its file
/// begins, the sequence and the hash, and verify with the transit key that
/// made it.
async fn check_head_signature(
    args: &VerifyArgs,
    saved: &Value,
    head: &ChainHead,
) -> anyhow::Result<()> {
    let (Some(signature), Some(key)) = (saved["signature"].as_str(), saved["key"].as_str()) else {
        println!("The saved head is not signed (the device has no head_key).");
        return Ok(());
    };
    let device = saved["device"].as_str().unwrap_or("");
    let message = coffer_core::audit::chain::head_message(
        device,
        saved["file_first_sequence"].as_u64(),
        head,
    );
    let (mount, name) = key
        .rsplit_once('/')
        .with_context(|| format!("the saved head names an unusable key {key:?}"))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = ClientArgs::for_address(args.address.clone())
        .client()?
        .write(
            &format!("{mount}/verify/{name}"),
            &json!({"input": base64::Engine::encode(&b64, message.as_bytes()), "signature": signature}),
        )
        .await
        .context("checking the saved head's signature with the server's transit key")?
        .context("transit verify returned nothing")?;
    if body["data"]["valid"] != Value::Bool(true) {
        bail!(
            "the saved head's signature does not verify with transit key {key}: the head was forged or altered"
        );
    }
    println!("The saved head's signature verifies with transit key {key}.");
    Ok(())
}

/// `--since`/`--until` as the `YYYY-MM-DDTHH:MM:SS` prefix log times share.
pub(crate) fn time_bound(s: &str, end_of_day: bool) -> anyhow::Result<String> {
    use time::format_description::well_known::Rfc3339;
    use time::{OffsetDateTime, UtcOffset};
    let fmt = |t: OffsetDateTime| {
        let t = t.to_offset(UtcOffset::UTC);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    };
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(fmt(t));
    }
    if s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' {
        return Ok(format!(
            "{s}T{}",
            if end_of_day { "23:59:59" } else { "00:00:00" }
        ));
    }
    if let Ok(secs) = coffer_core::fields::parse_duration(s) {
        let t = OffsetDateTime::now_utc() - time::Duration::seconds(secs as i64);
        return Ok(fmt(t));
    }
    bail!(UsageError(format!(
        "{s:?} is not a time: use RFC 3339 (2026-11-28T10:00:00Z), a date (2026-11-28) or a duration back from now (24h)"
    )))
}

async fn query(args: QueryArgs) -> anyhow::Result<u8> {
    let accessor = match (&args.accessor, &args.device) {
        (Some(a), Some(d)) if !a.starts_with("hmac-sha256:") => {
            Some(hash(&ClientArgs::for_address(args.address.clone()), d, a).await?)
        }
        (a, _) => a.clone(),
    };
    let filters = Filters {
        path: args.path.clone(),
        accessor,
        token_hmac: args.token_hmac.clone(),
        since: args
            .since
            .as_deref()
            .map(|s| time_bound(s, false))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|s| time_bound(s, true))
            .transpose()?,
        operation: args.operation.clone(),
        responses: args.responses,
    };
    let q = Query::new(filters);
    let started = std::time::Instant::now();
    let mut out = Outcome::default();
    let lines_out = args.format == QueryFormat::Lines;
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    for file in &args.files {
        run_file(file, &q, &mut out, |line| {
            if lines_out {
                use std::io::Write;
                let _ = stdout
                    .write_all(line)
                    .and_then(|()| stdout.write_all(b"\n"));
            }
        })
        .with_context(|| format!("reading {}", file.display()))?;
    }
    drop(stdout);
    let secs = started.elapsed().as_secs_f64();
    let Outcome {
        lines,
        bytes,
        unreadable,
        matched,
        rows,
    } = out;
    // (path, operation, row), as the summary shows them.
    let rows: Vec<(&String, &String, &Row)> = rows
        .iter()
        .flat_map(|(p, ops)| ops.iter().map(move |(o, r)| (p, o, r)))
        .collect();
    let summary = format!(
        "{matched} matching entr{} in {lines} line(s), {:.1} MB in {secs:.2} s ({:.0} MB/s){}",
        if matched == 1 { "y" } else { "ies" },
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / secs.max(1e-9),
        if unreadable > 0 {
            format!("; {unreadable} line(s) were not audit entries")
        } else {
            String::new()
        }
    );
    match args.format {
        QueryFormat::Lines => eprintln!("{summary}"),
        QueryFormat::Json => {
            let rows: Vec<Value> = rows
                .iter()
                .map(|(path, operation, r)| {
                    json!({
                        "path": path,
                        "operation": operation,
                        "count": r.count,
                        "errors": r.errors,
                        "first": r.first,
                        "last": r.last,
                        "accessors": r.accessors,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "lines": lines,
                    "bytes": bytes,
                    "matched": matched,
                    "unreadable": unreadable,
                    "rows": rows,
                }))?
            );
        }
        QueryFormat::Table => {
            let mut sorted = rows;
            sorted.sort_by(|a, b| b.2.count.cmp(&a.2.count).then(a.0.cmp(b.0)));
            let table: Vec<Vec<String>> = sorted
                .iter()
                .map(|(path, operation, r)| {
                    let shown: Vec<String> = r.accessors.iter().take(3).map(|a| short(a)).collect();
                    let mut acc = shown.join(" ");
                    if r.accessors.len() > 3 {
                        acc.push_str(&format!(" (+{} more)", r.accessors.len() - 3));
                    }
                    vec![
                        (*path).clone(),
                        (*operation).clone(),
                        r.count.to_string(),
                        r.errors.to_string(),
                        r.first.clone(),
                        r.last.clone(),
                        acc,
                    ]
                })
                .collect();
            if table.is_empty() {
                println!("No matching entries.");
            } else {
                columns(
                    &[
                        "Path",
                        "Operation",
                        "Count",
                        "Errors",
                        "First",
                        "Last",
                        "Accessors",
                    ],
                    &table,
                );
            }
            eprintln!("{summary}");
        }
    }
    Ok(0)
}

/// An HMAC'd accessor shortened for the table (the JSON keeps it whole).
fn short(a: &str) -> String {
    match a.strip_prefix("hmac-sha256:") {
        Some(h) if h.len() > 16 => format!("hmac:{}…", &h[..16]),
        _ => a.to_owned(),
    }
}
