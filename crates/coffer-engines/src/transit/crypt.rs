//! `encrypt/`, `decrypt/`, `rewrap/` and `datakey/`.

use coffer_core::backend::StorageView;
use coffer_core::fields::Fields;
use coffer_core::{LogicalError, Response};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::ciphertext::{self, b64, b64_field};
use super::key::{Key, NewKey, Version};
use super::material::{self, KeyType};
use super::{Transit, bad, batch};

const MISSING_CONTEXT: &str = "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key";

/// An optional base64 field, decoded.
fn b64_opt(f: &Fields<'_>, field: &str) -> Result<Vec<u8>, LogicalError> {
    match f.str(field)? {
        Some(s) => b64_field(&s, field),
        None => Ok(Vec::new()),
    }
}

/// The derivation context of one item; derived keys need one.
fn context(key: &Key, f: &Fields<'_>) -> Result<Vec<u8>, LogicalError> {
    let ctx = b64_opt(f, "context")?;
    if key.s.derived && ctx.is_empty() {
        return Err(bad(MISSING_CONTEXT));
    }
    Ok(ctx)
}

fn key_version(f: &Fields<'_>) -> Result<u64, LogicalError> {
    match f.int("key_version")? {
        Some(v) if v < 0 => Err(bad("key_version must not be negative")),
        Some(v) => Ok(v as u64),
        None => Ok(0),
    }
}

/// Encrypts under one version; the item's `context` and `associated_data` apply.
fn seal(key: &Key, v: &Version, f: &Fields<'_>, plaintext: &[u8]) -> Result<Vec<u8>, LogicalError> {
    let kt = key.s.key_type;
    let ctx = context(key, f)?;
    let aad = b64_opt(f, "associated_data")?;
    if f.raw("nonce").is_some() && !key.s.convergent {
        return Err(bad("provided nonce not allowed for this key"));
    }
    if kt.is_aead() {
        let k = material::aead_key(kt, &v.loaded, key.s.derived, &ctx)?;
        let nonce = material::nonce_for(kt, &k, plaintext, key.s.convergent)?;
        material::aead_seal(kt, &k, &nonce, plaintext, &aad)
    } else if kt.is_rsa() {
        if !aad.is_empty() {
            return Err(bad("associated_data is only supported by AEAD key types"));
        }
        material::rsa_encrypt(&v.loaded, plaintext)
    } else {
        Err(bad(format!(
            "message encryption not supported for key type {}",
            kt.as_str()
        )))
    }
}

/// Decrypts a `vault:vN:` ciphertext.
fn open(key: &Key, f: &Fields<'_>, ct: &str) -> Result<Zeroizing<Vec<u8>>, LogicalError> {
    let kt = key.s.key_type;
    if !kt.supports_encryption() {
        return Err(bad(format!(
            "message decryption not supported for key type {}",
            kt.as_str()
        )));
    }
    let (n, blob) = ciphertext::decode(ct, "ciphertext")?;
    let v = key.for_reading(n)?;
    let ctx = context(key, f)?;
    let aad = b64_opt(f, "associated_data")?;
    if kt.is_aead() {
        let k = material::aead_key(kt, &v.loaded, key.s.derived, &ctx)?;
        material::aead_open(kt, &k, &blob, &aad)
    } else {
        material::rsa_decrypt(&v.loaded, &blob)
    }
}

fn required<'a>(f: &Fields<'a>, field: &str, what: &str) -> Result<String, LogicalError> {
    f.str(field)?
        .ok_or_else(|| bad(format!("missing {field} to {what}")))
}

fn ciphertext_answer(n: u64, sealed: &[u8]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("ciphertext".into(), ciphertext::encode(n, sealed).into());
    m.insert("key_version".into(), n.into());
    m
}

/// Whether a request (or any of its batch items) carries a context, so an
/// upserted key is created derived, as Vault does.
fn asks_for_derivation(data: &Map<String, Value>) -> bool {
    let has = |m: &Map<String, Value>| {
        m.get("context")
            .is_some_and(|c| c.as_str().is_some_and(|s| !s.is_empty()))
    };
    has(data)
        || data
            .get("batch_input")
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().filter_map(Value::as_object).any(has))
}

