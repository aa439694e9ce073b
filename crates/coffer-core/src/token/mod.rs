//! The token store: tokens are stored only under a salted HMAC of their id;
//! accessors likewise. Parent links make revocation reach every descendant.

mod entry;
mod roles;
mod routes;

use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

use crate::barrier::{Barrier, BarrierOp};
use crate::logical::LogicalError;
use crate::secret::{Key32, SecretString};

pub use entry::{TokenEntry, now_unix, rfc3339};
pub use roles::TokenRole;
pub(crate) use routes::{TokenPaths, is_root_protected_token_path};

const SALT_PATH: &str = "sys/token/salt";
const ID_PREFIX: &str = "sys/token/id/";
const ACCESSOR_PREFIX: &str = "sys/token/accessor/";
const PARENT_PREFIX: &str = "sys/token/parent/";
/// Prefix of service tokens: `cvs.` plus 24 base62 characters, the length of Vault's `hvs.` tokens.
pub const SERVICE_TOKEN_PREFIX: &str = "cvs.";
/// Parsed entries kept in memory; every change to a token goes through this store.
const ENTRY_CACHE: usize = 16_384;

/// The stored form: the entry plus the id's hash, compared in constant time on lookup.
#[derive(Serialize, Deserialize)]
struct StoredToken {
    hash: String,
    entry: TokenEntry,
}

#[derive(Serialize, Deserialize)]
struct AccessorIndex {
    hash: String,
    accessor: String,
}

/// A resolved token: its storage handle and entry.
#[derive(Clone)]
pub struct Token {
    /// HMAC of the id; the storage handle.
    pub hash: String,
    /// The entry.
    pub entry: Arc<TokenEntry>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("accessor", &self.entry.accessor)
            .finish_non_exhaustive()
    }
}

/// Creates, resolves, renews and revokes tokens behind the barrier.
pub struct TokenStore {
    barrier: Arc<Barrier>,
    salt: Key32,
    cache: quick_cache::sync::Cache<String, Arc<TokenEntry>>,
    /// Serialises read-modify-write of entries (use counts, renewals).
    update: Mutex<()>,
    /// Leases to revoke with a token (absent while initialising).
    leases: Option<Arc<crate::expiration::Expiration>>,
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

fn corrupt(what: &str, e: impl std::fmt::Display) -> LogicalError {
    LogicalError::Internal(format!("{what} is corrupt: {e}"))
}

impl TokenStore {
    /// Loads the salt, creating it on first use.
    pub async fn load(barrier: Arc<Barrier>) -> Result<Self, LogicalError> {
        let salt = match barrier.get(SALT_PATH).await? {
            Some(b) => Key32::from_slice(b.expose())
                .ok_or_else(|| corrupt("token salt", "wrong length"))?,
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
            update: Mutex::new(()),
            leases: None,
        })
    }

    /// Revoking a token from now on revokes the leases it created.
    pub(crate) fn with_leases(mut self, leases: Arc<crate::expiration::Expiration>) -> Self {
        self.leases = Some(leases);
        self
    }

