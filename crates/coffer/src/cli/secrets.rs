//! `coffer secrets list|enable|disable|tune|move`: secret engines, as
//! Vault's `secrets` commands manage them.

use anyhow::Context;
use serde_json::{Map, Value, json};

use super::output::{cell, columns, structured};
use super::{ClientArgs, Format};

/// `coffer secrets ...`.
#[derive(clap::Subcommand, Debug)]
pub enum SecretsCommand {
    /// List mounted secret engines.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Mount a secret engine (`kv`, `kv-v2`, `transit`, `database`).
    Enable {
        #[command(flatten)]
        client: ClientArgs,
        /// Mount path (default: the type).
        #[arg(long)]
        path: Option<String>,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// KV version (1 or 2).
        #[arg(long)]
        version: Option<u8>,
        /// Default lease TTL, e.g. 1h.
        #[arg(long)]
        default_lease_ttl: Option<String>,
        /// Maximum lease TTL.
        #[arg(long)]
        max_lease_ttl: Option<String>,
        /// Engine type.
        engine: String,
    },
    /// Unmount a secret engine (its leases are revoked, its data removed).
    Disable {
        #[command(flatten)]
        client: ClientArgs,
        /// Mount path.
        path: String,
    },
    /// Change a mount's TTLs, description or options.
    Tune {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        tune: TuneArgs,
        /// Engine options (repeat): `version=2`.
        #[arg(long = "options")]
        options: Vec<String>,
        /// Mount path.
        path: String,
    },
    /// Move a mount to a new path, with its data and leases.
    Move {
        #[command(flatten)]
        client: ClientArgs,
        /// Current path.
        from: String,
        /// New path.
        to: String,
    },
}

/// The settings `secrets tune` and `auth tune` change.
#[derive(clap::Args, Debug)]
pub struct TuneArgs {
    /// Default lease TTL (of the tokens it issues, for an auth method).
    #[arg(long)]
    default_lease_ttl: Option<String>,
    /// Maximum lease TTL.
    #[arg(long)]
    max_lease_ttl: Option<String>,
    /// Description.
    #[arg(long)]
    description: Option<String>,
}

impl TuneArgs {
    /// The tune request's body: the settings given.
    pub(super) fn body(&self) -> Map<String, Value> {
        [
            ("default_lease_ttl", &self.default_lease_ttl),
            ("max_lease_ttl", &self.max_lease_ttl),
            ("description", &self.description),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), json!(v))))
        .collect()
    }
}

/// Moves a mount through `sys/remount` and checks it finished; answers
/// the migration id.
pub(super) async fn remount(client: &ClientArgs, from: &str, to: &str) -> anyhow::Result<String> {
    let c = client.client()?;
    let answer = c
        .write("sys/remount", &json!({"from": from, "to": to}))
        .await?
        .context("sys/remount returned nothing")?;
    let id = answer["data"]["migration_id"]
        .as_str()
        .context("sys/remount gave no migration_id")?
        .to_owned();
    let status = c
        .read(&format!("sys/remount/status/{id}"))
        .await?
        .context("the move's status is unknown")?;
    let state = &status["data"]["migration_info"]["status"];
    if state != "success" {
        anyhow::bail!(
            "moving {from} to {to} (migration {id}) ended as {}",
            cell(state)
        );
    }
    Ok(id)
}

fn mount_path(p: &str) -> String {
    format!("{}/", p.trim_matches('/'))
}

/// Runs `coffer secrets ...`.
pub async fn run(cmd: SecretsCommand) -> anyhow::Result<u8> {
    match cmd {
        SecretsCommand::List { client } => {
            let body = client
                .client()?
                .read("sys/mounts")
                .await?
                .context("sys/mounts returned nothing")?;
            if client.format != Format::Table {
                structured(&body, client.format);
                return Ok(0);
            }
            let rows: Vec<Vec<String>> = body["data"]
                .as_object()
                .map(|d| {
                    d.iter()
                        .map(|(k, v)| {
                            vec![
                                k.clone(),
                                cell(&v["type"]),
                                cell(&v["accessor"]),
                                cell(&v["description"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            columns(&["Path", "Type", "Accessor", "Description"], &rows);
        }
        SecretsCommand::Enable {
            client,
            path,
            description,
            version,
            default_lease_ttl,
            max_lease_ttl,
            engine,
        } => {
            let p = mount_path(path.as_deref().unwrap_or(&engine));
            let mut body = json!({"type": engine, "description": description.unwrap_or_default()});
            if let Some(v) = version {
                body["options"] = json!({"version": v.to_string()});
            }
            let mut config = Map::new();
            if let Some(t) = default_lease_ttl {
                config.insert("default_lease_ttl".into(), json!(t));
            }
            if let Some(t) = max_lease_ttl {
                config.insert("max_lease_ttl".into(), json!(t));
            }
            if !config.is_empty() {
                body["config"] = Value::Object(config);
            }
            client
                .client()?
                .write(&format!("sys/mounts/{}", p.trim_end_matches('/')), &body)
                .await?;
            println!("Success! Enabled the {engine} secrets engine at: {p}");
        }
        SecretsCommand::Disable { client, path } => {
            let p = mount_path(&path);
            client
                .client()?
                .delete(&format!("sys/mounts/{}", p.trim_end_matches('/')))
                .await?;
            println!("Success! Disabled the secrets engine (if it existed) at: {p}");
        }
        SecretsCommand::Tune {
            client,
            tune,
            options,
            path,
        } => {
            let p = mount_path(&path);
            let mut body = tune.body();
            if !options.is_empty() {
                body.insert(
                    "options".into(),
                    Value::Object(super::generic::parse_pairs(&options)?),
                );
            }
            let answer = client
                .client()?
                .write(&format!("sys/mounts/{}tune", p), &Value::Object(body))
                .await?;
            for w in answer
                .as_ref()
                .and_then(|a| a["warnings"].as_array())
                .into_iter()
                .flatten()
            {
                eprintln!("WARNING! {}", cell(w));
            }
            println!("Success! Tuned the secrets engine at: {p}");
        }
        SecretsCommand::Move { client, from, to } => {
            let (from, to) = (mount_path(&from), mount_path(&to));
            let id = remount(&client, &from, &to).await?;
            println!(
                "Success! Finished moving secrets engine {from} to {to}, with migration ID {id}"
            );
        }
    }
    Ok(0)
}
