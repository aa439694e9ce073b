//! `hmac/`, `sign/` and `verify/`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use coffer_core::backend::StorageView;
use coffer_core::fields::Fields;
use coffer_core::tools::HashAlgorithm;
use coffer_core::{LogicalError, Response};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

use super::ciphertext::{self, b64_field};
use super::key::Key;
use super::material::{self, KeyType, Loaded, SaltLength, SignOptions};
use super::{Transit, bad, batch};

/// The hash algorithm: the path segment, else `hash_algorithm` (or the older `algorithm`), else SHA-256.
fn hash_of(f: &Fields<'_>, path_alg: &str) -> Result<HashAlgorithm, LogicalError> {
    let name = if path_alg.is_empty() {
        match f.str("hash_algorithm")? {
            Some(a) => a,
            None => f.str("algorithm")?.unwrap_or_else(|| "sha2-256".into()),
        }
    } else {
        path_alg.to_owned()
    };
    HashAlgorithm::parse(&name)
}

fn input(f: &Fields<'_>) -> Result<Vec<u8>, LogicalError> {
    let s = f.str("input")?.ok_or_else(|| bad("missing input"))?;
    b64_field(&s, "input")
}

fn version_param(f: &Fields<'_>) -> Result<u64, LogicalError> {
    Ok(f.int("key_version")?.map_or(0, |v| v.max(0) as u64))
}

fn sign_options(key: &Key, f: &Fields<'_>, path_alg: &str) -> Result<SignOptions, LogicalError> {
    let kt = key.s.key_type;
    let rsa_pss = match f.str("signature_algorithm")?.as_deref() {
        None | Some("") | Some("pss") => true,
        Some("pkcs1v15") => false,
        Some(other) => {
            return Err(bad(format!(
                "unsupported signature_algorithm {other:?}; use pss or pkcs1v15"
            )));
        }
    };
    let jws = match f.str("marshaling_algorithm")?.as_deref() {
        None | Some("") | Some("asn1") => false,
        Some("jws") if matches!(kt, KeyType::EcdsaP256 | KeyType::EcdsaP384) => true,
        Some("jws") => {
            return Err(bad(
                "marshaling_algorithm jws is only supported by ECDSA keys",
            ));
        }
        Some(other) => {
            return Err(bad(format!(
                "unsupported marshaling_algorithm {other:?}; use asn1 or jws"
            )));
        }
    };
    Ok(SignOptions {
        hash: hash_of(f, path_alg)?,
        prehashed: f.bool("prehashed")?.unwrap_or(false),
        rsa_pss,
        salt: SaltLength::parse(f.str("salt_length")?.as_deref().unwrap_or(""))?,
        jws,
    })
}

/// The signing key for one item: the version's, or one derived for the item's context.
fn signer(key: &Key, loaded: &Loaded, f: &Fields<'_>) -> Result<Option<Loaded>, LogicalError> {
    if !key.s.derived {
        return Ok(None);
    }
    let ctx = match f.str("context")? {
        Some(c) if !c.is_empty() => b64_field(&c, "context")?,
        _ => return Err(bad("missing 'context' for key derivation")),
    };
    material::derived_ed25519(loaded, &ctx).map(Some)
}

impl Transit {
    pub(super) async fn hmac(
        &self,
        st: &StorageView,
        name: &str,
        path_alg: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>, LogicalError> {
        let key = self.need(st, name, "").await?;
        batch::run(data, |item| {
            let f = Fields::new(item);
            let alg = hash_of(&f, path_alg)?;
            let (n, v) = key.for_writing(version_param(&f)?)?;
            let mac = material::hmac(alg, &v.stored.hmac_key, &input(&f)?)?;
            let mut m = Map::new();
            m.insert("hmac".into(), ciphertext::encode(n, &mac).into());
            Ok(m)
        })
        .map(Some)
    }

    pub(super) async fn sign(
        &self,
        st: &StorageView,
        name: &str,
        path_alg: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>, LogicalError> {
        let key = self.need(st, name, "").await?;
        let kt = key.s.key_type;
        if !kt.supports_signing() {
            return Err(bad(format!(
                "key type {} does not support signing",
                kt.as_str()
            )));
        }
        batch::run(data, |item| {
            let f = Fields::new(item);
            let o = sign_options(&key, &f, path_alg)?;
            let (n, v) = key.for_writing(version_param(&f)?)?;
            let derived = signer(&key, &v.loaded, &f)?;
            let loaded = derived.as_ref().unwrap_or(&v.loaded);
            let sig = material::sign(loaded, &o, &input(&f)?)?;
            // JWS signatures are URL-safe base64 without padding, as Vault's.
            let encoded = if o.jws {
                ciphertext::encode_with(n, &sig, &URL_SAFE_NO_PAD)
            } else {
                ciphertext::encode(n, &sig)
            };
            let mut m = Map::new();
            m.insert("signature".into(), encoded.into());
            m.insert("key_version".into(), n.into());
            if let Some(d) = &derived {
                m.insert("publickey".into(), material::public_key(d)?.into());
            }
            Ok(m)
        })
        .map(Some)
    }

    pub(super) async fn verify(
        &self,
        st: &StorageView,
        name: &str,
        path_alg: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>, LogicalError> {
        let key = self.need(st, name, "").await?;
        batch::run(data, |item| {
            let f = Fields::new(item);
            let valid = match (f.str("signature")?, f.str("hmac")?) {
                (Some(_), Some(_)) => {
                    return Err(bad("provide either 'signature' or 'hmac', not both"));
                }
                (None, None) => {
                    return Err(bad(
                        "neither a 'signature' nor an 'hmac' were given to verify",
                    ));
                }
                (None, Some(h)) => verify_hmac(&key, &f, path_alg, &h)?,
                (Some(s), None) => verify_signature(&key, &f, path_alg, &s)?,
            };
            let mut m = Map::new();
            m.insert("valid".into(), valid.into());
            Ok(m)
        })
        .map(Some)
    }
}

fn verify_hmac(
    key: &Key,
    f: &Fields<'_>,
    path_alg: &str,
    given: &str,
) -> Result<bool, LogicalError> {
    let (n, mac) = ciphertext::decode(given, "hmac")?;
    let v = key.for_reading(n)?;
    let expected = material::hmac(hash_of(f, path_alg)?, &v.stored.hmac_key, &input(f)?)?;
    Ok(expected.ct_eq(&mac).into())
}

fn verify_signature(
    key: &Key,
    f: &Fields<'_>,
    path_alg: &str,
    given: &str,
) -> Result<bool, LogicalError> {
    let kt = key.s.key_type;
    if !kt.supports_signing() {
        return Err(bad(format!(
            "key type {} does not support verification",
            kt.as_str()
        )));
    }
    let o = sign_options(key, f, path_alg)?;
    let (n, sig) = if o.jws {
        ciphertext::decode_with(given, "signature", &URL_SAFE_NO_PAD)?
    } else {
        ciphertext::decode(given, "signature")?
    };
    let v = key.for_reading(n)?;
    let derived = signer(key, &v.loaded, f)?;
    let loaded = derived.as_ref().unwrap_or(&v.loaded);
    material::verify(loaded, &o, &input(f)?, &sig)
}
