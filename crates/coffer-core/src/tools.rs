//! Random bytes and hashing as `sys/tools/*` and transit's `random`/`hash` serve them.

use serde_json::{Map, Value, json};
use sha2::Digest;

use crate::fields::Fields;
use crate::logical::{LogicalError, Response};
use crate::sys::{b64, obj};

/// The hash functions Vault's APIs name (`sha2-256`, `sha3-512`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// SHA-224.
    Sha2_224,
    /// SHA-256.
    Sha2_256,
    /// SHA-384.
    Sha2_384,
    /// SHA-512.
    Sha2_512,
    /// SHA3-224.
    Sha3_224,
    /// SHA3-256.
    Sha3_256,
    /// SHA3-384.
    Sha3_384,
    /// SHA3-512.
    Sha3_512,
}

impl HashAlgorithm {
    /// Parses Vault's name for the algorithm.
    pub fn parse(name: &str) -> Result<Self, LogicalError> {
        Ok(match name {
            "sha2-224" => Self::Sha2_224,
            "sha2-256" => Self::Sha2_256,
            "sha2-384" => Self::Sha2_384,
            "sha2-512" => Self::Sha2_512,
            "sha3-224" => Self::Sha3_224,
            "sha3-256" => Self::Sha3_256,
            "sha3-384" => Self::Sha3_384,
            "sha3-512" => Self::Sha3_512,
            other => {
                return Err(LogicalError::BadRequest(format!(
                    "unsupported hash algorithm {other:?}; use sha2-224, sha2-256, sha2-384, sha2-512, sha3-224, sha3-256, sha3-384 or sha3-512"
                )));
            }
        })
    }

    /// The digest of `input`.
    pub fn digest(self, input: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha2_224 => sha2::Sha224::digest(input).to_vec(),
            Self::Sha2_256 => sha2::Sha256::digest(input).to_vec(),
            Self::Sha2_384 => sha2::Sha384::digest(input).to_vec(),
            Self::Sha2_512 => sha2::Sha512::digest(input).to_vec(),
            Self::Sha3_224 => sha3::Sha3_224::digest(input).to_vec(),
            Self::Sha3_256 => sha3::Sha3_256::digest(input).to_vec(),
            Self::Sha3_384 => sha3::Sha3_384::digest(input).to_vec(),
            Self::Sha3_512 => sha3::Sha3_512::digest(input).to_vec(),
        }
    }

    /// Digest length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Self::Sha2_224 | Self::Sha3_224 => 28,
            Self::Sha2_256 | Self::Sha3_256 => 32,
            Self::Sha2_384 | Self::Sha3_384 => 48,
            Self::Sha2_512 | Self::Sha3_512 => 64,
        }
    }
}

const MAX_RANDOM_BYTES: i64 = 128 * 1024;

fn encode(bytes: &[u8], format: &str) -> Result<String, LogicalError> {
    use base64::Engine;
    match format {
        "" | "base64" => Ok(b64().encode(bytes)),
        "hex" => Ok(hex::encode(bytes)),
        f => Err(LogicalError::BadRequest(format!(
            "unsupported encoding format {f:?}; must be \"hex\" or \"base64\""
        ))),
    }
}

/// `random[/source][/bytes]`: `a` and `b` are the optional path segments.
pub fn random(data: &Map<String, Value>, a: &str, b: &str) -> Result<Response, LogicalError> {
    let f = Fields::new(data);
    let (mut source, mut bytes) = (f.str("source")?.unwrap_or_default(), f.int("bytes")?);
    for seg in [a, b].into_iter().filter(|s| !s.is_empty()) {
        match seg.parse::<i64>() {
            Ok(n) => bytes = Some(n),
            Err(_) => source = seg.to_owned(),
        }
    }
    if !matches!(source.as_str(), "" | "platform" | "seal" | "all") {
        return Err(LogicalError::BadRequest(format!(
            "unsupported entropy source {source:?}; must be \"platform\", \"seal\" or \"all\""
        )));
    }
    let n = bytes.unwrap_or(32);
    if !(1..=MAX_RANDOM_BYTES).contains(&n) {
        return Err(LogicalError::BadRequest(format!(
            "\"bytes\" must be between 1 and {MAX_RANDOM_BYTES}, got {n}"
        )));
    }
    let buf = zeroize::Zeroizing::new(
        crate::secret::random_bytes(n as usize)
            .map_err(|e| LogicalError::Internal(e.to_string()))?,
    );
    let format = f.str("format")?.unwrap_or_default();
    Ok(Response::data(obj(
        json!({ "random_bytes": encode(&buf, &format)? }),
    )))
}

/// `hash[/algorithm]` over base64 `input`.
pub fn hash(data: &Map<String, Value>, alg_seg: &str) -> Result<Response, LogicalError> {
    use base64::Engine;
    let f = Fields::new(data);
    let alg = match alg_seg {
        "" => f.str("algorithm")?.unwrap_or_else(|| "sha2-256".into()),
        a => a.to_owned(),
    };
    let input = f
        .str("input")?
        .ok_or_else(|| LogicalError::BadRequest("missing input to process".into()))?;
    let raw = b64()
        .decode(input.trim())
        .map_err(|e| LogicalError::BadRequest(format!("unable to decode input as base64: {e}")))?;
    let sum = HashAlgorithm::parse(&alg)?.digest(&raw);
    let format = f.str("format")?.unwrap_or_else(|| "hex".into());
    Ok(Response::data(obj(
        json!({ "sum": encode(&sum, &format)? }),
    )))
}