impl Transit {
    pub(super) async fn encrypt(
        &self,
        st: &StorageView,
        name: &str,
        data: &Map<String, Value>,
        creating: bool,
    ) -> Result<Option<Response>, LogicalError> {
        let key = match self.load(st, name).await? {
            Some(k) => k,
            None => self.upsert(st, name, data, creating).await?,
        };
        batch::run(data, |item| {
            let f = Fields::new(item);
            let pt = Zeroizing::new(b64_field(
                &required(&f, "plaintext", "encrypt")?,
                "plaintext",
            )?);
            let (n, v) = key.for_writing(key_version(&f)?)?;
            let sealed = seal(&key, v, &f, &pt)?;
            Ok(ciphertext_answer(n, &sealed))
        })
        .map(Some)
    }

    /// Creates the key an `encrypt/` names when it does not exist yet.
    async fn upsert(
        &self,
        st: &StorageView,
        name: &str,
        data: &Map<String, Value>,
        creating: bool,
    ) -> Result<std::sync::Arc<Key>, LogicalError> {
        if !creating || Self::mount_config(st).await?.disable_upsert {
            return Err(bad("encryption key not found"));
        }
        let f = Fields::new(data);
        let key_type = match f.str("type")? {
            Some(t) => KeyType::parse(&t)?,
            None => KeyType::Aes256Gcm96,
        };
        let convergent = f.bool("convergent_encryption")?.unwrap_or(false);
        let _g = self.lock(name).lock().await;
        if let Some(k) = self.load_locked(st, name).await? {
            return Ok(k);
        }
        let key = Key::create(
            name,
            NewKey {
                key_type,
                derived: asks_for_derivation(data) || convergent,
                convergent,
                exportable: false,
                allow_plaintext_backup: false,
                auto_rotate_period: 0,
                key_size: 0,
            },
        )?;
        self.save(st, key).await
    }

    pub(super) async fn decrypt(
        &self,
        st: &StorageView,
        name: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>, LogicalError> {
        let key = self.need(st, name, "encryption key not found").await?;
        let mut resp = batch::run(data, |item| {
            let f = Fields::new(item);
            let pt = open(&key, &f, &required(&f, "ciphertext", "decrypt")?)?;
            let mut m = Map::new();
            m.insert("plaintext".into(), b64(&pt).into());
            Ok(m)
        })?;
        // Vault's batch items always carry `plaintext`, empty on error.
        if let Some(Value::Array(items)) =
            resp.data.as_mut().and_then(|d| d.get_mut("batch_results"))
        {
            for item in items.iter_mut().filter_map(Value::as_object_mut) {
                item.entry("plaintext").or_insert_with(|| "".into());
            }
        }
        Ok(Some(resp))
    }

    pub(super) async fn rewrap(
        &self,
        st: &StorageView,
        name: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>, LogicalError> {
        let key = self.need(st, name, "encryption key not found").await?;
        batch::run(data, |item| {
            let f = Fields::new(item);
            let pt = open(&key, &f, &required(&f, "ciphertext", "rewrap")?)?;
            let (n, v) = key.for_writing(key_version(&f)?)?;
            let sealed = seal(&key, v, &f, &pt)?;
            Ok(ciphertext_answer(n, &sealed))
        })
        .map(Some)
    }

    pub(super) async fn datakey(
        &self,
        st: &StorageView,
        kind: &str,
        name: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>, LogicalError> {
        let with_plaintext = match kind {
            "plaintext" => true,
            "wrapped" => false,
            other => {
                return Err(bad(format!(
                    "invalid data key type {other:?}; use plaintext or wrapped"
                )));
            }
        };
        let key = self.need(st, name, "encryption key not found").await?;
        let f = Fields::new(data);
        let bits = f.int("bits")?.unwrap_or(256);
        if !matches!(bits, 128 | 256 | 512) {
            return Err(bad("invalid bit length: use 128, 256 or 512"));
        }
        let fresh = material::random(bits as usize / 8)?;
        let (n, v) = key.for_writing(key_version(&f)?)?;
        let sealed = seal(&key, v, &f, &fresh)?;
        let mut m = ciphertext_answer(n, &sealed);
        if with_plaintext {
            m.insert("plaintext".into(), b64(&fresh).into());
        }
        Ok(Some(Response::data(m)))
    }
}
