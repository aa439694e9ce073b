//! Key types, their material, and the cryptography done with it. Every
//! primitive comes from RustCrypto; nothing here implements one.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use coffer_core::LogicalError;
use coffer_core::tools::HashAlgorithm;
use ed25519_dalek::{Signer as _, Verifier as _};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::pkcs8::{EncodePublicKey, LineEnding};
use rand_core::OsRng;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, Pkcs1v15Sign, Pss, RsaPrivateKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::bad;

/// A transit key's type, by Vault's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum KeyType {
    #[serde(rename = "aes128-gcm96")]
    Aes128Gcm96,
    #[serde(rename = "aes256-gcm96")]
    Aes256Gcm96,
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
    #[serde(rename = "xchacha20-poly1305")]
    XChaCha20Poly1305,
    #[serde(rename = "ed25519")]
    Ed25519,
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    #[serde(rename = "rsa-4096")]
    Rsa4096,
    #[serde(rename = "hmac")]
    Hmac,
}

impl KeyType {
    pub(crate) fn parse(s: &str) -> Result<Self, LogicalError> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
            bad(format!(
                "unknown key type {s:?}; use aes128-gcm96, aes256-gcm96, chacha20-poly1305, xchacha20-poly1305, ed25519, ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096 or hmac"
            ))
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Aes128Gcm96 => "aes128-gcm96",
            Self::Aes256Gcm96 => "aes256-gcm96",
            Self::ChaCha20Poly1305 => "chacha20-poly1305",
            Self::XChaCha20Poly1305 => "xchacha20-poly1305",
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256 => "ecdsa-p256",
            Self::EcdsaP384 => "ecdsa-p384",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
            Self::Hmac => "hmac",
        }
    }

    /// Symmetric AEAD types (the ones with a nonce and associated data).
    pub(crate) fn is_aead(self) -> bool {
        matches!(
            self,
            Self::Aes128Gcm96
                | Self::Aes256Gcm96
                | Self::ChaCha20Poly1305
                | Self::XChaCha20Poly1305
        )
    }

    pub(crate) fn is_rsa(self) -> bool {
        matches!(self, Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096)
    }

    pub(crate) fn is_asymmetric(self) -> bool {
        self.is_rsa() || matches!(self, Self::Ed25519 | Self::EcdsaP256 | Self::EcdsaP384)
    }

    pub(crate) fn supports_encryption(self) -> bool {
        self.is_aead() || self.is_rsa()
    }

    pub(crate) fn supports_signing(self) -> bool {
        self.is_asymmetric()
    }

    /// Types whose key can be derived per context (HKDF).
    pub(crate) fn supports_derivation(self) -> bool {
        self.is_aead() || self == Self::Ed25519
    }

    fn nonce_len(self) -> usize {
        if self == Self::XChaCha20Poly1305 {
            24
        } else {
            12
        }
    }

    /// Bytes of symmetric material (or seed) for the types that have a fixed size.
    fn secret_len(self) -> usize {
        match self {
            Self::Aes128Gcm96 => 16,
            Self::EcdsaP384 => 48,
            _ => 32,
        }
    }

    /// The curve or algorithm name shown with an asymmetric key's public half.
    pub(crate) fn public_name(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256 => "P-256",
            Self::EcdsaP384 => "P-384",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
            _ => "",
        }
    }
}

fn internal(e: impl std::fmt::Display) -> LogicalError {
    LogicalError::Internal(format!("transit: {e}"))
}

/// Fresh random bytes from the operating system's CSPRNG.
pub(crate) fn random(n: usize) -> Result<Zeroizing<Vec<u8>>, LogicalError> {
    coffer_core::secret::random_bytes(n)
        .map(Zeroizing::new)
        .map_err(internal)
}

/// New material for a key version: the raw secret for symmetric types and
/// ed25519/ECDSA (seed or scalar), PKCS#8 DER for RSA.
pub(crate) fn generate(kt: KeyType, hmac_size: usize) -> Result<Zeroizing<Vec<u8>>, LogicalError> {
    match kt {
        KeyType::Hmac => random(hmac_size),
        KeyType::EcdsaP256 => Ok(Zeroizing::new(
            p256::SecretKey::random(&mut OsRng).to_bytes().to_vec(),
        )),
        KeyType::EcdsaP384 => Ok(Zeroizing::new(
            p384::SecretKey::random(&mut OsRng).to_bytes().to_vec(),
        )),
        KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
            let bits = match kt {
                KeyType::Rsa2048 => 2048,
                KeyType::Rsa3072 => 3072,
                _ => 4096,
            };
            let key = RsaPrivateKey::new(&mut OsRng, bits).map_err(internal)?;
            let der = key.to_pkcs8_der().map_err(internal)?;
            Ok(Zeroizing::new(der.as_bytes().to_vec()))
        }
        _ => random(kt.secret_len()),
    }
}

