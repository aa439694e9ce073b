//! `coffer incident report`: what the audit log says about one leaked
//! secret, lease, token or scanner finding: every read (who, when, from
//! where), what those identities did in the window, who could have read it
//! (from the server's policies, roles and tokens) and the response's
//! timeline. Markdown for the post-mortem, or JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use anyhow::Context;
use serde_json::{Value, json};

use super::audit::time_bound;
use super::audit_query::for_each_line;
use super::{ClientArgs, UsageError};
use coffer_core::logical::LEAK_FINDING_HEADER;

/// `coffer incident ...`.
#[derive(clap::Subcommand, Debug)]
pub enum IncidentCommand {
    /// Reads, identities, blast radius and response of one leaked thing.
    Report(ReportArgs),
}

/// Output of a report.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    /// For the post-mortem.
    Markdown,
    /// The same facts as JSON.
    Json,
}

/// `coffer incident report`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true)))]
pub struct ReportArgs {
    /// An audit log (a file device's file); repeat for several devices or
    /// rotated files.
    #[arg(long = "log", required = true, value_name = "FILE")]
    logs: Vec<PathBuf>,
    /// A secret's API path (`secret/data/app` or `secret/app`).
    #[arg(long, group = "target")]
    secret: Option<String>,
    /// A lease id.
    #[arg(long, group = "target")]
    lease: Option<String>,
    /// A token accessor (as the log writes it, or in clear with --device).
    #[arg(long, group = "target")]
    accessor: Option<String>,
    /// A scanner finding's fingerprint, as `coffer scan --respond` sent it.
    #[arg(long, group = "target")]
    finding: Option<String>,
    /// Only entries at or after this time (RFC 3339, a date, or a duration
    /// back from now such as 7d).
    #[arg(long)]
    since: Option<String>,
    /// Only entries up to this time.
    #[arg(long)]
    until: Option<String>,
    /// The audit device that wrote the log, to HMAC a clear accessor
    /// through the server (`sys/audit-hash`).
    #[arg(long)]
    device: Option<String>,
    /// Leave out the blast radius (it asks the server for policies, roles
    /// and tokens).
    #[arg(long)]
    offline: bool,
    /// Server address (default: $COFFER_ADDR, $VAULT_ADDR).
    #[arg(long)]
    address: Option<String>,
    /// Output.
    #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
    format: ReportFormat,
}

/// Runs `coffer incident ...`.
pub async fn run(cmd: IncidentCommand) -> anyhow::Result<u8> {
    match cmd {
        IncidentCommand::Report(args) => report(args).await,
    }
}

/// What the report looks for in the log.
#[derive(Default)]
struct Target {
    /// Request paths that read the secret.
    paths: BTreeSet<String>,
    /// Lease ids (their issuing response, and requests naming them).
    leases: BTreeSet<String>,
    /// Accessors as the log writes them.
    accessors: BTreeSet<String>,
}

/// One identity's requests: (path, operation) to (count, first, last time).
type Activity = BTreeMap<(String, String), (u64, String, String)>;

/// One audited response, reduced to what a report shows.
#[derive(Clone, serde::Serialize)]
struct Event {
    time: String,
    operation: String,
    path: String,
    who: String,
    accessor: String,
    remote_address: String,
    error: String,
    finding: String,
}

