//! Dealing a key out as shares and rebuilding it: unseal keys for the Shamir
//! seal and recovery keys for auto seals follow the same rules.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::logical::LogicalError;
use crate::secret::SecretBytes;

/// Checks a share count and threshold; `what` is `secret` or `recovery`.
pub(crate) fn validate(what: &str, shares: u8, threshold: u8) -> Result<(), LogicalError> {
    let bad = |m: String| Err(LogicalError::BadRequest(m));
    if shares < 1 {
        return bad(format!("{what}_shares must be at least 1"));
    }
    if threshold < 1 || threshold > shares {
        return bad(format!(
            "{what}_threshold must be between 1 and {what}_shares ({shares})"
        ));
    }
    if shares > 1 && threshold == 1 {
        return bad(format!(
            "{what}_threshold must be greater than one for multiple shares"
        ));
    }
    Ok(())
}

/// Splits `key` into shares; one share is the key itself, as with Vault.
pub(crate) fn deal(
    key: &[u8],
    shares: u8,
    threshold: u8,
) -> Result<Vec<SecretBytes>, LogicalError> {
    if shares == 1 {
        return Ok(vec![SecretBytes::new(key.to_vec())]);
    }
    coffer_shamir::split(key, shares, threshold)
        .map(|s| {
            s.into_iter()
                .map(|share| SecretBytes::new(share.to_vec()))
                .collect()
        })
        .map_err(|e| LogicalError::BadRequest(e.to_string()))
}

/// The length of one share of a 32-byte key.
pub(crate) fn share_len(threshold: u8) -> usize {
    if threshold > 1 { 33 } else { 32 }
}

/// Rebuilds the key from a threshold of shares.
pub(crate) fn rebuild(
    shares: Vec<SecretBytes>,
    threshold: u8,
) -> Result<SecretBytes, LogicalError> {
    if threshold > 1 {
        let parts: Vec<&[u8]> = shares.iter().map(SecretBytes::expose).collect();
        coffer_shamir::combine(&parts)
            .map(|key| SecretBytes::new(key.to_vec()))
            .map_err(|e| LogicalError::BadRequest(format!("unseal failed: {e}")))
    } else {
        Ok(shares.into_iter().next().unwrap_or_default())
    }
}

/// The stored check of a recovery key. The key is 256 random bits, so a plain
/// hash gives an attacker nothing to search; it lets a wrong key be refused
/// before the seal is asked for anything.
pub(crate) fn recovery_check(key: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"coffer recovery key v1\0");
    h.update(key);
    hex::encode(h.finalize())
}

/// Whether `key` matches a stored [`recovery_check`], in constant time.
pub(crate) fn recovery_matches(key: &[u8], check: &str) -> bool {
    recovery_check(key)
        .as_bytes()
        .ct_eq(check.as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dealt_shares_rebuild_and_check() {
        let key = [7u8; 32];
        let shares = deal(&key, 5, 3).unwrap();
        assert_eq!(shares[0].expose().len(), share_len(3));
        let back = rebuild(shares[1..4].to_vec(), 3).unwrap();
        assert_eq!(back.expose(), key);
        let check = recovery_check(&key);
        assert!(recovery_matches(back.expose(), &check));
        assert!(!recovery_matches(&[8u8; 32], &check));
        assert!(validate("recovery", 2, 1).is_err());
        assert!(validate("recovery", 3, 4).is_err());
        assert!(validate("recovery", 1, 1).is_ok());
    }
}