/// A key version's material, parsed once and kept for the key's life in memory.
#[derive(Clone)]
pub(crate) enum Loaded {
    /// AEAD key, seed of a derived key, or HMAC key.
    Bytes(Zeroizing<Vec<u8>>),
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Rsa(Box<RsaPrivateKey>),
}

impl Loaded {
    pub(crate) fn load(kt: KeyType, raw: &[u8]) -> Result<Self, LogicalError> {
        let corrupt =
            |e: &dyn std::fmt::Display| internal(format!("stored {} key: {e}", kt.as_str()));
        Ok(match kt {
            KeyType::Ed25519 => {
                let seed: [u8; 32] = raw.try_into().map_err(|_| corrupt(&"bad seed length"))?;
                Self::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed))
            }
            KeyType::EcdsaP256 => {
                Self::P256(p256::ecdsa::SigningKey::from_slice(raw).map_err(|e| corrupt(&e))?)
            }
            KeyType::EcdsaP384 => {
                Self::P384(p384::ecdsa::SigningKey::from_slice(raw).map_err(|e| corrupt(&e))?)
            }
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => Self::Rsa(Box::new(
                RsaPrivateKey::from_pkcs8_der(raw).map_err(|e| corrupt(&e))?,
            )),
            _ => Self::Bytes(Zeroizing::new(raw.to_vec())),
        })
    }

    fn bytes(&self) -> Result<&[u8], LogicalError> {
        match self {
            Self::Bytes(b) => Ok(b),
            _ => Err(internal("key holds no symmetric material")),
        }
    }

    fn rsa(&self) -> Result<&RsaPrivateKey, LogicalError> {
        match self {
            Self::Rsa(k) => Ok(k),
            _ => Err(internal("not an RSA key")),
        }
    }
}

/// HKDF-SHA256 of `key` with the context as info: one key per context.
pub(crate) fn derive(
    key: &[u8],
    context: &[u8],
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, LogicalError> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    Hkdf::<sha2::Sha256>::new(None, key)
        .expand(context, &mut out)
        .map_err(internal)?;
    Ok(out)
}

/// HMAC with any of the named hash functions.
pub(crate) fn hmac(alg: HashAlgorithm, key: &[u8], input: &[u8]) -> Result<Vec<u8>, LogicalError> {
    macro_rules! mac {
        ($h:ty) => {{
            let mut m = <Hmac<$h> as Mac>::new_from_slice(key).map_err(internal)?;
            m.update(input);
            m.finalize().into_bytes().to_vec()
        }};
    }
    Ok(match alg {
        HashAlgorithm::Sha2_224 => mac!(sha2::Sha224),
        HashAlgorithm::Sha2_256 => mac!(sha2::Sha256),
        HashAlgorithm::Sha2_384 => mac!(sha2::Sha384),
        HashAlgorithm::Sha2_512 => mac!(sha2::Sha512),
        HashAlgorithm::Sha3_224 => mac!(sha3::Sha3_224),
        HashAlgorithm::Sha3_256 => mac!(sha3::Sha3_256),
        HashAlgorithm::Sha3_384 => mac!(sha3::Sha3_384),
        HashAlgorithm::Sha3_512 => mac!(sha3::Sha3_512),
    })
}

fn auth_failed() -> LogicalError {
    bad("cipher: message authentication failed")
}

/// One AEAD operation with cipher `A`; `nonce` has `A`'s nonce length (callers ensure it).
fn aead_run<A: KeyInit + Aead>(
    key: &[u8],
    nonce: &[u8],
    payload: Payload<'_, '_>,
    seal: bool,
) -> Result<Vec<u8>, LogicalError> {
    let cipher = A::new_from_slice(key).map_err(internal)?;
    let nonce = aes_gcm::aead::Nonce::<A>::from_slice(nonce);
    if seal {
        cipher
            .encrypt(nonce, payload)
            .map_err(|_| internal("encryption failed"))
    } else {
        cipher.decrypt(nonce, payload).map_err(|_| auth_failed())
    }
}

