//! `~/.coffer-token`: where `coffer login` keeps the token, 0600, written atomically.

use std::io::Write;
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

/// Replaces the stored token: temp file created 0600 beside it, fsynced, renamed over.
pub fn write(token: &str) -> anyhow::Result<PathBuf> {
    let p = path()
        .context("cannot find a home directory for ~/.coffer-token; set COFFER_TOKEN_FILE")?;
    let dir = p
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let tmp = dir.join(format!(".coffer-token.{}.tmp", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let result = (|| {
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(token.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &p).with_context(|| format!("replacing {}", p.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    Ok(p)
}
