//! The barrier: everything above it is plaintext, everything below it AES-256-GCM.
//!
//! Entry layout: version byte, term (u32 BE), nonce, ciphertext, tag. The
//! storage path is the associated data, so an entry moved to another path
//! fails to decrypt instead of being read as that path's value.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use coffer_storage::{DynStorage, Op, StorageError};

use crate::aead::{self, AeadError};
use crate::keyring::Keyring;
use crate::secret::{Key32, SecretBytes};

const ENTRY_VERSION: u8 = 1;
/// Storage prefix kept outside the barrier for the seal's own records.
pub const SEAL_PREFIX: &str = "seal/";
/// Where the keyring lives, encrypted by the root key.
pub const KEYRING_PATH: &str = "seal/keyring";

/// Barrier failures.
#[derive(Debug, thiserror::Error)]
pub enum BarrierError {
    /// No keyring is loaded.
    #[error("Vault is sealed")]
    Sealed,
    /// The entry failed authentication (tampering, moved entry, wrong key).
    #[error("barrier: entry at {path:?} failed integrity check: {source}")]
    Integrity { path: String, source: AeadError },
    /// The entry names a term the keyring does not hold, or an unknown format.
    #[error("barrier: entry at {path:?} is unreadable: {why}")]
    Format { path: String, why: String },
    /// The path is reserved for the seal.
    #[error("barrier: path {0:?} is reserved")]
    Reserved(String),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Encryption failed (random source).
    #[error("barrier: encryption failed: {0}")]
    Encrypt(AeadError),
}

struct Unsealed {
    root: Key32,
    keyring: Keyring,
}

/// Encrypts on the way down, decrypts on the way up.
pub struct Barrier {
    storage: DynStorage,
    keys: RwLock<Option<Arc<Unsealed>>>,
    encryptions: AtomicU64,
    /// One keyring rotation at a time: two would each add a term from the
    /// same keyring, and the one stored might not be the one in use.
    rotation: tokio::sync::Mutex<()>,
}

/// A write for [`Barrier::batch`].
pub enum BarrierOp {
    /// Store a plaintext value.
    Put(String, Vec<u8>),
    /// Remove a key.
    Delete(String),
}

impl Barrier {
    /// A sealed barrier over `storage`.
    pub fn new(storage: DynStorage) -> Self {
        Self {
            storage,
            keys: RwLock::new(None),
            encryptions: AtomicU64::new(0),
            rotation: tokio::sync::Mutex::new(()),
        }
    }

    /// The backend below.
    pub fn storage(&self) -> &DynStorage {
        &self.storage
    }

    fn keys(&self) -> Result<Arc<Unsealed>, BarrierError> {
        self.keys
            .read()
            .map_err(|_| BarrierError::Sealed)?
            .clone()
            .ok_or(BarrierError::Sealed)
    }

    /// True while a keyring is loaded.
    pub fn is_unsealed(&self) -> bool {
        self.keys.read().map(|k| k.is_some()).unwrap_or(false)
    }

    /// Writes a brand-new keyring under `root` and unseals with it.
    pub async fn initialize(&self, root: Key32, keyring: Keyring) -> Result<(), BarrierError> {
        let sealed = aead::seal(&root, KEYRING_PATH.as_bytes(), keyring.to_bytes().expose())
            .map_err(BarrierError::Encrypt)?;
        self.storage.put(KEYRING_PATH, sealed).await?;
        self.install(root, keyring);
        Ok(())
    }

    /// Reads the keyring with the root key and unseals.
    pub async fn unseal(&self, root: Key32) -> Result<(), BarrierError> {
        let sealed = self
            .storage
            .get(KEYRING_PATH)
            .await?
            .ok_or_else(|| BarrierError::Format {
                path: KEYRING_PATH.into(),
                why: "keyring is missing".into(),
            })?;
        let plain = aead::open(&root, KEYRING_PATH.as_bytes(), &sealed).map_err(|source| {
            BarrierError::Integrity {
                path: KEYRING_PATH.into(),
                source,
            }
        })?;
        let keyring = Keyring::from_bytes(plain.expose()).map_err(|e| BarrierError::Format {
            path: KEYRING_PATH.into(),
            why: e.to_string(),
        })?;
        self.install(root, keyring);
        Ok(())
    }

    /// Reads the keyring again with the root key already held: another
    /// node may have rotated it while this one was a standby.
    pub async fn reload(&self) -> Result<(), BarrierError> {
        let root = self.keys()?.root.clone();
        self.unseal(root).await
    }

    fn install(&self, root: Key32, keyring: Keyring) {
        if let Ok(mut k) = self.keys.write() {
            *k = Some(Arc::new(Unsealed { root, keyring }));
        }
    }

    /// Forgets every key; later calls answer `Sealed`.
    pub fn seal(&self) {
        if let Ok(mut k) = self.keys.write() {
            *k = None;
        }
    }

    /// Adds a term and persists the keyring; returns the new term.
    pub async fn rotate(&self) -> Result<u32, BarrierError> {
        let _one_at_a_time = self.rotation.lock().await;
        let cur = self.keys()?;
        let key =
            Key32::random().map_err(|e| BarrierError::Encrypt(AeadError::Random(e.to_string())))?;
        let next = cur.keyring.rotated(key);
        let sealed = aead::seal(&cur.root, KEYRING_PATH.as_bytes(), next.to_bytes().expose())
            .map_err(BarrierError::Encrypt)?;
        self.storage.put(KEYRING_PATH, sealed).await?;
        let term = next.active().term;
        self.install(cur.root.clone(), next);
        Ok(term)
    }

