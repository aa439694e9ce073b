//! The `vault:v<N>:<base64>` envelope of ciphertexts, signatures and HMACs.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use coffer_core::LogicalError;

use super::bad;

/// `vault:v<version>:<base64 of bytes>`.
pub(crate) fn encode(version: u64, bytes: &[u8]) -> String {
    encode_with(version, bytes, &STANDARD)
}

/// Splits an envelope into its version (0 reads as 1) and bytes.
pub(crate) fn decode(s: &str, what: &str) -> Result<(u64, Vec<u8>), LogicalError> {
    decode_with(s, what, &STANDARD)
}

/// [`encode`] with another base64 alphabet (JWS signatures use URL-safe, unpadded).
pub(crate) fn encode_with(version: u64, bytes: &[u8], engine: &impl Engine) -> String {
    format!("vault:v{version}:{}", engine.encode(bytes))
}

/// [`decode`] with another base64 alphabet.
pub(crate) fn decode_with(
    s: &str,
    what: &str,
    engine: &impl Engine,
) -> Result<(u64, Vec<u8>), LogicalError> {
    let rest = s
        .trim()
        .strip_prefix("vault:")
        .ok_or_else(|| bad(format!("invalid {what}: no prefix")))?;
    let (ver, body) = rest
        .strip_prefix('v')
        .and_then(|r| r.split_once(':'))
        .ok_or_else(|| bad(format!("invalid {what}: wrong number of fields")))?;
    let version: u64 = ver.parse().map_err(|_| {
        bad(format!(
            "invalid {what}: version number could not be decoded"
        ))
    })?;
    let bytes = engine
        .decode(body)
        .map_err(|_| bad(format!("invalid {what}: could not decode base64")))?;
    Ok((version.max(1), bytes))
}

/// Decodes a base64 request field.
pub(crate) fn b64_field(v: &str, field: &str) -> Result<Vec<u8>, LogicalError> {
    STANDARD
        .decode(v.trim())
        .map_err(|_| bad(format!("failed to base64-decode {field}")))
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trip_and_errors() {
        let s = encode(3, b"abc");
        assert_eq!(s, "vault:v3:YWJj");
        assert_eq!(decode(&s, "ciphertext").unwrap(), (3, b"abc".to_vec()));
        assert_eq!(decode("vault:v0:YWJj", "ciphertext").unwrap().0, 1);
        for (input, msg) in [
            ("YWJj", "no prefix"),
            ("vault:YWJj", "wrong number of fields"),
            ("vault:vx:YWJj", "version number"),
            ("vault:v1:!!", "base64"),
        ] {
            let e = decode(input, "ciphertext").unwrap_err().to_string();
            assert!(e.contains(msg), "{input}: {e}");
        }
    }
}
