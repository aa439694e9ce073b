//! `coffer rotation status`: everything that rotates, in one table.

use anyhow::Context;
use serde_json::Value;

use super::output::{cell, columns, structured};
use super::{ClientArgs, Format};

/// Rotation subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum RotationCommand {
    /// List static roles, root credentials and transit keys that rotate,
    /// with last success, next due and failures. Exit code 2 when any is
    /// failing or overdue.
    Status {
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs a rotation command.
pub async fn run(cmd: RotationCommand) -> anyhow::Result<u8> {
    let RotationCommand::Status { client } = cmd;
    let body = client
        .client()?
        .read("sys/rotation/status")
        .await?
        .context("sys/rotation/status returned nothing")?;
    let degraded = body["data"]["degraded"] == Value::Bool(true);
    if client.format != Format::Table {
        structured(&body, client.format);
        return Ok(if degraded { 2 } else { 0 });
    }
    let items = body["data"]["rotations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if items.is_empty() {
        println!("Nothing rotates on this server yet.");
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|r| {
            vec![
                cell(&r["path"]),
                cell(&r["kind"]),
                cell(&r["state"]),
                cell(&r["last_success"]),
                cell(&r["next_due"]),
                cell(&r["consecutive_failures"]),
                r["last_error"].as_str().unwrap_or("").to_owned(),
            ]
        })
        .collect();
    columns(
        &[
            "Path",
            "Kind",
            "State",
            "Last Success",
            "Next Due",
            "Failures",
            "Last Error",
        ],
        &rows,
    );
    Ok(if degraded { 2 } else { 0 })
}
