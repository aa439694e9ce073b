//! `coffer server`: build storage, seal and core from config, then serve HTTP.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine as _;
use coffer_core::seal::{SealMode, StaticSeal};
use coffer_core::{Core, CoreConfig, InitParams, Operation, Request};
use coffer_storage::{
    CachedStorage, DynStorage, FileStorage, MemoryStorage, PostgresConfig, PostgresFencing,
    PostgresHa, PostgresHaConfig, PostgresStorage,
};
use serde_json::json;

use crate::config::{self, Config, SealFileConfig, StorageConfig};
use crate::transit_seal::TransitSeal;

/// Flags of `coffer server`.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Configuration file (Vault-style HCL).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Dev mode: in memory, initialised and unsealed, root token printed.
    #[arg(long)]
    dev: bool,
    /// Dev mode listen address (default 127.0.0.1:8200).
    #[arg(long)]
    dev_listen_address: Option<String>,
    /// Listen address, overriding the configuration's listener (or the
    /// default 127.0.0.1:8200 without a configuration file).
    #[arg(long, env = "COFFER_LISTEN_ADDRESS")]
    address: Option<String>,
    /// Dev mode root token id (default: random).
    #[arg(long, env = "COFFER_DEV_ROOT_TOKEN_ID")]
    dev_root_token_id: Option<String>,
    /// Dev mode mounts `secret/` as KV version 1 instead of version 2.
    #[arg(long)]
    dev_kv_v1: bool,
}

