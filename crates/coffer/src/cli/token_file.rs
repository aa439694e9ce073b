//! `~/.coffer-token`: where `coffer login` keeps the token, 0600, written atomically.

use std::path::PathBuf;

use anyhow::Context;

/// The token file's path (`$COFFER_TOKEN_FILE`, else `~/.coffer-token`).
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("COFFER_TOKEN_FILE") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".coffer-token"))
}

/// The stored token, if any.
pub fn read() -> Option<String> {
    let p = path()?;
    let t = std::fs::read_to_string(p).ok()?;
    let t = t.trim().to_owned();
    (!t.is_empty()).then_some(t)
}

/// Replaces the stored token (0600, written atomically).
pub fn write(token: &str) -> anyhow::Result<PathBuf> {
    let p = path()
        .context("cannot find a home directory for ~/.coffer-token; set COFFER_TOKEN_FILE")?;
    super::private_file::write(&p, token.as_bytes())?;
    Ok(p)
}
