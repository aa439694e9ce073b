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
use axum::http::{HeaderMap, Request, Response, StatusCode, header};
use coffer_http::hop_by_hop;

use super::config::{Listener, ProxyToken};
use crate::session::Credentials;

/// The largest request body passed on (the server's own limit).
const MAX_BODY: usize = coffer_http::DEFAULT_MAX_REQUEST_SIZE;

struct Proxy {
    creds: Arc<Credentials>,
    token: ProxyToken,
    cache: Option<Arc<super::cache::Cache>>,
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
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return error(StatusCode::PAYLOAD_TOO_LARGE, format!("request body: {e}")),
    };
    if parts.uri.path() == "/agent/v1/cache-clear" {
        return cache_clear(&p, &parts.method, &bytes);
    }
    if !path.starts_with("/v1/") {
        return error(
            StatusCode::NOT_FOUND,
            format!("the agent's API proxy serves /v1/ paths, not {path}"),
        );
    }
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
    let token = headers
        .get("x-vault-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_default();
    let method = parts.method.as_str().to_owned();
    let cacheable = matches!(method.as_str(), "GET" | "PUT" | "POST");
    if let Some(cache) = p.cache.as_ref().filter(|_| cacheable)
        && let Some(hit) = cache.get(&method, &path, &bytes, &token)
    {
        let mut out = Response::builder().status(hit.status);
        for (k, v) in &hit.headers {
            out = out.header(k.as_str(), v.as_slice());
        }
        return out
            .body(Body::from(hit.body.to_vec()))
            .unwrap_or_else(|e| error(StatusCode::BAD_GATEWAY, e.to_string()));
    }
    let url = format!("{}{path}", client.address());
    let sent = client
        .http()
        .request(parts.method, url)
        .headers(headers)
        .body(bytes.clone())
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
    let status = resp.status().as_u16();
    let kept: Vec<(String, Vec<u8>)> = resp
        .headers()
        .iter()
        .filter(|(k, _)| !hop_by_hop(k))
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let answer = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_GATEWAY,
                format!("reading the server's answer: {e}"),
            );
        }
    };
    if let Some(cache) = &p.cache {
        let rel = parts.uri.path().trim_start_matches("/v1/");
        if (200..300).contains(&status) {
            cache.observe(rel, &bytes, &token);
        }
        if cacheable {
            let request = super::cache::Request {
                method: &method,
                path: &path,
                body: &bytes,
                token: &token,
            };
            cache.offer(&client, request, status, kept.clone(), answer.clone());
        }
    }
    let mut out = Response::builder().status(status);
    for (k, v) in &kept {
        out = out.header(k.as_str(), v.as_slice());
    }
    out.body(Body::from(answer))
        .unwrap_or_else(|e| error(StatusCode::BAD_GATEWAY, e.to_string()))
}

fn cache_clear(p: &Proxy, method: &axum::http::Method, body: &[u8]) -> Response<Body> {
    let Some(cache) = &p.cache else {
        return error(StatusCode::NOT_FOUND, "the agent has no cache block".into());
    };
    if method != axum::http::Method::POST && method != axum::http::Method::PUT {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            "cache-clear takes POST".into(),
        );
    }
    let v: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("cache-clear body is not JSON: {e}"),
            );
        }
    };
    let kind = v["type"].as_str().unwrap_or("");
    let value = v["value"].as_str().unwrap_or("");
    if kind != "all" && value.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            format!("cache-clear of type {kind:?} needs a value"),
        );
    }
    match cache.clear(kind, value) {
        Ok(n) => {
            tracing::info!(kind, cleared = n, "agent cache cleared");
            Response::builder()
                .status(200)
                .body(Body::empty())
                .unwrap_or_else(|_| Response::new(Body::empty()))
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// Serves the proxy on every listener until the agent stops.
pub async fn serve(
    listeners: Vec<Listener>,
    creds: Arc<Credentials>,
    token: ProxyToken,
    cache: bool,
) -> anyhow::Result<()> {
    let cache = cache.then(|| Arc::new(super::cache::Cache::default()));
    let app = Router::new().fallback(forward).with_state(Arc::new(Proxy {
        creds,
        token,
        cache,
    }));
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