fn text(v: &Value, ptr: &str) -> String {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

fn event(e: &Value) -> Event {
    Event {
        time: text(e, "/time"),
        operation: text(e, "/request/operation"),
        path: text(e, "/request/path"),
        who: text(e, "/auth/display_name"),
        accessor: text(e, "/auth/accessor"),
        remote_address: text(e, "/request/remote_address"),
        error: text(e, "/error"),
        finding: e
            .pointer(&format!("/request/headers/{LEAK_FINDING_HEADER}/0"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
    }
}

/// Calls `f` with every response entry of the logs inside the window.
fn each_response(
    logs: &[PathBuf],
    since: &str,
    until: &str,
    mut f: impl FnMut(&Value),
) -> anyhow::Result<u64> {
    let mut n = 0u64;
    for log in logs {
        for_each_line(log, |line, _| {
            n += 1;
            if memchr::memmem::find(line, b"\"type\":\"response\"").is_none() {
                return;
            }
            let Ok(v) = serde_json::from_slice::<Value>(line) else {
                return;
            };
            let t = text(&v, "/time");
            if (!since.is_empty() && t.as_str() < since)
                || (!until.is_empty() && t.get(..19).is_some_and(|p| p > until))
            {
                return;
            }
            f(&v);
        })
        .with_context(|| format!("reading {}", log.display()))?;
    }
    Ok(n)
}

/// The paths a KV path is read under: as given, and with `data/` after the
/// mount's first segment (KV version 2).
fn secret_paths(p: &str) -> Vec<String> {
    let p = p.trim_matches('/');
    let mut out = vec![p.to_owned()];
    if let Some((mount, rest)) = p.split_once('/')
        && !rest.starts_with("data/")
    {
        out.push(format!("{mount}/data/{rest}"));
    }
    out
}

/// What a response step's path says was leaked.
fn target_of_step(path: &str, t: &mut Target) {
    if let Some(lease) = path.strip_prefix("sys/leases/revoke/") {
        t.leases.insert(lease.to_owned());
        return;
    }
    for (verb, read_as) in [
        ("/data/", "/data/"),
        ("/destroy/", "/data/"),
        ("/metadata/", "/data/"),
        ("/rotate-role/", "/static-creds/"),
    ] {
        if let Some((mount, rest)) = path.split_once(verb) {
            t.paths.insert(format!("{mount}{read_as}{rest}"));
            return;
        }
    }
}

async fn report(args: ReportArgs) -> anyhow::Result<u8> {
    let since = args
        .since
        .as_deref()
        .map(|s| time_bound(s, false))
        .transpose()?
        .unwrap_or_default();
    let until = args
        .until
        .as_deref()
        .map(|s| time_bound(s, true))
        .transpose()?
        .unwrap_or_default();
    let client = ClientArgs::for_address(args.address.clone());
    let mut target = Target::default();
    let mut steps: Vec<Event> = Vec::new();
    let subject;
    if let Some(s) = &args.secret {
        target.paths.extend(secret_paths(s));
        subject = format!("secret {s}");
    } else if let Some(l) = &args.lease {
        target.leases.insert(l.clone());
        subject = format!("lease {l}");
    } else if let Some(a) = &args.accessor {
        let a = match &args.device {
            Some(d) if !a.starts_with("hmac-sha256:") => super::audit::hash(&client, d, a).await?,
            _ => a.clone(),
        };
        target.accessors.insert(a);
        subject = format!("token accessor {}", args.accessor.as_deref().unwrap_or(""));
    } else if let Some(f) = &args.finding {
        // The response's steps name what was leaked.
        each_response(&args.logs, "", "", |v| {
            let e = event(v);
            if e.finding == *f {
                target_of_step(&e.path, &mut target);
                steps.push(e);
            }
        })?;
        if steps.is_empty() {
            anyhow::bail!(UsageError(format!(
                "no audited response step carries finding {f:?} in these logs"
            )));
        }
        subject = format!("finding {f}");
    } else {
        anyhow::bail!(UsageError(
            "name a --secret, --lease, --accessor or --finding".into()
        ));
    }

    // Reads (and, for a token, everything it did), and the response's steps.
    let mut reads: Vec<Event> = Vec::new();
    let lines = each_response(&args.logs, &since, &until, |v| {
        let e = event(v);
        if !e.finding.is_empty() {
            if args.finding.is_none() && steps_target(&e, &target) {
                steps.push(e);
            }
            return;
        }
        let issued = text(v, "/response/secret/lease_id");
        let hit = (target.paths.contains(&e.path) && e.operation == "read")
            || target.leases.contains(&issued)
            || target.leases.iter().any(|l| e.path.ends_with(l.as_str()))
            || target.accessors.contains(&e.accessor);
        if hit {
            reads.push(e);
        }
    })?;
    // What the identities that read it did in the window.
    let readers: BTreeSet<String> = reads
        .iter()
        .map(|e| e.accessor.clone())
        .filter(|a| !a.is_empty())
        .collect();
    let mut activity: BTreeMap<String, Activity> = BTreeMap::new();
    if args.accessor.is_none() && !readers.is_empty() {
        each_response(&args.logs, &since, &until, |v| {
            let e = event(v);
            if readers.contains(&e.accessor) {
                let row = activity
                    .entry(e.accessor.clone())
                    .or_default()
                    .entry((e.path.clone(), e.operation.clone()))
                    .or_insert((0, e.time.clone(), String::new()));
                row.0 += 1;
                row.2 = e.time.clone();
            }
        })?;
    }
    let blast = if args.offline {
        json!({"skipped": "--offline"})
    } else {
        match blast_radius(&client, &target).await {
            Ok(b) => b,
            Err(e) => json!({"error": format!("{e:#}")}),
        }
    };
    let who: BTreeMap<String, String> = reads
        .iter()
        .map(|e| (e.accessor.clone(), e.who.clone()))
        .collect();
    let out = json!({
        "subject": subject,
        "logs": args.logs,
        "lines_read": lines,
        "window": {"since": since, "until": until},
        "paths": target.paths,
        "leases": target.leases,
        "reads": reads,
        "identities": activity.iter().map(|(a, rows)| json!({
            "accessor": a,
            "display_name": who.get(a).cloned().unwrap_or_default(),
            "activity": rows.iter().map(|((p, op), (n, first, last))| json!({
                "path": p, "operation": op, "count": n, "first": first, "last": last,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "could_read": blast,
        "response": steps,
    });
    match args.format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&out)?),
        ReportFormat::Markdown => print!("{}", markdown(&out)),
    }
    Ok(0)
}

/// Whether a response step (found without --finding) concerns the target.
fn steps_target(e: &Event, t: &Target) -> bool {
    let mut of = Target::default();
    target_of_step(&e.path, &mut of);
    of.paths.iter().any(|p| t.paths.contains(p)) || of.leases.iter().any(|l| t.leases.contains(l))
}

/// Policies that grant read on the target's paths, and the roles, users
/// and tokens that carry them.
async fn blast_radius(client: &ClientArgs, t: &Target) -> anyhow::Result<Value> {
    use coffer_core::policy::{Acl, parse_policy};
    let c = client.client()?;
    let mut paths: Vec<String> = t.paths.iter().cloned().collect();
    for l in &t.leases {
        // A dynamic credential is read where it was issued.
        if let Some((p, _)) = l.rsplit_once('/') {
            paths.push(p.to_owned());
        }
    }
    let mut granting = BTreeSet::from(["root".to_owned()]);
    for name in c.list("sys/policies/acl").await? {
        let Some(p) = c.read(&format!("sys/policies/acl/{name}")).await? else {
            continue;
        };
        let Ok(policy) = parse_policy(&name, p["data"]["policy"].as_str().unwrap_or("")) else {
            continue;
        };
        let acl = Acl::new(&[&policy]);
        let grants = paths.iter().any(|path| {
            let caps = acl.capabilities(path);
            caps.iter().any(|c| c == "read" || c == "root")
        });
        if grants {
            granting.insert(name);
        }
    }
    let carries = |policies: &Value| -> Vec<String> {
        policies
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|p| granting.contains(*p))
            .map(str::to_owned)
            .collect()
    };
    let mut holders = Vec::new();
    let auths = c.read("sys/auth").await?.unwrap_or(Value::Null);
    for (mount, info) in auths["data"].as_object().into_iter().flatten() {
        let (list, field) = match info["type"].as_str().unwrap_or("") {
            "approle" | "jwt" | "oidc" | "kubernetes" => ("role", "token_policies"),
            "userpass" => ("users", "token_policies"),
            "token" => ("roles", "allowed_policies"),
            _ => continue,
        };
        for name in c
            .list(&format!("auth/{mount}{list}"))
            .await
            .unwrap_or_default()
        {
            let Some(r) = c
                .read(&format!("auth/{mount}{list}/{name}"))
                .await
                .ok()
                .flatten()
            else {
                continue;
            };
            let via = carries(&r["data"][field]);
            if !via.is_empty() {
                holders.push(
                    json!({"kind": format!("auth/{mount}{list}"), "name": name, "policies": via}),
                );
            }
        }
    }
    // Live tokens (auth/token/accessors needs sudo; left out without it).
    let accessors = c.list("auth/token/accessors").await.unwrap_or_default();
    for a in accessors.iter().take(10_000) {
        let Ok(Some(t)) = c
            .write("auth/token/lookup-accessor", &json!({ "accessor": a }))
            .await
        else {
            continue;
        };
        let via = carries(&t["data"]["policies"]);
        if !via.is_empty() {
            holders.push(json!({"kind": "token", "name": a,
                "display_name": t["data"]["display_name"], "policies": via}));
        }
    }
    Ok(json!({
        "paths": paths,
        "policies": granting,
        "holders": holders,
        "tokens_listed": !accessors.is_empty(),
    }))
}

fn markdown(r: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("").replace('|', "\\|");
    let mut out = format!("# Incident report: {}\n\n", s(&r["subject"]));
    out.push_str(&format!(
        "From {} audit log line(s); window {} to {}.\n\n",
        r["lines_read"],
        r["window"]["since"]
            .as_str()
            .filter(|x| !x.is_empty())
            .unwrap_or("the start"),
        r["window"]["until"]
            .as_str()
            .filter(|x| !x.is_empty())
            .unwrap_or("the end"),
    ));
    let events = |title: &str, list: &Value, out: &mut String| {
        let rows = list.as_array().cloned().unwrap_or_default();
        out.push_str(&format!("## {title} ({})\n\n", rows.len()));
        if rows.is_empty() {
            out.push_str("None in the logs.\n\n");
            return;
        }
        out.push_str("| time | who | accessor | from | operation | path | outcome |\n|---|---|---|---|---|---|---|\n");
        for e in rows {
            let outcome = match s(&e["error"]) {
                x if x.is_empty() => "ok".to_owned(),
                x => x,
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                s(&e["time"]),
                s(&e["who"]),
                s(&e["accessor"]),
                s(&e["remote_address"]),
                s(&e["operation"]),
                s(&e["path"]),
                outcome
            ));
        }
        out.push('\n');
    };
    events("Reads", &r["reads"], &mut out);
    out.push_str("## What those identities did in the window\n\n");
    let ids = r["identities"].as_array().cloned().unwrap_or_default();
    if ids.is_empty() {
        out.push_str("No identified reader.\n\n");
    }
    for id in ids {
        out.push_str(&format!(
            "### {} ({})\n\n| path | operation | count | first | last |\n|---|---|---|---|---|\n",
            s(&id["display_name"]),
            s(&id["accessor"])
        ));
        for a in id["activity"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                s(&a["path"]),
                s(&a["operation"]),
                a["count"],
                s(&a["first"]),
                s(&a["last"])
            ));
        }
        out.push('\n');
    }
    out.push_str("## Who could have read it\n\n");
    let b = &r["could_read"];
    if let Some(e) = b["error"].as_str().or(b["skipped"].as_str()) {
        out.push_str(&format!("Not known: {e}.\n\n"));
    } else {
        let names: Vec<String> = b["policies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| format!("`{}`", s(p)))
            .collect();
        out.push_str(&format!(
            "Policies granting read: {}.\n\n",
            names.join(", ")
        ));
        let holders = b["holders"].as_array().cloned().unwrap_or_default();
        if !holders.is_empty() {
            out.push_str("| kind | name | through |\n|---|---|---|\n");
            for h in holders {
                let via: Vec<String> = h["policies"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(&s)
                    .collect();
                let name = match s(&h["display_name"]) {
                    d if d.is_empty() => s(&h["name"]),
                    d => format!("{} ({d})", s(&h["name"])),
                };
                out.push_str(&format!(
                    "| {} | {name} | {} |\n",
                    s(&h["kind"]),
                    via.join(", ")
                ));
            }
            out.push('\n');
        }
        if b["tokens_listed"] != true {
            out.push_str("Tokens were not listed (`auth/token/accessors` needs sudo).\n\n");
        }
    }
    events("Response", &r["response"], &mut out);
    out
}
