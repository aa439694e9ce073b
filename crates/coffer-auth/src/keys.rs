//! Public keys that verify JWT signatures, shared by the JWT and Kubernetes
//! methods: static PEM keys or certificates, and key sets fetched from a
//! JWKS URL or through OIDC discovery (cached, and kept when a refresh fails
//! so that logins survive an issuer that is briefly unreachable).

use std::time::{Duration, Instant};

use coffer_core::LogicalError;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::Value;
use tokio::sync::Mutex;

/// How long a fetched key set is used before it is fetched again.
const JWKS_CACHE: Duration = Duration::from_secs(300);
/// A token naming an unknown key refetches at most this often, so that
/// made-up key ids cannot turn every login into a fetch.
const REFRESH_GAP: Duration = Duration::from_secs(10);
/// The most of a discovery document or key set that is read.
const DOCUMENT_MAX: usize = 1 << 20;

/// Why a token's signature could not be accepted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VerifyError {
    /// The token is not a JWS or its header is unreadable.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header names an algorithm the method does not accept.
    #[error("signing algorithm {0:?} is not allowed")]
    Algorithm(Algorithm),
    /// No configured or fetched key verifies it.
    #[error("signature does not verify with any {0}")]
    Signature(&'static str),
    /// The key set could not be fetched and none was fetched before.
    #[error("{0}")]
    Fetch(String),
}

/// Every key a PEM block could hold (RSA, EC, Ed25519; a public key or a
/// certificate); empty when it holds none.
pub(crate) fn pem_keys(pem: &str) -> Vec<DecodingKey> {
    let b = pem.as_bytes();
    [
        DecodingKey::from_rsa_pem(b),
        DecodingKey::from_ec_pem(b),
        DecodingKey::from_ed_pem(b),
    ]
    .into_iter()
    .filter_map(Result::ok)
    .collect()
}

/// Where a key set comes from.
pub(crate) struct KeySource<'a> {
    /// A JWKS document's URL (wins over discovery).
    pub jwks_url: &'a str,
    /// An issuer whose `/.well-known/openid-configuration` names the JWKS.
    pub discovery_url: &'a str,
    /// CA certificates (PEM) to trust for those fetches; empty: system roots.
    pub ca_pem: &'a str,
    /// A bearer token to send (a Kubernetes API server serves its keys only
    /// to authenticated callers unless told otherwise).
    pub bearer: Option<&'a str>,
}

impl KeySource<'_> {
    fn is_set(&self) -> bool {
        !self.jwks_url.is_empty() || !self.discovery_url.is_empty()
    }

    fn id(&self) -> String {
        format!("{}\n{}\n{}", self.jwks_url, self.discovery_url, self.ca_pem)
    }
}

struct Cached {
    at: Instant,
    source: String,
    set: JwkSet,
}

/// A mount's fetched key set.
#[derive(Default)]
pub(crate) struct JwksCache {
    inner: Mutex<Option<Cached>>,
}

