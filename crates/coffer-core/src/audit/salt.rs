//! Per-device HMAC keys: the log carries `hmac-sha256:<hex>` instead of
//! tokens and secret values, and `sys/audit-hash` computes the same value for
//! an input an investigator already knows.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Key32;

/// `hmac-sha256:` plus 64 hex digits.
pub const HASH_LEN: usize = 12 + 64;

/// One device's HMAC key, kept behind the barrier.
pub struct Salt(Key32);

/// Lowercase hex of a digest into `out` (faster than a char iterator).
pub(crate) fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = DIGITS[usize::from(b >> 4)];
        out[2 * i + 1] = DIGITS[usize::from(b & 0x0f)];
    }
}

impl Salt {
    /// A fresh random key.
    pub fn random() -> Result<Self, getrandom::Error> {
        Key32::random().map(Self)
    }

    /// A key read back from storage.
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        Key32::from_slice(b).map(Self)
    }

    /// The key's bytes, for storing behind the barrier.
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose()
    }

    /// `hmac-sha256:<hex>` of `input` into a stack buffer, as Vault writes it.
    pub fn hash_into<'b>(&self, input: &str, buf: &'b mut [u8; HASH_LEN]) -> &'b str {
        buf[..12].copy_from_slice(b"hmac-sha256:");
        // HMAC takes keys of any length, so the error arm cannot run.
        if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.0.expose()) {
            mac.update(input.as_bytes());
            hex_into(&mac.finalize().into_bytes(), &mut buf[12..]);
        }
        std::str::from_utf8(&buf[..]).unwrap_or("")
    }

    /// `hmac-sha256:<hex>` of `input`, as Vault writes it.
    pub fn hash(&self, input: &str) -> String {
        let mut buf = [0u8; HASH_LEN];
        self.hash_into(input, &mut buf).to_owned()
    }
}

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Salt(<redacted>)")
    }
}
