//! `coffer kms-plugin`: the Kubernetes KMS v2 gRPC service, backed by a
//! coffer transit key, so the API server's encryption of Secrets in etcd is
//! rooted in coffer. kube-apiserver sends it the data-key seeds it derives
//! per-write keys from: `Encrypt` wraps a seed with transit, `Decrypt`
//! unwraps it, `Status` (polled every minute, every 10 s when unhealthy)
//! proves the round trip works and names the current key version.

pub mod proto;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use coffer_client::{Client, ClientError};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

use crate::session::Credentials;
use proto::key_management_service_server::KeyManagementService;
use proto::{
    DecryptRequest, DecryptResponse, EncryptRequest, EncryptResponse, StatusRequest, StatusResponse,
};

/// kube-apiserver's limits on what a plugin returns (its kmsv2 envelope).
const KEY_ID_MAX: usize = 1024;
const CIPHERTEXT_MAX: usize = 1024;
/// A seed is 32 bytes; anything much larger is not what the API server sends.
const PLAINTEXT_MAX: usize = 512;
/// Each call to coffer must finish well inside the API server's own timeout
/// (3 s in the documented EncryptionConfiguration).
const CALL_TIMEOUT: Duration = Duration::from_millis(2500);
/// What Status encrypts and decrypts to prove the key works.
const PROBE: &[u8] = b"coffer kms-plugin health probe";

/// The transit key the plugin uses: `<mount>/keys/<name>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRef {
    pub mount: String,
    pub name: String,
}

impl KeyRef {
    /// `transit/keys/etcd`, `<mount>/keys/<name>`, or a bare name (mount `transit`).
    pub fn parse(s: &str) -> Result<KeyRef, String> {
        let s = s.trim().trim_matches('/');
        let (mount, name) = match s.rsplit_once("/keys/") {
            Some((m, n)) => (m, n),
            None if !s.contains('/') => ("transit", s),
            None => {
                return Err(format!(
                    "--key {s:?}: use <mount>/keys/<name> (e.g. transit/keys/etcd) or a key name"
                ));
            }
        };
        if mount.is_empty() || name.is_empty() || name.contains('/') {
            return Err(format!(
                "--key {s:?}: use <mount>/keys/<name> (e.g. transit/keys/etcd)"
            ));
        }
        Ok(KeyRef {
            mount: mount.into(),
            name: name.into(),
        })
    }

    /// The key ID of one version: public (kube-apiserver logs it), stable,
    /// never the same for two versions or two keys.
    pub fn key_id(&self, version: u64) -> String {
        format!("coffer:{}/keys/{}:v{version}", self.mount, self.name)
    }

    /// The key and version a key ID names.
    pub fn from_key_id(id: &str) -> Option<(KeyRef, u64)> {
        let rest = id.strip_prefix("coffer:")?;
        let (path, v) = rest.rsplit_once(":v")?;
        let k = KeyRef::parse(path).ok()?;
        Some((k, v.parse().ok()?))
    }
}

/// The version a transit ciphertext (`vault:v3:...`) was made with.
fn ciphertext_version(ct: &str) -> Option<u64> {
    ct.strip_prefix("vault:v")?.split(':').next()?.parse().ok()
}

/// The service kube-apiserver calls.
pub struct Plugin {
    creds: Arc<Credentials>,
    key: KeyRef,
    /// The latest version seen, so Encrypt and Status agree after a rotation.
    latest: Mutex<u64>,
}

fn unavailable(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("coffer: {e}"))
}

fn from_client(e: ClientError) -> Status {
    match e.status() {
        None => unavailable(e),
        Some(400) => Status::invalid_argument(e.to_string()),
        Some(403) => Status::permission_denied(e.to_string()),
        Some(404) => Status::not_found(e.to_string()),
        Some(429) | Some(503) => unavailable(e),
        Some(_) => Status::internal(e.to_string()),
    }
}