fn aead(
    kt: KeyType,
    key: &[u8],
    nonce: &[u8],
    payload: Payload<'_, '_>,
    seal: bool,
) -> Result<Vec<u8>, LogicalError> {
    if nonce.len() != kt.nonce_len() {
        return Err(internal("nonce of the wrong length"));
    }
    match kt {
        KeyType::Aes128Gcm96 => aead_run::<aes_gcm::Aes128Gcm>(key, nonce, payload, seal),
        KeyType::Aes256Gcm96 => aead_run::<aes_gcm::Aes256Gcm>(key, nonce, payload, seal),
        KeyType::ChaCha20Poly1305 => {
            aead_run::<chacha20poly1305::ChaCha20Poly1305>(key, nonce, payload, seal)
        }
        KeyType::XChaCha20Poly1305 => {
            aead_run::<chacha20poly1305::XChaCha20Poly1305>(key, nonce, payload, seal)
        }
        _ => Err(internal("not an AEAD key type")),
    }
}

/// Seals with an AEAD type: `nonce || ciphertext || tag`.
pub(crate) fn aead_seal(
    kt: KeyType,
    key: &[u8],
    nonce: &[u8],
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Vec<u8>, LogicalError> {
    let sealed = aead(
        kt,
        key,
        nonce,
        Payload {
            msg: plaintext,
            aad,
        },
        true,
    )?;
    let mut out = Vec::with_capacity(nonce.len() + sealed.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens `nonce || ciphertext || tag`.
pub(crate) fn aead_open(
    kt: KeyType,
    key: &[u8],
    blob: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, LogicalError> {
    let n = kt.nonce_len();
    if blob.len() < n + 16 {
        return Err(bad("invalid ciphertext: too short"));
    }
    let (nonce, ct) = blob.split_at(n);
    aead(kt, key, nonce, Payload { msg: ct, aad }, false).map(Zeroizing::new)
}

/// The key an AEAD operation uses: the version's own, or one derived for `context`.
pub(crate) fn aead_key<'a>(
    kt: KeyType,
    loaded: &'a Loaded,
    derived: bool,
    context: &[u8],
) -> Result<AeadKey<'a>, LogicalError> {
    let base = loaded.bytes()?;
    Ok(if derived {
        AeadKey::Derived(derive(base, context, kt.secret_len())?)
    } else {
        AeadKey::Version(base)
    })
}

/// The key of one AEAD operation: the version's own, borrowed (no copy of
/// the secret per request), or one derived for the request's context.
pub(crate) enum AeadKey<'a> {
    Version(&'a [u8]),
    Derived(Zeroizing<Vec<u8>>),
}

impl std::ops::Deref for AeadKey<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Version(k) => k,
            Self::Derived(k) => k,
        }
    }
}

/// A fresh random nonce for `kt`, or one derived from the plaintext (convergent).
pub(crate) fn nonce_for(
    kt: KeyType,
    key: &[u8],
    plaintext: &[u8],
    convergent: bool,
) -> Result<Vec<u8>, LogicalError> {
    let n = kt.nonce_len();
    if convergent {
        // Same key, context and plaintext give the same ciphertext, by design.
        let mut mac = hmac(HashAlgorithm::Sha2_512, key, plaintext)?;
        mac.truncate(n);
        Ok(mac)
    } else {
        Ok(random(n)?.to_vec())
    }
}

/// RSA-OAEP (SHA-256) encryption.
pub(crate) fn rsa_encrypt(loaded: &Loaded, plaintext: &[u8]) -> Result<Vec<u8>, LogicalError> {
    let public = loaded.rsa()?.to_public_key();
    public
        .encrypt(&mut OsRng, Oaep::new::<sha2::Sha256>(), plaintext)
        .map_err(|e| bad(format!("failed to RSA encrypt the plaintext: {e}")))
}

