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

use crate::barrier::{Barrier, BarrierOp};
use crate::logical::LogicalError;
use crate::secret::{Key32, SecretString};
use crate::stripes::Stripes;

pub use entry::{TokenEntry, now_unix, rfc3339};
pub use roles::TokenRole;
pub(crate) use routes::{TokenPaths, is_root_protected_token_path};

const SALT_PATH: &str = "sys/token/salt";
pub(crate) const ID_PREFIX: &str = "sys/token/id/";
const ACCESSOR_PREFIX: &str = "sys/token/accessor/";
const PARENT_PREFIX: &str = "sys/token/parent/";
/// Prefix of service tokens: `cvs.` plus 24 base62 characters, the length of Vault's `hvs.` tokens.
pub const SERVICE_TOKEN_PREFIX: &str = "cvs.";
/// Parsed entries kept in memory; every change to a token goes through this store.
const ENTRY_CACHE: usize = 16_384;
/// `num_uses` of a token whose revocation has begun: it authenticates
/// nowhere and nothing gives it uses back.
const REVOKING: i64 = -2;
/// Ancestors looked at on each use; deeper trees are refused rather than walked.
const MAX_DEPTH: usize = 256;

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
    /// Every change to an entry, and every fill of the cache from storage,
    /// happens under the entry's stripe: a slow write or read can never put
    /// back an entry that a revocation removed.
    locks: Stripes,
    /// Leases to revoke with a token (absent while initialising).
    leases: Option<Arc<crate::expiration::Expiration>>,
    /// Counts revocations, so event subscriptions re-check their token.
    revocations: tokio::sync::watch::Sender<u64>,
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
            locks: Stripes::default(),
            leases: None,
            revocations: tokio::sync::watch::Sender::new(0),
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

    /// The storage hash a token id has (whether or not it exists).
    pub(crate) fn hash_of(&self, id: &str) -> String {
        self.hash(id)
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
        let _g = self.locks.lock(&hash).await;
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
        if let Some(leases) = &self.leases
            && entry.expire_time > 0
        {
            // Expiry revokes the token's tree on time, leases or not.
            leases.watch_token(&hash, entry.expire_time);
        }
        Ok(Token {
            hash,
            entry: Arc::new(entry.clone()),
        })
    }

    /// Writes an entry; the caller holds its stripe.
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

    /// Forgets an entry another node changed (an HA standby's copy); under
    /// its stripe, so a fill in progress cannot put the old one back.
    pub(crate) async fn invalidate(&self, hash: &str) {
        let _g = self.locks.lock(hash).await;
        self.cache.remove(hash);
    }

    /// The entry, from the cache or storage.
    async fn read_entry(&self, hash: &str) -> Result<Option<Arc<TokenEntry>>, LogicalError> {
        if let Some(e) = self.cache.get(hash) {
            return Ok(Some(e));
        }
        let _g = self.locks.lock(hash).await;
        self.read_locked(hash).await
    }

    /// The entry; the caller holds its stripe, so a cache fill cannot race
    /// a write or a delete.
    async fn read_locked(&self, hash: &str) -> Result<Option<Arc<TokenEntry>>, LogicalError> {
        if let Some(e) = self.cache.get(hash) {
            return Ok(Some(e));
        }
        let Some(bytes) = self.barrier.get(&format!("{ID_PREFIX}{hash}")).await? else {
            return Ok(None);
        };
        let mut stored: StoredToken =
            serde_json::from_slice(bytes.expose()).map_err(|e| corrupt("token entry", e))?;
        stored.entry.upgrade();
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
            creation_time: crate::clock::now_ms(),
            orphan: true,
            ..TokenEntry::default()
        })
    }

    /// Changes with every revocation (a marked token, whatever the cause).
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revocations.subscribe()
    }

    /// Resolves a token id; `None` if unknown, used up, expired (expired ones
    /// are revoked) or below a parent that is no longer valid.
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
        let now = crate::clock::now_ms();
        if entry.is_expired(now) {
            self.revoke_tree(hash).await?;
            return Ok(None);
        }
        if entry.num_uses < 0 || !self.ancestors_valid(&entry, now).await? {
            return Ok(None);
        }
        Ok(Some(Token {
            hash: hash.to_owned(),
            entry,
        }))
    }

    /// Whether a lease may still be registered for this token: it exists,
    /// its revocation has not begun, and its ancestors are valid. (A token
    /// spent by the request that made the lease qualifies: its revocation,
    /// which takes the lease along, comes after the request.)
    pub(crate) async fn holds_leases(&self, hash: &str) -> Result<bool, LogicalError> {
        let Some(entry) = self.read_entry(hash).await? else {
            return Ok(false);
        };
        Ok(entry.num_uses != REVOKING
            && self.ancestors_valid(&entry, crate::clock::now_ms()).await?)
    }

    /// Whether every ancestor still exists, is not being revoked and has not
    /// expired: a child is never valid longer than its parent, even before
    /// the parent's revocation reached it. An expired ancestor is revoked
    /// (with its whole tree) here.
    async fn ancestors_valid(&self, entry: &TokenEntry, now: i64) -> Result<bool, LogicalError> {
        let mut next = entry.parent.clone();
        for _ in 0..MAX_DEPTH {
            let Some(hash) = next else {
                return Ok(true);
            };
            let Some(parent) = self.read_entry(&hash).await? else {
                return Ok(false);
            };
            if parent.is_expired(now) {
                self.revoke_tree(&hash).await?;
                return Ok(false);
            }
            if parent.num_uses < 0 {
                return Ok(false);
            }
            next = parent.parent.clone();
        }
        Ok(false)
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
        let _g = self.locks.lock(&token.hash).await;
        let Some(current) = self.read_locked(&token.hash).await? else {
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

    /// Returns the use a refused request took (see `use_token`), unless the
    /// token's revocation has begun meanwhile.
    pub(crate) async fn give_back_use(&self, token: &Token) -> Result<(), LogicalError> {
        let _g = self.locks.lock(&token.hash).await;
        let Some(current) = self.read_locked(&token.hash).await? else {
            return Ok(());
        };
        let back = match current.num_uses {
            -1 => 1,
            n if n > 0 => n + 1,
            _ => return Ok(()),
        };
        let mut next = (*current).clone();
        next.num_uses = back;
        self.write_entry(&token.hash, &next).await
    }

    /// Replaces a live token's entry (renewals). A token that is gone, spent
    /// or being revoked is "not found": nothing brings it back.
    pub async fn update_entry(
        &self,
        token: &Token,
        f: impl FnOnce(&mut TokenEntry),
    ) -> Result<Arc<TokenEntry>, LogicalError> {
        let _g = self.locks.lock(&token.hash).await;
        let current = self
            .read_locked(&token.hash)
            .await?
            .filter(|e| e.num_uses >= 0)
            .ok_or_else(|| LogicalError::BadRequest("token not found".into()))?;
        let mut next = (*current).clone();
        f(&mut next);
        self.write_entry(&token.hash, &next).await?;
        if let Some(leases) = &self.leases
            && next.expire_time > 0
        {
            leases.watch_token(&token.hash, next.expire_time);
        }
        Ok(Arc::new(next))
    }

    /// Revokes a token and every descendant. The token stops authenticating
    /// (and, through the parent check, so do its descendants) before anything
    /// else is done.
    pub async fn revoke_tree(&self, hash: &str) -> Result<(), LogicalError> {
        self.mark_revoking(hash).await?;
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

    /// Revokes only this token; its children become orphans. They are
    /// orphaned before the token is marked, so no child is refused on the
    /// way (a child made meanwhile keeps a dead parent and stays refused).
    pub async fn revoke_orphan(&self, hash: &str) -> Result<(), LogicalError> {
        let prefix = format!("{PARENT_PREFIX}{hash}/");
        for child in self.barrier.list(&prefix).await? {
            self.barrier.delete(&format!("{prefix}{child}")).await?;
            let _g = self.locks.lock(&child).await;
            if let Some(current) = self.read_locked(&child).await? {
                let mut next = (*current).clone();
                next.parent = None;
                next.orphan = true;
                self.write_entry(&child, &next).await?;
            }
        }
        self.delete_one(hash).await
    }

    /// Marks a token as being revoked, under its stripe; returns whether it exists.
    async fn mark_revoking(&self, hash: &str) -> Result<Option<Arc<TokenEntry>>, LogicalError> {
        let _g = self.locks.lock(hash).await;
        let Some(current) = self.read_locked(hash).await? else {
            return Ok(None);
        };
        if current.num_uses != REVOKING {
            let mut next = (*current).clone();
            next.num_uses = REVOKING;
            self.write_entry(hash, &next).await?;
            self.revocations.send_modify(|n| *n += 1);
        }
        Ok(Some(current))
    }

    /// Revokes one token: marked first (it stops authenticating at once),
    /// then its leases, then its records. A failure part-way leaves it marked,
    /// so it never works again and tidy finishes the job.
    async fn delete_one(&self, hash: &str) -> Result<(), LogicalError> {
        let entry = self.mark_revoking(hash).await?;
        if let Some(leases) = &self.leases {
            leases.revoke_for_token(hash).await?;
        }
        let Some(e) = entry else {
            return Ok(());
        };
        let mut ops = vec![
            BarrierOp::Delete(format!("{ID_PREFIX}{hash}")),
            BarrierOp::Delete(format!(
                "{ACCESSOR_PREFIX}{}",
                self.hmac("accessor:", &e.accessor)
            )),
        ];
        if let Some(p) = &e.parent {
            ops.push(BarrierOp::Delete(format!("{PARENT_PREFIX}{p}/{hash}")));
        }
        let _g = self.locks.lock(hash).await;
        self.barrier.batch(ops).await?;
        self.cache.remove(hash);
        Ok(())
    }

    /// Tokens that expire, with when (scheduled at unseal so that expiry
    /// revokes them on time).
    pub(crate) async fn expiring(&self) -> Result<Vec<(String, i64)>, LogicalError> {
        let mut out = Vec::new();
        for hash in self.barrier.list(ID_PREFIX).await? {
            if let Some(e) = self.read_entry(&hash).await?
                && e.expire_time > 0
            {
                out.push((hash, e.expire_time));
            }
        }
        Ok(out)
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

    /// Re-points tokens created under `from` (an auth method's path) to
    /// `to`, after the method moved: disabling it later still finds them.
    pub async fn repath_created_under(&self, from: &str, to: &str) -> Result<usize, LogicalError> {
        let mut n = 0;
        for hash in self.barrier.list(ID_PREFIX).await? {
            let _g = self.locks.lock(&hash).await;
            let Some(e) = self.read_locked(&hash).await? else {
                continue;
            };
            let Some(rest) = e.path.strip_prefix(from) else {
                continue;
            };
            let mut next = (*e).clone();
            next.path = format!("{to}{rest}");
            self.write_entry(&hash, &next).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Removes expired and spent tokens and dangling index entries; returns how many tokens went.
    pub async fn tidy(&self) -> Result<usize, LogicalError> {
        let now = crate::clock::now_ms();
        let mut removed = 0;
        for hash in self.barrier.list(ID_PREFIX).await? {
            let Some(e) = self.read_entry(&hash).await? else {
                continue;
            };
            // A child whose parent is gone lost its revocation part-way.
            let parent_gone = match &e.parent {
                Some(p) => self.read_entry(p).await?.is_none(),
                None => false,
            };
            if e.is_expired(now) || e.num_uses < 0 || parent_gone {
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