impl Plugin {
    pub fn new(creds: Arc<Credentials>, key: KeyRef) -> Plugin {
        Plugin {
            creds,
            key,
            latest: Mutex::new(0),
        }
    }

    /// The current session (`fresh`: a new login), within the call timeout:
    /// a coffer that hangs must not hold up the API server.
    async fn session(&self, fresh: bool) -> Result<Client, Status> {
        let get = async {
            if fresh {
                self.creds.refresh().await
            } else {
                self.creds.client().await
            }
        };
        tokio::time::timeout(CALL_TIMEOUT, get)
            .await
            .map_err(|_| unavailable(format!("no login within {CALL_TIMEOUT:?}")))?
            .map_err(unavailable)
    }

    /// One call to coffer, in time, logging in again once after a 403.
    async fn retrying<F, Fut>(&self, op: F) -> Result<Option<Value>, Status>
    where
        F: Fn(Client) -> Fut,
        Fut: std::future::Future<Output = Result<Option<Value>, ClientError>>,
    {
        let attempt = |client: Client| async {
            tokio::time::timeout(CALL_TIMEOUT, op(client))
                .await
                .map_err(|_| unavailable(format!("no answer within {CALL_TIMEOUT:?}")))
        };
        match attempt(self.session(false).await?).await? {
            Err(e) if e.status() == Some(403) => attempt(self.session(true).await?).await?,
            other => other,
        }
        .map_err(from_client)
    }

    /// A transit write (encrypt, decrypt) and its answer.
    async fn call(&self, path: &str, body: &Value) -> Result<Value, Status> {
        self.retrying(|c: Client| async move { c.write(path, body).await })
            .await?
            .ok_or_else(|| Status::internal(format!("coffer answered {path} with no body")))
    }

    /// The key's latest version, read from coffer.
    async fn latest_version(&self) -> Result<u64, Status> {
        let path = format!("{}/keys/{}", self.key.mount, self.key.name);
        let key = self
            .retrying(|c: Client| {
                let path = &path;
                async move { c.read(path).await }
            })
            .await?
            .ok_or_else(|| Status::not_found(format!("transit key {path} does not exist")))?;
        let v = key["data"]["latest_version"]
            .as_u64()
            .ok_or_else(|| Status::internal(format!("{path} has no latest_version")))?;
        self.saw(v).await;
        Ok(v)
    }

    async fn saw(&self, version: u64) {
        let mut l = self.latest.lock().await;
        *l = (*l).max(version);
    }

    async fn encrypt_with(&self, plaintext: &[u8]) -> Result<(String, u64), Status> {
        let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(plaintext));
        let answer = self
            .call(
                &format!("{}/encrypt/{}", self.key.mount, self.key.name),
                &json!({ "plaintext": b64.as_str() }),
            )
            .await?;
        let ct = answer["data"]["ciphertext"]
            .as_str()
            .ok_or_else(|| Status::internal("coffer's encrypt answer has no ciphertext"))?
            .to_owned();
        let v = ciphertext_version(&ct)
            .ok_or_else(|| Status::internal("coffer's ciphertext names no key version"))?;
        self.saw(v).await;
        Ok((ct, v))
    }

    async fn decrypt_with(&self, key: &KeyRef, ct: &str) -> Result<Zeroizing<Vec<u8>>, Status> {
        let answer = self
            .call(
                &format!("{}/decrypt/{}", key.mount, key.name),
                &json!({ "ciphertext": ct }),
            )
            .await?;
        let b64 = answer["data"]["plaintext"]
            .as_str()
            .ok_or_else(|| Status::internal("coffer's decrypt answer has no plaintext"))?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map(Zeroizing::new)
            .map_err(|_| Status::internal("coffer's plaintext is not base64"))
    }
}