/// RSA-OAEP (SHA-256) decryption.
pub(crate) fn rsa_decrypt(
    loaded: &Loaded,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, LogicalError> {
    loaded
        .rsa()?
        .decrypt(Oaep::new::<sha2::Sha256>(), ciphertext)
        .map(Zeroizing::new)
        .map_err(|_| bad("failed to RSA decrypt the ciphertext"))
}

/// How a signature is made: the options of `sign/` and `verify/`.
#[derive(Clone, Copy)]
pub(crate) struct SignOptions {
    pub hash: HashAlgorithm,
    pub prehashed: bool,
    pub rsa_pss: bool,
    pub salt: SaltLength,
    pub jws: bool,
}

/// PSS salt length: `auto` (the largest when signing, either when verifying), `hash`, or a number.
#[derive(Clone, Copy)]
pub(crate) enum SaltLength {
    Auto,
    Hash,
    Bytes(usize),
}

impl SaltLength {
    pub(crate) fn parse(s: &str) -> Result<Self, LogicalError> {
        match s {
            "" | "auto" => Ok(Self::Auto),
            "hash" => Ok(Self::Hash),
            n => n.parse::<usize>().map(Self::Bytes).map_err(|_| {
                bad(format!(
                    "invalid salt_length {n:?}; use auto, hash or a number of bytes"
                ))
            }),
        }
    }
}

fn pss(alg: HashAlgorithm, salt: usize) -> Pss {
    match alg {
        HashAlgorithm::Sha2_224 => Pss::new_with_salt::<sha2::Sha224>(salt),
        HashAlgorithm::Sha2_256 => Pss::new_with_salt::<sha2::Sha256>(salt),
        HashAlgorithm::Sha2_384 => Pss::new_with_salt::<sha2::Sha384>(salt),
        HashAlgorithm::Sha2_512 => Pss::new_with_salt::<sha2::Sha512>(salt),
        HashAlgorithm::Sha3_224 => Pss::new_with_salt::<sha3::Sha3_224>(salt),
        HashAlgorithm::Sha3_256 => Pss::new_with_salt::<sha3::Sha3_256>(salt),
        HashAlgorithm::Sha3_384 => Pss::new_with_salt::<sha3::Sha3_384>(salt),
        HashAlgorithm::Sha3_512 => Pss::new_with_salt::<sha3::Sha3_512>(salt),
    }
}

fn pkcs1v15(alg: HashAlgorithm) -> Pkcs1v15Sign {
    match alg {
        HashAlgorithm::Sha2_224 => Pkcs1v15Sign::new::<sha2::Sha224>(),
        HashAlgorithm::Sha2_256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
        HashAlgorithm::Sha2_384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
        HashAlgorithm::Sha2_512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
        HashAlgorithm::Sha3_224 => Pkcs1v15Sign::new::<sha3::Sha3_224>(),
        HashAlgorithm::Sha3_256 => Pkcs1v15Sign::new::<sha3::Sha3_256>(),
        HashAlgorithm::Sha3_384 => Pkcs1v15Sign::new::<sha3::Sha3_384>(),
        HashAlgorithm::Sha3_512 => Pkcs1v15Sign::new::<sha3::Sha3_512>(),
    }
}

fn max_pss_salt(key: &RsaPrivateKey, alg: HashAlgorithm) -> usize {
    key.size().saturating_sub(alg.output_len() + 2)
}

/// The digest a signature covers: the input hashed, or the input itself when prehashed.
fn digest_of(o: &SignOptions, input: &[u8]) -> Result<Vec<u8>, LogicalError> {
    if !o.prehashed {
        return Ok(o.hash.digest(input));
    }
    if input.len() != o.hash.output_len() {
        return Err(bad(format!(
            "prehashed input must be {} bytes for the chosen hash_algorithm, got {}",
            o.hash.output_len(),
            input.len()
        )));
    }
    Ok(input.to_vec())
}

/// Signs `input` with an asymmetric key (ed25519 keys sign the input itself).
pub(crate) fn sign(
    loaded: &Loaded,
    o: &SignOptions,
    input: &[u8],
) -> Result<Vec<u8>, LogicalError> {
    let failed = |e: &dyn std::fmt::Display| internal(format!("signing failed: {e}"));
    match loaded {
        Loaded::Ed25519(k) => Ok(k.sign(input).to_bytes().to_vec()),
        Loaded::P256(k) => {
            let sig: p256::ecdsa::Signature = k
                .sign_prehash(&digest_of(o, input)?)
                .map_err(|e| failed(&e))?;
            Ok(if o.jws {
                sig.to_bytes().to_vec()
            } else {
                sig.to_der().as_bytes().to_vec()
            })
        }
        Loaded::P384(k) => {
            let sig: p384::ecdsa::Signature = k
                .sign_prehash(&digest_of(o, input)?)
                .map_err(|e| failed(&e))?;
            Ok(if o.jws {
                sig.to_bytes().to_vec()
            } else {
                sig.to_der().as_bytes().to_vec()
            })
        }
        Loaded::Rsa(k) => {
            let digest = digest_of(o, input)?;
            if o.rsa_pss {
                let salt = match o.salt {
                    SaltLength::Auto => max_pss_salt(k, o.hash),
                    SaltLength::Hash => o.hash.output_len(),
                    SaltLength::Bytes(n) => n,
                };
                k.sign_with_rng(&mut OsRng, pss(o.hash, salt), &digest)
                    .map_err(|e| bad(format!("signing failed: {e}")))
            } else {
                k.sign(pkcs1v15(o.hash), &digest).map_err(|e| failed(&e))
            }
        }
        Loaded::Bytes(_) => Err(bad("key type does not support signing")),
    }
}

/// Checks a signature; a malformed or wrong signature is `false`, not an error.
pub(crate) fn verify(
    loaded: &Loaded,
    o: &SignOptions,
    input: &[u8],
    sig: &[u8],
) -> Result<bool, LogicalError> {
    Ok(match loaded {
        Loaded::Ed25519(k) => ed25519_dalek::Signature::from_slice(sig)
            .is_ok_and(|s| k.verifying_key().verify(input, &s).is_ok()),
        Loaded::P256(k) => {
            let parsed = if o.jws {
                p256::ecdsa::Signature::from_slice(sig)
            } else {
                p256::ecdsa::Signature::from_der(sig)
            };
            let digest = digest_of(o, input)?;
            parsed.is_ok_and(|s| k.verifying_key().verify_prehash(&digest, &s).is_ok())
        }
        Loaded::P384(k) => {
            let parsed = if o.jws {
                p384::ecdsa::Signature::from_slice(sig)
            } else {
                p384::ecdsa::Signature::from_der(sig)
            };
            let digest = digest_of(o, input)?;
            parsed.is_ok_and(|s| k.verifying_key().verify_prehash(&digest, &s).is_ok())
        }
        Loaded::Rsa(k) => {
            let digest = digest_of(o, input)?;
            let public = k.to_public_key();
            if o.rsa_pss {
                let salts = match o.salt {
                    SaltLength::Auto => vec![max_pss_salt(k, o.hash), o.hash.output_len()],
                    SaltLength::Hash => vec![o.hash.output_len()],
                    SaltLength::Bytes(n) => vec![n],
                };
                salts
                    .into_iter()
                    .any(|s| public.verify(pss(o.hash, s), &digest, sig).is_ok())
            } else {
                public.verify(pkcs1v15(o.hash), &digest, sig).is_ok()
            }
        }
        Loaded::Bytes(_) => return Err(bad("key type does not support verification")),
    })
}

/// The public half as Vault shows it: base64 for ed25519, PEM for ECDSA and RSA.
pub(crate) fn public_key(loaded: &Loaded) -> Result<String, LogicalError> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    match loaded {
        Loaded::Ed25519(k) => Ok(b64.encode(k.verifying_key().as_bytes())),
        Loaded::P256(k) => k
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(internal),
        Loaded::P384(k) => k
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(internal),
        Loaded::Rsa(k) => k
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(internal),
        Loaded::Bytes(_) => Ok(String::new()),
    }
}

