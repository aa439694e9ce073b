//! Accept loop: plain HTTP or TLS (rustls), with the limits that keep a slow
//! or hostile client from holding the server: a TLS handshake deadline, a
//! deadline for a request's headers once it has started, an idle deadline
//! between requests, and a bound on open connections.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tower::ServiceExt;

use crate::watchdog::{Activity, Watched};

/// Listener errors.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A certificate or key file could not be used.
    #[error("tls: {0}")]
    Tls(String),
    /// The socket failed.
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

/// Certificate chain and private key, as PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
}

/// How long a connection may take at each stage, and how many may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// From a request's first byte to its last header byte
    /// (`http_read_header_timeout`, Vault's default 10 s).
    pub read_header_timeout: Duration,
    /// For reading a request's body (`http_read_timeout`, 30 s).
    pub read_timeout: Duration,
    /// With no request under way and nothing sent (`http_idle_timeout`, 5 min).
    pub idle_timeout: Duration,
    /// For the TLS handshake (`tls_handshake_timeout`, 10 s).
    pub tls_handshake_timeout: Duration,
    /// Connections open at once; more are closed as soon as accepted.
    pub max_connections: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            read_header_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            tls_handshake_timeout: Duration::from_secs(10),
            max_connections: 4096,
        }
    }
}

/// Builds a rustls server config from PEM files.
pub fn load_tls(files: &TlsFiles) -> Result<Arc<ServerConfig>, ServeError> {
    let read = |p: &PathBuf| {
        std::fs::read(p).map_err(|e| ServeError::Tls(format!("cannot read {}: {e}", p.display())))
    };
    let cert_pem = read(&files.cert_file)?;
    let key_pem = zeroize::Zeroizing::new(read(&files.key_file)?);
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServeError::Tls(format!("{}: {e}", files.cert_file.display())))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!(
            "{} holds no PEM certificate",
            files.cert_file.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| ServeError::Tls(format!("{}: {e}", files.key_file.display())))?
        .ok_or_else(|| {
            ServeError::Tls(format!(
                "{} holds no PEM private key",
                files.key_file.display()
            ))
        })?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            ServeError::Tls(format!(
                "certificate and key do not form a usable pair: {e}"
            ))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Logs "connection limit reached" at most once per this long.
const LIMIT_LOG_EVERY: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of file descriptors, say), so the loop
/// does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait at shutdown for open connections to finish their requests.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown` resolves, then lets open
/// connections finish their requests (for up to 30 s).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<ServerConfig>>,
    limits: ConnLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let acceptor = tls.map(TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut last_limit_log: Option<Instant> = None;
    let mut refused = 0u64;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // Closing at once frees the descriptor; the client sees a reset.
            drop(stream);
            refused += 1;
            if last_limit_log.is_none_or(|t| t.elapsed() >= LIMIT_LOG_EVERY) {
                last_limit_log = Some(Instant::now());
                tracing::warn!(
                    max_connections = limits.max_connections,
                    refused_so_far = refused,
                    "connection limit reached: new connections are closed until others end (listener max_connections)"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let acceptor = acceptor.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            connection(stream, peer, app, acceptor, limits, stop).await;
        });
    }
    let _ = stop_tx.send(true);
    let max = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN, slots.acquire_many(max))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 30 s at shutdown; closing them");
    }
    Ok(())
}

/// One connection: the TLS handshake (bounded), then HTTP/1.1 or HTTP/2
/// under the watchdog, which closes it when a deadline passes.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    acceptor: Option<TlsAcceptor>,
    limits: ConnLimits,
    stop: watch::Receiver<bool>,
) {
    let activity = Activity::new();
    match acceptor {
        None => {
            let io = Watched::new(stream, activity.clone());
            http(io, peer, app, activity, limits, stop).await;
        }
        Some(acceptor) => {
            let handshake = acceptor.accept(stream);
            let tls = match tokio::time::timeout(limits.tls_handshake_timeout, handshake).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "tls handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "tls handshake timed out");
                    return;
                }
            };
            let io = Watched::new(tls, activity.clone());
            http(io, peer, app, activity, limits, stop).await;
        }
    }
}

async fn http<IO>(
    io: Watched<IO>,
    peer: SocketAddr,
    app: Router,
    activity: Arc<Activity>,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let counted = activity.clone();
    let svc = app.map_request(move |r: hyper::Request<hyper::body::Incoming>| {
        let mut r = r.map(axum::body::Body::new);
        r.extensions_mut().insert(ConnectInfo(peer));
        r
    });
    let svc = crate::watchdog::CountRequests::new(svc, counted);
    let hyper_svc = hyper_util::service::TowerToHyperService::new(svc);
    let builder = Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), hyper_svc);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            why = activity.expired(limits.read_header_timeout, limits.idle_timeout) => {
                tracing::debug!(%peer, reason = why, "closing connection");
                return;
            }
            changed = stop.changed(), if !draining => {
                draining = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
