//! Transit: cryptography as a service with named, versioned keys that never
//! leave the server (unless created exportable).
//!
//! Storage: `policy/<name>` holds a key (settings and every version's
//! material), `config/keys` the mount's upsert switch. Parsed keys are cached
//! in memory; the cache is filled and changed only under the key's stripe
//! lock, so it never holds a key older than a finished write.

mod batch;
mod ciphertext;
mod crypt;
mod key;
mod keys;
mod leak;
mod material;
mod sign;

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use coffer_core::backend::{Backend, EngineRequest, StorageView};
use coffer_core::logical::Operation::{self, *};
use coffer_core::mounts::MountEntry;
use coffer_core::paths::{PathSpec, PathTable};
use coffer_core::{LogicalError, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use key::Key;

#[derive(Clone, Copy)]
enum Route {
    KeysList,
    Key,
    KeyConfig,
    Rotate,
    Trim,
    Export,
    ExportVersion,
    Backup,
    Restore,
    RestoreNamed,
    Encrypt,
    Decrypt,
    Rewrap,
    DataKey,
    Hmac,
    HmacAlg,
    Sign,
    SignAlg,
    Verify,
    VerifyAlg,
    Hash,
    HashAlg,
    Random,
    RandomA,
    RandomAB,
    ConfigKeys,
}

macro_rules! path {
    ($p:literal, [$($op:ident),*], $r:ident, $h:literal) => {
        PathSpec { pattern: $p, operations: &[$($op),*], route: Route::$r, help: $h }
    };
}

static PATHS: &[PathSpec<Route>] = &[
    path!("keys/", [List], KeysList, "List the keys."),
    path!(
        "keys/{name}",
        [Read, Update, Delete],
        Key,
        "Create, read or delete a key."
    ),
    path!(
        "keys/{name}/config",
        [Update],
        KeyConfig,
        "Version bounds, deletion, export, backup and rotation settings."
    ),
    path!(
        "keys/{name}/rotate",
        [Update],
        Rotate,
        "Add a new key version."
    ),
    path!(
        "keys/{name}/trim",
        [Update],
        Trim,
        "Delete versions below min_available_version."
    ),
    path!(
        "export/{kind}/{name}",
        [Read],
        Export,
        "Export every version of an exportable key."
    ),
    path!(
        "export/{kind}/{name}/{version}",
        [Read],
        ExportVersion,
        "Export one version of an exportable key."
    ),
    path!(
        "backup/{name}",
        [Read],
        Backup,
        "Back up a key (needs exportable and allow_plaintext_backup)."
    ),
    path!("restore", [Update], Restore, "Restore a key from a backup."),
    path!(
        "restore/{name}",
        [Update],
        RestoreNamed,
        "Restore a backup under a given name."
    ),
    path!(
        "encrypt/{name}",
        [Update],
        Encrypt,
        "Encrypt base64 plaintext."
    ),
    path!(
        "decrypt/{name}",
        [Update],
        Decrypt,
        "Decrypt a vault:vN: ciphertext."
    ),
    path!(
        "rewrap/{name}",
        [Update],
        Rewrap,
        "Re-encrypt a ciphertext with the latest (or given) version."
    ),
    path!(
        "datakey/{kind}/{name}",
        [Update],
        DataKey,
        "A fresh data key, wrapped (and in plaintext for kind=plaintext)."
    ),
    path!("hmac/{name}", [Update], Hmac, "HMAC of base64 input."),
    path!(
        "hmac/{name}/{alg}",
        [Update],
        HmacAlg,
        "HMAC with a named hash algorithm."
    ),
    path!(
        "sign/{name}",
        [Update],
        Sign,
        "Sign base64 input with an asymmetric key."
    ),
    path!(
        "sign/{name}/{alg}",
        [Update],
        SignAlg,
        "Sign with a named hash algorithm."
    ),
    path!(
        "verify/{name}",
        [Update],
        Verify,
        "Verify a signature or an HMAC."
    ),
    path!(
        "verify/{name}/{alg}",
        [Update],
        VerifyAlg,
        "Verify with a named hash algorithm."
    ),
    path!("hash", [Update], Hash, "Hash base64 input."),
    path!(
        "hash/{alg}",
        [Update],
        HashAlg,
        "Hash with a named algorithm."
    ),
    path!("random", [Update], Random, "Random bytes."),
    path!(
        "random/{a}",
        [Update],
        RandomA,
        "Random bytes: a count or a source."
    ),
    path!(
        "random/{a}/{b}",
        [Update],
        RandomAB,
        "Random bytes from a source."
    ),
    path!(
        "config/keys",
        [Read, Update],
        ConfigKeys,
        "Mount settings: disable_upsert."
    ),
];

const STRIPES: usize = 64;
/// Parsed keys kept in memory; past this the cache starts over.
const CACHE_MAX: usize = 4096;

/// `config/keys`.
#[derive(Serialize, Deserialize, Default, Clone, Copy)]
struct MountConfig {
    disable_upsert: bool,
}

/// The transit engine.
pub struct Transit {
    paths: PathTable<Route>,
    locks: Vec<Mutex<()>>,
    cache: std::sync::RwLock<HashMap<String, Arc<Key>>>,
}

/// Builds the transit engine for a mount.
pub fn factory(_entry: &MountEntry) -> Result<Arc<dyn Backend>, LogicalError> {
    Ok(Arc::new(Transit::new()?))
}

pub(crate) fn bad(m: impl Into<String>) -> LogicalError {
    LogicalError::BadRequest(m.into())
}

/// Applies `f` to a copy of `key` on a blocking thread: a change may generate
/// key material, and RSA generation takes long enough to stall async workers.
async fn changed<F>(key: &Key, f: F) -> Result<Key, LogicalError>
where
    F: FnOnce(&mut Key) -> Result<(), LogicalError> + Send + 'static,
{
    let mut next = key.clone();
    tokio::task::spawn_blocking(move || f(&mut next).map(|()| next))
        .await
        .map_err(|e| LogicalError::Internal(format!("transit key change failed: {e}")))?
}

fn storage_key(name: &str) -> String {
    format!("policy/{name}")
}

/// Vault's key name rule: word characters, `-`, `.` and `@`, not at the ends.
fn check_name(name: &str) -> Result<(), LogicalError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let inner_ok = name
        .chars()
        .all(|c| ok_char(c) || matches!(c, '-' | '.' | '@'));
    let ends_ok =
        name.chars().next().is_some_and(ok_char) && name.chars().last().is_some_and(ok_char);
    if inner_ok && ends_ok {
        Ok(())
    } else {
        Err(bad(format!(
            "invalid key name {name:?}: use letters, digits, '_', '-', '.' and '@', starting and ending with a letter, digit or '_'"
        )))
    }
}