#[tonic::async_trait]
impl KeyManagementService for Plugin {
    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        // Healthy means a real round trip works now, not that coffer answers.
        let probe = async {
            let version = self.latest_version().await?;
            let (ct, _) = self.encrypt_with(PROBE).await?;
            let back = self.decrypt_with(&self.key, &ct).await?;
            if back.as_slice() != PROBE {
                return Err(Status::internal("the probe did not decrypt to itself"));
            }
            Ok(version)
        };
        let (healthz, version) = match probe.await {
            Ok(v) => ("ok".to_string(), v),
            Err(e) => {
                tracing::warn!(error = %e.message(), "kms-plugin status: coffer round trip failed");
                (
                    format!("coffer round trip failed: {}", e.message()),
                    *self.latest.lock().await,
                )
            }
        };
        Ok(Response::new(StatusResponse {
            version: "v2".into(),
            healthz,
            key_id: if version == 0 {
                String::new()
            } else {
                self.key.key_id(version)
            },
        }))
    }

    async fn encrypt(
        &self,
        req: Request<EncryptRequest>,
    ) -> Result<Response<EncryptResponse>, Status> {
        let r = req.into_inner();
        let plaintext = Zeroizing::new(r.plaintext);
        if plaintext.is_empty() || plaintext.len() > PLAINTEXT_MAX {
            return Err(Status::invalid_argument(format!(
                "plaintext must be 1 to {PLAINTEXT_MAX} bytes (a data-key seed), not {}",
                plaintext.len()
            )));
        }
        let (ct, version) = self.encrypt_with(&plaintext).await?;
        let key_id = self.key.key_id(version);
        if ct.len() > CIPHERTEXT_MAX || key_id.len() > KEY_ID_MAX {
            return Err(Status::internal(
                "the ciphertext or key ID is over kube-apiserver's 1 kB limit",
            ));
        }
        tracing::debug!(uid = %r.uid, key_id = %key_id, "kms-plugin encrypt");
        Ok(Response::new(EncryptResponse {
            ciphertext: ct.into_bytes(),
            key_id,
            annotations: Default::default(),
        }))
    }

    async fn decrypt(
        &self,
        req: Request<DecryptRequest>,
    ) -> Result<Response<DecryptResponse>, Status> {
        let r = req.into_inner();
        let ct = std::str::from_utf8(&r.ciphertext)
            .ok()
            .filter(|c| ciphertext_version(c).is_some())
            .ok_or_else(|| {
                Status::invalid_argument("the ciphertext is not a coffer transit ciphertext")
            })?;
        // Data written under another transit key (before --key changed)
        // names it in its key ID; decrypt with that one.
        let key = KeyRef::from_key_id(&r.key_id)
            .map(|(k, _)| k)
            .unwrap_or_else(|| self.key.clone());
        let mut plaintext = self.decrypt_with(&key, ct).await?;
        tracing::debug!(uid = %r.uid, key_id = %r.key_id, "kms-plugin decrypt");
        // Moved out, not copied: no second copy is left behind unwiped.
        Ok(Response::new(DecryptResponse {
            plaintext: std::mem::take(&mut *plaintext),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_references_and_ids() {
        let k = KeyRef::parse("transit/keys/etcd").unwrap();
        assert_eq!(
            k,
            KeyRef {
                mount: "transit".into(),
                name: "etcd".into()
            }
        );
        assert_eq!(KeyRef::parse("etcd").unwrap(), k);
        let nested = KeyRef::parse("/kms/prod/keys/etcd-1/").unwrap();
        assert_eq!(
            (nested.mount.as_str(), nested.name.as_str()),
            ("kms/prod", "etcd-1")
        );
        for bad in ["transit/etcd", "transit/keys/", "/keys/x", "a/keys/b/c"] {
            assert!(KeyRef::parse(bad).is_err(), "{bad}");
        }
        let id = nested.key_id(7);
        assert_eq!(id, "coffer:kms/prod/keys/etcd-1:v7");
        assert_eq!(KeyRef::from_key_id(&id), Some((nested, 7)));
        assert_eq!(KeyRef::from_key_id("vault-kms:abc"), None);
        assert_eq!(ciphertext_version("vault:v12:abc"), Some(12));
        assert_eq!(ciphertext_version("vault:x:abc"), None);
    }
}
