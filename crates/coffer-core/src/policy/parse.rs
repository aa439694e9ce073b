//! Policy text -> rules. HCL (through hcl-edit) or the JSON form hvac sends.

use std::collections::BTreeMap;

use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::repr::Span;
use hcl_edit::structure::{BlockLabel, Structure};
use serde_json::Value;

use super::{Caps, PathRule, Permissions, Policy};
use crate::fields::parse_duration;

/// Why a policy does not parse; names the path rule and line when known.
#[derive(Debug, Clone, thiserror::Error)]
#[error("failed to parse policy: {0}")]
pub struct PolicyError(pub String);

/// Parses a policy's text (HCL or JSON) under `name`.
pub fn parse_policy(name: &str, raw: &str) -> Result<Policy, PolicyError> {
    let text = raw.trim_start();
    let rules = if text.starts_with('{') {
        parse_json(text)?
    } else {
        parse_hcl(raw)?
    };
    Ok(Policy {
        name: name.to_owned(),
        raw: raw.to_owned(),
        rules,
    })
}

/// A loose value: what both syntaxes reduce to.
enum Loose {
    Str(String),
    List(Vec<String>),
    Map(BTreeMap<String, Vec<String>>),
}

fn legacy_policy(p: &str) -> Result<Caps, String> {
    Ok(match p {
        "deny" => Caps::DENY,
        "read" => Caps::READ.union(Caps::LIST),
        "write" => Caps::CREATE
            .union(Caps::READ)
            .union(Caps::UPDATE)
            .union(Caps::DELETE)
            .union(Caps::LIST),
        "sudo" => Caps::CREATE
            .union(Caps::READ)
            .union(Caps::UPDATE)
            .union(Caps::DELETE)
            .union(Caps::LIST)
            .union(Caps::SUDO),
        other => {
            return Err(format!(
                "invalid policy value {other:?}: use read, write, sudo or deny"
            ));
        }
    })
}

/// Why a rule is wrong, and which of its fields (by index) when one is.
type RuleError = (Option<usize>, String);

fn build_rule(pattern: &str, fields: Vec<(String, Loose)>) -> Result<PathRule, RuleError> {
    let whole = |m: String| (None, m);
    let pattern = pattern.strip_prefix('/').unwrap_or(pattern).to_owned();
    if pattern.contains("+*") || pattern.contains("*+") {
        return Err(whole(format!(
            "path {pattern:?}: '+*' is not a valid pattern"
        )));
    }
    if pattern.find('*').is_some_and(|i| i != pattern.len() - 1) {
        return Err(whole(format!(
            "path {pattern:?}: '*' may only be the last character"
        )));
    }
    let mut perms = Permissions::default();
    let mut saw_caps = false;
    for (i, (key, v)) in fields.into_iter().enumerate() {
        apply_field(&pattern, &key, v, &mut perms, &mut saw_caps).map_err(|m| (Some(i), m))?;
    }
    if !saw_caps {
        return Err(whole(format!(
            "path {pattern:?}: needs capabilities (or the legacy policy key)"
        )));
    }
    if perms.min_wrapping_ttl > 0
        && perms.max_wrapping_ttl > 0
        && perms.min_wrapping_ttl > perms.max_wrapping_ttl
    {
        return Err(whole(format!(
            "path {pattern:?}: min_wrapping_ttl is greater than max_wrapping_ttl"
        )));
    }
    if perms.caps.contains(Caps::DENY) {
        // A deny rule grants nothing else.
        perms.caps = Caps::DENY;
    }
    Ok(PathRule { pattern, perms })
}

/// Applies one key of a path rule.
fn apply_field(
    pattern: &str,
    key: &str,
    v: Loose,
    perms: &mut Permissions,
    saw_caps: &mut bool,
) -> Result<(), String> {
    let wrong = |want: &str| format!("path {pattern:?}: {key} must be {want}");
    match (key, v) {
        ("capabilities", Loose::List(list)) => {
            *saw_caps = true;
            for c in list {
                let cap = Caps::from_name(&c.to_lowercase())
                    .ok_or_else(|| format!("path {pattern:?}: unknown capability {c:?}"))?;
                perms.caps = perms.caps.union(cap);
            }
        }
        ("policy", Loose::Str(p)) => {
            *saw_caps = true;
            perms.caps = perms.caps.union(
                legacy_policy(&p.to_lowercase()).map_err(|e| format!("path {pattern:?}: {e}"))?,
            );
        }
        ("allowed_parameters", Loose::Map(m)) => {
            perms.allowed_parameters = m.into_iter().map(|(k, v)| (k.to_lowercase(), v)).collect()
        }
        ("denied_parameters", Loose::Map(m)) => {
            perms.denied_parameters = m.into_iter().map(|(k, v)| (k.to_lowercase(), v)).collect()
        }
        ("required_parameters", Loose::List(l)) => perms.required_parameters = l,
        ("min_wrapping_ttl", Loose::Str(s)) => {
            perms.min_wrapping_ttl =
                parse_duration(&s).map_err(|e| format!("path {pattern:?}: {e}"))?
        }
        ("max_wrapping_ttl", Loose::Str(s)) => {
            perms.max_wrapping_ttl =
                parse_duration(&s).map_err(|e| format!("path {pattern:?}: {e}"))?
        }
        ("capabilities" | "required_parameters", _) => return Err(wrong("a list of strings")),
        ("allowed_parameters" | "denied_parameters", _) => return Err(wrong("a map of lists")),
        ("policy" | "min_wrapping_ttl" | "max_wrapping_ttl", _) => {
            return Err(wrong("a string"));
        }
        (other, _) => return Err(format!("path {pattern:?}: unknown key {other:?}")),
    }
    Ok(())
}