impl Transit {
    fn new() -> Result<Self, LogicalError> {
        Ok(Self {
            paths: PathTable::new(PATHS).map_err(LogicalError::Internal)?,
            locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            cache: Default::default(),
        })
    }

    fn lock(&self, name: &str) -> &Mutex<()> {
        let mut h = DefaultHasher::new();
        name.hash(&mut h);
        &self.locks[(h.finish() as usize) % STRIPES]
    }

    fn cached(&self, name: &str) -> Option<Arc<Key>> {
        self.cache.read().ok()?.get(name).cloned()
    }

    /// Records (or forgets) a key; the caller holds the key's lock.
    fn remember(&self, name: &str, key: Option<Arc<Key>>) {
        let Ok(mut map) = self.cache.write() else {
            return;
        };
        match key {
            Some(k) => {
                if map.len() >= CACHE_MAX && !map.contains_key(name) {
                    map.clear();
                }
                map.insert(name.to_owned(), k);
            }
            None => {
                map.remove(name);
            }
        }
    }

    /// A key for use, from the cache or storage.
    async fn load(&self, st: &StorageView, name: &str) -> Result<Option<Arc<Key>>, LogicalError> {
        if let Some(k) = self.cached(name) {
            return Ok(Some(k));
        }
        let _g = self.lock(name).lock().await;
        self.load_locked(st, name).await
    }

