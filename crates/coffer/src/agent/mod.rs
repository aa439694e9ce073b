//! `coffer agent -config FILE`: Vault/OpenBao Agent's job with its
//! configuration file. Auto-auth logs in (AppRole, token file, JWT,
//! Kubernetes), keeps the token alive and writes it to file sinks;
//! templates in consul-template's language are rendered to files and kept
//! current, re-read the moment a change event names what they use.

mod cache;
pub mod config;
pub(crate) mod events;
mod funcs;
mod proxy;
pub(crate) mod supervisor;
mod templates;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use coffer_client::{Client, ClientConfig};
use zeroize::Zeroizing;

use crate::session::{Credentials, Source};

/// `coffer agent` arguments.
#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// The agent's configuration file (Vault/OpenBao Agent HCL).
    #[arg(long = "config", value_name = "FILE")]
    pub config: PathBuf,
    /// Log in, write the sinks, and exit.
    #[arg(long = "exit-after-auth")]
    pub exit_after_auth: bool,
    /// trace, debug, info, warn or error.
    #[arg(long = "log-level", default_value = "info")]
    pub log_level: String,
}

fn client(cfg: &config::AgentConfig) -> anyhow::Result<Client> {
    let v = &cfg.vault;
    let address = v
        .address
        .clone()
        .or_else(|| std::env::var("VAULT_ADDR").ok())
        .or_else(|| std::env::var("COFFER_ADDR").ok())
        .unwrap_or_else(|| "https://127.0.0.1:8200".into());
    let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let ca_cert_pem = v.ca_cert.as_ref().map(read).transpose()?;
    let client_identity_pem = match (&v.client_cert, &v.client_key) {
        (Some(c), Some(k)) => {
            let mut pem = read(c)?;
            pem.extend(read(k)?);
            Some(pem)
        }
        (None, None) => None,
        _ => anyhow::bail!("vault: client_cert and client_key go together"),
    };
    Ok(Client::new(ClientConfig {
        address,
        ca_cert_pem,
        skip_verify: v.tls_skip_verify,
        client_identity_pem,
        tls_server_name: v.tls_server_name.clone(),
        ..ClientConfig::default()
    })?)
}

/// Where the agent's token comes from; `None` for a proxy that only
/// passes its clients' tokens on.
fn source(cfg: &config::AgentConfig) -> anyhow::Result<Option<Source>> {
    let Some(m) = &cfg.method else {
        let t = std::env::var("VAULT_TOKEN").ok().filter(|t| !t.is_empty());
        return match t {
            Some(t) => Ok(Some(Source::Fixed(Zeroizing::new(t)))),
            None if cfg.templates.is_empty() && cfg.exec.is_none() => Ok(None),
            None => anyhow::bail!(
                "no token: add an auto_auth block to the configuration or set VAULT_TOKEN"
            ),
        };
    };
    let mount = m
        .mount_path
        .strip_prefix("auth/")
        .unwrap_or(&m.mount_path)
        .to_owned();
    let get = |k: &str| m.config.get(k).cloned().unwrap_or_default();
    let flag = |k: &str, default: bool| {
        m.config
            .get(k)
            .and_then(|v| coffer_core::fields::parse_bool(v))
            .unwrap_or(default)
    };
    Ok(Some(match m.kind.as_str() {
        "approle" => Source::AppRole {
            mount,
            role_id_file: get("role_id_file_path").into(),
            secret_id_file: get("secret_id_file_path").into(),
            remove_secret_id: flag("remove_secret_id_file_after_reading", true),
        },
        "token_file" => Source::TokenFile(get("token_file_path").into()),
        "jwt" => Source::JwtFile {
            mount,
            role: get("role"),
            path: get("path").into(),
            remove: flag("remove_jwt_after_reading", true),
        },
        _ => Source::JwtFile {
            mount,
            role: get("role"),
            path: m
                .config
                .get("token_path")
                .cloned()
                .unwrap_or_else(|| "/var/run/secrets/kubernetes.io/serviceaccount/token".into())
                .into(),
            remove: false,
        },
    }))
}

