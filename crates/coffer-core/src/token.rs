//! The token store: tokens are stored only under a salted HMAC of their id.

use std::collections::BTreeMap;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::barrier::Barrier;
use crate::logical::LogicalError;
use crate::secret::{Key32, SecretString};

const SALT_PATH: &str = "sys/token/salt";
const ID_PREFIX: &str = "sys/token/id/";
/// Prefix of service tokens: `cvs.` plus 24 base62 characters, the length of Vault's `hvs.` tokens.
pub const SERVICE_TOKEN_PREFIX: &str = "cvs.";

/// What is stored for a token (never its id).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenEntry {
    /// Public handle for the token.
    pub accessor: String,
    /// Sorted policy names.
    pub policies: Vec<String>,
    /// The path that created it, e.g. `auth/token/root`.
    pub path: String,
    /// Shown in lookups.
    pub display_name: String,
    /// Unix seconds.
    pub creation_time: i64,
    /// Seconds; 0 means no expiry.
    pub ttl: u64,
    /// Key/value metadata.
    pub meta: Option<BTreeMap<String, String>>,
    /// Has no parent.
    pub orphan: bool,
}

impl TokenEntry {
    /// True for a token holding the `root` policy.
    pub fn is_root(&self) -> bool {
        self.policies.iter().any(|p| p == "root")
    }
}

/// The stored form: the entry plus the id's hash, compared in constant time on lookup.
#[derive(Serialize, Deserialize)]
struct StoredToken {
    hash: String,
    entry: TokenEntry,
}

/// Parsed entries kept in memory; every change to a token goes through this store.
const ENTRY_CACHE: usize = 16_384;

/// Creates and resolves tokens behind the barrier.
pub struct TokenStore {
    barrier: Arc<Barrier>,
    salt: Key32,
    cache: quick_cache::sync::Cache<String, Arc<TokenEntry>>,
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` random base62 characters (rejection sampling keeps them uniform).
pub fn random_base62(n: usize) -> Result<String, LogicalError> {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf).map_err(|e| LogicalError::Internal(e.to_string()))?;
        for b in buf {
            if out.len() == n {
                break;
            }
            // 248 = 4 * 62: bytes above it would bias the first characters.
            if b < 248 {
                out.push(char::from(BASE62[usize::from(b % 62)]));
            }
        }
    }
    Ok(out)
}

impl TokenStore {
    /// Loads the salt, creating it on first use.
    pub async fn load(barrier: Arc<Barrier>) -> Result<Self, LogicalError> {
        let salt = match barrier.get(SALT_PATH).await? {
            Some(b) => Key32::from_slice(b.expose())
                .ok_or_else(|| LogicalError::Internal("token salt is corrupt".into()))?,
            None => {
                let k = Key32::random().map_err(|e| LogicalError::Internal(e.to_string()))?;
                barrier.put(SALT_PATH, k.expose()).await?;
                k
            }
        };
        Ok(Self {
            barrier,
            salt,
            cache: quick_cache::sync::Cache::new(ENTRY_CACHE),
        })
    }

    fn hash(&self, id: &str) -> String {
        // HMAC with a 32-byte key cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.salt.expose())
            .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
        mac.update(id.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Issues a new token for `entry` (root token at init, more with the token issue).
    pub async fn create(&self, entry: &TokenEntry) -> Result<SecretString, LogicalError> {
        let id = SecretString::new(format!("{SERVICE_TOKEN_PREFIX}{}", random_base62(24)?));
        self.store(&id, entry).await?;
        Ok(id)
    }

    /// Stores `entry` under a caller-chosen id (dev mode's `-dev-root-token-id`).
    pub async fn store(&self, id: &SecretString, entry: &TokenEntry) -> Result<(), LogicalError> {
        let hash = self.hash(id.expose());
        let stored = StoredToken {
            hash: hash.clone(),
            entry: entry.clone(),
        };
        let bytes =
            serde_json::to_vec(&stored).map_err(|e| LogicalError::Internal(e.to_string()))?;
        self.cache.remove(&hash);
        self.barrier
            .put(&format!("{ID_PREFIX}{hash}"), &bytes)
            .await?;
        self.cache.insert(hash, Arc::new(stored.entry));
        Ok(())
    }

    /// A fresh root token entry.
    pub fn root_entry() -> Result<TokenEntry, LogicalError> {
        Ok(TokenEntry {
            accessor: random_base62(24)?,
            policies: vec!["root".into()],
            path: "auth/token/root".into(),
            display_name: "root".into(),
            creation_time: time::OffsetDateTime::now_utc().unix_timestamp(),
            ttl: 0,
            meta: None,
            orphan: true,
        })
    }

    /// Resolves a token id; `None` if unknown or expired.
    pub async fn lookup(&self, id: &str) -> Result<Option<Arc<TokenEntry>>, LogicalError> {
        if id.is_empty() || id.len() > 256 {
            return Ok(None);
        }
        let hash = self.hash(id);
        let entry = match self.cache.get(&hash) {
            Some(e) => e,
            None => {
                let Some(bytes) = self.barrier.get(&format!("{ID_PREFIX}{hash}")).await? else {
                    return Ok(None);
                };
                let stored: StoredToken = serde_json::from_slice(bytes.expose())
                    .map_err(|e| LogicalError::Internal(format!("token entry is corrupt: {e}")))?;
                if !bool::from(stored.hash.as_bytes().ct_eq(hash.as_bytes())) {
                    return Ok(None);
                }
                let e = Arc::new(stored.entry);
                self.cache.insert(hash, e.clone());
                e
            }
        };
        if entry.ttl > 0
            && entry.creation_time.saturating_add(entry.ttl as i64)
                <= time::OffsetDateTime::now_utc().unix_timestamp()
        {
            return Ok(None);
        }
        Ok(Some(entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_tokens_have_vault_length() {
        let t = random_base62(24).unwrap();
        assert_eq!(t.len(), 24);
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(SERVICE_TOKEN_PREFIX.len() + t.len(), 28);
    }
}