/// The private half for `export/`: base64 raw bytes for symmetric keys and
/// ed25519 (seed then public key, as Go's `ed25519.PrivateKey`), PEM
/// (SEC 1 / PKCS #1) for ECDSA and RSA.
pub(crate) fn private_export(loaded: &Loaded) -> Result<Zeroizing<String>, LogicalError> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(match loaded {
        Loaded::Bytes(b) => Zeroizing::new(b64.encode(b.as_slice())),
        Loaded::Ed25519(k) => Zeroizing::new(b64.encode(k.to_keypair_bytes())),
        Loaded::P256(k) => p256::SecretKey::from(k)
            .to_sec1_pem(LineEnding::LF)
            .map_err(internal)?,
        Loaded::P384(k) => p384::SecretKey::from(k)
            .to_sec1_pem(LineEnding::LF)
            .map_err(internal)?,
        Loaded::Rsa(k) => k.to_pkcs1_pem(LineEnding::LF).map_err(internal)?,
    })
}

/// A derived ed25519 key for `context`.
pub(crate) fn derived_ed25519(loaded: &Loaded, context: &[u8]) -> Result<Loaded, LogicalError> {
    let Loaded::Ed25519(k) = loaded else {
        return Err(internal("not an ed25519 key"));
    };
    let seed = derive(k.as_bytes(), context, 32)?;
    Loaded::load(KeyType::Ed25519, &seed)
}
