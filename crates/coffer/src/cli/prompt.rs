//! Secrets typed by a person: read from the terminal without echo, or
//! piped in on standard input.

use std::io::{IsTerminal, Read};

/// A secret: prompted for without echo on a terminal, else all of stdin
/// (trailing newline removed).
pub fn secret(prompt: &str) -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        return Ok(rpassword::prompt_password(prompt)?.trim().to_owned());
    }
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s)?;
    Ok(s.trim_end_matches(['\n', '\r']).to_owned())
}
