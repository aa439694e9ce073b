//! The `static` seal: a 32-byte key from a file or an environment variable.
//! For tests and simple deployments; a KMS seal gives better separation.

use async_trait::async_trait;

use super::{AutoSeal, SealError};
use crate::aead;
use crate::secret::{Key32, SecretBytes};

/// Wraps the root key with a fixed AES-256 key.
pub struct StaticSeal {
    key: Key32,
}

impl std::fmt::Debug for StaticSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticSeal(<key redacted>)")
    }
}

impl StaticSeal {
    /// Parses a key written as 64 hex characters or 44 base64 characters.
    pub fn from_text(text: &str) -> Result<Self, SealError> {
        use base64::Engine;
        let t = text.trim();
        let bytes = zeroize::Zeroizing::new(
            hex::decode(t)
                .ok()
                .or_else(|| base64::engine::general_purpose::STANDARD.decode(t).ok())
                .ok_or_else(|| SealError::Config {
                    seal: "static",
                    message: "key must be 32 bytes written as 64 hex or 44 base64 characters"
                        .into(),
                })?,
        );
        let key = Key32::from_slice(&bytes).ok_or_else(|| SealError::Config {
            seal: "static",
            message: format!("key has {} bytes, expected 32", bytes.len()),
        })?;
        Ok(Self { key })
    }
}

#[async_trait]
impl AutoSeal for StaticSeal {
    fn seal_type(&self) -> &'static str {
        "static"
    }

    async fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        aead::seal(&self.key, aad, plaintext).map_err(|_| SealError::Wrap("static"))
    }

    async fn unwrap(&self, ciphertext: &[u8], aad: &[u8]) -> Result<SecretBytes, SealError> {
        aead::open(&self.key, aad, ciphertext).map_err(|_| SealError::Unwrap("static"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_text_forms() {
        assert!(StaticSeal::from_text(&"ab".repeat(32)).is_ok());
        let err = StaticSeal::from_text(&"ab".repeat(31))
            .unwrap_err()
            .to_string();
        assert!(err.contains("31 bytes, expected 32"), "{err}");
        assert!(StaticSeal::from_text("not a key").is_err());
    }
}
