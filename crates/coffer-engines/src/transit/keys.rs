//! Key management: create, delete, config, rotate, trim, export, backup, restore.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use coffer_core::backend::StorageView;
use coffer_core::fields::Fields;
use coffer_core::{LogicalError, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::key::{BackupInfo, Key, NewKey, StoredKey, check_rotate_period, rfc3339};
use super::material::{self, KeyType};
use super::{Transit, bad, storage_key};

/// A backup: the stored key as it is (`StoredRef` when written, `StoredKey`
/// when read back), with when it was taken.
#[derive(Serialize, Deserialize)]
struct Backup<K> {
    key: K,
    time: String,
}

fn key_info(key: &Key) -> Result<Option<Response>, LogicalError> {
    Ok(Some(Response::data(key.api()?)))
}

fn version_of(v: &str) -> Result<Option<u64>, LogicalError> {
    match v {
        "" => Ok(None),
        "latest" => Ok(Some(0)),
        n => n
            .parse::<u64>()
            .map(Some)
            .map_err(|_| bad(format!("invalid version {n:?}: use a number or \"latest\""))),
    }
}

impl Transit {
    pub(super) async fn create_key(
        &self,
        st: &StorageView,
        name: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>, LogicalError> {
        let f = Fields::new(data);
        let key_type = match f.str("type")? {
            Some(t) if !t.is_empty() => KeyType::parse(&t)?,
            _ => KeyType::Aes256Gcm96,
        };
        let convergent = f.bool("convergent_encryption")?.unwrap_or(false);
        let opts = NewKey {
            key_type,
            derived: f.bool("derived")?.unwrap_or(false),
            convergent,
            exportable: f.bool("exportable")?.unwrap_or(false),
            allow_plaintext_backup: f.bool("allow_plaintext_backup")?.unwrap_or(false),
            auto_rotate_period: f.duration("auto_rotate_period")?.unwrap_or(0),
            key_size: f.int("key_size")?.map_or(0, |n| n.max(0) as usize),
        };
        let _g = self.lock(name).lock().await;
        if let Some(existing) = self.load_locked(st, name).await? {
            // As Vault: creating an existing key changes nothing and shows it.
            return key_info(&existing);
        }
        // RSA key generation takes a while; keep it off the async workers.
        let name_owned = name.to_owned();
        let key = tokio::task::spawn_blocking(move || Key::create(&name_owned, opts))
            .await
            .map_err(|e| LogicalError::Internal(format!("key generation failed: {e}")))??;
        let key = self.save(st, key).await?;
        key_info(&key)
    }

    pub(super) async fn delete_key(
        &self,
        st: &StorageView,
        name: &str,
    ) -> Result<Option<Response>, LogicalError> {
        let _g = self.lock(name).lock().await;
        let Some(key) = self.load_locked(st, name).await? else {
            return Ok(None);
        };
        if !key.s.deletion_allowed {
            return Err(bad(format!(
                "error deleting policy {name}: deletion is not allowed for this key"
            )));
        }
        let res = st.delete(&storage_key(name)).await;
        self.remember(name, None);
        res?;
        if let Some(leak) = st.leak() {
            leak.remove(coffer_core::leak::LeakKind::TransitKey, name);
        }
        Ok(None)
    }

    /// Applies a change to an existing key under its lock, then stores it.
    async fn change<F>(
        &self,
        st: &StorageView,
        name: &str,
        f: F,
    ) -> Result<Option<Response>, LogicalError>
    where
        F: FnOnce(&mut Key) -> Result<(), LogicalError> + Send + 'static,
    {
        let _g = self.lock(name).lock().await;
        let Some(key) = self.load_locked(st, name).await? else {
            return Err(bad(format!("no existing key named {name} could be found")));
        };
        let next = super::changed(&key, f).await?;
        let saved = self.save(st, next).await?;
        key_info(&saved)
    }

    pub(super) async fn configure(
        &self,
        st: &StorageView,
        name: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>, LogicalError> {
        let f = Fields::new(data);
        let min_dec = f.int("min_decryption_version")?;
        let min_enc = f.int("min_encryption_version")?;
        let deletion_allowed = f.bool("deletion_allowed")?;
        let exportable = f.bool("exportable")?;
        let plaintext_backup = f.bool("allow_plaintext_backup")?;
        let period = f.duration("auto_rotate_period")?;
        if let Some(p) = period {
            check_rotate_period(p)?;
        }
        self.change(st, name, move |k| {
            let s = &mut k.s;
            let dec = min_dec.map_or(s.min_decryption_version, |v| v.max(1) as u64);
            let enc = min_enc.map_or(s.min_encryption_version, |v| v.max(0) as u64);
            if dec > s.latest_version {
                return Err(bad(format!(
                    "cannot set min decryption version of {dec}, latest key version is {}",
                    s.latest_version
                )));
            }
            if enc > s.latest_version {
                return Err(bad(format!(
                    "cannot set min encryption version of {enc}, latest key version is {}",
                    s.latest_version
                )));
            }
            if enc != 0 && enc < dec {
                return Err(bad(format!(
                    "cannot set min encryption/decryption values; min encryption version of {enc} must be greater than or equal to min decryption version of {dec}"
                )));
            }
            if dec < s.min_available_version {
                return Err(bad(format!(
                    "cannot set min decryption version of {dec} below the min available version {}",
                    s.min_available_version
                )));
            }
            s.min_decryption_version = dec;
            s.min_encryption_version = enc;
            if let Some(b) = deletion_allowed {
                s.deletion_allowed = b;
            }
            // Once on, exportable and allow_plaintext_backup stay on (as in Vault).
            if exportable == Some(true) {
                s.exportable = true;
            }
            if plaintext_backup == Some(true) {
                s.allow_plaintext_backup = true;
            }
            if let Some(p) = period {
                s.auto_rotate_period = p;
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn rotate(
        &self,
        st: &StorageView,
        name: &str,
    ) -> Result<Option<Response>, LogicalError> {
        let out = self
            .change(st, name, |k| k.rotate(OffsetDateTime::now_utc()))
            .await?;
        super::announce_rotation(st, name, out.as_ref());
        Ok(out)
    }

    pub(super) async fn trim(
        &self,
        st: &StorageView,
        name: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>, LogicalError> {
        let min = Fields::new(data)
            .int("min_available_version")?
            .ok_or_else(|| bad("missing min_available_version"))?;
        self.change(st, name, move |k| k.trim(min.max(0) as u64))
            .await
    }

    pub(super) async fn export(
        &self,
        st: &StorageView,
        kind: &str,
        name: &str,
        version: &str,
    ) -> Result<Option<Response>, LogicalError> {
        let Some(key) = self.load(st, name).await? else {
            return Ok(None);
        };
        let kt = key.s.key_type;
        match kind {
            "encryption-key" if !kt.supports_encryption() => {
                return Err(bad("encryption not supported for the key"));
            }
            "signing-key" if !kt.supports_signing() => {
                return Err(bad("signing not supported for the key"));
            }
            "public-key" if !kt.is_asymmetric() => {
                return Err(bad("public key not available for the key type"));
            }
            "encryption-key" | "signing-key" | "hmac-key" | "public-key" => {}
            other => {
                return Err(bad(format!(
                    "invalid export type {other:?}; use encryption-key, signing-key, hmac-key or public-key"
                )));
            }
        }
        if kind != "public-key" && !key.s.exportable {
            return Err(bad("private key material is not exportable"));
        }
        let wanted: Vec<u64> = match version_of(version)? {
            None => key.versions.keys().copied().collect(),
            Some(0) => vec![key.s.latest_version],
            Some(n) => vec![n],
        };
        let mut keys = Map::new();
        for n in wanted {
            let v = key
                .versions
                .get(&n)
                .ok_or_else(|| bad(format!("version {n} of key {name} does not exist")))?;
            let text = match kind {
                "hmac-key" => Zeroizing::new(STANDARD.encode(v.stored.hmac_key.as_slice())),
                "public-key" => Zeroizing::new(material::public_key(&v.loaded)?),
                _ => material::private_export(&v.loaded)?,
            };
            keys.insert(n.to_string(), text.trim_end().into());
        }
        let mut m = Map::new();
        m.insert("name".into(), name.into());
        m.insert("type".into(), kt.as_str().into());
        m.insert("keys".into(), Value::Object(keys));
        Ok(Some(Response::data(m)))
    }

    pub(super) async fn backup(
        &self,
        st: &StorageView,
        name: &str,
    ) -> Result<Option<Response>, LogicalError> {
        let _g = self.lock(name).lock().await;
        let Some(key) = self.load_locked(st, name).await? else {
            return Ok(None);
        };
        if !key.s.exportable {
            return Err(bad("exporting is disallowed on the policy"));
        }
        if !key.s.allow_plaintext_backup {
            return Err(bad("plaintext backup is disallowed on the policy"));
        }
        let now = rfc3339(OffsetDateTime::now_utc());
        let mut next = (*key).clone();
        next.s.backup_info = Some(BackupInfo {
            time: now.clone(),
            version: next.s.latest_version,
        });
        let blob = Zeroizing::new(
            serde_json::to_vec(&Backup {
                key: next.stored(),
                time: now,
            })
            .map_err(|e| LogicalError::Internal(e.to_string()))?,
        );
        self.save(st, next).await?;
        let mut m = Map::new();
        m.insert("backup".into(), STANDARD.encode(blob.as_slice()).into());
        Ok(Some(Response::data(m)))
    }

    pub(super) async fn restore(
        &self,
        st: &StorageView,
        name: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>, LogicalError> {
        let f = Fields::new(data);
        let blob = f
            .str("backup")?
            .ok_or_else(|| bad("'backup' must be supplied"))?;
        let force = f.bool("force")?.unwrap_or(false);
        let raw = Zeroizing::new(
            STANDARD
                .decode(blob.trim())
                .map_err(|_| bad("the backup is not valid base64"))?,
        );
        let mut backup: Backup<StoredKey> = serde_json::from_slice(&raw).map_err(|e| {
            bad(format!(
                "the backup is not a coffer transit key backup: {e}"
            ))
        })?;
        if !name.is_empty() {
            backup.key.settings.name = name.to_owned();
        }
        let target = backup.key.settings.name.clone();
        super::check_name(&target)?;
        let s = &backup.key.settings;
        if !backup.key.versions.contains_key(&s.latest_version) {
            return Err(bad("the backup is damaged: its latest version is missing"));
        }
        let key = Key::from_stored(backup.key)?;
        let _g = self.lock(&target).lock().await;
        if !force && self.load_locked(st, &target).await?.is_some() {
            return Err(bad(format!(
                "key {target:?} already exists; restore with force=true to replace it"
            )));
        }
        self.save(st, key).await?;
        Ok(None)
    }
}
