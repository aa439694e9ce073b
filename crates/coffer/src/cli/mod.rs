//! Client-side commands: they talk to a running server over HTTP.

pub mod audit;
pub mod audit_query;
pub mod auth_cmds;
pub mod dotenv;
pub mod generic;
pub mod incident;
pub mod kms_plugin;
pub mod kv;
pub mod leak;
pub mod lease;
pub mod operator;
mod output;
pub(crate) mod private_file;
mod prompt;
pub mod rotation;
pub mod run;
pub mod scan;
pub mod seal;
pub mod secrets;
pub mod sops;
mod sops_files;
mod token_file;
pub mod transit;

use anyhow::Context;
use coffer_client::{Client, ClientConfig};

/// A mistake in how a command was called (exit code 1, like Vault's CLI).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Output format of client commands.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Aligned key/value table.
    #[default]
    Table,
    /// The server's JSON.
    Json,
    /// The server's answer as YAML.
    Yaml,
}

/// Flags shared by every client command.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// Server address (default: $COFFER_ADDR, $VAULT_ADDR, http://127.0.0.1:8200).
    #[arg(long)]
    pub address: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Print only this field of the answer (a `data` field, else an `auth`
    /// field; `token` is the client token).
    #[arg(long)]
    pub field: Option<String>,
    /// Ask the server to wrap its answer in a single-use token living this
    /// long (e.g. 60s); `coffer unwrap` opens it.
    #[arg(long)]
    pub wrap_ttl: Option<String>,
}

fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

/// What to do about a refusal when no token was sent at all.
pub fn no_token_hint(e: &anyhow::Error) -> Option<&'static str> {
    let refused = e
        .chain()
        .filter_map(|c| c.downcast_ref::<coffer_client::ClientError>())
        .any(|c| c.status() == Some(403));
    (refused && env_token_name().is_none() && token_file::read().is_none())
        .then_some("no token is set: run `coffer login` or set VAULT_TOKEN (or COFFER_TOKEN)")
}

/// The token client commands use: `$COFFER_TOKEN`, `$VAULT_TOKEN`, then
/// `~/.coffer-token`.
pub fn current_token() -> Option<String> {
    env_first(&["COFFER_TOKEN", "VAULT_TOKEN"]).or_else(token_file::read)
}

/// The token variable that is set, if any (it wins over the stored token).
pub(crate) fn env_token_name() -> Option<&'static str> {
    ["COFFER_TOKEN", "VAULT_TOKEN"]
        .into_iter()
        .find(|n| std::env::var(n).is_ok_and(|v| !v.is_empty()))
}

impl ClientArgs {
    /// Table output, no field, no wrapping: a client for `address` (else
    /// the environment's), for commands that only need the connection.
    pub fn for_address(address: Option<String>) -> Self {
        ClientArgs {
            address,
            format: Format::Table,
            field: None,
            wrap_ttl: None,
        }
    }

    /// A client from flags and environment; the token comes from
    /// `$COFFER_TOKEN`, `$VAULT_TOKEN`, then `~/.coffer-token`.
    pub fn client(&self) -> anyhow::Result<Client> {
        self.client_with_token(current_token())
    }

    /// A client with an explicit token (or none, for logins).
    pub fn client_with_token(&self, token: Option<String>) -> anyhow::Result<Client> {
        let address = self
            .address
            .clone()
            .or_else(|| env_first(&["COFFER_ADDR", "VAULT_ADDR"]))
            .unwrap_or_else(|| "http://127.0.0.1:8200".into());
        let ca_cert_pem = match env_first(&["COFFER_CACERT", "VAULT_CACERT"]) {
            Some(p) => {
                Some(std::fs::read(&p).with_context(|| format!("reading CA certificate {p}"))?)
            }
            None => None,
        };
        let skip_verify = env_first(&["COFFER_SKIP_VERIFY", "VAULT_SKIP_VERIFY"])
            .is_some_and(|v| coffer_core::fields::parse_bool(&v) == Some(true));
        Ok(Client::new(ClientConfig {
            address,
            token,
            ca_cert_pem,
            skip_verify,
            wrap_ttl: self.wrap_ttl.clone(),
            ..ClientConfig::default()
        })?)
    }
}
