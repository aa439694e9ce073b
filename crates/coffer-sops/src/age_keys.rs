//! age master keys: the data key as a complete, ASCII-armored age file for
//! one recipient, and the identities SOPS reads to unwrap it. Recipients
//! and identities are X25519 (`age1…`, `AGE-SECRET-KEY-1…`) or SSH keys
//! (`ssh-ed25519 …`, `ssh-rsa …` and their unencrypted private keys), as in
//! age and SOPS.

use std::io::Read;
use std::path::PathBuf;
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::SopsError;

/// A recipient a data key can be wrapped for.
pub struct Recipient(Box<dyn age::Recipient + Send + Sync>);

/// An identity that may unwrap a data key.
pub struct Identity(Box<dyn age::Identity + Send + Sync>);

impl From<age::x25519::Identity> for Identity {
    fn from(id: age::x25519::Identity) -> Self {
        Self(Box::new(id))
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Identity(..)")
    }
}

/// An age recipient: X25519 (`age1…`) or SSH (`ssh-ed25519 AAAA…`,
/// `ssh-rsa AAAA…`).
pub fn recipient(s: &str) -> Result<Recipient, SopsError> {
    let s = s.trim();
    if s.starts_with("ssh-") {
        return age::ssh::Recipient::from_str(s)
            .map(|r| Recipient(Box::new(r)))
            .map_err(|e| {
                SopsError::Malformed(format!(
                    "{s:?} is not an SSH recipient age supports (ssh-ed25519 or ssh-rsa): {e:?}"
                ))
            });
    }
    age::x25519::Recipient::from_str(s)
        .map(|r| Recipient(Box::new(r)))
        .map_err(|e| {
            SopsError::Malformed(format!(
                "{s:?} is not an age recipient (age1…, ssh-ed25519 …, ssh-rsa …): {e}"
            ))
        })
}

/// The `enc` of an `age` entry: the data key (or the group's share of it)
/// encrypted to `recipient`.
pub fn wrap(part: &[u8], recipient: &Recipient) -> Result<String, SopsError> {
    use std::io::Write;
    let fail =
        |e: &dyn std::fmt::Display| SopsError::Malformed(format!("age encryption failed: {e}"));
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&*recipient.0 as &dyn age::Recipient))
            .map_err(|e| fail(&e))?;
    let mut out = Vec::new();
    let armored = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(|e| fail(&e))?;
    let mut w = encryptor.wrap_output(armored).map_err(|e| fail(&e))?;
    w.write_all(part).map_err(|e| fail(&e))?;
    w.finish().and_then(|a| a.finish()).map_err(|e| fail(&e))?;
    String::from_utf8(out).map_err(|e| fail(&e))
}

/// Unwraps an `enc` with any of `identities`; `None` when none of them fits.
pub fn unwrap(enc: &str, identities: &[Identity]) -> Option<Zeroizing<Vec<u8>>> {
    let reader = age::armor::ArmoredReader::new(enc.as_bytes());
    let decryptor = age::Decryptor::new(reader).ok()?;
    let mut r = decryptor
        .decrypt(identities.iter().map(|i| &*i.0 as &dyn age::Identity))
        .ok()?;
    let mut out = Zeroizing::new(Vec::new());
    r.read_to_end(&mut out).ok()?;
    Some(out)
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
/// `AGE-SECRET-KEY-1…` lines, several to a line allowed).
pub fn parse_identities(text: &str, source: &str) -> Result<Vec<Identity>, SopsError> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(|l| {
            age::x25519::Identity::from_str(l)
                .map(Identity::from)
                .map_err(|_| {
                    SopsError::Malformed(format!(
                        "{source}: a line is not an age identity (AGE-SECRET-KEY-1…); plugin and post-quantum identities are not supported"
                    ))
                })
        })
        .collect()
}

/// An SSH private key (OpenSSH or PEM format, not passphrase-protected,
/// as SOPS requires).
pub fn ssh_identity(text: &[u8], source: &str) -> Result<Identity, SopsError> {
    let id = age::ssh::Identity::from_buffer(text, Some(source.to_owned()))
        .map_err(|e| SopsError::Malformed(format!("{source}: not an SSH private key: {e}")))?;
    match id {
        age::ssh::Identity::Unencrypted(_) => Ok(Identity(Box::new(id))),
        age::ssh::Identity::Encrypted(_) => Err(SopsError::Malformed(format!(
            "{source}: the SSH key is passphrase-protected, which SOPS does not support either"
        ))),
        age::ssh::Identity::Unsupported(_) => Err(SopsError::Malformed(format!(
            "{source}: an SSH key type age does not support (ssh-ed25519 and ssh-rsa are)"
        ))),
    }
}

