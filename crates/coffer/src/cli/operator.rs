//! `coffer operator ...` and `coffer status`.

use anyhow::Context;
use serde_json::{Value, json};

use super::output::{cell, structured, table};
use super::{ClientArgs, Format, UsageError};

/// Operator subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum OperatorCommand {
    /// Initialise a new server: prints unseal keys and the root token once.
    Init {
        #[command(flatten)]
        client: ClientArgs,
        /// Number of key shares.
        #[arg(long, default_value_t = 5)]
        key_shares: u8,
        /// Shares needed to unseal.
        #[arg(long, default_value_t = 3)]
        key_threshold: u8,
        /// Recovery key shares (auto seals only; 0 for none).
        #[arg(long, default_value_t = 5)]
        recovery_shares: u8,
        /// Recovery shares needed to authorise an unseal (auto seals only).
        #[arg(long, default_value_t = 3)]
        recovery_threshold: u8,
    },
    /// Enter one unseal key share (read from stdin when not given).
    Unseal {
        #[command(flatten)]
        client: ClientArgs,
        /// Discard the shares entered so far.
        #[arg(long)]
        reset: bool,
        /// The key share (hex or base64); omit to read it from stdin.
        key: Option<String>,
    },
    /// Seal the server.
    Seal {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Make the active node of an HA cluster hand leadership to a standby.
    StepDown {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Add a barrier keyring term used for new writes.
    Rotate {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show the active keyring term.
    KeyStatus {
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs an operator command.
pub async fn run(cmd: OperatorCommand) -> anyhow::Result<u8> {
    match cmd {
        OperatorCommand::Init {
            client,
            key_shares,
            key_threshold,
            recovery_shares,
            recovery_threshold,
        } => {
            let c = client.client()?;
            let status = c
                .read("sys/seal-status")
                .await?
                .context("sys/seal-status returned nothing")?;
            let auto = status["recovery_seal"] == json!(true);
            let request = if auto {
                json!({"recovery_shares": recovery_shares, "recovery_threshold": recovery_threshold})
            } else {
                json!({"secret_shares": key_shares, "secret_threshold": key_threshold})
            };
            let body = c
                .write("sys/init", &request)
                .await?
                .context("sys/init returned no body")?;
            if client.format != Format::Table {
                structured(&body, client.format);
                return Ok(0);
            }
            let (field, label) = if auto {
                ("recovery_keys_base64", "Recovery Key")
            } else {
                ("keys_base64", "Unseal Key")
            };
            let keys = body[field].as_array().cloned().unwrap_or_default();
            for (i, k) in keys.iter().enumerate() {
                println!("{label} {}: {}", i + 1, cell(k));
            }
            println!();
            println!("Initial Root Token: {}", cell(&body["root_token"]));
            println!();
            if auto {
                println!(
                    "The server is initialised and unsealed by its {} seal, with {recovery_shares} recovery \
                     key shares and a threshold of {recovery_threshold}.\n\
                     Recovery keys cannot decrypt the root key: they authorise `coffer operator unseal` \
                     after a manual seal. Store them apart; they are shown only now.",
                    cell(&status["type"])
                );
            } else {
                println!(
                    "The server is initialised with {key_shares} key shares and a threshold of {key_threshold}.\n\
                     Store the keys apart; they are shown only now. Unseal with `coffer operator unseal`."
                );
            }
            Ok(0)
        }
        OperatorCommand::Unseal { client, reset, key } => {
            let c = client.client()?;
            let body = if reset {
                json!({"reset": true})
            } else {
                let key = match key {
                    Some(k) => k,
                    None => super::prompt::secret("Unseal Key (will be hidden): ")?
                        .trim()
                        .to_owned(),
                };
                if key.is_empty() {
                    return Err(UsageError("no unseal key given".into()).into());
                }
                json!({ "key": key })
            };
            let status = c
                .write("sys/unseal", &body)
                .await?
                .context("no status returned")?;
            let leader = c.read("sys/leader").await.ok().flatten();
            print_status(&status, leader.as_ref(), client.format);
            Ok(0)
        }
        OperatorCommand::Seal { client } => {
            client.client()?.write("sys/seal", &json!({})).await?;
            println!("Success! Vault is sealed.");
            Ok(0)
        }
        OperatorCommand::StepDown { client } => {
            client.client()?.write("sys/step-down", &json!({})).await?;
            println!("Success! Stepped down: the active node hands leadership to a standby.");
            Ok(0)
        }
        OperatorCommand::Rotate { client } => {
            let c = client.client()?;
            c.write("sys/rotate", &json!({})).await?;
            println!("Success! Rotated key\n");
            print_key_status(&c, client.format).await
        }
        OperatorCommand::KeyStatus { client } => {
            print_key_status(&client.client()?, client.format).await
        }
    }
}

async fn print_key_status(c: &coffer_client::Client, format: Format) -> anyhow::Result<u8> {
    let body = c
        .read("sys/key-status")
        .await?
        .context("sys/key-status returned nothing")?;
    if format != Format::Table {
        structured(&body, format);
        return Ok(0);
    }
    let d = &body["data"];
    table(&[
        ("Key Term".into(), cell(&d["term"])),
        ("Install Time".into(), cell(&d["install_time"])),
        ("Encryption Count".into(), cell(&d["encryptions"])),
    ]);
    Ok(0)
}

fn print_status(s: &Value, leader: Option<&Value>, format: Format) {
    if format != Format::Table {
        return structured(s, format);
    }
    let recovery = s["recovery_seal"] == json!(true);
    let mut rows = vec![("Seal Type".to_string(), cell(&s["type"]))];
    if recovery {
        rows.push(("Recovery Seal Type".into(), "shamir".into()));
    }
    rows.extend([
        ("Initialized".into(), cell(&s["initialized"])),
        ("Sealed".into(), cell(&s["sealed"])),
        (
            if recovery {
                "Total Recovery Shares"
            } else {
                "Total Shares"
            }
            .into(),
            cell(&s["n"]),
        ),
        ("Threshold".into(), cell(&s["t"])),
    ]);
    if let Some(e) = s.get("auto_unseal_error") {
        rows.push(("Auto-unseal Error".into(), cell(e)));
    }
    if s["sealed"] == json!(true) {
        rows.push((
            "Unseal Progress".into(),
            format!("{}/{}", cell(&s["progress"]), cell(&s["t"])),
        ));
        rows.push(("Unseal Nonce".into(), cell(&s["nonce"])));
    }
    rows.push(("Version".into(), cell(&s["version"])));
    rows.push(("Build Date".into(), cell(&s["build_date"])));
    rows.push(("Storage Type".into(), cell(&s["storage_type"])));
    if let Some(n) = s.get("cluster_name") {
        rows.push(("Cluster Name".into(), cell(n)));
        rows.push(("Cluster ID".into(), cell(&s["cluster_id"])));
    }
    match leader.filter(|l| l["ha_enabled"] == json!(true)) {
        None => rows.push(("HA Enabled".into(), "false".into())),
        Some(l) => {
            rows.push(("HA Enabled".into(), "true".into()));
            if s["sealed"] == json!(false) {
                rows.push(("HA Cluster".into(), cell(&l["leader_cluster_address"])));
                let active = l["is_self"] == json!(true);
                rows.push((
                    "HA Mode".into(),
                    if active { "active" } else { "standby" }.into(),
                ));
                if active {
                    rows.push(("Active Since".into(), cell(&l["active_time"])));
                } else {
                    rows.push(("Active Node Address".into(), cell(&l["leader_address"])));
                }
            }
        }
    }
    table(&rows);
}

/// `coffer status`: 0 unsealed, 2 sealed, like `vault status`.
pub async fn status(client: ClientArgs) -> anyhow::Result<u8> {
    let c = client.client()?;
    let s = c
        .read("sys/seal-status")
        .await?
        .context("sys/seal-status returned nothing")?;
    // Older servers may not answer sys/leader; the status is still worth showing.
    let leader = c.read("sys/leader").await.ok().flatten();
    print_status(&s, leader.as_ref(), client.format);
    Ok(if s["sealed"] == json!(false) { 0 } else { 2 })
}