fn scalar_text(e: &Expression) -> Option<String> {
    match e {
        Expression::String(s) => Some(s.value().clone()),
        Expression::Number(n) => Some(n.value().to_string()),
        Expression::Bool(b) => Some(b.value().to_string()),
        _ => None,
    }
}

fn hcl_loose(e: &Expression) -> Option<Loose> {
    Some(match e {
        Expression::Array(a) => Loose::List(a.iter().map(scalar_text).collect::<Option<Vec<_>>>()?),
        Expression::Object(o) => {
            let mut m = BTreeMap::new();
            for (k, v) in o.iter() {
                let key = match k {
                    ObjectKey::Ident(i) => i.value().as_str().to_owned(),
                    ObjectKey::Expression(e) => scalar_text(e)?,
                };
                let vals = match v.expr() {
                    Expression::Array(a) => {
                        a.iter().map(scalar_text).collect::<Option<Vec<_>>>()?
                    }
                    other => vec![scalar_text(other)?],
                };
                m.insert(key, vals);
            }
            Loose::Map(m)
        }
        other => Loose::Str(scalar_text(other)?),
    })
}

fn parse_hcl(src: &str) -> Result<Vec<PathRule>, PolicyError> {
    let (body, text) = crate::hcl1::parse_body(src).map_err(PolicyError)?;
    let mut rules = Vec::new();
    for s in body.iter() {
        match s {
            Structure::Block(b) if b.ident.value().as_str() == "path" => {
                let pattern = match b.labels.as_slice() {
                    [BlockLabel::String(p)] => p.value().clone(),
                    [BlockLabel::Ident(p)] => p.value().as_str().to_owned(),
                    _ => {
                        return Err(PolicyError(format!(
                            "{}path block needs one quoted path",
                            text.line_prefix(b.span())
                        )));
                    }
                };
                let mut fields = Vec::new();
                let mut spans = Vec::new();
                for inner in b.body.iter() {
                    let Structure::Attribute(a) = inner else {
                        return Err(PolicyError(format!(
                            "{}unexpected block inside path {pattern:?}",
                            text.line_prefix(inner.span())
                        )));
                    };
                    let key = a.key.value().as_str().to_owned();
                    let v = hcl_loose(&a.value).ok_or_else(|| {
                        PolicyError(format!(
                            "{}path {pattern:?}: {key} has an unsupported value",
                            text.line_prefix(a.span())
                        ))
                    })?;
                    fields.push((key, v));
                    spans.push(a.span());
                }
                rules.push(build_rule(&pattern, fields).map_err(|(field, e)| {
                    let span = field.and_then(|i| spans.get(i).cloned().flatten());
                    PolicyError(format!("{}{e}", text.line_prefix(span.or(b.span()))))
                })?);
            }
            Structure::Block(b) => {
                return Err(PolicyError(format!(
                    "{}unknown block {:?}; policies hold path blocks",
                    text.line_prefix(b.span()),
                    b.ident.value().as_str()
                )));
            }
            Structure::Attribute(a) => {
                // Vault ignores a top-level `name` in older policy files.
                if a.key.value().as_str() != "name" {
                    return Err(PolicyError(format!(
                        "{}unknown key {:?}; policies hold path blocks",
                        text.line_prefix(a.span()),
                        a.key.value().as_str()
                    )));
                }
            }
        }
    }
    Ok(rules)
}

fn json_loose(v: &Value) -> Option<Loose> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    };
    Some(match v {
        Value::Array(a) => Loose::List(a.iter().map(text).collect::<Option<Vec<_>>>()?),
        Value::Object(o) => {
            let mut m = BTreeMap::new();
            for (k, v) in o {
                let vals = match v {
                    Value::Array(a) => a.iter().map(text).collect::<Option<Vec<_>>>()?,
                    other => vec![text(other)?],
                };
                m.insert(k.clone(), vals);
            }
            Loose::Map(m)
        }
        other => Loose::Str(text(other)?),
    })
}