/// Runs a `SOPS_AGE_*_CMD` command (split as a shell would, not run by
/// one) and returns what it prints.
fn command_output(var: &str, command: &str) -> Result<Zeroizing<Vec<u8>>, SopsError> {
    let words = shlex::split(command)
        .filter(|w| !w.is_empty())
        .ok_or_else(|| {
            SopsError::Malformed(format!("{var}: cannot split {command:?} into words"))
        })?;
    let out = std::process::Command::new(&words[0])
        .args(&words[1..])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| SopsError::Malformed(format!("{var}: running {:?}: {e}", words[0])))?;
    if !out.status.success() {
        return Err(SopsError::Malformed(format!(
            "{var}: {:?} failed ({})",
            words[0], out.status
        )));
    }
    Ok(Zeroizing::new(out.stdout))
}

/// Every identity SOPS would find, all of them combined: SSH keys
/// (`SOPS_AGE_SSH_PRIVATE_KEY_FILE`, `SOPS_AGE_SSH_PRIVATE_KEY_CMD`, then
/// `~/.ssh/id_ed25519` and `~/.ssh/id_rsa` when they are usable), then
/// `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY_CMD`, and
/// `$XDG_CONFIG_HOME/sops/age/keys.txt` (or `~/.config/sops/age/keys.txt`).
pub fn load_identities() -> Result<Vec<Identity>, SopsError> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut ids = Vec::new();
    if let Some(path) = env("SOPS_AGE_SSH_PRIVATE_KEY_FILE") {
        let text = Zeroizing::new(std::fs::read(&path).map_err(|e| {
            SopsError::Malformed(format!("SOPS_AGE_SSH_PRIVATE_KEY_FILE {path}: {e}"))
        })?);
        ids.push(ssh_identity(&text, &path)?);
    }
    if let Some(cmd) = env("SOPS_AGE_SSH_PRIVATE_KEY_CMD") {
        let text = command_output("SOPS_AGE_SSH_PRIVATE_KEY_CMD", &cmd)?;
        ids.push(ssh_identity(&text, "SOPS_AGE_SSH_PRIVATE_KEY_CMD")?);
    }
    for name in ["id_ed25519", "id_rsa"] {
        // The usual keys are tried when they are there and usable; a
        // passphrase-protected one is passed over, as SOPS does.
        if let Some(p) = home.as_ref().map(|h| h.join(".ssh").join(name))
            && let Ok(text) = std::fs::read(&p).map(Zeroizing::new)
            && let Ok(id) = ssh_identity(&text, &p.display().to_string())
        {
            ids.push(id);
        }
    }
    if let Some(k) = env("SOPS_AGE_KEY") {
        ids.extend(parse_identities(&k, "SOPS_AGE_KEY")?);
    }
    if let Some(path) = env("SOPS_AGE_KEY_FILE") {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| SopsError::Malformed(format!("SOPS_AGE_KEY_FILE {path}: {e}")))?;
        ids.extend(parse_identities(&text, &path)?);
    }
    if let Some(cmd) = env("SOPS_AGE_KEY_CMD") {
        let out = command_output("SOPS_AGE_KEY_CMD", &cmd)?;
        let text = std::str::from_utf8(&out).map_err(|_| {
            SopsError::Malformed("SOPS_AGE_KEY_CMD printed something that is not text".into())
        })?;
        ids.extend(parse_identities(text, "SOPS_AGE_KEY_CMD")?);
    }
    let default = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".config")))
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
        let enc = wrap(&key, &recipient(&id.to_public().to_string()).expect("r")).expect("wrap");
        assert!(
            enc.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"),
            "{enc}"
        );
        assert!(enc.ends_with("-----END AGE ENCRYPTED FILE-----\n"), "{enc}");
        let got = unwrap(&enc, &[other.clone().into(), id.clone().into()]).expect("unwrap");
        assert_eq!(got.as_slice(), key);
        assert!(unwrap(&enc, &[other.into()]).is_none());
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