    /// A key while holding its lock.
    async fn load_locked(
        &self,
        st: &StorageView,
        name: &str,
    ) -> Result<Option<Arc<Key>>, LogicalError> {
        if let Some(k) = self.cached(name) {
            return Ok(Some(k));
        }
        let Some(bytes) = st.get(&storage_key(name)).await? else {
            return Ok(None);
        };
        let key = Arc::new(Key::from_json(bytes.expose())?);
        self.remember(name, Some(key.clone()));
        Ok(Some(key))
    }

    /// Writes a key and keeps the cache in step; the caller holds the key's lock.
    async fn save(&self, st: &StorageView, key: Key) -> Result<Arc<Key>, LogicalError> {
        let name = key.s.name.clone();
        let bytes = key.to_json()?;
        match st.put(&storage_key(&name), &bytes).await {
            Ok(()) => {
                leak::index(st, &key);
                let key = Arc::new(key);
                self.remember(&name, Some(key.clone()));
                Ok(key)
            }
            Err(e) => {
                self.remember(&name, None);
                Err(e.into())
            }
        }
    }

    /// A key that must exist for the operation; `missing` is the error
    /// message when it does not (empty: a generic one).
    async fn need(
        &self,
        st: &StorageView,
        name: &str,
        missing: &str,
    ) -> Result<Arc<Key>, LogicalError> {
        self.load(st, name).await?.ok_or_else(|| {
            if missing.is_empty() {
                bad(format!("key {name:?} not found"))
            } else {
                bad(missing)
            }
        })
    }

    async fn mount_config(st: &StorageView) -> Result<MountConfig, LogicalError> {
        Ok(st.get_json("config/keys").await?.unwrap_or_default())
    }

    /// Rotates every key whose `auto_rotate_period` has passed at `now`; the
    /// new versions are created at `now`.
    pub(crate) async fn rotate_due(
        &self,
        st: &StorageView,
        now: time::OffsetDateTime,
    ) -> Result<usize, LogicalError> {
        let mut rotated = 0;
        for name in st.list("policy/").await? {
            let _g = self.lock(&name).lock().await;
            let Some(key) = self.load_locked(st, &name).await? else {
                continue;
            };
            if !key.rotation_due(now.unix_timestamp()) {
                continue;
            }
            let next = changed(&key, move |k| k.rotate(now)).await?;
            self.save(st, next).await?;
            st.publish(
                "transit/rotate",
                &format!("keys/{name}/rotate"),
                Some(&format!("keys/{name}")),
                &[
                    ("name", name.clone()),
                    ("latest_version", (key.s.latest_version + 1).to_string()),
                ],
            );
            tracing::info!(key = %name, version = key.s.latest_version + 1, "transit key rotated on schedule");
            rotated += 1;
        }
        Ok(rotated)
    }
}

/// Publishes a rotation made through `keys/<name>/rotate`, with the new
/// latest version when the answer carries it.
fn announce_rotation(st: &StorageView, name: &str, answer: Option<&Response>) {
    let mut extra = vec![("name", name.to_owned())];
    if let Some(v) = answer
        .and_then(|r| r.data.as_ref())
        .and_then(|d| d.get("latest_version"))
    {
        extra.push(("latest_version", v.to_string()));
    }
    st.publish(
        "transit/rotate",
        &format!("keys/{name}/rotate"),
        Some(&format!("keys/{name}")),
        &extra,
    );
}

#[async_trait]
impl Backend for Transit {
    async fn leak_reindex(&self, storage: &StorageView) -> Result<(), LogicalError> {
        self.leak_reindex_keys(storage).await
    }

