//! The barrier keyring: numbered data keys ("terms") plus the root key that encrypts them.

use time::OffsetDateTime;
use zeroize::Zeroize;

use crate::secret::{Key32, SecretBytes};

/// One data key and when it was installed.
#[derive(Clone)]
pub struct TermKey {
    /// Term number, starting at 1.
    pub term: u32,
    /// The AES-256 key.
    pub key: Key32,
    /// Unix time in nanoseconds when the term was added.
    pub install_time_nanos: i128,
}

/// All terms ever installed; the highest term encrypts new writes.
#[derive(Clone)]
pub struct Keyring {
    /// Terms in ascending order.
    terms: Vec<TermKey>,
}

/// A serialized keyring could not be read.
#[derive(Debug, thiserror::Error)]
#[error("keyring is corrupt: {0}")]
pub struct KeyringError(&'static str);

const ENTRY_LEN: usize = 4 + 16 + 32;

impl Keyring {
    /// A keyring with one fresh term.
    pub fn new(first: Key32) -> Self {
        Self {
            terms: vec![TermKey {
                term: 1,
                key: first,
                install_time_nanos: now_nanos(),
            }],
        }
    }

    /// The term used for new writes.
    pub fn active(&self) -> &TermKey {
        // A keyring is never empty: `new` makes one term and nothing removes terms.
        &self.terms[self.terms.len() - 1]
    }

    /// The key of a given term, if it exists.
    pub fn term(&self, term: u32) -> Option<&TermKey> {
        self.terms
            .binary_search_by_key(&term, |t| t.term)
            .ok()
            .map(|i| &self.terms[i])
    }

    /// A copy with one more term, which becomes active.
    pub fn rotated(&self, key: Key32) -> Self {
        let mut terms = self.terms.clone();
        terms.push(TermKey {
            term: self.active().term + 1,
            key,
            install_time_nanos: now_nanos(),
        });
        Self { terms }
    }

    /// Fixed-width binary form: per term, term (u32 BE), install time (i128 BE), key.
    pub fn to_bytes(&self) -> SecretBytes {
        let mut out = Vec::with_capacity(self.terms.len() * ENTRY_LEN);
        for t in &self.terms {
            out.extend_from_slice(&t.term.to_be_bytes());
            out.extend_from_slice(&t.install_time_nanos.to_be_bytes());
            out.extend_from_slice(t.key.expose());
        }
        SecretBytes::new(out)
    }

    /// Reads the form written by [`Keyring::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Result<Self, KeyringError> {
        if b.is_empty() || !b.len().is_multiple_of(ENTRY_LEN) {
            return Err(KeyringError("length is not a whole number of terms"));
        }
        let mut terms = Vec::with_capacity(b.len() / ENTRY_LEN);
        for chunk in b.chunks_exact(ENTRY_LEN) {
            let mut term = [0u8; 4];
            term.copy_from_slice(&chunk[..4]);
            let mut when = [0u8; 16];
            when.copy_from_slice(&chunk[4..20]);
            let key = Key32::from_slice(&chunk[20..]).ok_or(KeyringError("short key"))?;
            terms.push(TermKey {
                term: u32::from_be_bytes(term),
                key,
                install_time_nanos: i128::from_be_bytes(when),
            });
            term.zeroize();
        }
        if terms.windows(2).any(|w| w[0].term >= w[1].term) {
            return Err(KeyringError("terms are not in ascending order"));
        }
        Ok(Self { terms })
    }
}

fn now_nanos() -> i128 {
    OffsetDateTime::now_utc().unix_timestamp_nanos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_adds_terms_and_bytes_round_trip() {
        let k = Keyring::new(Key32::random().unwrap());
        let k2 = k.rotated(Key32::random().unwrap());
        assert_eq!(k2.active().term, 2);
        assert!(k2.term(1).is_some());
        let back = Keyring::from_bytes(k2.to_bytes().expose()).unwrap();
        assert_eq!(back.active().term, 2);
        assert_eq!(back.term(1).unwrap().key.expose(), k.active().key.expose());
        assert!(Keyring::from_bytes(&[1, 2, 3]).is_err());
    }
}