pub(crate) fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("COFFER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal as _;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Escape codes belong on a terminal, not in a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// The HA lock of a storage that has one.
type HaLockArc = Arc<dyn coffer_core::ha::HaLock>;

async fn open_storage(
    cfg: &StorageConfig,
    cache_size: usize,
) -> anyhow::Result<(DynStorage, Option<HaLockArc>)> {
    let mut lock: Option<HaLockArc> = None;
    let backend: DynStorage = match cfg {
        StorageConfig::Inmem => Arc::new(MemoryStorage::new()),
        StorageConfig::File { path } => {
            let file = path.join("coffer.redb");
            Arc::new(
                FileStorage::open(&file).with_context(|| format!("opening {}", file.display()))?,
            )
        }
        StorageConfig::Postgres {
            connect_attempts, ..
        } => {
            // PostgreSQL may be starting too (a host reboot, a cluster
            // restart): try again each second, as many times as configured.
            let mut attempt = 1;
            loop {
                match open_postgres(cfg).await {
                    Ok((b, l)) => {
                        lock = l;
                        break b;
                    }
                    Err(e) if attempt < *connect_attempts => {
                        tracing::warn!(error = %e, attempt, "connecting to PostgreSQL failed; retrying in 1 s");
                        attempt += 1;
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    };
    // Memory needs no cache; the others get Vault's read cache unless
    // disabled. An HA node always has the layer: it keeps the log of written
    // keys that standbys follow (a disabled cache then holds one entry).
    let storage: DynStorage = match cfg {
        StorageConfig::Inmem => backend,
        _ if cache_size == 0 && lock.is_none() => backend,
        _ => Arc::new(CachedStorage::new(backend, cache_size)),
    };
    Ok((storage, lock))
}

/// The PostgreSQL backend, and with HA its leadership lock (sharing a fence).
async fn open_postgres(cfg: &StorageConfig) -> anyhow::Result<(DynStorage, Option<HaLockArc>)> {
    let StorageConfig::Postgres {
        connection_url,
        table,
        max_parallel,
        ha,
        ..
    } = cfg
    else {
        bail!("not a PostgreSQL storage configuration");
    };
    let mut lock: Option<HaLockArc> = None;

    let fencing = match ha {
        None => None,
        Some(h) => {
            let node_id = uuid::Uuid::new_v4().to_string();
            let fence = Arc::new(coffer_storage::ha::Fence::default());
            lock = Some(Arc::new(
                PostgresHa::connect(
                    PostgresHaConfig {
                        connection_url: connection_url.clone(),
                        table: h.table.clone(),
                        node_id: node_id.clone(),
                        lease_ttl: h.lease_ttl,
                    },
                    fence.clone(),
                )
                .await?,
            ));
            Some(PostgresFencing {
                ha_table: h.table.clone(),
                fence,
                node_id,
            })
        }
    };
    let backend: DynStorage = Arc::new(
        PostgresStorage::connect(&PostgresConfig {
            connection_url: connection_url.clone(),
            table: table.clone(),
            max_parallel: *max_parallel,
            ha: fencing,
        })
        .await?,
    );
    Ok((backend, lock))
}

/// Background work a seal needs while the server runs (token renewal).
type SealTask = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

fn seal_mode(cfg: &SealFileConfig) -> anyhow::Result<(SealMode, Option<SealTask>)> {
    Ok(match cfg {
        SealFileConfig::Shamir => (SealMode::Shamir, None),
        SealFileConfig::Transit(t) => {
            let seal = TransitSeal::new(t)?;
            let task = seal.renewal().map(|f| Box::pin(f) as SealTask);
            (SealMode::Auto(Box::new(seal)), task)
        }
        SealFileConfig::Static { key_file, key_env } => {
            let text = zeroize::Zeroizing::new(match (key_file, key_env) {
                (Some(f), _) => std::fs::read_to_string(f).with_context(|| {
                    format!("seal \"static\": cannot read key_file {}", f.display())
                })?,
                (None, Some(var)) => std::env::var(var).with_context(|| {
                    format!("seal \"static\": environment variable {var} is not set")
                })?,
                (None, None) => bail!("seal \"static\" needs key_file or key_env"),
            });
            (
                SealMode::Auto(Box::new(StaticSeal::from_text(&text)?)),
                None,
            )
        }
    })
}

/// Runs the server until SIGINT/SIGTERM.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    if !args.dev && (args.dev_listen_address.is_some() || args.dev_kv_v1) {
        bail!(
            "--dev-listen-address and --dev-kv-v1 apply only with --dev; \
             a normal server listens where --address or the configuration's listener says"
        );
    }
    let mut cfg = match (&args.config, args.dev) {
        (Some(p), _) => config::load(p)?,
        (None, true) => Config {
            storage: StorageConfig::Inmem,
            ..Config::default()
        },
        (None, false) => Config::default(),
    };
    if let Some(a) = args.dev_listen_address.as_ref().filter(|_| args.dev) {
        cfg.listener.address = a.clone();
    }
    if let Some(a) = &args.address {
        cfg.listener.address = a.clone();
    }
    init_logging(&cfg.log_level);
    let (storage, ha_lock) = open_storage(&cfg.storage, cfg.cache_size).await?;
    let (seal, seal_task) = seal_mode(&cfg.seal)?;
    let mut audit = audit_broker(&cfg)?;
    if ha_lock.is_some()
        && let Some(addr) = &cfg.api_addr
    {
        // Each node keeps its own device files, so its own chain heads.
        audit = audit.with_head_scope(addr);
    }
    let tls = match &cfg.listener.tls {
        Some((cert, key)) => Some(coffer_http::load_tls(&coffer_http::TlsFiles {
            cert_file: cert.clone(),
            key_file: key.clone(),
        })?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&cfg.listener.address)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listener.address))?;
    let local = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let api_addr = format!("{scheme}://{local}");
    let mut core = Core::new(
        storage,
        seal,
        coffer_engines::registry(),
        coffer_auth::registry(),
        CoreConfig {
            default_lease_ttl: cfg.default_lease_ttl,
            max_lease_ttl: cfg.max_lease_ttl,
            cluster_name: cfg.cluster_name.clone(),
        },
    )?
    .with_audit(audit);
    let mut cluster_listener = None;
    if let Some(lock) = ha_lock {
        if args.dev {
            bail!("dev mode runs a single node; start HA nodes with a configuration file");
        }
        let (cl, advertise) = ha_listener(&cfg, local, scheme).await?;
        tracing::info!(
            api_addr = %advertise.api_addr,
            cluster_addr = %advertise.cluster_addr,
            node_id = %lock.node_id(),
            "HA enabled"
        );
        core = core.with_ha(coffer_core::ha::HaConfig { lock, advertise });
        cluster_listener = Some(cl);
    }
    let core = Arc::new(core);

    if args.dev {
        start_dev(
            &core,
            &api_addr,
            args.dev_root_token_id.as_deref(),
            args.dev_kv_v1,
            &cfg.storage,
        )
        .await?;
    } else {
        match core.auto_unseal().await {
            Ok(true) => tracing::info!("unsealed automatically by the configured seal"),
            // An HA node started before its cluster was initialised unseals
            // once another node has done it.
            Ok(false) if core.ha_enabled() && core.seal_status().await?.recovery_seal => {
                spawn_auto_unseal_retry(core.clone())
            }
            Ok(false) => {}
            Err(e) if e.retryable() => {
                tracing::error!(error = %e, "automatic unseal failed; staying sealed and retrying");
                spawn_auto_unseal_retry(core.clone());
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(task) = seal_task {
        tokio::spawn(task);
    }
    spawn_token_tidy(core.clone());
    spawn_periodic(core.clone());
    spawn_reopen_on_hangup(core.clone());
    println!("Listening on {api_addr} (storage: {:?})", cfg.storage);
    let opts = coffer_http::HttpOptions {
        max_request_size: cfg.listener.max_request_size,
        read_timeout: cfg.listener.limits.read_timeout,
        cluster_roots: match &cfg.listener.tls {
            // Nodes trust the certificate (chain) they serve themselves.
            Some((cert, _)) => vec![std::fs::read(cert).with_context(|| {
                format!("reading {} for the cluster connections", cert.display())
            })?],
            None => Vec::new(),
        },
        ui: cfg.ui || args.dev,
        log_requests: cfg.log_requests,
    };
    if opts.ui {
        println!("Web UI: {api_addr}/ui/");
    }
    let app = coffer_http::router(core.clone(), opts.clone()).map_err(anyhow::Error::msg)?;
    let mut limits = cfg.listener.limits;
    let fds = crate::fd_limit::raise();
    if !cfg.listener.max_connections_set {
        limits.max_connections = crate::fd_limit::connection_budget(fds);
    }
    tracing::info!(
        max_connections = limits.max_connections,
        open_files_limit = fds,
        "listener limits"
    );
    // At a signal an HA node first hands leadership over (its listeners keep
    // forwarding meanwhile), then the listeners stop.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let cluster_serve = match cluster_listener {
        Some(cl) => {
            let capp = coffer_http::cluster_router(core.clone(), opts.clone())
                .map_err(anyhow::Error::msg)?;
            Some(tokio::spawn(coffer_http::serve(
                cl,
                capp,
                tls.clone(),
                limits,
                stopped(),
            )))
        }
        None => None,
    };
    let ha_task = core.ha_enabled().then(|| {
        // While a standby: follow the active node's writes to serve reads.
        tokio::spawn(coffer_http::follow(core.clone(), opts));
        let core = core.clone();
        tokio::spawn(core.run_ha(shutdown_signal()))
    });
    let api = tokio::spawn(coffer_http::serve(listener, app, tls, limits, stopped()));
    match ha_task {
        Some(t) => {
            let _ = t.await;
        }
        None => shutdown_signal().await,
    }
    let _ = stop_tx.send(true);
    api.await??;
    if let Some(c) = cluster_serve {
        c.await??;
    }
    if let Err(e) = core.audit_flush().await {
        tracing::error!(error = %e, "storing audit chain heads at shutdown failed");
    }
    tracing::info!("shut down");
    Ok(())
}

/// Binds the cluster listener and works out what this node advertises:
/// `api_addr` (required with HA: where clients and redirects reach it) and
/// `cluster_addr` (default: the cluster listener's address).
async fn ha_listener(
    cfg: &Config,
    local: std::net::SocketAddr,
    scheme: &str,
) -> anyhow::Result<(tokio::net::TcpListener, coffer_core::ha::Advertise)> {
    let Some(api_addr) = cfg.api_addr.clone() else {
        bail!(
            "storage \"postgresql\" with ha_enabled needs api_addr: the address clients (and \
             redirects from standbys) use to reach this node, e.g. api_addr = \"https://node1:8200\""
        );
    };
    let cluster_bind = match &cfg.listener.cluster_address {
        Some(a) => a.clone(),
        None => std::net::SocketAddr::new(local.ip(), local.port().wrapping_add(1)).to_string(),
    };
    let cl = tokio::net::TcpListener::bind(&cluster_bind)
        .await
        .with_context(|| format!("cannot listen on the cluster address {cluster_bind}"))?;
    let bound = cl.local_addr()?;
    let cluster_addr = match &cfg.cluster_addr {
        Some(a) => a.clone(),
        None if bound.ip().is_unspecified() => bail!(
            "the cluster listener binds {bound}: set cluster_addr to the address other nodes reach it at"
        ),
        None => format!("{scheme}://{bound}"),
    };
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    Ok((
        cl,
        coffer_core::ha::Advertise {
            api_addr,
            cluster_addr,
            hostname,
            version: coffer_core::VERSION.to_owned(),
        },
    ))
}

/// The configuration's audit devices, opened now so that a bad path stops
/// the server at start, plus the rules for devices enabled through the API.
fn audit_broker(cfg: &Config) -> anyhow::Result<coffer_core::audit::Broker> {
    let mut configured = Vec::new();
    for spec in &cfg.audit {
        let sink = crate::audit::build_sink(spec, None)
            .map_err(|e| anyhow::anyhow!("audit device {}: {e}", spec.path))?;
        configured.push((spec.clone(), sink));
    }
    if let Some(dir) = &cfg.audit_dir
        && !dir.is_dir()
    {
        bail!("audit_dir {} is not a directory", dir.display());
    }
    let factory = Arc::new(crate::audit::ApiFactory::new(cfg.audit_dir.clone()));
    Ok(coffer_core::audit::Broker::new(Some(factory), configured))
}

/// SIGHUP: audit files are reopened (after logrotate moved them).
fn spawn_reopen_on_hangup(core: Arc<Core>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; audit files will not be reopened on it");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let failed = core.audit_reopen().await;
            if failed.is_empty() {
                tracing::info!("SIGHUP: audit devices reopened");
            }
        }
    });
}

async fn start_dev(
    core: &Core,
    api_addr: &str,
    root_id: Option<&str>,
    kv_v1: bool,
    storage: &StorageConfig,
) -> anyhow::Result<()> {
    if core.is_initialized().await? {
        bail!(
            "dev mode sets up a fresh store, but the configured storage ({storage:?}) already holds \
             an initialised coffer: run without --dev and unseal it with its keys, or point dev \
             mode at empty storage (or none: without --config it keeps everything in memory)"
        );
    }
    let init = core
        .initialize(InitParams {
            secret_shares: 1,
            secret_threshold: 1,
            recovery_shares: 0,
            recovery_threshold: 0,
        })
        .await?;
    let key = init
        .keys
        .first()
        .context("dev mode: initialisation returned no key")?;
    let key_b64 = base64::engine::general_purpose::STANDARD.encode(key.expose());
    core.unseal_share(Some(&key_b64), false).await?;
    let mut token = init.root_token.expose().to_owned();
    if let Some(id) = root_id {
        core.set_dev_root_token(id).await?;
        token = id.to_owned();
    }
    let mut mount = Request::new(Operation::Update, "sys/mounts/secret");
    mount.token = Some(coffer_core::secret::SecretString::new(token.clone()));
    mount.data = json!({
        "type": "kv",
        "options": {"version": if kv_v1 { "1" } else { "2" }},
        "description": "key/value secret storage",
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    core.handle(mount).await?;
    // Dev mode prints its keys on purpose, as Vault's does: it is for local use only.
    match storage {
        StorageConfig::Inmem => println!(
            "==> coffer server started in DEV MODE: in memory, unsealed, nothing survives exit."
        ),
        other => println!(
            "==> coffer server started in DEV MODE on the configured storage ({other:?}): it persists; \
             start it again without --dev and unseal it with the key below."
        ),
    }
    println!();
    println!("    export VAULT_ADDR='{api_addr}'");
    println!();
    println!("Unseal Key: {key_b64}");
    println!("Root Token: {token}");
    println!();
    Ok(())
}

/// Retries an automatic unseal whose seal was unavailable at start, waiting
/// 1 s, 2 s, 4 s ... up to a minute between attempts; `sys/seal-status` shows
/// the last error meanwhile. Stops once the server is unsealed by any means.
fn spawn_auto_unseal_retry(core: Arc<Core>) {
    tokio::spawn(async move {
        let mut delay = std::time::Duration::from_secs(1);
        loop {
            tokio::time::sleep(delay).await;
            if !core.is_sealed() {
                return;
            }
            match core.auto_unseal().await {
                Ok(true) => {
                    tracing::info!("unsealed automatically by the configured seal");
                    return;
                }
                // Not initialised yet: an HA node waits for another to do it.
                Ok(false) if core.ha_enabled() && !core.is_initialized().await.unwrap_or(true) => {
                    delay = std::time::Duration::from_secs(1);
                }
                // Nothing left to do: unsealed meanwhile, or not initialised.
                Ok(false) => return,
                Err(e) => {
                    delay = (delay * 2).min(std::time::Duration::from_secs(60));
                    tracing::error!(error = %e, retry_in_s = delay.as_secs(), "automatic unseal failed");
                }
            }
        }
    });
}

/// Every ten minutes, remove expired tokens (lookups already refuse them).
fn spawn_token_tidy(core: Arc<Core>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        every.tick().await;
        loop {
            every.tick().await;
            if core.is_sealed() {
                continue;
            }
            match core.tidy_tokens().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "expired tokens tidied"),
                Err(e) => tracing::warn!(error = %e, "token tidy failed"),
            }
        }
    });
}

/// Every five seconds, let secret engines do their scheduled work (transit key
/// rotation, database static roles) and refresh the rotation health.
fn spawn_periodic(core: Arc<Core>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if core.is_sealed() {
                continue;
            }
            if let Err(e) = core.run_periodic().await {
                tracing::warn!(error = %e, "scheduled engine work failed");
            }
        }
    });
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
