//! Statement placeholders, generated user names and passwords.

use coffer_core::LogicalError;
use coffer_core::fields::Fields;
use coffer_core::password_policy::{CharsetRule, PasswordPolicy};
use coffer_core::token::random_base62;
use zeroize::Zeroizing;

/// Vault's `{{expiration}}` layout: `2006-01-02 15:04:05-0700`.
pub(super) fn expiration(unix: i64) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second][offset_hour sign:mandatory][offset_minute]"
    );
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// Replaces `{{name}}`, `{{username}}`, `{{password}}`, `{{expiration}}`
/// (with or without spaces inside the braces).
pub(super) fn render(stmt: &str, vars: &[(&str, &str)]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(stmt.len() + 64));
    let mut rest = stmt;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = after[..end].trim();
                match vars.iter().find(|(k, _)| *k == key) {
                    Some((_, v)) => out.push_str(v),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// A statements field as Vault accepts it: a list, a string of statements
/// separated by `;`, a JSON array in a string, or base64 of any of these.
pub(super) fn statements(f: &Fields<'_>, key: &str) -> Result<Option<Vec<String>>, LogicalError> {
    let Some(raw) = f.raw(key) else {
        return Ok(None);
    };
    let list: Vec<String> = match raw {
        serde_json::Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    LogicalError::BadRequest(format!("{key} must be a list of strings"))
                })
            })
            .collect::<Result<_, _>>()?,
        serde_json::Value::String(s) => {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|d| d.contains(' '));
            let text = decoded.unwrap_or_else(|| s.clone());
            match serde_json::from_str::<Vec<String>>(&text) {
                Ok(v) => v,
                Err(_) if text.trim().is_empty() => Vec::new(),
                Err(_) => vec![text],
            }
        }
        serde_json::Value::Null => Vec::new(),
        _ => {
            return Err(LogicalError::BadRequest(format!(
                "{key} must be a list of strings or a string"
            )));
        }
    };
    Ok(Some(
        list.into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
    ))
}

/// Percent-escapes everything but unreserved characters, for user names and
/// passwords placed in URLs.
pub(super) fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Vault's default password policy: 20 characters of letters, digits and
/// `-`, at least one upper-case letter, lower-case letter, digit and `-`.
fn default_policy() -> PasswordPolicy {
    let rule = |set: &str| CharsetRule {
        charset: set.chars().collect(),
        min_chars: 1,
    };
    PasswordPolicy {
        raw: String::new(),
        length: 20,
        rules: vec![
            rule("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
            rule("abcdefghijklmnopqrstuvwxyz"),
            rule("0123456789"),
            rule("-"),
        ],
    }
}

/// A password in Vault's default shape.
pub(super) fn password() -> Result<Zeroizing<String>, LogicalError> {
    let p = default_policy().generate()?;
    Ok(Zeroizing::new(p.expose().to_owned()))
}

fn truncate(s: &str, n: usize) -> &str {
    // Inputs are ASCII after `clean`, so byte positions are char boundaries.
    &s[..s.len().min(n)]
}

/// Keeps what is safe inside a quoted identifier on both databases.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Vault's default user name: `v-<display>-<role>-<20 random>-<unix time>`,
/// with each part and the whole cut to the database's limits
/// (PostgreSQL: 8, 8, 63; MySQL: 10, 10, 32).
pub(super) fn username(
    display: &str,
    role: &str,
    part: usize,
    total: usize,
    now: i64,
) -> Result<String, LogicalError> {
    let name = format!(
        "v-{}-{}-{}-{now}",
        truncate(&clean(display), part),
        truncate(&clean(role), part),
        random_base62(20)?
    );
    Ok(truncate(&name, total).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_render() {
        let s = render(
            "CREATE ROLE \"{{name}}\" PASSWORD '{{ password }}' VALID UNTIL '{{expiration}}' {{other}}",
            &[("name", "u"), ("password", "p"), ("expiration", "e")],
        );
        assert_eq!(
            s.as_str(),
            "CREATE ROLE \"u\" PASSWORD 'p' VALID UNTIL 'e' {{other}}"
        );
        assert_eq!(expiration(0), "1970-01-01 00:00:00+0000");
    }

    #[test]
    fn names_and_passwords_have_vaults_shape() {
        let n = username("token", "readonly-role", 8, 63, 1_614_294_836).unwrap();
        assert!(n.starts_with("v-token-readonly-"), "{n}");
        assert!(n.ends_with("-1614294836"), "{n}");
        assert_eq!(n.len(), 2 + 5 + 1 + 8 + 1 + 20 + 1 + 10);
        let m = username("userpass-alice", "app", 10, 32, 1_614_294_836).unwrap();
        assert_eq!(m.len(), 32, "{m}");
        let p = password().unwrap();
        assert_eq!(p.len(), 20);
    }

    #[test]
    fn statements_in_every_shape() {
        use base64::Engine as _;
        let cases = [
            serde_json::json!({"s": ["A;", "B"]}),
            serde_json::json!({"s": "CREATE ROLE x; GRANT y"}),
            serde_json::json!({"s": "[\"A\",\"B\"]"}),
            serde_json::json!({"s": base64::engine::general_purpose::STANDARD.encode("CREATE ROLE x")}),
        ];
        let want: [&[&str]; 4] = [
            &["A;", "B"],
            &["CREATE ROLE x; GRANT y"],
            &["A", "B"],
            &["CREATE ROLE x"],
        ];
        for (c, w) in cases.iter().zip(want) {
            let m = c.as_object().unwrap();
            let got = statements(&Fields::new(m), "s").unwrap().unwrap();
            assert_eq!(got, w, "{c}");
        }
    }
}
