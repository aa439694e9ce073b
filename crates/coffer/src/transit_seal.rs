//! The `transit` auto seal: the root key is encrypted by a transit key on
//! another coffer (or Vault/OpenBao) server, which this server asks to decrypt
//! it at start. Keys never leave that server; this one only holds a token.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use base64::Engine as _;
use coffer_client::{Client, ClientConfig, ClientError};
use coffer_core::seal::{AutoSeal, SealError};
use coffer_core::secret::SecretBytes;
use serde_json::{Value, json};
use zeroize::Zeroizing;

const NAME: &str = "transit";

/// The `seal "transit"` stanza, before environment fallbacks are applied.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TransitSealConfig {
    pub address: Option<String>,
    pub token: Option<String>,
    pub key_name: Option<String>,
    pub mount_path: Option<String>,
    pub tls_ca_cert: Option<PathBuf>,
    pub tls_client_cert: Option<PathBuf>,
    pub tls_client_key: Option<PathBuf>,
    pub tls_server_name: Option<String>,
    pub tls_skip_verify: Option<bool>,
    pub disable_renewal: Option<bool>,
}

impl std::fmt::Debug for TransitSealConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransitSealConfig")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("key_name", &self.key_name)
            .field("mount_path", &self.mount_path)
            .finish_non_exhaustive()
    }
}

/// Encrypts and decrypts the root key with `<mount_path>/encrypt|decrypt/<key_name>`.
pub struct TransitSeal {
    client: Client,
    address: String,
    encrypt: String,
    decrypt: String,
    renew: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn read(what: &str, path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path)
        .with_context(|| format!("seal \"transit\": cannot read {what} {}", path.display()))
}

impl TransitSeal {
    /// Builds the seal; stanza keys win, the Vault client environment
    /// variables fill what the stanza leaves out.
    pub fn new(cfg: &TransitSealConfig) -> anyhow::Result<Self> {
        let need = |v: Option<String>, key: &str, var: &str| {
            v.or_else(|| env(var)).with_context(|| {
                format!("seal \"transit\" needs {key} (or the {var} environment variable)")
            })
        };
        let address = need(cfg.address.clone(), "address", "VAULT_ADDR")?;
        let token = need(cfg.token.clone(), "token", "VAULT_TOKEN")?;
        let key_name = need(
            cfg.key_name.clone(),
            "key_name",
            "VAULT_TRANSIT_SEAL_KEY_NAME",
        )?;
        let mount = cfg
            .mount_path
            .clone()
            .or_else(|| env("VAULT_TRANSIT_SEAL_MOUNT_PATH"))
            .unwrap_or_else(|| "transit/".into());
        let mount = mount.trim_matches('/');
        if mount.is_empty() || key_name.contains('/') {
            anyhow::bail!(
                "seal \"transit\": mount_path must name a mount and key_name a single key"
            );
        }
        let ca = cfg
            .tls_ca_cert
            .clone()
            .or_else(|| env("VAULT_CACERT").map(PathBuf::from));
        let cert = cfg
            .tls_client_cert
            .clone()
            .or_else(|| env("VAULT_CLIENT_CERT").map(PathBuf::from));
        let key = cfg
            .tls_client_key
            .clone()
            .or_else(|| env("VAULT_CLIENT_KEY").map(PathBuf::from));
        let identity = match (cert, key) {
            (None, None) => None,
            (Some(c), Some(k)) => {
                let mut pem = read("tls_client_cert", &c)?;
                pem.push(b'\n');
                pem.extend_from_slice(&Zeroizing::new(read("tls_client_key", &k)?));
                Some(pem)
            }
            _ => anyhow::bail!("seal \"transit\": tls_client_cert and tls_client_key go together"),
        };
        let skip_verify = match cfg.tls_skip_verify {
            Some(b) => b,
            None => match env("VAULT_SKIP_VERIFY") {
                None => false,
                Some(v) => coffer_core::fields::parse_bool(&v)
                    .with_context(|| format!("VAULT_SKIP_VERIFY={v:?} is not a boolean"))?,
            },
        };
        let renew = match cfg.disable_renewal {
            Some(d) => !d,
            None => !env("VAULT_TRANSIT_SEAL_DISABLE_RENEWAL")
                .and_then(|v| coffer_core::fields::parse_bool(&v))
                .unwrap_or(false),
        };
        let client = Client::new(ClientConfig {
            address: address.clone(),
            token: Some(token),
            ca_cert_pem: ca.as_ref().map(|p| read("tls_ca_cert", p)).transpose()?,
            skip_verify,
            client_identity_pem: identity,
            tls_server_name: cfg
                .tls_server_name
                .clone()
                .or_else(|| env("VAULT_TLS_SERVER_NAME")),
            wrap_ttl: None,
        })
        .context("seal \"transit\"")?;
        Ok(Self {
            client,
            address,
            encrypt: format!("{mount}/encrypt/{key_name}"),
            decrypt: format!("{mount}/decrypt/{key_name}"),
            renew,
        })
    }

