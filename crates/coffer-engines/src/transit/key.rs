//! A named transit key: its settings and versions, as stored behind the
//! barrier and as held (parsed) in memory.

use std::collections::BTreeMap;

use coffer_core::LogicalError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::Zeroizing;

use super::bad;
use super::material::{self, KeyType, Loaded};

/// Everything about a key but its material.
#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct Settings {
    pub name: String,
    #[serde(rename = "type")]
    pub key_type: KeyType,
    pub derived: bool,
    pub convergent: bool,
    pub exportable: bool,
    pub allow_plaintext_backup: bool,
    pub deletion_allowed: bool,
    pub min_decryption_version: u64,
    pub min_encryption_version: u64,
    pub min_available_version: u64,
    pub latest_version: u64,
    /// Seconds; 0 turns automatic rotation off.
    pub auto_rotate_period: u64,
    /// Bytes of an `hmac` key's material.
    pub key_size: usize,
    /// When the key was last backed up, and at which version.
    #[serde(default)]
    pub backup_info: Option<BackupInfo>,
}

/// Shown in the key's read output after a backup.
#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct BackupInfo {
    pub time: String,
    pub version: u64,
}

/// One version's material, base64 in the stored JSON.
#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct StoredVersion {
    /// RFC 3339 with nanoseconds.
    pub created: String,
    #[serde(with = "b64")]
    pub key: Zeroizing<Vec<u8>>,
    /// Every version has its own HMAC key, so `hmac/` works with any key type.
    #[serde(with = "b64")]
    pub hmac_key: Zeroizing<Vec<u8>>,
}

/// The stored form: `policy/<name>`.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredKey {
    pub settings: Settings,
    pub versions: BTreeMap<u64, StoredVersion>,
}

/// The stored form borrowed from a key in memory (no copy of the material).
#[derive(Serialize)]
pub(crate) struct StoredRef<'a> {
    settings: &'a Settings,
    versions: BTreeMap<u64, &'a StoredVersion>,
}

/// A version with its material parsed.
#[derive(Clone)]
pub(crate) struct Version {
    pub stored: StoredVersion,
    pub created_unix: i64,
    pub loaded: Loaded,
}

/// A key as the engine uses it.
#[derive(Clone)]
pub(crate) struct Key {
    pub s: Settings,
    pub versions: BTreeMap<u64, Version>,
}

mod b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub fn serialize<S: Serializer>(v: &Zeroizing<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&Zeroizing::new(
            base64::engine::general_purpose::STANDARD.encode(v.as_slice()),
        ))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Zeroizing<Vec<u8>>, D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map(Zeroizing::new)
            .map_err(serde::de::Error::custom)
    }
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Options of a new key (`POST keys/:name`, or an upsert by `encrypt/`).
pub(crate) struct NewKey {
    pub key_type: KeyType,
    pub derived: bool,
    pub convergent: bool,
    pub exportable: bool,
    pub allow_plaintext_backup: bool,
    pub auto_rotate_period: u64,
    pub key_size: usize,
}

/// `auto_rotate_period` must be off or at least an hour, as in Vault.
pub(crate) fn check_rotate_period(secs: u64) -> Result<(), LogicalError> {
    if secs != 0 && secs < 3600 {
        return Err(bad(
            "auto rotate period must be 0 to disable or at least an hour",
        ));
    }
    Ok(())
}

impl Version {
    fn new(kt: KeyType, key_size: usize, at: OffsetDateTime) -> Result<Self, LogicalError> {
        let key = material::generate(kt, key_size)?;
        let hmac_key = if kt == KeyType::Hmac {
            key.clone()
        } else {
            material::random(32)?
        };
        let loaded = Loaded::load(kt, &key)?;
        Ok(Self {
            stored: StoredVersion {
                created: rfc3339(at),
                key,
                hmac_key,
            },
            created_unix: at.unix_timestamp(),
            loaded,
        })
    }

    fn from_stored(kt: KeyType, stored: StoredVersion) -> Result<Self, LogicalError> {
        let created_unix = OffsetDateTime::parse(&stored.created, &Rfc3339)
            .map(|t| t.unix_timestamp())
            .unwrap_or_default();
        let loaded = Loaded::load(kt, &stored.key)?;
        Ok(Self {
            stored,
            created_unix,
            loaded,
        })
    }
}

