//! The calls the Kubernetes method makes to an API server (TokenReview, a
//! namespace's labels, a service account's annotations), and the pod's own
//! service-account files it falls back on.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use coffer_core::file_stamp::FileStamp;

use serde_json::{Value, json};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

/// Where a pod's service-account token and cluster CA are mounted.
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Overrides [`SA_DIR`] (a volume mounted elsewhere, or tests).
pub const SA_DIR_ENV: &str = "COFFER_KUBERNETES_SERVICEACCOUNT_DIR";
/// Files are re-read when they change and at least this often (kubelet
/// rotates projected tokens by swapping a symlink, which a coarse mtime
/// could hide).
const REREAD: Duration = Duration::from_secs(60);
/// The most of an API server answer that is read (a TokenReview, a
/// namespace or a service account is a few kilobytes).
const ANSWER_MAX: usize = 1 << 20;

/// One file of the pod's service-account volume, re-read when it changes:
/// a token copied once expires, the failure Vault users hit most.
struct Watched {
    path: PathBuf,
    seen: Mutex<Option<Seen>>,
}

struct Seen {
    stamp: FileStamp,
    at: Instant,
    text: Zeroizing<String>,
}

impl Watched {
    fn new(path: PathBuf) -> Self {
        Watched {
            path,
            seen: Mutex::new(None),
        }
    }

    /// The file's text (trimmed), or `None` when it is absent or empty.
    async fn read(&self) -> Option<Zeroizing<String>> {
        let meta = tokio::fs::metadata(&self.path).await.ok()?;
        let stamp = FileStamp::from_metadata(&meta);
        let mut seen = self.seen.lock().await;
        if let Some(s) = seen.as_ref()
            && s.stamp == stamp
            && s.at.elapsed() < REREAD
        {
            return Some(s.text.clone());
        }
        let raw = Zeroizing::new(tokio::fs::read_to_string(&self.path).await.ok()?);
        let text = Zeroizing::new(raw.trim().to_owned());
        if text.is_empty() {
            return None;
        }
        *seen = Some(Seen {
            stamp,
            at: Instant::now(),
            text: text.clone(),
        });
        Some(text)
    }
}

/// The service-account token and CA of the pod coffer runs in, if any.
pub(crate) struct LocalAccount {
    token: Watched,
    ca: Watched,
}

impl LocalAccount {
    pub fn from_env() -> Self {
        let dir = std::env::var_os(SA_DIR_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(SA_DIR));
        LocalAccount {
            token: Watched::new(dir.join("token")),
            ca: Watched::new(dir.join("ca.crt")),
        }
    }

    pub async fn token(&self) -> Option<Zeroizing<String>> {
        self.token.read().await
    }

    pub async fn ca(&self) -> Option<String> {
        self.ca.read().await.map(|t| t.to_string())
    }
}

/// Who the API server is asked as, and where it is.
pub(crate) struct Target {
    /// `https://host:port`, no trailing slash.
    pub base: String,
    /// CA certificates to trust (PEM); empty: the built-in roots.
    pub ca: String,
    /// Whether the built-in roots are trusted too (a pod's own CA adds to
    /// them; a configured CA replaces them, as Vault does).
    pub system_roots: bool,
    /// The bearer token.
    pub bearer: Zeroizing<String>,
    /// Which token that is, for refusal reasons.
    pub bearer_is: &'static str,
}

/// `kubernetes_host` as a base URL: a bare host or host:port means HTTPS.
pub(crate) fn base_url(host: &str) -> String {
    let h = host.trim().trim_end_matches('/');
    if h.contains("://") {
        h.to_owned()
    } else {
        format!("https://{h}")
    }
}

/// What a successful TokenReview says about the token.
pub(crate) struct Reviewed {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// HTTP clients by trusted CA, so a login does not rebuild TLS settings.
#[derive(Default)]
pub(crate) struct Clients {
    cached: Mutex<Option<(String, bool, reqwest::Client)>>,
}

fn status_message(body: &Value) -> String {
    body.get("message")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| body.to_string())
}

impl Clients {
    pub async fn forget(&self) {
        *self.cached.lock().await = None;
    }

