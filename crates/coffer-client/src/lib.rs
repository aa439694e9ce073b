//! A small typed client for coffer's (and Vault's) HTTP API.

use std::time::Duration;

mod tls;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{method} {path}: HTTP {status}: {}", if .errors.is_empty() { "(no details)".to_string() } else { .errors.join("; ") })]
    Status {
        /// HTTP method used.
        method: String,
        /// Path below `/v1/`.
        path: String,
        /// HTTP status.
        status: u16,
        /// The server's `errors` list.
        errors: Vec<String>,
    },
    /// The server could not be reached.
    #[error("cannot reach {addr}: {message}")]
    Transport {
        /// Server address.
        addr: String,
        /// What went wrong.
        message: String,
    },
    /// The client could not be set up (bad CA file, bad address).
    #[error("client setup: {0}")]
    Setup(String),
    /// The answer was not the JSON expected.
    #[error("unexpected response: {0}")]
    Decode(String),
}

impl ClientError {
    /// The HTTP status, for status errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Connection settings.
#[derive(Clone, Default)]
pub struct ClientConfig {
    /// Base address, e.g. `http://127.0.0.1:8200`.
    pub address: String,
    /// Token sent as `X-Vault-Token`.
    pub token: Option<String>,
    /// Sent as `X-Vault-Wrap-TTL`: the server answers with a wrapping token.
    pub wrap_ttl: Option<String>,
    /// PEM CA certificate to trust (for self-signed servers).
    pub ca_cert_pem: Option<Vec<u8>>,
    /// Skip TLS verification (tests only).
    pub skip_verify: bool,
    /// PEM client certificate followed by its private key, for servers that
    /// ask for one.
    pub client_identity_pem: Option<Vec<u8>>,
    /// Name to send in SNI and check the server certificate against, when it
    /// differs from the address's host (e.g. an address given as an IP).
    pub tls_server_name: Option<String>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// An HTTP client bound to one server.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    address: String,
    token: Option<String>,
    wrap_ttl: Option<String>,
    /// Sent with every request (e.g. `X-Coffer-Leak-Finding`).
    headers: Vec<(String, String)>,
}

/// A raw answer: status and parsed JSON body (if any).
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// Parsed body, `None` for an empty body.
    pub body: Option<Value>,
}

/// reqwest's message and the causes below it ("connection refused", a
/// certificate problem), which its own message leaves out.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = c.source();
    }
    message
}