/// Logs in, retrying with the method's backoff (or failing at once with
/// `exit_on_err`).
async fn first_login(cfg: &config::AgentConfig, creds: &Credentials) -> anyhow::Result<()> {
    let (min, max, exit) = cfg.method.as_ref().map_or(
        (Duration::from_secs(1), Duration::from_secs(300), true),
        |m| (m.min_backoff, m.max_backoff, m.exit_on_err),
    );
    let mut wait = min;
    loop {
        match creds.client().await {
            Ok(_) => return Ok(()),
            Err(e) if exit => anyhow::bail!("auto-auth failed: {e}"),
            Err(e) => {
                tracing::error!(error = %e, retry_in = ?wait, "auto-auth login failed");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(max);
            }
        }
    }
}

/// Writes every sink whenever the token changes.
async fn keep_sinks(sinks: Vec<config::FileSink>, creds: Arc<Credentials>) {
    let mut tokens = creds.tokens();
    loop {
        let token = tokens.borrow_and_update().clone();
        if let Some(t) = token {
            write_sinks(&sinks, &t);
        }
        if tokens.changed().await.is_err() {
            return;
        }
    }
}

fn write_sinks(sinks: &[config::FileSink], token: &str) {
    for s in sinks {
        match crate::cli::private_file::write_with_mode(&s.path, token.as_bytes(), s.mode) {
            Ok(()) => tracing::info!(path = %s.path.display(), "token written to sink"),
            Err(e) => {
                tracing::error!(path = %s.path.display(), error = %format!("{e:#}"), "writing the token sink failed")
            }
        }
    }
}

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(a: AgentArgs) -> anyhow::Result<u8> {
    crate::server::init_logging(&a.log_level);
    let cfg = config::load(&a.config).map_err(|e| crate::cli::UsageError(e.to_string()))?;
    if let Some(p) = &cfg.pid_file {
        std::fs::write(p, std::process::id().to_string())
            .with_context(|| format!("writing pid file {}", p.display()))?;
    }
    let result = serve(&cfg, a.exit_after_auth).await;
    if let Some(p) = &cfg.pid_file {
        let _ = std::fs::remove_file(p);
    }
    result
}

async fn serve(cfg: &config::AgentConfig, exit_after_auth: bool) -> anyhow::Result<u8> {
    let source = source(cfg)?;
    let own_token = source.is_some();
    let source = source.unwrap_or_else(|| Source::Fixed(Zeroizing::new(String::new())));
    let creds = Arc::new(Credentials::new(client(cfg)?, source, "agent"));
    if own_token {
        first_login(cfg, &creds).await?;
        if let Some(t) = creds.tokens().borrow().clone() {
            write_sinks(&cfg.sinks, &t);
        }
    }
    if exit_after_auth || cfg.exit_after_auth {
        return Ok(0);
    }
    if own_token {
        tokio::spawn(keep_sinks(cfg.sinks.clone(), creds.clone()));
        let alive = creds.clone();
        tokio::spawn(async move { alive.keep_alive().await });
    }
    let changes = Arc::new(events::Changes::default());
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let child = async {
        match &cfg.exec {
            Some(exec) => supervisor::supervise(exec.clone(), rx).await,
            None => std::future::pending().await,
        }
    };
    let updates = cfg.exec.as_ref().map(|_| tx);
    let work = async {
        if cfg.templates.is_empty() {
            // A command without templates starts at once.
            if let Some(tx) = &updates {
                let start = supervisor::Update {
                    env: Default::default(),
                    env_changed: false,
                    files_changed: false,
                };
                let _ = tx.send(start).await;
            }
            std::future::pending::<anyhow::Result<()>>().await
        } else {
            tokio::spawn(events::listen(creds.clone(), changes.clone()));
            templates::Runner::new(cfg, creds.clone(), changes.clone(), updates)?
                .run()
                .await
        }
    };
    let proxy = async {
        if cfg.listeners.is_empty() {
            std::future::pending::<anyhow::Result<()>>().await
        } else {
            proxy::serve(
                cfg.listeners.clone(),
                creds.clone(),
                cfg.auto_auth_token,
                cfg.cache,
            )
            .await
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let signals = async {
        if cfg.exec.is_some() {
            // The supervisor stops its child on these, then ends.
            std::future::pending::<()>().await;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    tokio::select! {
        r = work => {
            r?;
            Ok(0)
        }
        // With exec, the agent lives as long as its child and exits with its code.
        code = child => code,
        r = proxy => {
            r?;
            Ok(0)
        }
        _ = signals => Ok(0),
    }
}
