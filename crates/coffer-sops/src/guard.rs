//! A last look before writing: values that look like secrets but would stay
//! in clear under the file's rules (a mistyped regex or suffix has left real
//! secrets unencrypted in SOPS files).

use crate::Scalar;
use crate::tree::{Item, Node, Rules};

const SECRET_KEY_WORDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "privatekey",
    "private_key",
    "private-key",
    "credential",
    "access_key",
    "connection_string",
];

const SECRET_VALUE_PREFIXES: &[&str] = &[
    "AKIA",
    "ghp_",
    "gho_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "sk_live_",
    "rk_live_",
    "hvs.",
    "cvs.",
    "AGE-SECRET-KEY-1",
];

/// Whether a key name or value looks like a credential.
pub fn looks_secret(key: &str, value: &str) -> bool {
    if value.trim().is_empty() {
        return false;
    }
    let k = key.to_ascii_lowercase();
    SECRET_KEY_WORDS.iter().any(|w| k.contains(w))
        || SECRET_VALUE_PREFIXES.iter().any(|p| value.starts_with(p))
        || (value.contains("-----BEGIN") && value.contains("PRIVATE KEY"))
}

/// Paths (`a.b.c`) of values that look like secrets and would not be encrypted.
pub fn exposed_secrets(root: &Node, rules: &Rules) -> Vec<String> {
    let mut found = Vec::new();
    walk(root, rules, &mut Vec::new(), &mut found);
    found
}

fn walk(n: &Node, rules: &Rules, path: &mut Vec<String>, found: &mut Vec<String>) {
    match n {
        Node::Map(items) => {
            for i in items {
                if let Item::Pair(k, v) = i {
                    path.push(k.clone());
                    walk(v, rules, path, found);
                    path.pop();
                }
            }
        }
        Node::List(items) => items.iter().for_each(|v| walk(v, rules, path, found)),
        Node::Leaf(Scalar::Str(s)) => {
            let key = path.last().map_or("", String::as_str);
            if !rules.encrypts(path) && looks_secret(key, s) {
                found.push(path.join("."));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_left_in_clear_is_found() {
        let doc = crate::json::parse(
            r#"{"db_password_unencrypted": "hunter2", "name_unencrypted": "app", "token": "x", "ci": {"note_unencrypted": "ghp_abcdef"}}"#,
        )
        .expect("json");
        let rules = Rules {
            unencrypted_suffix: Some("_unencrypted".into()),
            ..Rules::default()
        };
        assert_eq!(
            exposed_secrets(&doc, &rules),
            vec!["db_password_unencrypted", "ci.note_unencrypted"]
        );
        assert!(!looks_secret("password", ""));
    }
}
