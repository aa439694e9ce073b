//! Shamir secret sharing over GF(2^8) with the AES polynomial, in constant
//! time.
//!
//! A share is the secret's length of y-bytes followed by one x-coordinate
//! byte, the layout Vault and SOPS use (a 32-byte key gives 33-byte shares).

use zeroize::{Zeroize, Zeroizing};

/// A share or a rebuilt secret, wiped when dropped.
pub type Secret = Zeroizing<Vec<u8>>;

/// Why splitting or combining failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShamirError {
    /// Bad share count or threshold.
    #[error("{0}")]
    Parameters(String),
    /// Shares are malformed or inconsistent.
    #[error("{0}")]
    Shares(String),
    /// The random source failed.
    #[error("random source failed")]
    Random,
}

/// Multiplication in GF(2^8) with the AES polynomial, without secret-dependent branches.
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    for _ in 0..8 {
        p ^= a & 0u8.wrapping_sub(b & 1);
        let hi = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1b & hi);
        b >>= 1;
    }
    p
}

/// Inverse by exponentiation (a^254), constant time; inv(0) = 0.
fn inv(a: u8) -> u8 {
    let mut result = 1u8;
    let mut base = a;
    let mut e = 254u8;
    while e > 0 {
        let bit = 0u8.wrapping_sub(e & 1);
        let m = mul(result, base);
        result = (m & bit) | (result & !bit);
        base = mul(base, base);
        e >>= 1;
    }
    result
}

/// Splits `secret` into `parts` shares at random distinct x-coordinates,
/// of which any `threshold` rebuild it.
pub fn split(secret: &[u8], parts: u8, threshold: u8) -> Result<Vec<Secret>, ShamirError> {
    // Distinct non-zero x-coordinates, shuffled so share order reveals nothing.
    let mut xs: Vec<u8> = (1..=255).collect();
    let mut rnd = [0u8; 255];
    getrandom::fill(&mut rnd).map_err(|_| ShamirError::Random)?;
    for i in (1..xs.len()).rev() {
        let j = usize::from(rnd[i]) % (i + 1);
        xs.swap(i, j);
    }
    split_at(secret, &xs[..usize::from(parts)], threshold)
}

/// Splits `secret` into one share per x-coordinate in `xs` (distinct, not
/// zero); SOPS numbers its key groups' shares 1, 2, 3….
pub fn split_at(secret: &[u8], xs: &[u8], threshold: u8) -> Result<Vec<Secret>, ShamirError> {
    let parts = xs.len();
    if secret.is_empty() {
        return Err(ShamirError::Parameters(
            "cannot split an empty secret".into(),
        ));
    }
    if threshold < 1 || parts < usize::from(threshold) || parts > 255 {
        return Err(ShamirError::Parameters(format!(
            "threshold {threshold} must be between 1 and the number of shares {parts}"
        )));
    }
    for (i, x) in xs.iter().enumerate() {
        if *x == 0 || xs[..i].contains(x) {
            return Err(ShamirError::Parameters(
                "x-coordinates must be distinct and not zero".into(),
            ));
        }
    }

    let t = usize::from(threshold);
    let mut shares: Vec<Vec<u8>> = xs
        .iter()
        .map(|_| Vec::with_capacity(secret.len() + 1))
        .collect();
    let mut coeffs = vec![0u8; t];
    for &byte in secret {
        coeffs[0] = byte;
        getrandom::fill(&mut coeffs[1..]).map_err(|_| ShamirError::Random)?;
        for (share, &x) in shares.iter_mut().zip(xs) {
            // Horner's rule from the highest coefficient down.
            let mut y = 0u8;
            for &c in coeffs.iter().rev() {
                y = mul(y, x) ^ c;
            }
            share.push(y);
        }
    }
    coeffs.zeroize();
    Ok(shares
        .into_iter()
        .zip(xs)
        .map(|(mut s, &x)| {
            s.push(x);
            Zeroizing::new(s)
        })
        .collect())
}

/// Rebuilds the secret from at least a threshold of shares.
pub fn combine<S: AsRef<[u8]>>(shares: &[S]) -> Result<Secret, ShamirError> {
    let first = shares
        .first()
        .ok_or_else(|| ShamirError::Shares("no shares given".into()))?;
    let len = first.as_ref().len();
    if len < 2 {
        return Err(ShamirError::Shares(
            "shares must be at least two bytes".into(),
        ));
    }
    if shares.iter().any(|s| s.as_ref().len() != len) {
        return Err(ShamirError::Shares("shares have different lengths".into()));
    }
    let xs: Vec<u8> = shares.iter().map(|s| s.as_ref()[len - 1]).collect();
    for (i, x) in xs.iter().enumerate() {
        if xs[..i].contains(x) {
            return Err(ShamirError::Shares("the same share was given twice".into()));
        }
    }
    let mut secret = vec![0u8; len - 1];
    for (i, out) in secret.iter_mut().enumerate() {
        // Lagrange interpolation at x = 0.
        let mut acc = 0u8;
        for (j, share) in shares.iter().enumerate() {
            let mut basis = 1u8;
            for (m, &xm) in xs.iter().enumerate() {
                if m != j {
                    basis = mul(basis, mul(xm, inv(xm ^ xs[j])));
                }
            }
            acc ^= mul(share.as_ref()[i], basis);
        }
        *out = acc;
    }
    Ok(Zeroizing::new(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_x_coordinates_end_each_share() {
        let key = [7u8; 32];
        let shares = split_at(&key, &[1, 2, 3], 2).unwrap();
        assert_eq!(shares.iter().map(|s| s[32]).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(combine(&[&shares[2], &shares[0]]).unwrap().as_slice(), &key);
        assert!(split_at(&key, &[1, 1], 2).is_err());
        assert!(split_at(&key, &[0, 1], 2).is_err());
    }

    #[test]
    fn field_inverse_is_correct_for_every_element() {
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "a = {a}");
        }
    }

    #[test]
    fn any_threshold_subset_rebuilds_the_secret() {
        let secret: Vec<u8> = (0..32).collect();
        let shares = split(&secret, 5, 3).unwrap();
        assert!(shares.iter().all(|s| s.as_slice().len() == 33));
        for combo in [[0, 1, 2], [4, 2, 0], [1, 3, 4]] {
            let picked: Vec<_> = combo.iter().map(|&i| shares[i].clone()).collect();
            assert_eq!(combine(&picked).unwrap().as_slice(), &secret[..]);
        }
        let two: Vec<_> = shares[..2].to_vec();
        assert_ne!(combine(&two).unwrap().as_slice(), &secret[..]);
    }

    #[test]
    fn single_share_scheme_and_bad_parameters() {
        let shares = split(b"k", 1, 1).unwrap();
        assert_eq!(combine(&shares).unwrap().as_slice(), b"k");
        assert!(split(b"k", 2, 3).is_err());
        assert!(split(b"k", 2, 0).is_err());
        let s = split(b"abc", 3, 2).unwrap();
        let dup = vec![s[0].clone(), s[0].clone()];
        assert!(combine(&dup).is_err());
    }
}