impl Key {
    /// A new key with version 1.
    pub(crate) fn create(name: &str, o: NewKey) -> Result<Self, LogicalError> {
        let kt = o.key_type;
        if o.derived && !kt.supports_derivation() {
            return Err(bad(format!(
                "key derivation is not supported for key type {}",
                kt.as_str()
            )));
        }
        if o.convergent && !o.derived {
            return Err(bad(
                "convergent encryption requires derivation to be enabled, so context is required",
            ));
        }
        if o.convergent && !kt.is_aead() {
            return Err(bad(format!(
                "convergent encryption is not supported for key type {}",
                kt.as_str()
            )));
        }
        check_rotate_period(o.auto_rotate_period)?;
        let key_size = if kt == KeyType::Hmac {
            let n = if o.key_size == 0 { 32 } else { o.key_size };
            if !(32..=512).contains(&n) {
                return Err(bad(
                    "key_size must be between 32 and 512 bytes for hmac keys",
                ));
            }
            n
        } else {
            if o.key_size != 0 {
                return Err(bad("key_size is only valid for hmac keys"));
            }
            0
        };
        let v1 = Version::new(kt, key_size, OffsetDateTime::now_utc())?;
        Ok(Self {
            s: Settings {
                name: name.to_owned(),
                key_type: kt,
                derived: o.derived,
                convergent: o.convergent,
                exportable: o.exportable,
                allow_plaintext_backup: o.allow_plaintext_backup,
                deletion_allowed: false,
                min_decryption_version: 1,
                min_encryption_version: 0,
                min_available_version: 0,
                latest_version: 1,
                auto_rotate_period: o.auto_rotate_period,
                key_size,
                backup_info: None,
            },
            versions: BTreeMap::from([(1, v1)]),
        })
    }

    /// Parses the stored JSON.
    pub(crate) fn from_json(bytes: &[u8]) -> Result<Self, LogicalError> {
        let stored: StoredKey = serde_json::from_slice(bytes)
            .map_err(|e| LogicalError::Internal(format!("stored transit key is corrupt: {e}")))?;
        Self::from_stored(stored)
    }

    pub(crate) fn from_stored(stored: StoredKey) -> Result<Self, LogicalError> {
        let kt = stored.settings.key_type;
        let versions = stored
            .versions
            .into_iter()
            .map(|(n, v)| Ok((n, Version::from_stored(kt, v)?)))
            .collect::<Result<_, LogicalError>>()?;
        Ok(Self {
            s: stored.settings,
            versions,
        })
    }