    /// The active term, its install time (unix nanos) and the encryption count since start.
    pub fn key_status(&self) -> Result<(u32, i128, u64), BarrierError> {
        let k = self.keys()?;
        let active = k.keyring.active();
        Ok((
            active.term,
            active.install_time_nanos,
            self.encryptions.load(Ordering::Relaxed),
        ))
    }

    fn check_path(path: &str) -> Result<(), BarrierError> {
        if path.starts_with(SEAL_PREFIX) {
            return Err(BarrierError::Reserved(path.into()));
        }
        Ok(())
    }

    /// Encrypts a value for `path` with the active term.
    pub fn encrypt(&self, path: &str, plaintext: &[u8]) -> Result<Vec<u8>, BarrierError> {
        let k = self.keys()?;
        let active = k.keyring.active();
        let body =
            aead::seal(&active.key, path.as_bytes(), plaintext).map_err(BarrierError::Encrypt)?;
        let mut out = Vec::with_capacity(5 + body.len());
        out.push(ENTRY_VERSION);
        out.extend_from_slice(&active.term.to_be_bytes());
        out.extend_from_slice(&body);
        self.encryptions.fetch_add(1, Ordering::Relaxed);
        Ok(out)
    }

    /// Decrypts a value read from `path`.
    pub fn decrypt(&self, path: &str, entry: &[u8]) -> Result<SecretBytes, BarrierError> {
        let k = self.keys()?;
        let format = |why: String| BarrierError::Format {
            path: path.into(),
            why,
        };
        if entry.len() < 5 {
            return Err(format(format!("entry has only {} bytes", entry.len())));
        }
        if entry[0] != ENTRY_VERSION {
            return Err(format(format!("unknown entry version {}", entry[0])));
        }
        let term = u32::from_be_bytes([entry[1], entry[2], entry[3], entry[4]]);
        let tk = k
            .keyring
            .term(term)
            .ok_or_else(|| format(format!("no key for term {term}")))?;
        aead::open(&tk.key, path.as_bytes(), &entry[5..]).map_err(|source| {
            BarrierError::Integrity {
                path: path.into(),
                source,
            }
        })
    }

    /// Reads and decrypts one entry.
    pub async fn get(&self, path: &str) -> Result<Option<SecretBytes>, BarrierError> {
        Self::check_path(path)?;
        self.keys()?;
        match self.storage.get(path).await? {
            Some(entry) => self.decrypt(path, &entry).map(Some),
            None => Ok(None),
        }
    }

    /// Encrypts and writes one entry.
    pub async fn put(&self, path: &str, plaintext: &[u8]) -> Result<(), BarrierError> {
        Self::check_path(path)?;
        let entry = self.encrypt(path, plaintext)?;
        Ok(self.storage.put(path, entry).await?)
    }

    /// Deletes one entry.
    pub async fn delete(&self, path: &str) -> Result<(), BarrierError> {
        Self::check_path(path)?;
        self.keys()?;
        Ok(self.storage.delete(path).await?)
    }

    /// Lists one level below `prefix` (names are not secret; values are).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BarrierError> {
        Self::check_path(prefix)?;
        self.keys()?;
        Ok(self.storage.list(prefix).await?)
    }

    /// Applies several writes atomically.
    pub async fn batch(&self, ops: Vec<BarrierOp>) -> Result<(), BarrierError> {
        let mut lower = Vec::with_capacity(ops.len());
        for op in ops {
            lower.push(match op {
                BarrierOp::Put(p, v) => {
                    // Engines hand over plaintext; wipe it once sealed.
                    let v = zeroize::Zeroizing::new(v);
                    Self::check_path(&p)?;
                    let e = self.encrypt(&p, &v)?;
                    Op::Put(p, e)
                }
                BarrierOp::Delete(p) => {
                    Self::check_path(&p)?;
                    Op::Delete(p)
                }
            });
        }
        Ok(self.storage.batch(lower).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_storage::MemoryStorage;

    async fn unsealed() -> (Barrier, DynStorage) {
        let storage: DynStorage = Arc::new(MemoryStorage::new());
        let b = Barrier::new(storage.clone());
        b.initialize(
            Key32::random().unwrap(),
            Keyring::new(Key32::random().unwrap()),
        )
        .await
        .unwrap();
        (b, storage)
    }

    #[tokio::test]
    async fn moved_ciphertext_fails_integrity() {
        let (b, raw) = unsealed().await;
        b.put("a/x", b"secret").await.unwrap();
        let entry = raw.get("a/x").await.unwrap().unwrap();
        assert!(!entry.windows(6).any(|w| w == b"secret"));
        raw.put("a/y", entry).await.unwrap();
        assert!(matches!(
            b.get("a/y").await,
            Err(BarrierError::Integrity { .. })
        ));
    }

    #[tokio::test]
    async fn old_terms_still_decrypt_after_rotation() {
        let (b, raw) = unsealed().await;
        b.put("old", b"1").await.unwrap();
        assert_eq!(b.rotate().await.unwrap(), 2);
        b.put("new", b"2").await.unwrap();
        assert_eq!(raw.get("new").await.unwrap().unwrap()[4], 2);
        assert_eq!(b.get("old").await.unwrap().unwrap().expose(), b"1");
        assert_eq!(b.get("new").await.unwrap().unwrap().expose(), b"2");
    }

    #[tokio::test]
    async fn sealed_barrier_refuses_and_reserved_paths_are_refused() {
        let (b, _) = unsealed().await;
        assert!(matches!(
            b.put("seal/x", b"").await,
            Err(BarrierError::Reserved(_))
        ));
        b.seal();
        assert!(matches!(b.get("a").await, Err(BarrierError::Sealed)));
    }
}
