//! Seals protect the root key. Shamir splits the key-encryption key into
//! shares held by operators; an auto seal (static key, later a KMS) wraps the
//! root key so the server can unseal itself at start.

pub(crate) mod shares;
mod static_key;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::secret::SecretBytes;

pub use static_key::StaticSeal;

/// Where the seal's configuration is stored (outside the barrier; not secret).
pub const SEAL_CONFIG_PATH: &str = "seal/config";
/// Where the wrapped root key is stored (outside the barrier).
pub const ROOT_KEY_PATH: &str = "seal/root-key";

/// The stored seal configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SealConfig {
    /// `shamir` or an auto seal's type.
    #[serde(rename = "type")]
    pub seal_type: String,
    /// Number of shares handed out (Shamir).
    pub secret_shares: u8,
    /// Shares needed to unseal (Shamir).
    pub secret_threshold: u8,
    /// Recovery key shares handed out (auto seals; 0 = none).
    #[serde(default)]
    pub recovery_shares: u8,
    /// Recovery shares needed to authorise an unseal (auto seals).
    #[serde(default)]
    pub recovery_threshold: u8,
    /// Check value of the recovery key (see `shares::recovery_check`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_check: Option<String>,
}

/// Failures of an auto seal.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The seal's key could not be loaded.
    #[error("seal ({seal}): {message}")]
    Config { seal: &'static str, message: String },
    /// The wrapped root key did not decrypt under this seal's key.
    #[error("seal ({0}): root key does not decrypt with this seal's key (wrong key?)")]
    Unwrap(&'static str),
    /// Wrapping failed.
    #[error("seal ({0}): encryption failed")]
    Wrap(&'static str),
    /// The seal's KMS could not be asked or refused for now; worth retrying.
    #[error("seal ({seal}): {message}")]
    Unavailable { seal: &'static str, message: String },
}

impl SealError {
    /// A short description without the details (addresses, key paths, the
    /// KMS's own error text), for unauthenticated answers such as
    /// `sys/seal-status`; the details go to the server log.
    pub fn class(&self) -> String {
        match self {
            SealError::Config { seal, .. } => {
                format!("seal ({seal}): configuration error; see the server log")
            }
            SealError::Unwrap(seal) => {
                format!("seal ({seal}): the root key does not decrypt with this seal's key")
            }
            SealError::Wrap(seal) => format!("seal ({seal}): encryption failed"),
            SealError::Unavailable { seal, .. } => {
                format!(
                    "seal ({seal}): the key service is unreachable or refused the request; see the server log"
                )
            }
        }
    }

    /// Whether trying again later may succeed (the KMS is down, sealed, or
    /// misconfigured in a way its operator can fix without restarting us).
    pub fn retryable(&self) -> bool {
        matches!(self, SealError::Unavailable { .. })
    }
}

/// A seal that can unwrap the root key without operators (static key, KMS).
#[async_trait]
pub trait AutoSeal: Send + Sync {
    /// The seal type reported by `sys/seal-status`.
    fn seal_type(&self) -> &'static str;
    /// Encrypts the root key for storage.
    async fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError>;
    /// Decrypts the stored root key.
    async fn unwrap(&self, ciphertext: &[u8], aad: &[u8]) -> Result<SecretBytes, SealError>;
    /// After a successful unwrap: a new wrapping when `ciphertext` is under an
    /// older version of the seal's key (the KMS key was rotated), so that
    /// retiring old key versions there never locks this server out.
    async fn refresh(
        &self,
        _ciphertext: &[u8],
        _plaintext: &[u8],
        _aad: &[u8],
    ) -> Result<Option<Vec<u8>>, SealError> {
        Ok(None)
    }
}

/// How this server's root key is protected.
pub enum SealMode {
    /// Operators present Shamir shares.
    Shamir,
    /// The server unwraps the root key by itself.
    Auto(Box<dyn AutoSeal>),
}

impl SealMode {
    /// The type name reported by `sys/seal-status`.
    pub fn type_name(&self) -> &'static str {
        match self {
            SealMode::Shamir => "shamir",
            SealMode::Auto(s) => s.seal_type(),
        }
    }
}