    /// The stored form, borrowed.
    pub(crate) fn stored(&self) -> StoredRef<'_> {
        StoredRef {
            settings: &self.s,
            versions: self.versions.iter().map(|(n, v)| (*n, &v.stored)).collect(),
        }
    }

    /// The stored JSON (holds key material: it only ever goes to the barrier or a backup).
    pub(crate) fn to_json(&self) -> Result<Zeroizing<Vec<u8>>, LogicalError> {
        serde_json::to_vec(&self.stored())
            .map(Zeroizing::new)
            .map_err(|e| LogicalError::Internal(e.to_string()))
    }

    /// Adds a new latest version.
    pub(crate) fn rotate(&mut self, at: OffsetDateTime) -> Result<(), LogicalError> {
        let n = self.s.latest_version + 1;
        let v = Version::new(self.s.key_type, self.s.key_size, at)?;
        self.versions.insert(n, v);
        self.s.latest_version = n;
        Ok(())
    }

    /// Whether automatic rotation is due at `now` (unix seconds).
    pub(crate) fn rotation_due(&self, now: i64) -> bool {
        self.next_rotation().is_some_and(|due| now >= due)
    }

    /// When the latest version was made (unix seconds).
    pub(crate) fn last_rotation(&self) -> i64 {
        self.versions
            .get(&self.s.latest_version)
            .map_or(0, |v| v.created_unix)
    }

    /// When automatic rotation is next due; `None` without `auto_rotate_period`.
    pub(crate) fn next_rotation(&self) -> Option<i64> {
        let period = self.s.auto_rotate_period as i64;
        (period > 0).then(|| self.last_rotation() + period)
    }

    /// Drops versions below `min_available`.
    pub(crate) fn trim(&mut self, min_available: u64) -> Result<(), LogicalError> {
        if self.s.min_encryption_version == 0 {
            return Err(bad(
                "minimum available version cannot be set when minimum encryption version is not set",
            ));
        }
        if min_available < 1 {
            return Err(bad("minimum available version should be positive"));
        }
        if min_available < self.s.min_available_version {
            return Err(bad(
                "minimum available version should not be less than the existing value",
            ));
        }
        if min_available > self.s.min_decryption_version {
            return Err(bad(
                "minimum available version should not be greater than the minimum decryption version",
            ));
        }
        if min_available > self.s.min_encryption_version {
            return Err(bad(
                "minimum available version should not be greater than the minimum encryption version",
            ));
        }
        self.versions.retain(|n, _| *n >= min_available);
        self.s.min_available_version = min_available;
        Ok(())
    }

    /// The version an encryption, signature or HMAC uses: `requested` (0 = latest).
    pub(crate) fn for_writing(&self, requested: u64) -> Result<(u64, &Version), LogicalError> {
        let n = if requested == 0 {
            self.s.latest_version
        } else {
            requested
        };
        if n > self.s.latest_version {
            return Err(bad(
                "requested version for encryption is higher than the latest key version",
            ));
        }
        if n < self.s.min_encryption_version {
            return Err(bad(
                "requested version for encryption is less than the minimum encryption key version",
            ));
        }
        let v = self
            .versions
            .get(&n)
            .ok_or_else(|| bad("requested key version has been trimmed"))?;
        Ok((n, v))
    }

    /// The version a decryption or verification uses.
    pub(crate) fn for_reading(&self, n: u64) -> Result<&Version, LogicalError> {
        let n = n.max(1);
        if n > self.s.latest_version {
            return Err(bad("invalid ciphertext: version is too new"));
        }
        if n < self.s.min_decryption_version {
            return Err(bad(
                "ciphertext or signature version is disallowed by policy (too old)",
            ));
        }
        self.versions
            .get(&n)
            .ok_or_else(|| bad("ciphertext or signature version is disallowed by policy (too old)"))
    }

    /// The `keys/:name` read answer: settings and public material only.
    pub(crate) fn api(&self) -> Result<Map<String, Value>, LogicalError> {
        let kt = self.s.key_type;
        let mut keys = Map::new();
        // Like OpenBao, versions below min_decryption_version are not listed.
        let shown = self
            .versions
            .range(self.s.min_decryption_version..)
            .filter(|(n, _)| **n >= self.s.min_available_version);
        for (n, v) in shown {
            let entry = if kt.is_asymmetric() {
                json!({
                    "name": kt.public_name(),
                    "public_key": if self.s.derived { String::new() } else { material::public_key(&v.loaded)? },
                    "creation_time": v.stored.created,
                    "certificate_chain": "",
                })
            } else {
                json!(v.created_unix)
            };
            keys.insert(n.to_string(), entry);
        }
        let mut m = match json!({
            "name": self.s.name,
            "type": kt.as_str(),
            "derived": self.s.derived,
            "deletion_allowed": self.s.deletion_allowed,
            "exportable": self.s.exportable,
            "allow_plaintext_backup": self.s.allow_plaintext_backup,
            "min_decryption_version": self.s.min_decryption_version,
            "min_encryption_version": self.s.min_encryption_version,
            "min_available_version": self.s.min_available_version,
            "latest_version": self.s.latest_version,
            "supports_encryption": kt.supports_encryption(),
            "supports_decryption": kt.supports_encryption(),
            "supports_signing": kt.supports_signing(),
            "supports_derivation": kt.supports_derivation(),
            "auto_rotate_period": self.s.auto_rotate_period,
            "imported_key": false,
            "soft_deleted": false,
            "keys": keys,
        }) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        if self.s.derived {
            m.insert("kdf".into(), json!("hkdf_sha256"));
            m.insert("convergent_encryption".into(), json!(self.s.convergent));
            if self.s.convergent {
                m.insert("convergent_encryption_version".into(), json!(3));
            }
        }
        if let Some(b) = &self.s.backup_info {
            m.insert(
                "backup_info".into(),
                json!({"time": b.time, "version": b.version}),
            );
        }
        if kt == KeyType::Hmac {
            m.insert("key_size".into(), json!(self.s.key_size));
        }
        Ok(m)
    }
}
