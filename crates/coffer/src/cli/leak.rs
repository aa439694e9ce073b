//! `coffer scan ... --check-store [--respond revoke|rotate|report]`: which
//! findings coffer holds or handed out (`sys/leak/check`), and ending them
//! through the ordinary API, each request carrying the finding's
//! fingerprint in `X-Coffer-Leak-Finding` so the audit log ties it to the
//! finding.

use std::collections::HashMap;

use anyhow::{Context, anyhow, bail};
use coffer_client::Client;
use serde_json::{Value, json};

/// What to do with live findings.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Respond {
    /// Mark them and act on nothing.
    Report,
    /// End each credential now: revoke leases, tokens (with their
    /// children) and AppRole secret IDs; rotate static roles and root
    /// credentials; replace KV values.
    Revoke,
    /// Only what can be rotated (static roles, root credentials, KV
    /// values); leases, tokens and secret IDs are reported and left alone.
    Rotate,
}

/// The check's answer for one finding: where its secret is live.
pub type Matches = Vec<Value>;

/// Candidates per `sys/leak/check` call (the server's limit).
const BATCH: usize = 1000;

/// Asks the server which `secrets` are live; one list of matches each.
pub async fn check(client: &Client, secrets: &[&str]) -> anyhow::Result<Vec<Matches>> {
    // Each distinct value is sent once.
    let mut distinct: Vec<&str> = Vec::new();
    let mut slot: HashMap<&str, usize> = HashMap::new();
    let at: Vec<usize> = secrets
        .iter()
        .map(|s| {
            *slot.entry(s).or_insert_with(|| {
                distinct.push(s);
                distinct.len() - 1
            })
        })
        .collect();
    let mut answers: Vec<Matches> = Vec::with_capacity(distinct.len());
    let mut incomplete = false;
    for chunk in distinct.chunks(BATCH) {
        let body = client
            .write("sys/leak/check", &json!({ "candidates": chunk }))
            .await
            .context("checking findings against coffer (sys/leak/check)")?
            .ok_or_else(|| anyhow!("sys/leak/check returned nothing"))?;
        let data = &body["data"];
        incomplete |= data["complete"] == false;
        let results = data["results"]
            .as_array()
            .ok_or_else(|| anyhow!("sys/leak/check answered without results"))?;
        if results.len() != chunk.len() {
            bail!(
                "sys/leak/check answered {} results for {} candidates",
                results.len(),
                chunk.len()
            );
        }
        for r in results {
            answers.push(r["matches"].as_array().cloned().unwrap_or_default());
        }
    }
    if incomplete {
        eprintln!(
            "warning: coffer is still indexing what it holds after an unseal: a finding may be live and not shown as live yet; run the check again shortly"
        );
    }
    Ok(at.into_iter().map(|i| answers[i].clone()).collect())
}

fn text<'a>(m: &'a Value, k: &str) -> &'a str {
    m[k].as_str().unwrap_or_default()
}

/// One line saying what a match is, for messages (no values).
pub fn describe(m: &Value) -> String {
    let mount = text(m, "mount");
    let name = text(m, "name");
    match text(m, "type") {
        "kv" => format!(
            "KV secret {mount}{name} (field {}{})",
            text(m, "field"),
            m["version"]
                .as_u64()
                .map(|v| format!(", version {v}"))
                .unwrap_or_default()
        ),
        "lease" => format!("lease {name}"),
        "token" => format!("token with accessor {name}"),
        "database-static-role" => format!("static role {mount}static-roles/{name}"),
        "database-root" => format!("root credentials of {mount}config/{name}"),
        "transit-key" => format!(
            "transit key {mount}keys/{name} (version {}, exported as {})",
            m["version"],
            text(m, "export_type")
        ),
        "approle-secret-id" => format!(
            "AppRole secret ID of {mount}role/{name} (accessor {})",
            text(m, "secret_id_accessor")
        ),
        other => format!("{other} {mount}{name}"),
    }
}