fn parse_json(src: &str) -> Result<Vec<PathRule>, PolicyError> {
    let v: Value =
        serde_json::from_str(src).map_err(|e| PolicyError(format!("invalid JSON: {e}")))?;
    let Some(paths) = v.get("path") else {
        return Ok(Vec::new());
    };
    let Value::Object(paths) = paths else {
        return Err(PolicyError(
            "\"path\" must be an object of path rules".into(),
        ));
    };
    let mut rules = Vec::new();
    for (pattern, body) in paths {
        let Value::Object(body) = body else {
            return Err(PolicyError(format!("path {pattern:?} must be an object")));
        };
        let mut fields = Vec::new();
        for (k, v) in body {
            let l = json_loose(v).ok_or_else(|| {
                PolicyError(format!("path {pattern:?}: {k} has an unsupported value"))
            })?;
            fields.push((k.clone(), l));
        }
        rules.push(build_rule(pattern, fields).map_err(|(_, e)| PolicyError(e))?);
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hcl_and_json_give_the_same_rules() {
        let hcl = r#"
path "secret/*" {
  capabilities = ["read", "list"]
}
path "/sys/mounts" {
  policy = "write"
  allowed_parameters = {
    "type" = ["kv"]
    "*" = []
  }
  min_wrapping_ttl = "1s"
  max_wrapping_ttl = 90
}
"#;
        let json = r#"{"path": {"secret/*": {"capabilities": ["read", "list"]},
            "/sys/mounts": {"policy": "write", "allowed_parameters": {"type": ["kv"], "*": []},
                            "min_wrapping_ttl": "1s", "max_wrapping_ttl": "90"}}}"#;
        let mut a = parse_policy("p", hcl).unwrap();
        let mut b = parse_policy("p", json).unwrap();
        assert_eq!(a.raw, hcl, "raw text kept verbatim");
        a.rules.sort_by(|x, y| x.pattern.cmp(&y.pattern));
        b.rules.sort_by(|x, y| x.pattern.cmp(&y.pattern));
        assert_eq!(a.rules, b.rules);
        assert_eq!(a.rules[1].pattern, "sys/mounts");
        assert!(a.rules[1].perms.caps.contains(Caps::UPDATE));
        assert_eq!(a.rules[1].perms.max_wrapping_ttl, 90);
    }

    #[test]
    fn bad_policies_are_refused_with_a_reason() {
        for (src, needle) in [
            (
                "path \"a\" { capabilities = [\"reed\"] }",
                "unknown capability",
            ),
            ("path \"a\" { policy = \"all\" }", "invalid policy value"),
            (
                "path \"a*b\" { capabilities = [\"read\"] }",
                "last character",
            ),
            ("path \"a\" { }", "needs capabilities"),
            ("path \"a\" { capabilities = \"read\" }", "list of strings"),
            ("pth \"a\" { capabilities = [] }", "unknown block"),
            ("path \"a\" { capabilities = [\"read\"] ", "line"),
            ("{\"path\": 3}", "object"),
            (
                "path \"a\" {\n  capabilities = [\"read\"]\n  colour = \"red\"\n}",
                "unknown key",
            ),
        ] {
            let e = parse_policy("p", src).unwrap_err().to_string();
            assert!(e.contains(needle), "{src}: {e}");
        }
    }

    #[test]
    fn hcl1_layouts_and_error_lines() {
        let p = parse_policy(
            "p",
            "path \"a\" { capabilities = [\"read\"] } path \"b\" { capabilities = [\"list\"] policy = \"read\" }",
        )
        .unwrap();
        assert_eq!(p.rules.len(), 2);
        for (src, line) in [
            (
                "path \"a\" {\n  capabilities = [\"read\"]\n  colour = \"red\"\n}",
                3,
            ),
            ("\n\npath \"a\" { capabilities = [\"reed\"] }", 3),
            (
                "path \"a\" { capabilities = [\"read\"] } path \"b\" {\n capabilities = 1 }",
                2,
            ),
            (
                "path \"a\" { capabilities = [\"read\"] }\n\npth \"b\" {}",
                3,
            ),
            ("path \"a\" { capabilities = [\"read\"] }\n\n bad bad", 3),
        ] {
            let e = parse_policy("p", src).unwrap_err().to_string();
            assert!(e.contains(&format!("line {line}:")), "{src}: {e}");
        }
    }

    #[test]
    fn deny_discards_other_capabilities() {
        let p = parse_policy("p", "path \"a\" { capabilities = [\"read\", \"deny\"] }").unwrap();
        assert_eq!(p.rules[0].perms.caps, Caps::DENY);
    }
}