/// A response body read to its end, but never more than `max` bytes: a peer
/// that sends more is refused rather than held in memory.
pub async fn body_capped(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("the answer is over {max} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| with_causes(&e))? {
        if body.len() + chunk.len() > max {
            return Err(format!("the answer is over {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Refuses an address that is not an `http://` or `https://` URL, saying
/// how to write it (`127.0.0.1:8200` alone is the usual slip).
fn check_address(address: &str) -> Result<(), ClientError> {
    let fix = |why: &str| {
        ClientError::Setup(format!(
            "server address {address:?} {why}: write it with its scheme, e.g. http://127.0.0.1:8200 \
             or https://vault.example.com:8200 (from -address, COFFER_ADDR or VAULT_ADDR)"
        ))
    };
    match reqwest::Url::parse(address) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(()),
        Ok(u) if matches!(u.scheme(), "http" | "https") => Err(fix("has no host")),
        Ok(_) => Err(fix("has no http:// or https:// scheme")),
        Err(e) if e.to_string().contains("relative URL without a base") => {
            Err(fix("has no http:// or https:// scheme"))
        }
        Err(e) => Err(fix(&format!("is not a URL ({e})"))),
    }
}

/// A transport failure with what to do about it.
fn explain_transport(message: &str) -> String {
    let lower = message.to_lowercase();
    let hint = if lower.contains("connection refused") {
        " (is the server running there? The address comes from -address, COFFER_ADDR or VAULT_ADDR)"
    } else if lower.contains("invalidcontenttype")
        || lower.contains("corrupt message")
        || lower.contains("wrong version number")
    {
        " (the server does not speak TLS there: use an http:// address)"
    } else if lower.contains("unknownissuer") || lower.contains("invalid peer certificate") {
        " (trust the server's CA with COFFER_CACERT or VAULT_CACERT)"
    } else {
        ""
    };
    format!("{message}{hint}")
}

/// `address` with its host replaced by `name`, and the socket addresses the
/// original host resolves to: the connection goes where the address says
/// while TLS speaks and checks `name`.
fn rename_host(
    address: &str,
    name: &str,
) -> Result<(String, Vec<std::net::SocketAddr>), ClientError> {
    use std::net::ToSocketAddrs as _;
    let setup = |m: String| ClientError::Setup(m);
    let mut url = reqwest::Url::parse(address)
        .map_err(|e| setup(format!("address {address:?} is not a URL: {e}")))?;
    let host = url
        .host_str()
        .ok_or_else(|| setup(format!("address {address:?} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<_> = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| setup(format!("cannot resolve {host}: {e}")))?
        .collect();
    url.set_host(Some(name))
        .map_err(|e| setup(format!("TLS server name {name:?} is not a host name: {e}")))?;
    Ok((url.as_str().trim_end_matches('/').to_owned(), addrs))
}

impl Client {
    /// Builds a client.
    pub fn new(cfg: ClientConfig) -> Result<Self, ClientError> {
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .danger_accept_invalid_certs(cfg.skip_verify);
        if let Some(pem) = cfg.ca_cert_pem.as_ref().filter(|_| !cfg.skip_verify) {
            // As with VAULT_CACERT in Vault's client: these CAs, not the system's.
            let config =
                tls::config(pem, cfg.client_identity_pem.as_deref()).map_err(ClientError::Setup)?;
            b = b.use_preconfigured_tls(config);
        } else if let Some(pem) = &cfg.client_identity_pem {
            let id = reqwest::Identity::from_pem(pem).map_err(|e| {
                ClientError::Setup(format!("client certificate and key are not valid PEM: {e}"))
            })?;
            b = b.identity(id);
        }
        let mut address = cfg.address.trim_end_matches('/').to_owned();
        check_address(&address)?;
        if let Some(name) = &cfg.tls_server_name {
            let (renamed, addrs) = rename_host(&address, name)?;
            b = b.resolve_to_addrs(name, &addrs);
            address = renamed;
        }
        let http = b.build().map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(Self {
            http,
            address,
            token: cfg.token,
            wrap_ttl: cfg.wrap_ttl,
            headers: Vec::new(),
        })
    }

    /// The same client, also sending `name: value` with every request.
    pub fn with_header(&self, name: &str, value: &str) -> Client {
        let mut c = self.clone();
        c.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        c.headers.push((name.to_owned(), value.to_owned()));
        c
    }

    /// The token this client sends.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The server's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The underlying HTTP client (streams such as server-sent events).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The same client (connections, TLS settings) sending another token.
    pub fn with_token(&self, token: Option<String>) -> Client {
        Client {
            token,
            ..self.clone()
        }
    }

    /// Sends a request to `/v1/<path>` and returns status and body without judging them.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<RawResponse, ClientError> {
        self.send(method, path, body, "application/json").await
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> Result<RawResponse, ClientError> {
        let m = Method::from_bytes(method.as_bytes())
            .map_err(|_| ClientError::Setup(format!("bad HTTP method {method:?}")))?;
        let url = format!("{}/v1/{}", self.address, path.trim_start_matches('/'));
        let mut rb = self.http.request(m, &url);
        if let Some(t) = &self.token {
            rb = rb.header("X-Vault-Token", t);
        }
        if let Some(ttl) = &self.wrap_ttl {
            rb = rb.header("X-Vault-Wrap-TTL", ttl);
        }
        for (n, v) in &self.headers {
            rb = rb.header(n.as_str(), v.as_str());
        }
        if let Some(b) = body {
            let bytes = serde_json::to_vec(b).map_err(|e| ClientError::Decode(e.to_string()))?;
            rb = rb
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        let resp = rb.send().await.map_err(|e| ClientError::Transport {
            addr: self.address.clone(),
            message: explain_transport(&with_causes(&e)),
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| ClientError::Transport {
            addr: self.address.clone(),
            message: e.to_string(),
        })?;
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(serde_json::from_slice(&bytes).map_err(|e| {
                let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
                if text.contains("HTTP request to an HTTPS server") {
                    ClientError::Transport {
                        addr: self.address.clone(),
                        message: "the server speaks TLS: use an https:// address".into(),
                    }
                } else {
                    ClientError::Decode(format!("body is not JSON ({e}): {}", text.trim()))
                }
            })?)
        };
        Ok(RawResponse { status, body })
    }

    /// Sends a request; error statuses become [`ClientError::Status`]. `None` means 204.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, ClientError> {
        let r = self.raw(method, path, body).await?;
        Self::judge(method, path, r)
    }

    /// Sends a JSON merge patch (RFC 7386) with the media type PATCH requires.
    pub async fn patch(&self, path: &str, patch: &Value) -> Result<Option<Value>, ClientError> {
        let r = self
            .send("PATCH", path, Some(patch), "application/merge-patch+json")
            .await?;
        Self::judge("PATCH", path, r)
    }

    /// A success's body, or the error status with the server's `errors`.
    pub fn judge(method: &str, path: &str, r: RawResponse) -> Result<Option<Value>, ClientError> {
        if StatusCode::from_u16(r.status).is_ok_and(|s| s.is_success()) {
            return Ok(r.body);
        }
        let errors = r
            .body
            .as_ref()
            .and_then(|b| b.get("errors"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        Err(ClientError::Status {
            method: method.to_owned(),
            path: path.to_owned(),
            status: r.status,
            errors,
        })
    }

    /// GET a path; `None` when it does not exist.
    pub async fn read(&self, path: &str) -> Result<Option<Value>, ClientError> {
        match self.call("GET", path, None).await {
            Err(e) if e.status() == Some(404) => Ok(None),
            other => other,
        }
    }

    /// POST data to a path.
    pub async fn write(&self, path: &str, data: &Value) -> Result<Option<Value>, ClientError> {
        self.call("POST", path, Some(data)).await
    }

    /// LIST a path; an empty list when nothing is there.
    pub async fn list(&self, path: &str) -> Result<Vec<String>, ClientError> {
        match self.call("LIST", path, None).await {
            Err(e) if e.status() == Some(404) => Ok(Vec::new()),
            Err(e) => Err(e),
            Ok(body) => Ok(body
                .as_ref()
                .and_then(|b| b.pointer("/data/keys"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|k| k.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()),
        }
    }

    /// DELETE a path.
    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.call("DELETE", path, None).await.map(|_| ())
    }
}
