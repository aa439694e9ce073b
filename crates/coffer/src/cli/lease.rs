//! `coffer lease lookup|renew|revoke`: leases of dynamic secrets.

use anyhow::Context;
use serde_json::{Value, json};

use super::output::{cell, go_duration, structured, table};
use super::{ClientArgs, Format};

/// `coffer lease ...`.
#[derive(clap::Subcommand, Debug)]
pub enum LeaseCommand {
    /// Show a lease: issue and expiry times, TTL, renewability.
    Lookup {
        #[command(flatten)]
        client: ClientArgs,
        /// Lease ID.
        lease_id: String,
    },
    /// Extend a lease (by its original TTL, or -increment).
    Renew {
        #[command(flatten)]
        client: ClientArgs,
        /// Seconds or a duration such as 1h.
        #[arg(long)]
        increment: Option<String>,
        /// Lease ID.
        lease_id: String,
    },
    /// Revoke a lease now (`-prefix` every lease under a path).
    Revoke {
        #[command(flatten)]
        client: ClientArgs,
        /// Treat the argument as a prefix.
        #[arg(long)]
        prefix: bool,
        /// With -prefix: drop the records even if the engine fails.
        #[arg(long)]
        force: bool,
        /// Lease ID or prefix.
        lease_id: String,
    },
}

/// Runs `coffer lease ...`.
pub async fn run(cmd: LeaseCommand) -> anyhow::Result<u8> {
    match cmd {
        LeaseCommand::Lookup { client, lease_id } => {
            let body = client
                .client()?
                .write("sys/leases/lookup", &json!({ "lease_id": lease_id }))
                .await?
                .context("sys/leases/lookup returned nothing")?;
            if client.format != Format::Table {
                structured(&body, client.format);
                return Ok(0);
            }
            let d = &body["data"];
            let mut rows = Vec::new();
            for k in [
                "expire_time",
                "id",
                "issue_time",
                "last_renewal",
                "renewable",
            ] {
                rows.push((k.to_owned(), cell(&d[k])));
            }
            rows.push(("ttl".into(), go_duration(d["ttl"].as_u64().unwrap_or(0))));
            table(&rows);
        }
        LeaseCommand::Renew {
            client,
            increment,
            lease_id,
        } => {
            let mut body = json!({ "lease_id": lease_id });
            if let Some(i) = increment {
                body["increment"] = Value::String(i);
            }
            let answer = client
                .client()?
                .write("sys/leases/renew", &body)
                .await?
                .context("sys/leases/renew returned nothing")?;
            super::generic::print_field_or_secret(&answer, client.field.as_deref(), client.format)?;
        }
        LeaseCommand::Revoke {
            client,
            prefix,
            force,
            lease_id,
        } => {
            let c = client.client()?;
            let id = lease_id.trim_start_matches('/');
            match (prefix, force) {
                (true, true) => {
                    c.write(&format!("sys/leases/revoke-force/{id}"), &json!({}))
                        .await?
                }
                (true, false) => {
                    c.write(&format!("sys/leases/revoke-prefix/{id}"), &json!({}))
                        .await?
                }
                (false, true) => anyhow::bail!(super::UsageError("-force needs -prefix".into())),
                (false, false) => {
                    c.write("sys/leases/revoke", &json!({ "lease_id": id }))
                        .await?
                }
            };
            println!(
                "Success! Revoked {} {id}",
                if prefix { "every lease under" } else { "lease" }
            );
        }
    }
    Ok(0)
}