    fn hmac(&self, domain: &str, value: &str) -> String {
        // HMAC accepts any key length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.salt.expose())
            .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
        mac.update(domain.as_bytes());
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn hash(&self, id: &str) -> String {
        self.hmac("id:", id)
    }

    /// Issues a new token id for `entry` and stores it.
    pub async fn create(&self, entry: &TokenEntry) -> Result<(SecretString, Token), LogicalError> {
        let id = SecretString::new(format!("{SERVICE_TOKEN_PREFIX}{}", random_base62(24)?));
        let token = self.create_with_id(&id, entry).await?;
        Ok((id, token))
    }

    /// Stores `entry` under a caller-chosen id (root's `id` parameter, dev mode).
    pub async fn create_with_id(
        &self,
        id: &SecretString,
        entry: &TokenEntry,
    ) -> Result<Token, LogicalError> {
        let hash = self.hash(id.expose());
        if self
            .barrier
            .get(&format!("{ID_PREFIX}{hash}"))
            .await?
            .is_some()
        {
            return Err(LogicalError::BadRequest(
                "cannot create a token with a duplicate ID".into(),
            ));
        }
        // Entry, accessor index and parent link land together or not at all.
        let stored = StoredToken {
            hash: hash.clone(),
            entry: entry.clone(),
        };
        let index = AccessorIndex {
            hash: hash.clone(),
            accessor: entry.accessor.clone(),
        };
        let internal = |e: serde_json::Error| LogicalError::Internal(e.to_string());
        let mut ops = vec![
            BarrierOp::Put(
                format!("{ID_PREFIX}{hash}"),
                serde_json::to_vec(&stored).map_err(internal)?,
            ),
            BarrierOp::Put(
                format!(
                    "{ACCESSOR_PREFIX}{}",
                    self.hmac("accessor:", &entry.accessor)
                ),
                serde_json::to_vec(&index).map_err(internal)?,
            ),
        ];
        if let Some(parent) = &entry.parent {
            ops.push(BarrierOp::Put(
                format!("{PARENT_PREFIX}{parent}/{hash}"),
                Vec::new(),
            ));
        }
        self.barrier.batch(ops).await?;
        self.cache.insert(hash.clone(), Arc::new(stored.entry));
        Ok(Token {
            hash,
            entry: Arc::new(entry.clone()),
        })
    }

    async fn write_entry(&self, hash: &str, entry: &TokenEntry) -> Result<(), LogicalError> {
        let stored = StoredToken {
            hash: hash.to_owned(),
            entry: entry.clone(),
        };
        let bytes = zeroize::Zeroizing::new(
            serde_json::to_vec(&stored).map_err(|e| LogicalError::Internal(e.to_string()))?,
        );
        self.cache.remove(hash);
        self.barrier
            .put(&format!("{ID_PREFIX}{hash}"), &bytes)
            .await?;
        self.cache.insert(hash.to_owned(), Arc::new(stored.entry));
        Ok(())
    }

    async fn read_entry(&self, hash: &str) -> Result<Option<Arc<TokenEntry>>, LogicalError> {
        if let Some(e) = self.cache.get(hash) {
            return Ok(Some(e));
        }
        let Some(bytes) = self.barrier.get(&format!("{ID_PREFIX}{hash}")).await? else {
            return Ok(None);
        };
        let stored: StoredToken =
            serde_json::from_slice(bytes.expose()).map_err(|e| corrupt("token entry", e))?;
        if !bool::from(stored.hash.as_bytes().ct_eq(hash.as_bytes())) {
            return Ok(None);
        }
        let e = Arc::new(stored.entry);
        self.cache.insert(hash.to_owned(), e.clone());
        Ok(Some(e))
    }

    /// A fresh, non-expiring root token entry (init, dev mode).
    pub fn root_entry() -> Result<TokenEntry, LogicalError> {
        Ok(TokenEntry {
            accessor: random_base62(24)?,
            policies: vec!["root".into()],
            path: "auth/token/root".into(),
            display_name: "root".into(),
            creation_time: now_unix(),
            orphan: true,
            ..TokenEntry::default()
        })
    }

    /// Resolves a token id; `None` if unknown, used up or expired (expired ones are revoked).
    pub async fn lookup(&self, id: &str) -> Result<Option<Token>, LogicalError> {
        if id.is_empty() || id.len() > 256 {
            return Ok(None);
        }
        self.lookup_hash(&self.hash(id)).await
    }

    pub(crate) async fn lookup_hash(&self, hash: &str) -> Result<Option<Token>, LogicalError> {
        let Some(entry) = self.read_entry(hash).await? else {
            return Ok(None);
        };
        if entry.is_expired(now_unix()) {
            self.revoke_tree(hash).await?;
            return Ok(None);
        }
        if entry.num_uses < 0 {
            return Ok(None);
        }
        Ok(Some(Token {
            hash: hash.to_owned(),
            entry,
        }))
    }

    /// Resolves an accessor to its token.
    pub async fn lookup_accessor(&self, accessor: &str) -> Result<Option<Token>, LogicalError> {
        if accessor.is_empty() || accessor.len() > 256 {
            return Ok(None);
        }
        let key = format!("{ACCESSOR_PREFIX}{}", self.hmac("accessor:", accessor));
        let Some(bytes) = self.barrier.get(&key).await? else {
            return Ok(None);
        };
        let index: AccessorIndex =
            serde_json::from_slice(bytes.expose()).map_err(|e| corrupt("accessor index", e))?;
        self.lookup_hash(&index.hash).await
    }

    /// Accessors of every live token (for `LIST auth/token/accessors`).
    pub async fn accessors(&self) -> Result<Vec<String>, LogicalError> {
        let mut out = Vec::new();
        for k in self.barrier.list(ACCESSOR_PREFIX).await? {
            if let Some(b) = self.barrier.get(&format!("{ACCESSOR_PREFIX}{k}")).await? {
                let index: AccessorIndex =
                    serde_json::from_slice(b.expose()).map_err(|e| corrupt("accessor index", e))?;
                out.push(index.accessor);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Counts one use of a limited-use token. Returns the entry after the use;
    /// `None` when the token had no uses left. At zero uses left it is revoked
    /// by the caller once the request is done.
    pub async fn use_token(&self, token: &Token) -> Result<Option<Arc<TokenEntry>>, LogicalError> {
        if token.entry.num_uses == 0 {
            return Ok(Some(token.entry.clone()));
        }
        let _g = self.update.lock().await;
        let Some(current) = self.read_entry(&token.hash).await? else {
            return Ok(None);
        };
        if current.num_uses <= 0 {
            return Ok(None);
        }
        let mut next = (*current).clone();
        // Vault marks a spent token with -1 until it is revoked.
        next.num_uses = if current.num_uses == 1 {
            -1
        } else {
            current.num_uses - 1
        };
        self.write_entry(&token.hash, &next).await?;
        Ok(Some(Arc::new(next)))
    }

    /// Replaces a token's entry (renewals).
    pub async fn update_entry(
        &self,
        token: &Token,
        f: impl FnOnce(&mut TokenEntry),
    ) -> Result<Arc<TokenEntry>, LogicalError> {
        let _g = self.update.lock().await;
        let current = self
            .read_entry(&token.hash)
            .await?
            .ok_or_else(|| LogicalError::BadRequest("token not found".into()))?;
        let mut next = (*current).clone();
        f(&mut next);
        self.write_entry(&token.hash, &next).await?;
        Ok(Arc::new(next))
    }

    /// Revokes a token and every descendant.
    pub async fn revoke_tree(&self, hash: &str) -> Result<(), LogicalError> {
        // Depth-first without recursion: collect the subtree, then delete leaves first.
        let mut order = vec![hash.to_owned()];
        let mut i = 0;
        while i < order.len() {
            let children = self
                .barrier
                .list(&format!("{PARENT_PREFIX}{}/", order[i]))
                .await?;
            order.extend(children.into_iter().filter(|c| !c.ends_with('/')));
            i += 1;
        }
        for h in order.iter().rev() {
            self.delete_one(h).await?;
        }
        Ok(())
    }

    /// Revokes only this token; its children become orphans.
    pub async fn revoke_orphan(&self, hash: &str) -> Result<(), LogicalError> {
        let prefix = format!("{PARENT_PREFIX}{hash}/");
        for child in self.barrier.list(&prefix).await? {
            self.barrier.delete(&format!("{prefix}{child}")).await?;
            if let Some(t) = self.lookup_hash(&child).await? {
                self.update_entry(&t, |e| {
                    e.parent = None;
                    e.orphan = true;
                })
                .await?;
            }
        }
        self.delete_one(hash).await
    }

    async fn delete_one(&self, hash: &str) -> Result<(), LogicalError> {
        if let Some(leases) = &self.leases {
            leases.revoke_for_token(hash).await?;
        }
        let entry = self.read_entry(hash).await?;
        self.cache.remove(hash);
        self.barrier.delete(&format!("{ID_PREFIX}{hash}")).await?;
        if let Some(e) = entry {
            self.barrier
                .delete(&format!(
                    "{ACCESSOR_PREFIX}{}",
                    self.hmac("accessor:", &e.accessor)
                ))
                .await?;
            if let Some(p) = &e.parent {
                self.barrier
                    .delete(&format!("{PARENT_PREFIX}{p}/{hash}"))
                    .await?;
            }
        }
        Ok(())
    }

    /// Whether a token with this hash is stored (expired or not).
    pub async fn exists_hash(&self, hash: &str) -> Result<bool, LogicalError> {
        Ok(self.read_entry(hash).await?.is_some())
    }

    /// Revokes every token created through a path under `prefix` (a disabled auth method).
    pub async fn revoke_created_under(&self, prefix: &str) -> Result<usize, LogicalError> {
        let mut n = 0;
        for hash in self.barrier.list(ID_PREFIX).await? {
            if let Some(e) = self.read_entry(&hash).await?
                && e.path.starts_with(prefix)
            {
                self.revoke_tree(&hash).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Removes expired and spent tokens and dangling index entries; returns how many tokens went.
    pub async fn tidy(&self) -> Result<usize, LogicalError> {
        let now = now_unix();
        let mut removed = 0;
        for hash in self.barrier.list(ID_PREFIX).await? {
            if let Some(e) = self.read_entry(&hash).await?
                && (e.is_expired(now) || e.num_uses < 0)
            {
                self.revoke_tree(&hash).await?;
                removed += 1;
            }
        }
        for k in self.barrier.list(ACCESSOR_PREFIX).await? {
            let key = format!("{ACCESSOR_PREFIX}{k}");
            if let Some(b) = self.barrier.get(&key).await? {
                let index: AccessorIndex =
                    serde_json::from_slice(b.expose()).map_err(|e| corrupt("accessor index", e))?;
                if self.read_entry(&index.hash).await?.is_none() {
                    self.barrier.delete(&key).await?;
                }
            }
        }
        for parent in self.barrier.list(PARENT_PREFIX).await? {
            let p = parent.trim_end_matches('/');
            if self.read_entry(p).await?.is_none() {
                for child in self
                    .barrier
                    .list(&format!("{PARENT_PREFIX}{parent}"))
                    .await?
                {
                    self.barrier
                        .delete(&format!("{PARENT_PREFIX}{parent}{child}"))
                        .await?;
                }
            }
        }
        Ok(removed)
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
