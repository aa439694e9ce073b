//! `sys/tools/random` and `sys/tools/hash`.

use serde_json::{Map, Value, json};
use sha2::Digest;

use super::{b64, obj};
use crate::fields::Fields;
use crate::logical::{LogicalError, Response};

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

/// `tools/random[/source][/bytes]`.
pub(super) fn random(
    data: &Map<String, Value>,
    a: &str,
    b: &str,
) -> Result<Response, LogicalError> {
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

/// `tools/hash[/algorithm]` over base64 `input`.
pub(super) fn hash(data: &Map<String, Value>, alg_seg: &str) -> Result<Response, LogicalError> {
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
    let sum: Vec<u8> = match alg.as_str() {
        "sha2-224" => sha2::Sha224::digest(&raw).to_vec(),
        "sha2-256" => sha2::Sha256::digest(&raw).to_vec(),
        "sha2-384" => sha2::Sha384::digest(&raw).to_vec(),
        "sha2-512" => sha2::Sha512::digest(&raw).to_vec(),
        "sha3-224" => sha3::Sha3_224::digest(&raw).to_vec(),
        "sha3-256" => sha3::Sha3_256::digest(&raw).to_vec(),
        "sha3-384" => sha3::Sha3_384::digest(&raw).to_vec(),
        "sha3-512" => sha3::Sha3_512::digest(&raw).to_vec(),
        other => {
            return Err(LogicalError::BadRequest(format!(
                "unsupported algorithm {other:?}"
            )));
        }
    };
    let format = f.str("format")?.unwrap_or_else(|| "hex".into());
    Ok(Response::data(obj(
        json!({ "sum": encode(&sum, &format)? }),
    )))
}
