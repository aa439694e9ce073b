//! AES-256-GCM with a random 96-bit nonce; the nonce travels in front of the ciphertext.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::secret::{Key32, SecretBytes};

/// Nonce length in bytes.
pub const NONCE_LEN: usize = 12;
/// GCM tag length in bytes.
pub const TAG_LEN: usize = 16;

/// Why a ciphertext could not be opened or made.
#[derive(Debug, thiserror::Error)]
pub enum AeadError {
    /// The tag did not verify: wrong key, wrong associated data, or tampering.
    #[error("message authentication failed")]
    Integrity,
    /// Too short to hold a nonce and a tag.
    #[error("ciphertext too short ({0} bytes)")]
    Truncated(usize),
    /// The random source failed.
    #[error("random source failed: {0}")]
    Random(String),
}

/// Encrypts `plaintext`, binding `aad`; returns `nonce || ciphertext || tag`.
pub fn seal(key: &Key32, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, AeadError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| AeadError::Random(e.to_string()))?;
    let cipher = Aes256Gcm::new(key.expose().into());
    let ct = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| AeadError::Integrity)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens `nonce || ciphertext || tag` made by [`seal`] with the same key and `aad`.
pub fn open(key: &Key32, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes, AeadError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(AeadError::Truncated(sealed.len()));
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(key.expose().into());
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map(SecretBytes::new)
        .map_err(|_| AeadError::Integrity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_aad_binding() {
        let k = Key32::random().unwrap();
        let c = seal(&k, b"path/a", b"hello").unwrap();
        assert_eq!(open(&k, b"path/a", &c).unwrap().expose(), b"hello");
        assert!(matches!(open(&k, b"path/b", &c), Err(AeadError::Integrity)));
        let other = Key32::random().unwrap();
        assert!(matches!(
            open(&other, b"path/a", &c),
            Err(AeadError::Integrity)
        ));
        assert!(matches!(
            open(&k, b"", &c[..10]),
            Err(AeadError::Truncated(10))
        ));
    }

    #[test]
    fn nonces_differ_between_encryptions() {
        let k = Key32::random().unwrap();
        assert_ne!(seal(&k, b"", b"x").unwrap(), seal(&k, b"", b"x").unwrap());
    }
}
