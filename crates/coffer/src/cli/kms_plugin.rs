//! `coffer kms-plugin`: serves the Kubernetes KMS v2 API on a unix socket
//! for kube-apiserver, backed by a coffer transit key.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use zeroize::Zeroizing;

use crate::kms::proto::key_management_service_server::KeyManagementServiceServer;
use crate::kms::{KeyRef, Plugin};
use crate::session::{Credentials, Source};

#[derive(Args, Debug)]
pub struct KmsPluginArgs {
    /// The socket kube-apiserver's EncryptionConfiguration names, as
    /// `unix:///path` or a path.
    #[arg(long, default_value = "unix:///var/run/kmsplugin/kms.sock")]
    pub listen: String,
    /// The transit key: `<mount>/keys/<name>` (e.g. transit/keys/etcd) or a name.
    #[arg(long)]
    pub key: String,
    /// A file holding the token to use; re-read when it changes.
    #[arg(long, conflicts_with_all = ["approle_role_id_file", "approle_secret_id_file"])]
    pub token_file: Option<PathBuf>,
    /// Log in with AppRole: the role ID's file.
    #[arg(long, requires = "approle_secret_id_file")]
    pub approle_role_id_file: Option<PathBuf>,
    /// Log in with AppRole: the secret ID's file.
    #[arg(long, requires = "approle_role_id_file")]
    pub approle_secret_id_file: Option<PathBuf>,
    /// Where AppRole is mounted.
    #[arg(long, default_value = "approle")]
    pub approle_mount: String,
    /// Log level (COFFER_LOG overrides).
    #[arg(long, default_value = "info")]
    pub log_level: String,
    #[command(flatten)]
    pub client: super::ClientArgs,
}

fn socket_path(listen: &str) -> anyhow::Result<PathBuf> {
    let p = listen.strip_prefix("unix://").unwrap_or(listen);
    if p.is_empty() || p.contains("://") {
        anyhow::bail!("--listen {listen:?}: use unix:///path/to/kms.sock");
    }
    Ok(PathBuf::from(p))
}

/// Binds the socket, replacing a stale one a previous run left behind, and
/// lets only the owner (kube-apiserver runs as the same user) connect.
fn bind(path: &PathBuf) -> anyhow::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    if let Ok(m) = std::fs::symlink_metadata(path) {
        if !m.file_type().is_socket() {
            anyhow::bail!(
                "{} exists and is not a socket; not replacing it",
                path.display()
            );
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let l = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("listening on {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))?;
    Ok(l)
}

/// Runs the plugin until SIGINT or SIGTERM.
pub async fn run(a: KmsPluginArgs) -> anyhow::Result<u8> {
    crate::server::init_logging(&a.log_level);
    let key = KeyRef::parse(&a.key).map_err(super::UsageError)?;
    let source = match (
        &a.token_file,
        &a.approle_role_id_file,
        &a.approle_secret_id_file,
    ) {
        (Some(f), _, _) => Source::TokenFile(f.clone()),
        (None, Some(r), Some(s)) => Source::AppRole {
            mount: a.approle_mount.trim_matches('/').to_owned(),
            role_id_file: r.clone(),
            secret_id_file: s.clone(),
            remove_secret_id: false,
        },
        _ => match super::current_token() {
            Some(t) => Source::Fixed(Zeroizing::new(t)),
            None => {
                return Err(super::UsageError(
                    "kms-plugin needs a token: --token-file, --approle-role-id-file with --approle-secret-id-file, or VAULT_TOKEN"
                        .into(),
                )
                .into());
            }
        },
    };
    let base = a.client.client_with_token(None)?;
    let creds = Arc::new(Credentials::new(base, source, "kms-plugin"));
    // Log in now if coffer is there; if not, Status reports it and the next
    // call tries again (coffer may run in the cluster this apiserver starts).
    if let Err(e) = creds.client().await {
        tracing::warn!(error = %e, "kms-plugin cannot log in to coffer yet; Status will say so until it can");
    }
    let renewer = {
        let creds = creds.clone();
        tokio::spawn(async move { creds.keep_alive().await })
    };
    let path = socket_path(&a.listen)?;
    let listener = bind(&path)?;
    println!(
        "Listening on unix://{} (transit key {}/keys/{})",
        path.display(),
        key.mount,
        key.name
    );
    tracing::info!(socket = %path.display(), key = %format!("{}/keys/{}", key.mount, key.name), "kms-plugin serving KMS v2");
    let plugin = Plugin::new(creds, key);
    let served = tonic::transport::Server::builder()
        .add_service(KeyManagementServiceServer::new(plugin))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::UnixListenerStream::new(listener),
            crate::server::shutdown_signal(),
        )
        .await;
    renewer.abort();
    let _ = std::fs::remove_file(&path);
    served.context("serving KMS v2")?;
    Ok(0)
}
