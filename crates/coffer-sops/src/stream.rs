//! SOPS' AES-256-GCM with its 32-byte IV, computed piece by piece, so a
//! whole file can be encrypted while it is read (the AEAD crate wants the
//! whole message in one buffer). The same construction as `aes-gcm`
//! (NIST SP 800-38D: J0 from GHASH of the IV, counter mode from J0 + 1, the
//! tag GHASH over the associated data and ciphertext masked with E(J0));
//! the tests check it against that crate byte for byte.

use aes_gcm::aes::Aes256;
use aes_gcm::aes::cipher::{BlockEncrypt, KeyInit, KeyIvInit, StreamCipher};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;

use crate::cipher::DataKey;

type Ctr = ctr::Ctr32BE<Aes256>;

/// Encrypts (or decrypts) a message given in pieces; every piece but the
/// last must be a multiple of 16 bytes.
pub struct GcmEncryptor {
    ctr: Ctr,
    ghash: GHash,
    mask: [u8; 16],
    aad_bits: u64,
    bits: u64,
    done: bool,
    decrypt: bool,
}

impl GcmEncryptor {
    /// Starts decrypting a message (the tag is checked with
    /// [`GcmEncryptor::verify`] before the plaintext may be used).
    pub fn decryptor(key: &DataKey, iv: &[u8; 32], aad: &[u8]) -> Self {
        Self {
            decrypt: true,
            ..Self::new(key, iv, aad)
        }
    }

    /// Starts encrypting a message under `key` and a 32-byte `iv` with `aad`.
    pub fn new(key: &DataKey, iv: &[u8; 32], aad: &[u8]) -> Self {
        let aes = Aes256::new(key.expose().into());
        let mut h = ghash::Block::default();
        aes.encrypt_block(&mut h);
        let mut j = GHash::new(&h);
        j.update_padded(iv);
        let mut lengths = ghash::Block::default();
        lengths[8..].copy_from_slice(&(iv.len() as u64 * 8).to_be_bytes());
        j.update(&[lengths]);
        let j0 = j.finalize();
        let mut ctr = Ctr::new(key.expose().into(), &j0);
        // The first counter block masks the tag; data starts at J0 + 1.
        let mut mask = [0u8; 16];
        ctr.apply_keystream(&mut mask);
        let mut ghash = GHash::new(&h);
        ghash.update_padded(aad);
        Self {
            ctr,
            ghash,
            mask,
            aad_bits: aad.len() as u64 * 8,
            bits: 0,
            done: false,
            decrypt: false,
        }
    }

    /// Encrypts (or decrypts) a piece in place.
    ///
    /// # Panics
    /// If a piece that is not a multiple of 16 bytes is followed by another
    /// one (a caller's bug: the tag would be wrong).
    pub fn update(&mut self, piece: &mut [u8]) {
        assert!(
            !self.done,
            "GCM pieces before the last must be multiples of 16 bytes"
        );
        // GHASH covers the ciphertext: after encrypting, before decrypting.
        if self.decrypt {
            self.ghash.update_padded(piece);
            self.ctr.apply_keystream(piece);
        } else {
            self.ctr.apply_keystream(piece);
            self.ghash.update_padded(piece);
        }
        self.done = !piece.len().is_multiple_of(16);
        self.bits += piece.len() as u64 * 8;
    }

    /// The 16-byte tag.
    pub fn finish(mut self) -> [u8; 16] {
        let mut lengths = ghash::Block::default();
        lengths[..8].copy_from_slice(&self.aad_bits.to_be_bytes());
        lengths[8..].copy_from_slice(&self.bits.to_be_bytes());
        self.ghash.update(&[lengths]);
        let mut tag: [u8; 16] = self.ghash.finalize().into();
        for (t, m) in tag.iter_mut().zip(self.mask) {
            *t ^= m;
        }
        tag
    }
}

impl GcmEncryptor {
    /// Whether `tag` is the message's (compared in constant time).
    pub fn verify(self, tag: &[u8]) -> bool {
        let ours = self.finish();
        tag.len() == 16 && ours.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::AeadInPlace;
    use aes_gcm::aead::consts::U32;

    #[test]
    fn matches_aes_gcm_for_any_length_and_split() {
        let key = DataKey::random().expect("key");
        let iv = [7u8; 32];
        let gcm = aes_gcm::AesGcm::<Aes256, U32>::new(key.expose().into());
        for len in [0usize, 1, 15, 16, 17, 100, 4096, 70_001] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 256) as u8).collect();
            let mut reference = plain.clone();
            let tag = gcm
                .encrypt_in_place_detached((&iv).into(), b"data:", &mut reference)
                .expect("encrypt");
            for piece in [16usize, 48, 4096] {
                let mut ours = plain.clone();
                let mut e = GcmEncryptor::new(&key, &iv, b"data:");
                for chunk in ours.chunks_mut(piece) {
                    e.update(chunk);
                }
                assert_eq!(ours, reference, "len {len}, pieces of {piece}");
                assert_eq!(e.finish().as_slice(), tag.as_slice(), "len {len}");
                let mut d = GcmEncryptor::decryptor(&key, &iv, b"data:");
                for chunk in ours.chunks_mut(piece) {
                    d.update(chunk);
                }
                assert_eq!(ours, plain);
                assert!(d.verify(&tag));
                let mut bad = GcmEncryptor::decryptor(&key, &iv, b"data:x");
                bad.update(&mut reference.clone());
                assert!(!bad.verify(&tag));
            }
        }
    }
}
