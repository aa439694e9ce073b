//! The `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` value codec: AES-256-GCM
//! with SOPS' 32-byte IVs, the value's key path as associated data.

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use crate::SopsError;
use crate::value::Scalar;

/// SOPS' GCM: a 32-byte nonce (J0 derived through GHASH).
type Gcm = AesGcm<Aes256, U32>;

const IV_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// A file's 256-bit data key; zeroized on drop, never printed.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh random key.
    pub fn random() -> Result<Self, SopsError> {
        let mut k = Zeroizing::new([0u8; 32]);
        getrandom::fill(k.as_mut_slice()).map_err(|e| SopsError::Random(e.to_string()))?;
        Ok(Self(k))
    }

    /// A key unwrapped by a master key; `None` unless it is 32 bytes.
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = b.try_into().ok()?;
        Some(Self(Zeroizing::new(arr)))
    }

    /// The key's bytes (for wrapping by master keys).
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }

    fn gcm(&self) -> Gcm {
        Gcm::new(self.0.as_slice().into())
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// Encrypts a value under its key path (`aad`, e.g. `db:password:`) with a
/// fresh IV. An empty value stays `""`, as SOPS leaves it.
pub fn encrypt(value: &Scalar, key: &DataKey, aad: &str) -> Result<String, SopsError> {
    let mut iv = [0u8; IV_LEN];
    getrandom::fill(&mut iv).map_err(|e| SopsError::Random(e.to_string()))?;
    encrypt_with_iv(value, key, aad, &iv)
}

/// Encrypts with a given IV: an unchanged value keeps its ciphertext when a
/// file is re-encrypted, which keeps diffs small.
pub fn encrypt_with_iv(
    value: &Scalar,
    key: &DataKey,
    aad: &str,
    iv: &[u8; IV_LEN],
) -> Result<String, SopsError> {
    let plain = value.bytes();
    if plain.is_empty() {
        return Ok(String::new());
    }
    // One buffer for the ciphertext, encrypted in place, and the text
    // written straight into one string: large values are not copied again.
    let mut buf = Zeroizing::new(Vec::with_capacity(plain.len()));
    buf.extend_from_slice(&plain);
    let tag = key
        .gcm()
        .encrypt_in_place_detached(Nonce::<U32>::from_slice(iv), aad.as_bytes(), &mut buf)
        .map_err(|_| SopsError::Malformed("encryption failed".into()))?;
    let mut out = String::with_capacity(buf.len() / 3 * 4 + 140);
    out.push_str("ENC[AES256_GCM,data:");
    B64.encode_string(&*buf, &mut out);
    out.push_str(",iv:");
    B64.encode_string(iv, &mut out);
    out.push_str(",tag:");
    B64.encode_string(tag, &mut out);
    out.push_str(",type:");
    out.push_str(value.type_name());
    out.push(']');
    Ok(out)
}

/// The parts of an encrypted value.
pub struct Parts {
    /// Ciphertext without the tag.
    pub data: Vec<u8>,
    /// The IV (32 bytes when SOPS or coffer made it).
    pub iv: Vec<u8>,
    /// The GCM tag.
    pub tag: Vec<u8>,
    /// The `type:` tag.
    pub kind: String,
}

/// Whether a string is an encrypted value (as opposed to a cleartext one).
pub fn is_encrypted(s: &str) -> bool {
    s.starts_with("ENC[AES256_GCM,")
}

/// Splits `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` (SOPS tolerates text
/// after the closing bracket; so does this).
pub fn parse(s: &str) -> Result<Parts, SopsError> {
    let bad = || SopsError::Malformed(format!("not a SOPS encrypted value: {}", preview(s)));
    let (data, iv, tag, kind) = split(s)?;
    let decode = |part: &str| B64.decode(part).map_err(|_| bad());
    Ok(Parts {
        data: decode(data)?,
        iv: decode(iv)?,
        tag: decode(tag)?,
        kind: kind.to_owned(),
    })
}

/// The still encoded parts of an encrypted value: data, IV, tag (base64)
/// and type. Found from the end, so a large value is not scanned.
pub fn split(s: &str) -> Result<(&str, &str, &str, &str), SopsError> {
    let bad = || SopsError::Malformed(format!("not a SOPS encrypted value: {}", preview(s)));
    let rest = s.strip_prefix("ENC[AES256_GCM,data:").ok_or_else(bad)?;
    let end = rest.rfind(']').ok_or_else(bad)?;
    let rest = &rest[..end];
    let (rest, kind) = rest.rsplit_once(",type:").ok_or_else(bad)?;
    let (rest, tag) = rest.rsplit_once(",tag:").ok_or_else(bad)?;
    let (data, iv) = rest.rsplit_once(",iv:").ok_or_else(bad)?;
    Ok((data, iv, tag, kind))
}

fn preview(s: &str) -> String {
    let cut: String = s.chars().take(40).collect();
    if cut.len() < s.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Decrypts a value stored at key path `aad`. An empty string is an empty
/// string.
pub fn decrypt(s: &str, key: &DataKey, aad: &str) -> Result<Scalar, SopsError> {
    if s.is_empty() {
        return Ok(Scalar::Str(String::new()));
    }
    let p = parse(s)?;
    if p.iv.len() != IV_LEN || p.tag.len() != TAG_LEN {
        return Err(SopsError::Malformed(format!(
            "not a SOPS encrypted value: {}: IV of {} bytes and tag of {} bytes (expected {IV_LEN} and {TAG_LEN})",
            preview(s),
            p.iv.len(),
            p.tag.len()
        )));
    }
    let mut plain = p.data;
    key.gcm()
        .decrypt_in_place_detached(
            Nonce::<U32>::from_slice(&p.iv),
            aad.as_bytes(),
            &mut plain,
            aes_gcm::Tag::from_slice(&p.tag),
        )
        .map_err(|_| SopsError::Decrypt {
            path: aad.to_owned(),
        })?;
    let kind = p.kind;
    Scalar::from_bytes(&kind, plain).ok_or_else(|| SopsError::BadType {
        path: aad.to_owned(),
        kind: match kind.as_str() {
            "int" => "int",
            "float" => "float",
            "bool" => "bool",
            "time" => "time",
            "comment" => "comment",
            "bytes" => "bytes",
            "str" => "str",
            _ => "type (unknown type tag)",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_under_their_path_only() {
        let key = DataKey::random().expect("random");
        for v in [
            Scalar::Str("s3cret ✓".into()),
            Scalar::Int(-42),
            Scalar::Float(1.5),
            Scalar::Bool(false),
            Scalar::Comment(" a comment".into()),
        ] {
            let enc = encrypt(&v, &key, "db:password:").expect("encrypt");
            assert!(enc.starts_with("ENC[AES256_GCM,data:"), "{enc}");
            assert!(enc.ends_with(&format!(",type:{}]", v.type_name())));
            assert_eq!(decrypt(&enc, &key, "db:password:").expect("decrypt"), v);
            assert!(matches!(
                decrypt(&enc, &key, "db:user:"),
                Err(SopsError::Decrypt { .. })
            ));
        }
        assert_eq!(
            encrypt(&Scalar::Str(String::new()), &key, "a:").expect("empty"),
            ""
        );
        let other = DataKey::random().expect("random");
        let enc = encrypt(&Scalar::Str("x".into()), &key, "a:").expect("encrypt");
        assert!(decrypt(&enc, &other, "a:").is_err());
        assert!(matches!(
            decrypt("ENC[nope]", &key, "a:"),
            Err(SopsError::Malformed(_))
        ));
    }

    #[test]
    fn the_same_iv_gives_the_same_ciphertext() {
        let key = DataKey::random().expect("random");
        let iv = [7u8; IV_LEN];
        let v = Scalar::Str("same".into());
        assert_eq!(
            encrypt_with_iv(&v, &key, "k:", &iv).expect("one"),
            encrypt_with_iv(&v, &key, "k:", &iv).expect("two")
        );
    }
}
