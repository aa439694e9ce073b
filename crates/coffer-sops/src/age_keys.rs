//! age master keys: the data key as a complete, ASCII-armored age file for
//! one recipient, and the identities SOPS reads to unwrap it.

use std::path::PathBuf;
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::SopsError;

/// An X25519 age recipient (`age1…`).
pub fn recipient(s: &str) -> Result<age::x25519::Recipient, SopsError> {
    age::x25519::Recipient::from_str(s.trim()).map_err(|e| {
        SopsError::Malformed(format!("{s:?} is not an age X25519 recipient (age1…): {e}"))
    })
}

/// The `enc` of an `age` entry: the data key (or the group's share of it)
/// encrypted to `recipient`.
pub fn wrap(part: &[u8], recipient: &age::x25519::Recipient) -> Result<String, SopsError> {
    age::encrypt_and_armor(recipient, part)
        .map_err(|e| SopsError::Malformed(format!("age encryption failed: {e}")))
}

/// Unwraps an `enc` with any of `identities`; `None` when none of them fits.
pub fn unwrap(enc: &str, identities: &[age::x25519::Identity]) -> Option<Zeroizing<Vec<u8>>> {
    identities
        .iter()
        .find_map(|id| age::decrypt(id, enc.as_bytes()).ok().map(Zeroizing::new))
}

/// A new X25519 identity: its `AGE-SECRET-KEY-1…` line and its recipient.
pub fn generate() -> (zeroize::Zeroizing<String>, String) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    (
        zeroize::Zeroizing::new(id.to_string().expose_secret().to_owned()),
        id.to_public().to_string(),
    )
}

/// Identities from a keys file's text (`age-keygen` output: comments and
/// `AGE-SECRET-KEY-1…` lines).
pub fn parse_identities(text: &str, source: &str) -> Result<Vec<age::x25519::Identity>, SopsError> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(|l| {
            age::x25519::Identity::from_str(l).map_err(|_| {
                SopsError::Malformed(format!(
                    "{source}: a line is not an age identity (AGE-SECRET-KEY-1…); only X25519 identities are supported"
                ))
            })
        })
        .collect()
}

/// Every identity SOPS would find: `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, and
/// `$XDG_CONFIG_HOME/sops/age/keys.txt` (or `~/.config/sops/age/keys.txt`).
pub fn load_identities() -> Result<Vec<age::x25519::Identity>, SopsError> {
    let mut ids = Vec::new();
    if let Ok(k) = std::env::var("SOPS_AGE_KEY") {
        ids.extend(parse_identities(&k, "SOPS_AGE_KEY")?);
    }
    if let Ok(path) = std::env::var("SOPS_AGE_KEY_FILE") {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| SopsError::Malformed(format!("SOPS_AGE_KEY_FILE {path}: {e}")))?;
        ids.extend(parse_identities(&text, &path)?);
    }
    let default = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("sops/age/keys.txt"));
    if let Some(p) = default
        && let Ok(text) = std::fs::read_to_string(&p)
    {
        ids.extend(parse_identities(&text, &p.display().to_string())?);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn a_wrapped_key_unwraps_only_with_its_identity() {
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let key = [9u8; 32];
        let enc = wrap(&key, &id.to_public()).expect("wrap");
        assert!(
            enc.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"),
            "{enc}"
        );
        assert!(enc.ends_with("-----END AGE ENCRYPTED FILE-----\n"), "{enc}");
        let got = unwrap(&enc, &[other.clone(), id.clone()]).expect("unwrap");
        assert_eq!(got.as_slice(), key);
        assert!(unwrap(&enc, &[other]).is_none());
        let file = format!(
            "# created: now\n# public key: {}\n{}\n",
            id.to_public(),
            id.to_string().expose_secret()
        );
        assert_eq!(parse_identities(&file, "keys.txt").expect("parse").len(), 1);
        assert!(parse_identities("nope", "x").is_err());
        assert!(recipient("age1nope").is_err());
    }
}
