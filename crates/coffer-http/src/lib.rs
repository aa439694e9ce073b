//! The Vault wire format over HTTP: decodes `/v1/...` requests into core
//! requests and encodes core responses as Vault's JSON envelope.
//!
//! Invariant: no business logic lives here; everything but the raw
//! seal/health endpoints goes through `Core::handle`.

mod decode;
mod encode;
mod events;
mod follow;
mod forward;
mod raw;
mod serve;
mod standby;
mod ui;
mod watchdog;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{Method, Request as HttpRequest};
use axum::response::Response;
use coffer_core::Core;

pub use follow::follow;
pub use forward::hop_by_hop;
pub use serve::{ConnLimits, ServeError, TlsFiles, load_tls, serve};

/// Default request body limit, as Vault's (32 MiB).
pub const DEFAULT_MAX_REQUEST_SIZE: usize = 32 * 1024 * 1024;

/// Listener-level options.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Largest request body accepted, in bytes.
    pub max_request_size: usize,
    /// Longest time for reading a request's body (408 after it).
    pub read_timeout: std::time::Duration,
    /// Extra trust anchors (PEM) for reaching other nodes' TLS cluster listeners.
    pub cluster_roots: Vec<Vec<u8>>,
    /// Serve the web UI under `/ui/` (config `ui = true`, and dev mode).
    pub ui: bool,
    /// Log every completed request at this level (`log_requests_level`):
    /// method, path (never the query), status, duration, client.
    pub log_requests: Option<tracing::Level>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            max_request_size: DEFAULT_MAX_REQUEST_SIZE,
            read_timeout: ConnLimits::default().read_timeout,
            cluster_roots: Vec::new(),
            ui: false,
            log_requests: None,
        }
    }
}

#[derive(Clone)]
struct AppState {
    core: Arc<Core>,
    opts: Arc<HttpOptions>,
    /// Client for forwarding a standby's requests to the active node.
    forwarder: reqwest::Client,
    /// True on the cluster listener: requests come from other nodes.
    cluster: bool,
}

fn state(core: Arc<Core>, opts: HttpOptions, cluster: bool) -> Result<AppState, String> {
    Ok(AppState {
        forwarder: forward::client(&opts.cluster_roots)?,
        core,
        opts: Arc::new(opts),
        cluster,
    })
}

/// The axum application serving the Vault-compatible API.
pub fn router(core: Arc<Core>, opts: HttpOptions) -> Result<Router, String> {
    Ok(Router::new()
        .fallback(dispatch)
        .with_state(state(core, opts, false)?))
}

/// The cluster listener's application: the same API, for requests other
/// nodes forward (each must carry the cluster's signature; the client's
/// address comes from `X-Forwarded-For`). Never forwards again.
pub fn cluster_router(core: Arc<Core>, opts: HttpOptions) -> Result<Router, String> {
    Ok(Router::new()
        .fallback(dispatch)
        .with_state(state(core, opts, true)?))
}