    async fn client(&self, t: &Target) -> Result<reqwest::Client, String> {
        let mut cached = self.cached.lock().await;
        if let Some((ca, roots, c)) = cached.as_ref()
            && *ca == t.ca
            && *roots == t.system_roots
        {
            return Ok(c.clone());
        }
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .tls_built_in_root_certs(t.system_roots || t.ca.is_empty());
        if !t.ca.is_empty() {
            let certs = reqwest::Certificate::from_pem_bundle(t.ca.as_bytes())
                .map_err(|e| format!("the Kubernetes CA certificate is not valid PEM: {e}"))?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let c = b.build().map_err(|e| e.to_string())?;
        *cached = Some((t.ca.clone(), t.system_roots, c.clone()));
        Ok(c)
    }

    /// One call; the answer's status and JSON body (`Null` when not JSON).
    async fn call(
        &self,
        t: &Target,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let client = self.client(t).await?;
        let url = format!("{}{path}", t.base);
        let mut rq = client
            .request(method, &url)
            .bearer_auth(t.bearer.as_str())
            .header("Accept", "application/json");
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let resp = rq.send().await.map_err(|e| {
            format!(
                "the API server could not be reached at {url}: {}",
                coffer_client::with_causes(&e)
            )
        })?;
        let status = resp.status().as_u16();
        let bytes = coffer_client::body_capped(resp, ANSWER_MAX)
            .await
            .map_err(|e| format!("reading the API server's answer from {url}: {e}"))?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// Asks the API server whether `jwt` is a live service-account token for
    /// `audiences`, and checks its answer as Vault does.
    pub async fn review(
        &self,
        t: &Target,
        jwt: &str,
        audiences: &[String],
    ) -> Result<Reviewed, String> {
        let mut spec = json!({"token": jwt});
        if !audiences.is_empty() {
            spec["audiences"] = json!(audiences);
        }
        let (status, body) = self
            .call(
                t,
                reqwest::Method::POST,
                "/apis/authentication.k8s.io/v1/tokenreviews",
                Some(json!({"spec": spec})),
            )
            .await?;
        match status {
            200..=206 => {}
            401 => {
                return Err(format!(
                    "the API server answered 401 to the TokenReview made with {}: lookup failed: \
                     service account unauthorized; this could mean it has been deleted or \
                     recreated with a new token",
                    t.bearer_is
                ));
            }
            403 => {
                return Err(format!(
                    "the API server answered 403 to the TokenReview made with {} (it needs RBAC \
                     to create tokenreviews, e.g. a binding to system:auth-delegator): {}",
                    t.bearer_is,
                    status_message(&body)
                ));
            }
            s => {
                return Err(format!(
                    "the TokenReview failed with HTTP {s}: {}",
                    status_message(&body)
                ));
            }
        }
        if body.get("kind").and_then(Value::as_str) == Some("Status")
            && body.get("status").and_then(Value::as_str) != Some("Success")
        {
            return Err(format!("the TokenReview failed: {}", status_message(&body)));
        }
        let st = &body["status"];
        if let Some(e) = st.get("error").and_then(Value::as_str)
            && !e.is_empty()
        {
            return Err(format!(
                "the API server did not authenticate the token: {e}"
            ));
        }
        if st.get("authenticated").and_then(Value::as_bool) != Some(true) {
            return Err("the API server did not authenticate the token".into());
        }
        if !audiences.is_empty() {
            let got: Vec<&str> = st["audiences"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if !got.iter().any(|g| audiences.iter().any(|a| a == g)) {
                return Err(format!(
                    "the token is not valid for audience {audiences:?} (the API server accepted it for {got:?})"
                ));
            }
        }
        let username = st["user"]["username"].as_str().unwrap_or_default();
        let parts: Vec<&str> = username.split(':').collect();
        let [_, _, namespace, name] = parts[..] else {
            return Err(format!(
                "the API server names user {username:?}, not a service account"
            ));
        };
        Ok(Reviewed {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: st["user"]["uid"].as_str().unwrap_or_default().to_owned(),
        })
    }

    async fn object_metadata(
        &self,
        t: &Target,
        path: &str,
        field: &str,
    ) -> Result<BTreeMap<String, String>, String> {
        let (status, body) = self.call(t, reqwest::Method::GET, path, None).await?;
        if !(200..=206).contains(&status) {
            return Err(format!(
                "GET {path} with {} answered HTTP {status}: {}",
                t.bearer_is,
                status_message(&body)
            ));
        }
        Ok(body["metadata"][field]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// A namespace's labels.
    pub async fn namespace_labels(
        &self,
        t: &Target,
        namespace: &str,
    ) -> Result<BTreeMap<String, String>, String> {
        self.object_metadata(t, &format!("/api/v1/namespaces/{namespace}"), "labels")
            .await
    }

    /// A service account's annotations.
    pub async fn service_account_annotations(
        &self,
        t: &Target,
        namespace: &str,
        name: &str,
    ) -> Result<BTreeMap<String, String>, String> {
        self.object_metadata(
            t,
            &format!("/api/v1/namespaces/{namespace}/serviceaccounts/{name}"),
            "annotations",
        )
        .await
    }
}