    async fn leak_confirm(
        &self,
        storage: &StorageView,
        kind: coffer_core::leak::LeakKind,
        name: &str,
        print: &coffer_core::leak::Print,
    ) -> Result<Vec<coffer_core::leak::LeakMatch>, LogicalError> {
        match kind {
            coffer_core::leak::LeakKind::TransitKey => {
                self.leak_confirm_key(storage, name, print).await
            }
            _ => Ok(Vec::new()),
        }
    }

    async fn invalidate(&self, key: &str) {
        if let Some(name) = key.strip_prefix("policy/") {
            // Under the key's lock: a load in progress finishes first.
            let _g = self.lock(name).lock().await;
            self.remember(name, None);
        }
    }

    fn help(&self) -> coffer_core::paths::MountHelp {
        coffer_core::paths::MountHelp {
            description: "The transit engine: named keys that never leave the server encrypt, decrypt, rewrap, sign, verify, HMAC and make data keys; keys rotate, and old versions keep decrypting down to min_decryption_version.",
            paths: self.paths.docs(),
        }
    }

    async fn handle(&self, req: EngineRequest<'_>) -> Result<Option<Response>, LogicalError> {
        let m = self.paths.route(req.operation, req.path)?;
        let st = req.storage;
        let name = m.param("name");
        if !name.is_empty() {
            check_name(name)?;
        }
        let op = req.operation;
        let data = req.data;
        match m.route {
            Route::KeysList => Ok(Some(Response::list(
                st.list("policy/").await?.into_iter().collect(),
            ))),
            Route::Key => match op {
                Read => match self.load(st, name).await? {
                    Some(k) => Ok(Some(Response::data(k.api()?))),
                    None => Ok(None),
                },
                Delete => self.delete_key(st, name).await,
                _ => self.create_key(st, name, data).await,
            },
            Route::KeyConfig => self.configure(st, name, data).await,
            Route::Rotate => self.rotate(st, name).await,
            Route::Trim => self.trim(st, name, data).await,
            Route::Export => self.export(st, m.param("kind"), name, "").await,
            Route::ExportVersion => {
                self.export(st, m.param("kind"), name, m.param("version"))
                    .await
            }
            Route::Backup => self.backup(st, name).await,
            Route::Restore | Route::RestoreNamed => self.restore(st, name, data).await,
            Route::Encrypt => self.encrypt(st, name, data, op == Operation::Create).await,
            Route::Decrypt => self.decrypt(st, name, data).await,
            Route::Rewrap => self.rewrap(st, name, data).await,
            Route::DataKey => self.datakey(st, m.param("kind"), name, data).await,
            Route::Hmac | Route::HmacAlg => self.hmac(st, name, m.param("alg"), data).await,
            Route::Sign | Route::SignAlg => self.sign(st, name, m.param("alg"), data).await,
            Route::Verify | Route::VerifyAlg => self.verify(st, name, m.param("alg"), data).await,
            Route::Hash | Route::HashAlg => {
                coffer_core::tools::hash(data, m.param("alg")).map(Some)
            }
            Route::Random | Route::RandomA | Route::RandomAB => {
                coffer_core::tools::random(data, m.param("a"), m.param("b")).map(Some)
            }
            Route::ConfigKeys => match op {
                Read => {
                    let c = Self::mount_config(st).await?;
                    let mut m = serde_json::Map::new();
                    m.insert("disable_upsert".into(), c.disable_upsert.into());
                    Ok(Some(Response::data(m)))
                }
                _ => {
                    let mut c = Self::mount_config(st).await?;
                    if let Some(b) =
                        coffer_core::fields::Fields::new(data).bool("disable_upsert")?
                    {
                        c.disable_upsert = b;
                    }
                    st.put_json("config/keys", &c).await?;
                    Ok(None)
                }
            },
        }
    }

