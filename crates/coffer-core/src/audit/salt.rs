//! Per-device HMAC keys: the log carries `hmac-sha256:<hex>` instead of
//! tokens and secret values, and `sys/audit-hash` computes the same value for
//! an input an investigator already knows.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::secret::Key32;

/// One device's HMAC key, kept behind the barrier.
pub struct Salt(Key32);

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

    /// `hmac-sha256:<hex>` of `input`, as Vault writes it.
    pub fn hash(&self, input: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.0.expose()) else {
            // HMAC takes keys of any length; this arm cannot run.
            return String::new();
        };
        mac.update(input.as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Replaces every string inside `v` (objects and arrays, recursively) by
    /// its HMAC; numbers, booleans and nulls stay, as in Vault.
    pub fn hash_strings(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.hash(s),
            Value::Array(items) => items.iter_mut().for_each(|i| self.hash_strings(i)),
            Value::Object(m) => m.values_mut().for_each(|i| self.hash_strings(i)),
            _ => {}
        }
    }

    /// Hashes the string at `key` of an object, leaving empty strings empty.
    pub fn hash_field(&self, obj: &mut serde_json::Map<String, Value>, key: &str) {
        if let Some(Value::String(s)) = obj.get_mut(key)
            && !s.is_empty()
        {
            *s = self.hash(s);
        }
    }
}

impl std::fmt::Debug for Salt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Salt(<redacted>)")
    }
}
