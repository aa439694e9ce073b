//! A standby's requests go to the active node: forwarded over the cluster
//! listener (authenticated with the cluster's forwarding key), or answered
//! with a 307 to the active node's `api_addr` when the client asks for that
//! (`X-Vault-No-Request-Forwarding`) or the request cannot be forwarded (a
//! WebSocket upgrade).

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request as HttpRequest, StatusCode, header};
use axum::response::Response;
use coffer_core::LogicalError;
use coffer_core::ha::Leader;

use crate::AppState;
use crate::encode::logical_error;

/// The header carrying a forwarded request's signature.
pub(crate) const FORWARD_HEADER: &str = "x-coffer-forward";
/// Set on a cluster listener's answer when that node is not active (any more):
/// the request was not processed and may be sent to the new leader.
pub(crate) const NOT_ACTIVE_HEADER: &str = "x-coffer-not-active";
/// How long a standby waits for a leader before answering 503.
pub(crate) const LEADER_WAIT: Duration = Duration::from_secs(10);
const ATTEMPTS: usize = 4;

/// Headers that belong to one connection, not to the request (RFC 9110
/// 7.6.1), and those the client library sets itself: a proxy drops them.
pub fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

/// What a standby passes on: no hop-by-hop header, and never a forwarding
/// signature or client address the client made up.
fn passes(name: &HeaderName) -> bool {
    !hop_by_hop(name) && name.as_str() != FORWARD_HEADER && name.as_str() != "x-forwarded-for"
}

fn redirect(leader: &Leader, target: &str) -> Response {
    let location = format!("{}{target}", leader.api_addr.trim_end_matches('/'));
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A request whose body has been read, so it can be served here or sent on.
pub(crate) struct Buffered {
    pub method: axum::http::Method,
    /// Path and query as the client sent them.
    pub target: String,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl Buffered {
    /// Reads `req`'s body (within the listener's limits).
    pub(crate) async fn read(st: &AppState, req: HttpRequest<Body>) -> Result<Self, Response> {
        let method = req.method().clone();
        let target = target_of(&req);
        let headers = req.headers().clone();
        match crate::decode::read_body(req, &st.opts).await {
            Ok(body) => Ok(Self {
                method,
                target,
                headers,
                body,
            }),
            Err(e) => Err(logical_error(&e)),
        }
    }

    /// A request that has no body, as it is.
    pub(crate) fn without_body(req: &HttpRequest<Body>) -> Self {
        Self {
            method: req.method().clone(),
            target: target_of(req),
            headers: req.headers().clone(),
            body: bytes::Bytes::new(),
        }
    }

    /// The request again, for decoding.
    pub(crate) fn rebuild(&self) -> HttpRequest<Body> {
        let mut r = HttpRequest::new(Body::from(self.body.clone()));
        *r.method_mut() = self.method.clone();
        if let Ok(uri) = self.target.parse() {
            *r.uri_mut() = uri;
        }
        *r.headers_mut() = self.headers.clone();
        r
    }
}

fn target_of(req: &HttpRequest<Body>) -> String {
    req.uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into())
}

/// Whether the client asked for a redirect rather than forwarding, or the
/// request cannot be forwarded (a WebSocket upgrade).
pub(crate) fn wants_redirect(headers: &HeaderMap) -> bool {
    headers
        .get("x-vault-no-request-forwarding")
        .is_some_and(|v| !v.is_empty())
        || headers.contains_key(header::UPGRADE)
}

/// Sends `req` to the active node and relays its answer.
pub(crate) async fn forward(
    st: &AppState,
    req: HttpRequest<Body>,
    leader: Leader,
    remote: Option<std::net::SocketAddr>,
) -> Response {
    if wants_redirect(req.headers()) {
        return redirect(&leader, &target_of(&req));
    }
    match Buffered::read(st, req).await {
        Ok(b) => forward_buffered(st, b, leader, remote).await,
        Err(r) => r,
    }
}

/// Sends a buffered request to the active node and relays its answer.
pub(crate) async fn forward_buffered(
    st: &AppState,
    req: Buffered,
    mut leader: Leader,
    remote: Option<std::net::SocketAddr>,
) -> Response {
    if wants_redirect(&req.headers) {
        return redirect(&leader, &req.target);
    }
    let Buffered {
        method,
        target,
        headers: client_headers,
        body,
    } = req;
    let mut headers = HeaderMap::new();
    for (k, v) in &client_headers {
        if passes(k) {
            headers.append(k.clone(), v.clone());
        }
    }
    if let Some(ip) = remote.map(|r| r.ip().to_string())
        && let Ok(v) = HeaderValue::from_str(&ip)
    {
        headers.insert("x-forwarded-for", v);
    }
    let mut last_error = String::new();
    for attempt in 0..ATTEMPTS {
        let signature = match st.core.sign_forwarded(method.as_str(), &target).await {
            Ok(s) => s,
            Err(e) => return logical_error(&e),
        };
        let Ok(sig) = HeaderValue::from_str(&signature) else {
            return logical_error(&LogicalError::Internal("bad forwarding signature".into()));
        };
        let url = format!("{}{target}", leader.cluster_addr.trim_end_matches('/'));
        let sent = st
            .forwarder
            .request(method.clone(), &url)
            .headers(headers.clone())
            .header(FORWARD_HEADER, sig)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(resp) if !resp.headers().contains_key(NOT_ACTIVE_HEADER) => return relay(resp),
            Ok(_) => last_error = format!("{} is no longer the active node", leader.api_addr),
            // Not connected: the request never reached it, so it may go again.
            Err(e) if e.is_connect() => {
                last_error = format!(
                    "cannot reach the active node at {}: {e}",
                    leader.cluster_addr
                )
            }
            Err(e) => {
                return logical_error(&LogicalError::Unavailable(format!(
                    "forwarding to the active node at {} failed: {e}",
                    leader.cluster_addr
                )));
            }
        }
        if attempt + 1 == ATTEMPTS {
            break;
        }
        // Wait for the cluster to name a (new) leader, then go there.
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        match st.core.forward_target(LEADER_WAIT).await {
            Ok(Some(l)) => leader = l,
            // This node became the active one meanwhile: it may serve it.
            Ok(None) => {
                return logical_error(&LogicalError::Unavailable(
                    "this node just became the active node; retry".into(),
                ));
            }
            Err(e) => return logical_error(&e),
        }
    }
    logical_error(&LogicalError::Unavailable(last_error))
}

fn relay(resp: reqwest::Response) -> Response {
    let status = resp.status();
    let mut out = Response::new(Body::empty());
    *out.status_mut() = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    for (k, v) in resp.headers() {
        if passes(k) {
            out.headers_mut().append(k.clone(), v.clone());
        }
    }
    *out.body_mut() = Body::from_stream(resp.bytes_stream());
    out
}

/// The client for forwarding; `roots` are extra trust anchors (PEM) for a
/// TLS cluster listener.
pub fn client(roots: &[Vec<u8>]) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(2))
        .pool_idle_timeout(Duration::from_secs(60));
    for pem in roots {
        for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())? {
            b = b.add_root_certificate(cert);
        }
    }
    b.build().map_err(|e| e.to_string())
}
