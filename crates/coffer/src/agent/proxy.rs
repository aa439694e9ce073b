//! `api_proxy` + `listener`: a local endpoint applications call instead of
//! the server. Every request is passed on as it came (method, path, query,
//! headers, body) and the answer handed back as it came; with
//! `use_auto_auth_token` the agent's own token is added when the client
//! sent none (`true`) or always (`"force"`), so an application on the host
//! needs no token of its own.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Request, Response, StatusCode, header};

use super::config::{Listener, ProxyToken};
use crate::session::Credentials;

/// The largest request body passed on (the server's own limit).
const MAX_BODY: usize = coffer_http::DEFAULT_MAX_REQUEST_SIZE;

struct Proxy {
    creds: Arc<Credentials>,
    token: ProxyToken,
}

/// Headers that belong to one connection, not to the request.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "upgrade"
            | "te"
            | "trailer"
            | "host"
            | "content-length"
    )
}

fn error(status: StatusCode, message: String) -> Response<Body> {
    let body = serde_json::json!({ "errors": [message] }).to_string();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn forward(State(p): State<Arc<Proxy>>, req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let Some(path) = parts.uri.path_and_query().map(|x| x.as_str().to_owned()) else {
        return error(StatusCode::BAD_REQUEST, "no request path".into());
    };
    if !path.starts_with("/v1/") {
        return error(
            StatusCode::NOT_FOUND,
            format!("the agent's API proxy serves /v1/ paths, not {path}"),
        );
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return error(StatusCode::PAYLOAD_TOO_LARGE, format!("request body: {e}")),
    };
    let client = match p.creds.client().await {
        Ok(c) => c,
        Err(e) => {
            return error(
                StatusCode::BAD_GATEWAY,
                format!("the agent has no session with the server: {e}"),
            );
        }
    };
    let mut headers = HeaderMap::new();
    for (k, v) in parts.headers.iter() {
        if !hop_by_hop(k) {
            headers.append(k.clone(), v.clone());
        }
    }
    let has_token =
        headers.contains_key("x-vault-token") || headers.contains_key(header::AUTHORIZATION);
    let add_agent_token = match p.token {
        ProxyToken::Client => false,
        ProxyToken::WhenMissing => !has_token,
        ProxyToken::Force => true,
    };
    if add_agent_token && let Some(t) = client.token() {
        headers.remove(header::AUTHORIZATION);
        match t.parse() {
            Ok(v) => {
                headers.insert("x-vault-token", v);
            }
            Err(_) => {
                return error(
                    StatusCode::BAD_GATEWAY,
                    "the agent's token is not a valid header".into(),
                );
            }
        }
    }
    let url = format!("{}{path}", client.address());
    let sent = client
        .http()
        .request(parts.method, url)
        .headers(headers)
        .body(bytes)
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the server did not answer: {}",
                    coffer_client::with_causes(&e)
                ),
            );
        }
    };
    let mut out = Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        if !hop_by_hop(k) {
            out = out.header(k.as_str(), v.as_bytes());
        }
    }
    match resp.bytes().await {
        Ok(b) => out
            .body(Body::from(b))
            .unwrap_or_else(|e| error(StatusCode::BAD_GATEWAY, e.to_string())),
        Err(e) => error(
            StatusCode::BAD_GATEWAY,
            format!("reading the server's answer: {e}"),
        ),
    }
}

/// Serves the proxy on every listener until the agent stops.
pub async fn serve(
    listeners: Vec<Listener>,
    creds: Arc<Credentials>,
    token: ProxyToken,
) -> anyhow::Result<()> {
    let app = Router::new()
        .fallback(forward)
        .with_state(Arc::new(Proxy { creds, token }));
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        let app = app.clone();
        match l {
            Listener::Tcp { address, tls } => {
                let tcp = tokio::net::TcpListener::bind(&address)
                    .await
                    .with_context(|| format!("listening on {address}"))?;
                let tls = tls
                    .map(|(cert_file, key_file)| {
                        coffer_http::load_tls(&coffer_http::TlsFiles {
                            cert_file,
                            key_file,
                        })
                    })
                    .transpose()?;
                tracing::info!(address = %tcp.local_addr()?, tls = tls.is_some(), "API proxy listening");
                tasks.spawn(async move {
                    coffer_http::serve(
                        tcp,
                        app,
                        tls,
                        coffer_http::ConnLimits::default(),
                        std::future::pending(),
                    )
                    .await
                    .map_err(anyhow::Error::from)
                });
            }
            Listener::Unix { path, mode } => {
                if path.exists() {
                    std::fs::remove_file(&path)
                        .with_context(|| format!("removing stale {}", path.display()))?;
                }
                let unix = tokio::net::UnixListener::bind(&path)
                    .with_context(|| format!("listening on {}", path.display()))?;
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
                tracing::info!(path = %path.display(), "API proxy listening");
                tasks.spawn(
                    async move { axum::serve(unix, app).await.map_err(anyhow::Error::from) },
                );
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.context("API proxy task")??;
    }
    Ok(())
}