async fn get_json(url: &str, src: &KeySource<'_>) -> Result<Value, String> {
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5));
    if !src.ca_pem.is_empty() {
        let certs = reqwest::Certificate::from_pem_bundle(src.ca_pem.as_bytes())
            .map_err(|e| format!("CA PEM is not valid: {e}"))?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    let client = b.build().map_err(|e| e.to_string())?;
    let mut rq = client.get(url).header("Accept", "application/json");
    if let Some(t) = src.bearer {
        rq = rq.bearer_auth(t);
    }
    let resp = rq
        .send()
        .await
        .map_err(|e| format!("fetching {url}: {}", coffer_client::with_causes(&e)))?;
    if !resp.status().is_success() {
        return Err(format!("fetching {url}: HTTP {}", resp.status()));
    }
    let body = coffer_client::body_capped(resp, DOCUMENT_MAX)
        .await
        .map_err(|e| format!("fetching {url}: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("{url} did not return JSON: {e}"))
}

async fn fetch(src: &KeySource<'_>) -> Result<JwkSet, String> {
    let url = if src.jwks_url.is_empty() {
        let base = src.discovery_url.trim_end_matches('/');
        let doc = get_json(&format!("{base}/.well-known/openid-configuration"), src).await?;
        doc["jwks_uri"]
            .as_str()
            .ok_or("the discovery document has no jwks_uri")?
            .to_owned()
    } else {
        src.jwks_url.to_owned()
    };
    serde_json::from_value(get_json(&url, src).await?)
        .map_err(|e| format!("{url} is not a JWKS document: {e}"))
}

impl JwksCache {
    /// Forgets what was fetched (the configuration changed).
    pub async fn clear(&self) {
        *self.inner.lock().await = None;
    }

    /// The key set, fetched when the cache is empty, old, for another source,
    /// or `refresh` asks (a token names a key the cached set lacks). A failed
    /// fetch falls back to the set fetched before from the same source.
    /// One fetch at a time: concurrent logins wait for its result instead
    /// of each fetching (each fetch is bounded at 10 s).
    async fn get(&self, src: &KeySource<'_>, refresh: bool) -> Result<JwkSet, String> {
        let id = src.id();
        let mut cache = self.inner.lock().await;
        let same = cache.as_ref().filter(|c| c.source == id);
        if let Some(c) = same
            && c.at.elapsed() < JWKS_CACHE
            && (!refresh || c.at.elapsed() < REFRESH_GAP)
        {
            return Ok(c.set.clone());
        }
        match fetch(src).await {
            Ok(set) => {
                *cache = Some(Cached {
                    at: Instant::now(),
                    source: id,
                    set: set.clone(),
                });
                Ok(set)
            }
            Err(e) => match same {
                Some(c) => {
                    tracing::warn!(error = %e, "refreshing the key set failed; using the one fetched before");
                    Ok(c.set.clone())
                }
                None => Err(e),
            },
        }
    }
}

fn decode(jwt: &str, alg: Algorithm, keys: &[DecodingKey]) -> Option<Value> {
    let mut v = Validation::new(alg);
    v.algorithms = vec![alg];
    // Time and audience claims are each method's business.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    keys.iter().find_map(|k| {
        jsonwebtoken::decode::<Value>(jwt, k, &v)
            .ok()
            .map(|d| d.claims)
    })
}

/// The header, when its algorithm is one of `allowed`.
pub(crate) fn header(jwt: &str, allowed: &[Algorithm]) -> Result<Header, VerifyError> {
    let header =
        jsonwebtoken::decode_header(jwt).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    if allowed.contains(&header.alg) {
        Ok(header)
    } else {
        Err(VerifyError::Algorithm(header.alg))
    }
}

/// Verifies `jwt` against the PEM keys when there are any, else against the
/// key set `src` names, and returns its claims.
pub(crate) async fn verify(
    jwt: &str,
    allowed: &[Algorithm],
    pems: &[String],
    cache: &JwksCache,
    src: &KeySource<'_>,
) -> Result<Value, VerifyError> {
    let Header { alg, kid, .. } = header(jwt, allowed)?;
    if !pems.is_empty() || !src.is_set() {
        let keys: Vec<DecodingKey> = pems.iter().flat_map(|p| pem_keys(p)).collect();
        return decode(jwt, alg, &keys).ok_or(VerifyError::Signature("configured key"));
    }
    for refresh in [false, true] {
        let set = cache.get(src, refresh).await.map_err(VerifyError::Fetch)?;
        let candidates: Vec<DecodingKey> = match &kid {
            Some(kid) => set
                .find(kid)
                .and_then(|j| DecodingKey::from_jwk(j).ok())
                .into_iter()
                .collect(),
            None => set
                .keys
                .iter()
                .filter_map(|j| DecodingKey::from_jwk(j).ok())
                .collect(),
        };
        if let Some(c) = decode(jwt, alg, &candidates) {
            return Ok(c);
        }
    }
    Err(VerifyError::Signature("key in the key set"))
}

/// A PEM list as a config write checks it.
pub(crate) fn check_pems(field: &str, pems: &[String]) -> Result<(), LogicalError> {
    for (i, pem) in pems.iter().enumerate() {
        if pem_keys(pem).is_empty() {
            return Err(LogicalError::BadRequest(format!(
                "error parsing public key {} of {field}: not an RSA, EC or Ed25519 public key or certificate in PEM",
                i + 1
            )));
        }
    }
    Ok(())
}
