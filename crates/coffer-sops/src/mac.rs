//! The file MAC: SHA-512 over every value's plaintext bytes in document
//! order (comments never; with `mac_only_encrypted`, only encrypted values),
//! stored encrypted under the `lastmodified` timestamp.

use sha2::{Digest, Sha256, Sha512};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cipher::{self, DataKey};
use crate::{Scalar, SopsError};

/// Accumulates the MAC while a tree is walked.
pub struct Mac(Sha512);

impl Mac {
    /// A MAC for a file with or without `mac_only_encrypted`.
    pub fn new(only_encrypted: bool) -> Self {
        let mut h = Sha512::new();
        if only_encrypted {
            h.update(Sha256::digest(b"sops"));
        }
        Self(h)
    }

    /// Adds a value (comments are skipped).
    pub fn add(&mut self, v: &Scalar) {
        if !matches!(v, Scalar::Comment(_)) {
            self.0.update(v.bytes());
        }
    }

    /// Adds a value's plaintext bytes directly (a value read in pieces).
    pub fn add_bytes(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The MAC as SOPS writes it: 128 uppercase hex characters.
    pub fn finish(self) -> String {
        hex::encode_upper(self.0.finalize())
    }
}

/// `lastmodified` as the MAC's associated data: re-formatted as Go's
/// RFC 3339 (fractional seconds dropped, the offset kept).
pub fn mac_aad(lastmodified: &str) -> Result<String, SopsError> {
    let t = OffsetDateTime::parse(lastmodified.trim(), &Rfc3339).map_err(|_| {
        SopsError::Malformed(format!(
            "lastmodified {lastmodified:?} is not an RFC 3339 time"
        ))
    })?;
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339)
        .map_err(|e| SopsError::Malformed(format!("lastmodified: {e}")))
}

/// The `mac` value to store.
pub fn seal(mac: &str, key: &DataKey, lastmodified: &str) -> Result<String, SopsError> {
    cipher::encrypt(&Scalar::Str(mac.to_owned()), key, &mac_aad(lastmodified)?)
}

/// Checks a stored `mac` against the MAC computed from the values.
pub fn check(
    stored: &str,
    computed: &str,
    key: &DataKey,
    lastmodified: &str,
) -> Result<(), SopsError> {
    if stored.is_empty() {
        return Err(SopsError::NoMac);
    }
    let opened = cipher::decrypt(stored, key, &mac_aad(lastmodified)?).map_err(|e| match e {
        SopsError::Decrypt { .. } => SopsError::MacUnreadable,
        other => other,
    })?;
    let Scalar::Str(plain) = &opened else {
        return Err(SopsError::Malformed("sops.mac is not a string".into()));
    };
    if subtle_eq(plain.as_bytes(), computed.as_bytes()) {
        Ok(())
    } else {
        Err(SopsError::MacMismatch {
            stored: plain.clone(),
            computed: computed.to_owned(),
        })
    }
}

/// Constant-time comparison of equal-length byte strings.
fn subtle_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aad_is_go_rfc3339() {
        assert_eq!(
            mac_aad("2026-11-27T19:00:00.5Z").expect("aad"),
            "2026-11-27T19:00:00Z"
        );
        assert_eq!(
            mac_aad("2026-11-27T19:00:00+01:00").expect("aad"),
            "2026-11-27T19:00:00+01:00"
        );
        assert!(mac_aad("yesterday").is_err());
    }

    #[test]
    fn a_sealed_mac_checks_and_a_changed_one_does_not() {
        let key = DataKey::random().expect("random");
        let mut m = Mac::new(false);
        m.add(&Scalar::Str("app".into()));
        m.add(&Scalar::Comment("ignored".into()));
        m.add(&Scalar::Bool(true));
        let mac = m.finish();
        assert_eq!(mac.len(), 128);
        let mut direct = Sha512::new();
        direct.update(b"appTrue");
        assert_eq!(mac, hex::encode_upper(direct.finalize()));
        let stored = seal(&mac, &key, "2026-11-28T10:00:00Z").expect("seal");
        check(&stored, &mac, &key, "2026-11-28T10:00:00Z").expect("matches");
        let mut other = mac.clone().into_bytes();
        other[0] = if other[0] == b'0' { b'1' } else { b'0' };
        let other = String::from_utf8(other).expect("hex");
        assert!(matches!(
            check(&stored, &other, &key, "2026-11-28T10:00:00Z"),
            Err(SopsError::MacMismatch { .. })
        ));
        assert!(
            check(&stored, &mac, &key, "2026-11-28T10:00:01Z").is_err(),
            "lastmodified is bound"
        );
    }
}