    /// Every failure to talk to the transit server is worth retrying: it may
    /// be down, sealed, or wait for its operator to fix a policy or a key.
    fn unavailable(&self, e: ClientError) -> SealError {
        SealError::Unavailable {
            seal: NAME,
            message: match e {
                ClientError::Transport { .. } => e.to_string(),
                other => format!("transit server {}: {other}", self.address),
            },
        }
    }

    async fn encrypt(&self, plaintext: &[u8]) -> Result<String, SealError> {
        let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(plaintext));
        let body = json!({ "plaintext": b64.as_str() });
        let answer = self
            .client
            .write(&self.encrypt, &body)
            .await
            .map_err(|e| self.unavailable(e))?;
        answer
            .as_ref()
            .and_then(|a| a.pointer("/data/ciphertext"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| self.odd_answer("encrypt"))
    }

    fn odd_answer(&self, op: &str) -> SealError {
        SealError::Unavailable {
            seal: NAME,
            message: format!(
                "transit server {}: {op} answered without the expected field",
                self.address
            ),
        }
    }

    /// Keeps the seal's token alive: renews it at two thirds of its TTL when
    /// it is renewable. Returns when the token needs no renewal.
    pub async fn keep_token_alive(client: Client, address: String) {
        let mut wait_on_error = Duration::from_secs(10);
        loop {
            let ttl = match client.read("auth/token/lookup-self").await {
                Ok(Some(v)) => {
                    let d = &v["data"];
                    if d["renewable"] != json!(true) || d["ttl"].as_u64().unwrap_or(0) == 0 {
                        tracing::debug!("transit seal token does not expire or renew");
                        return;
                    }
                    d["ttl"].as_u64().unwrap_or(0)
                }
                Ok(None) | Err(_) => {
                    // Unreachable or sealed now; the unseal loop reports that.
                    tokio::time::sleep(wait_on_error).await;
                    wait_on_error = (wait_on_error * 2).min(Duration::from_secs(300));
                    continue;
                }
            };
            wait_on_error = Duration::from_secs(10);
            tokio::time::sleep(Duration::from_secs((ttl * 2 / 3).max(1))).await;
            match client.write("auth/token/renew-self", &json!({})).await {
                Ok(_) => tracing::debug!("transit seal token renewed"),
                Err(e) => {
                    tracing::warn!(server = %address, error = %e, "renewing the transit seal token failed")
                }
            }
        }
    }

    /// The renewal task, unless `disable_renewal` is set.
    pub fn renewal(&self) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        self.renew
            .then(|| Self::keep_token_alive(self.client.clone(), self.address.clone()))
    }
}

/// `vault:v3:...` -> `vault:v3`.
fn key_version(ciphertext: &[u8]) -> Option<&[u8]> {
    let n = ciphertext.iter().position(|&b| b == b':')?;
    let m = ciphertext[n + 1..].iter().position(|&b| b == b':')?;
    Some(&ciphertext[..n + 1 + m])
}

#[async_trait]
impl AutoSeal for TransitSeal {
    fn seal_type(&self) -> &'static str {
        NAME
    }

    // No associated data is sent: Vault's transit seal sends none, RSA
    // transit keys refuse it, and this key only ever wraps the root key.
    async fn wrap(&self, plaintext: &[u8], _aad: &[u8]) -> Result<Vec<u8>, SealError> {
        self.encrypt(plaintext).await.map(String::into_bytes)
    }

    async fn unwrap(&self, ciphertext: &[u8], _aad: &[u8]) -> Result<SecretBytes, SealError> {
        let text = std::str::from_utf8(ciphertext).map_err(|_| SealError::Config {
            seal: NAME,
            message: "the stored root key is not a transit ciphertext (was this data sealed by another seal type?)".into(),
        })?;
        let answer = self
            .client
            .write(&self.decrypt, &json!({ "ciphertext": text }))
            .await
            .map_err(|e| self.unavailable(e))?;
        let b64 = answer
            .as_ref()
            .and_then(|a| a.pointer("/data/plaintext"))
            .and_then(Value::as_str)
            .ok_or_else(|| self.odd_answer("decrypt"))?;
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map(SecretBytes::new)
            .map_err(|_| self.odd_answer("decrypt"))
    }

    async fn refresh(
        &self,
        ciphertext: &[u8],
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Option<Vec<u8>>, SealError> {
        let fresh = self.wrap(plaintext, aad).await?;
        Ok((key_version(&fresh) != key_version(ciphertext)).then_some(fresh))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_version_prefix() {
        assert_eq!(key_version(b"vault:v12:abc"), Some(&b"vault:v12"[..]));
        assert_eq!(key_version(b"garbage"), None);
    }
}