/// Ends one live credential; answers what was done. `client` already sends
/// the finding's fingerprint.
pub async fn respond(client: &Client, m: &Value, mode: Respond) -> anyhow::Result<String> {
    let mount = text(m, "mount");
    let name = text(m, "name");
    let what = describe(m);
    let kind = text(m, "type");
    let ends_by_revoking = matches!(kind, "lease" | "token" | "approle-secret-id");
    if mode == Respond::Report {
        return Ok(format!("{what}: reported"));
    }
    if mode == Respond::Rotate && ends_by_revoking {
        return Ok(format!(
            "{what}: left alone (--respond rotate; --respond revoke ends it)"
        ));
    }
    match kind {
        "lease" => {
            client
                .write(&format!("sys/leases/revoke/{name}"), &json!({}))
                .await
                .with_context(|| format!("revoking {what}"))?;
            Ok(format!("{what}: revoked"))
        }
        "token" => {
            client
                .write("auth/token/revoke-accessor", &json!({ "accessor": name }))
                .await
                .with_context(|| format!("revoking {what}"))?;
            Ok(format!("{what}: revoked with its children"))
        }
        "approle-secret-id" => {
            client
                .write(
                    &format!("{mount}role/{name}/secret-id-accessor/destroy"),
                    &json!({ "secret_id_accessor": text(m, "secret_id_accessor") }),
                )
                .await
                .with_context(|| format!("destroying {what}"))?;
            Ok(format!("{what}: destroyed"))
        }
        "database-static-role" => {
            client
                .write(&format!("{mount}rotate-role/{name}"), &json!({}))
                .await
                .with_context(|| format!("rotating {what}"))?;
            Ok(format!("{what}: rotated"))
        }
        "database-root" => {
            client
                .write(&format!("{mount}rotate-root/{name}"), &json!({}))
                .await
                .with_context(|| format!("rotating {what}"))?;
            Ok(format!("{what}: rotated"))
        }
        "kv" => replace_kv(client, m, &what).await,
        "transit-key" => {
            client
                .write(&format!("{mount}keys/{name}/rotate"), &json!({}))
                .await
                .with_context(|| format!("rotating {what}"))?;
            let v = m["version"].as_u64().unwrap_or(0);
            bail!(
                "{what}: rotated, so new data uses a new version, but version {v} still decrypts: rewrap what it encrypted (`{mount}rewrap/{name}`), then raise min_decryption_version above {v}"
            )
        }
        other => bail!("{what}: coffer does not know how to end a {other:?}; do it by hand"),
    }
}

/// The custom-metadata key naming the password policy that makes a new
/// value for a KV secret.
pub const POLICY_KEY: &str = "password_policy";
/// The custom-metadata key set on a KV secret coffer could not replace.
pub const COMPROMISED_KEY: &str = "compromised";

/// A KV v2 value: a new random value by the password policy the secret's
/// custom metadata names, written as a new version, then the leaked
/// version destroyed. Without a policy (or for a nested field, or KV v1)
/// the secret is marked compromised and this fails, so a person replaces it.
async fn replace_kv(client: &Client, m: &Value, what: &str) -> anyhow::Result<String> {
    let mount = text(m, "mount");
    let path = text(m, "name");
    let field = text(m, "field");
    if m["kv_version"] == 1 {
        bail!(
            "{what}: KV version 1 keeps no versions or metadata, so coffer cannot replace it safely; write a new value at {mount}{path} by hand"
        );
    }
    let version = m["version"]
        .as_u64()
        .ok_or_else(|| anyhow!("{what}: the check named no version"))?;
    let meta = client
        .read(&format!("{mount}metadata/{path}"))
        .await
        .with_context(|| format!("reading the metadata of {mount}{path}"))?
        .unwrap_or(Value::Null);
    let policy = meta["data"]["custom_metadata"][POLICY_KEY]
        .as_str()
        .filter(|p| !p.is_empty());
    let top_level = !field.is_empty() && !field.contains(['.', '[']);
    let Some(policy) = policy.filter(|_| top_level) else {
        let why = if top_level {
            format!("its custom_metadata names no {POLICY_KEY}")
        } else {
            format!("the value is nested ({field})")
        };
        let note = format!(
            "{} field {field} of version {version} leaked; replace it, then destroy version {version}",
            now_rfc3339()
        );
        client
            .patch(
                &format!("{mount}metadata/{path}"),
                &json!({ "custom_metadata": { COMPROMISED_KEY: note } }),
            )
            .await
            .with_context(|| format!("marking {mount}{path} compromised"))?;
        bail!(
            "{what}: marked compromised in its custom_metadata, not replaced ({why}); write a new value, then `coffer kv destroy -versions={version} {mount}{path}`"
        );
    };
    let generated = client
        .read(&format!("sys/policies/password/{policy}/generate"))
        .await
        .with_context(|| format!("generating a value with password policy {policy:?}"))?
        .ok_or_else(|| anyhow!("password policy {policy:?} does not exist"))?;
    let fresh = generated["data"]["password"]
        .as_str()
        .ok_or_else(|| anyhow!("password policy {policy:?} generated nothing"))?
        .to_owned();
    let current = client
        .read(&format!("{mount}data/{path}?version={version}"))
        .await
        .with_context(|| format!("reading version {version} of {mount}{path}"))?
        .ok_or_else(|| anyhow!("{what}: version {version} is gone"))?;
    let mut data = current["data"]["data"].clone();
    let Some(obj) = data.as_object_mut() else {
        bail!("{what}: version {version} holds no fields");
    };
    obj.insert(field.to_owned(), Value::String(fresh));
    let written = client
        .write(
            &format!("{mount}data/{path}"),
            &json!({ "data": data, "options": { "cas": version } }),
        )
        .await
        .with_context(|| {
            format!("writing a new version of {mount}{path} (it changed since the check?)")
        })?;
    let new_version = written
        .as_ref()
        .and_then(|w| w["data"]["version"].as_u64())
        .unwrap_or(version + 1);
    client
        .write(
            &format!("{mount}destroy/{path}"),
            &json!({ "versions": [version] }),
        )
        .await
        .with_context(|| {
            format!("destroying leaked version {version} of {mount}{path} (version {new_version} holds the new value)")
        })?;
    Ok(format!(
        "{what}: replaced by version {new_version} (new {field} from policy {policy}), version {version} destroyed"
    ))
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
