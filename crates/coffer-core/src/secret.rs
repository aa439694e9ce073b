//! Types for secret bytes: zeroized on drop, never printed.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// A 256-bit symmetric key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Key32([u8; 32]);

impl Key32 {
    /// A fresh key from the operating system's CSPRNG.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k)?;
        Ok(Self(k))
    }

    /// Wraps exactly 32 bytes; `None` for any other length.
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = b.try_into().ok()?;
        Some(Self(arr))
    }

    /// The raw key bytes.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key32(<redacted>)")
    }
}

/// Secret bytes of any length (plaintexts, shares, serialized keyrings).
#[derive(Clone, Default, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of the bytes.
    pub fn new(v: Vec<u8>) -> Self {
        Self(v)
    }

    /// The bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

/// A secret string such as a token id; stored as a plain JSON string.
#[derive(
    Clone, Default, Zeroize, ZeroizeOnDrop, PartialEq, Eq, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Takes ownership of the string.
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The string.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// Fills a fresh buffer with `n` random bytes.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, getrandom::Error> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v)?;
    Ok(v)
}