    async fn sign_for_core(
        &self,
        storage: &StorageView,
        key: &str,
        message: &[u8],
    ) -> Result<String, LogicalError> {
        use base64::Engine as _;
        check_name(key)?;
        let mut data = serde_json::Map::new();
        data.insert(
            "input".into(),
            base64::engine::general_purpose::STANDARD
                .encode(message)
                .into(),
        );
        let signed = self.sign(storage, key, "", &data).await?;
        signed
            .and_then(|r| r.data)
            .and_then(|d| {
                d.get("signature")
                    .and_then(|s| s.as_str())
                    .map(str::to_owned)
            })
            .ok_or_else(|| LogicalError::Internal(format!("transit key {key} gave no signature")))
    }

    /// `encrypt/:name` tells create from update, so a policy can allow
    /// encrypting with existing keys without allowing new ones. `keys/:name`
    /// is always an update, as in OpenBao (its audit log shows it).
    async fn exists(
        &self,
        path: &str,
        storage: &StorageView,
    ) -> Result<Option<bool>, LogicalError> {
        let name = match path.split_once('/') {
            Some(("encrypt", rest)) if !rest.is_empty() && !rest.contains('/') => rest,
            _ => return Ok(None),
        };
        if check_name(name).is_err() {
            return Ok(Some(false));
        }
        Ok(Some(self.load(storage, name).await?.is_some()))
    }

    async fn periodic(&self, storage: &StorageView) -> Result<(), LogicalError> {
        self.rotate_due(storage, time::OffsetDateTime::now_utc())
            .await
            .map(|_| ())
    }

    async fn rotation_status(
        &self,
        storage: &StorageView,
    ) -> Result<Vec<coffer_core::backend::RotationStatus>, LogicalError> {
        let mut out = Vec::new();
        for name in storage.list("policy/").await? {
            if let Some(k) = self.load(storage, &name).await?
                && let Some(due) = k.next_rotation()
            {
                out.push(coffer_core::backend::RotationStatus {
                    name: format!("keys/{name}"),
                    kind: "transit key",
                    period: k.s.auto_rotate_period,
                    last_success: Some(k.last_rotation()),
                    next_due: Some(due),
                    consecutive_failures: 0,
                    last_error: None,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffer_core::barrier::Barrier;
    use coffer_core::keyring::Keyring;
    use coffer_core::secret::Key32;
    use serde_json::json;

    async fn view() -> StorageView {
        let barrier = Arc::new(Barrier::new(Arc::new(coffer_storage::MemoryStorage::new())));
        barrier
            .initialize(
                Key32::random().unwrap(),
                Keyring::new(Key32::random().unwrap()),
            )
            .await
            .unwrap();
        StorageView::new(barrier, "logical/test/".into())
    }

    #[tokio::test]
    async fn keys_rotate_once_their_period_has_passed() {
        let st = view().await;
        let t = Transit::new().unwrap();
        let data = |v: serde_json::Value| v.as_object().unwrap().clone();
        t.create_key(&st, "hourly", &data(json!({"auto_rotate_period": "1h"})))
            .await
            .unwrap();
        t.create_key(&st, "manual", &data(json!({}))).await.unwrap();
        let now = time::OffsetDateTime::now_utc();
        let later = |secs: i64| now + time::Duration::seconds(secs);
        assert_eq!(t.rotate_due(&st, now).await.unwrap(), 0);
        assert_eq!(t.rotate_due(&st, later(3601)).await.unwrap(), 1);
        let hourly = t.load(&st, "hourly").await.unwrap().unwrap();
        assert_eq!(hourly.s.latest_version, 2);
        assert_eq!(
            t.load(&st, "manual")
                .await
                .unwrap()
                .unwrap()
                .s
                .latest_version,
            1
        );
        // The new version restarts the clock.
        assert_eq!(t.rotate_due(&st, later(3601 + 1800)).await.unwrap(), 0);
        assert_eq!(t.rotate_due(&st, later(3601 + 3600)).await.unwrap(), 1);
        // A fresh engine instance reads the rotated key back from storage.
        let again = Transit::new().unwrap();
        assert_eq!(
            again
                .load(&st, "hourly")
                .await
                .unwrap()
                .unwrap()
                .s
                .latest_version,
            3
        );
    }
}
