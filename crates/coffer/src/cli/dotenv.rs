//! Reading a `.env` file into key/value pairs, for moving one into coffer
//! (`coffer kv put secret/app @.env`). Written here rather than taken from
//! a dotenv crate because those expand `$VAR` from the environment, which
//! would silently change a password that contains `$`.

use serde_json::{Map, Value};

/// Whether a file name is a dotenv file's: `.env`, `.env.production`, `app.env`.
pub fn is_dotenv_name(path: &str) -> bool {
    let name = std::path::Path::new(path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    name == ".env" || name.starts_with(".env.") || name.ends_with(".env")
}

/// Parses `KEY=value` lines: `export ` prefixes, `#` comments (whole lines,
/// or after a space in an unquoted value), single quotes (literal, may span
/// lines), double quotes (`\n`, `\t`, `\"`, `\\` escapes, may span lines).
/// Nothing is expanded. Errors name the line, never the value.
pub fn parse(text: &str) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((n, raw)) = lines.next() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, rest) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected KEY=value", n + 1))?;
        let key = key.trim();
        let valid = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
        if !valid {
            // The text is not shown: a malformed line may be a value.
            return Err(format!(
                "line {}: the name before '=' is not a variable name",
                n + 1
            ));
        }
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(q @ ('\'' | '"')) => {
                // The value runs to the closing quote, possibly lines later.
                let mut body = rest[1..].to_owned();
                let close = loop {
                    if let Some(i) = closing(&body, q) {
                        break i;
                    }
                    match lines.next() {
                        Some((_, more)) => {
                            body.push('\n');
                            body.push_str(more);
                        }
                        None => {
                            return Err(format!("line {}: the {q} quote is never closed", n + 1));
                        }
                    }
                };
                let inner = &body[..close];
                if q == '"' {
                    unescape(inner)
                } else {
                    inner.to_owned()
                }
            }
            _ => match rest.find(" #") {
                Some(i) => rest[..i].trim_end().to_owned(),
                None => rest.trim_end().to_owned(),
            },
        };
        out.insert(key.to_owned(), Value::String(value));
    }
    Ok(out)
}

/// The index of the quote that closes `body` (a `\"` does not, in double quotes).
fn closing(body: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            '\\' if q == '"' && !escaped => escaped = true,
            c if c == q && !escaped => return Some(i),
            _ => escaped = false,
        }
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_dotenv_files_use() {
        let m = parse(
            "# comment\n\nexport A=1\nB = plain value # note\nC='single $HOME \\n'\nD=\"line\\nnext \\\"q\\\" $X\"\nE=\nF=p#ss\nG=\"multi\nline\" # done\n",
        )
        .unwrap();
        let get = |k: &str| m[k].as_str().unwrap().to_owned();
        assert_eq!(get("A"), "1");
        assert_eq!(get("B"), "plain value");
        assert_eq!(get("C"), "single $HOME \\n", "single quotes are literal");
        assert_eq!(get("D"), "line\nnext \"q\" $X", "nothing is expanded");
        assert_eq!(get("E"), "");
        assert_eq!(get("F"), "p#ss", "a # inside a word is part of the value");
        assert_eq!(get("G"), "multi\nline");
    }

    #[test]
    fn mistakes_name_the_line_not_the_value() {
        let e = parse("A=1\nno equals sign s3cret\n").unwrap_err();
        assert_eq!(e, "line 2: expected KEY=value");
        let e = parse("A=\"s3cret\n").unwrap_err();
        assert!(e.contains("line 1") && !e.contains("s3cret"), "{e}");
        assert!(parse("1A=x").is_err());
        assert!(
            is_dotenv_name(".env") && is_dotenv_name("conf/.env.prod") && is_dotenv_name("app.env")
        );
        assert!(!is_dotenv_name("data.json") && !is_dotenv_name("environment"));
    }
}