/// Repeated slashes mean one, as Go's path cleaning (and so Vault) treats them.
fn collapse_slashes(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

async fn dispatch(State(st): State<AppState>, req: HttpRequest<Body>) -> Response {
    let Some(level) = st.opts.log_requests else {
        return route(st, req).await;
    };
    let start = std::time::Instant::now();
    let method = req.method().clone();
    // The path only: a query string can carry a parameter such as a
    // wrapping token (`sys/wrapping/lookup?token=`), and logs outlive it.
    let target = req.uri().path().to_owned();
    let client = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let resp = route(st, req).await;
    log_request(
        level,
        &method,
        &target,
        resp.status().as_u16(),
        start.elapsed(),
        &client,
    );
    resp
}

/// One line per completed request, as an access log would have it (never
/// a header or a body: tokens travel in headers).
fn log_request(
    level: tracing::Level,
    method: &Method,
    target: &str,
    status: u16,
    took: std::time::Duration,
    client: &str,
) {
    let duration_ms = took.as_secs_f64() * 1000.0;
    macro_rules! at {
        ($lvl:expr) => {
            tracing::event!(target: "coffer::request", $lvl, %method, path = %target, status, duration_ms, client_address = %client, "completed request")
        };
    }
    match level {
        tracing::Level::ERROR => at!(tracing::Level::ERROR),
        tracing::Level::WARN => at!(tracing::Level::WARN),
        tracing::Level::INFO => at!(tracing::Level::INFO),
        tracing::Level::DEBUG => at!(tracing::Level::DEBUG),
        tracing::Level::TRACE => at!(tracing::Level::TRACE),
    }
}

async fn route(st: AppState, req: HttpRequest<Body>) -> Response {
    if !st.cluster && st.opts.ui && ui::is_ui(req.uri().path()) {
        return ui::serve(req.method(), req.uri().path(), req.headers());
    }
    if st.cluster && req.uri().path() == follow::CHANGES_PATH {
        return follow::changes(&st, req).await;
    }
    let Some(raw_path) = req.uri().path().strip_prefix("/v1/") else {
        return encode::error(404, &[]);
    };
    // Vault routes on the decoded path, so `%2e%2e` is checked as `..`.
    let path = match percent_encoding::percent_decode_str(raw_path).decode_utf8() {
        Ok(p) => collapse_slashes(&p),
        Err(_) => {
            return encode::logical_error(&coffer_core::LogicalError::BadRequest(
                "request path is not valid UTF-8 after percent-decoding".into(),
            ));
        }
    };
    let mut remote = req
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    if st.cluster {
        let admitted = cluster_admit(&st, &req);
        match admitted.await {
            Ok(client) => remote = client.or(remote),
            Err(r) => return r,
        }
    } else if !raw::is_raw(&path) {
        match st.core.forward_target(forward::LEADER_WAIT).await {
            Ok(None) => {}
            Ok(Some(leader)) => return standby::serve(&st, req, path, leader, remote).await,
            Err(e) => return encode::logical_error(&e),
        }
    }
    if raw::is_raw(&path) {
        let (method, query, headers) = (
            req.method().clone(),
            req.uri().query().map(str::to_owned),
            req.headers().clone(),
        );
        if let Some(resp) = raw::handle(&st.core, &path, &method, query.as_deref(), &headers).await
        {
            return match resp {
                raw::Raw::Ready(r) => r,
                raw::Raw::WithBody(kind) => {
                    let body = match decode::read_body(req, &st.opts).await {
                        Ok(b) => b,
                        Err(e) => return encode::logical_error(&e),
                    };
                    raw::with_body(&st.core, kind, body).await
                }
            };
        }
    }
    if req.method() == Method::GET && path.starts_with(events::PREFIX) {
        return events::subscribe(st, req, path).await;
    }
    if req.method() == Method::GET && decode::wants_help(req.uri().query()) {
        let token = decode::token(req.headers());
        return match st.core.help(&path, token, remote).await {
            Ok(m) => encode::json(200, &serde_json::Value::Object(m)),
            Err(e) => encode::logical_error(&e),
        };
    }
    let head_only = req.method() == Method::HEAD;
    match decode::logical_request(req, path, remote, &st.opts).await {
        Ok(lr) => {
            let id = lr.id.clone();
            let resp = match st.core.handle(lr).await {
                Ok(r) => encode::envelope(&id, r),
                Err(e) => encode::logical_error(&e),
            };
            // Read-your-writes across HA nodes: the log position after this
            // request, which a standby must reach before answering the client.
            let resp = standby::with_index(&st, resp, st.core.active_position()).await;
            if head_only {
                encode::strip_body(resp)
            } else {
                resp
            }
        }
        Err(e) => encode::logical_error(&e),
    }
}

/// Checks a request on the cluster listener: signed by a node of this
/// cluster, and this node active. Answers the client's address.
pub(crate) fn cluster_admit(
    st: &AppState,
    req: &HttpRequest<Body>,
) -> impl std::future::Future<Output = Result<Option<std::net::SocketAddr>, Response>> + Send + use<>
{
    // Owned copies: the request's body is not `Sync`, so no borrow of it may
    // live across an await.
    let st = st.clone();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let method = req.method().as_str().to_owned();
    let header = req
        .headers()
        .get(forward::FORWARD_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let client = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| std::net::SocketAddr::new(ip, 0));
    async move {
        let signed = match header {
            Some(h) => st.core.verify_forwarded(&h, &method, &target).await,
            None => false,
        };
        if !signed {
            return Err(encode::error(
                403,
                &[
                    "the cluster listener serves only requests forwarded by nodes of this cluster"
                        .into(),
                ],
            ));
        }
        if !matches!(
            st.core.ha_role(),
            Some(coffer_core::ha::HaRole::Active { .. })
        ) {
            let mut r = encode::logical_error(&coffer_core::LogicalError::Unavailable(
                "this node is not the active node".into(),
            ));
            r.headers_mut().insert(
                forward::NOT_ACTIVE_HEADER,
                axum::http::HeaderValue::from_static("1"),
            );
            return Err(r);
        }
        Ok(client)
    }
}

/// Decodes a query string and a body exactly as requests are decoded, then
/// reads every field with each of the loose typings engines use. For the
/// fuzz targets under `fuzz/`; answers nothing.
#[doc(hidden)]
pub fn fuzz_decode(query: &str, form: bool, body: &[u8]) {
    use coffer_core::fields::Fields;
    let mut headers = axum::http::HeaderMap::new();
    if form {
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    for data in [
        decode::query_map(Some(query)),
        decode::parse_body(&headers, body),
    ]
    .into_iter()
    .flatten()
    {
        let f = Fields::new(&data);
        for k in data.keys() {
            let _ = (f.str(k), f.bool(k), f.int(k), f.duration(k));
            let _ = (f.str_list(k), f.str_map(k), f.object(k));
        }
    }
}
