//! Server configuration written as JSON, as Vault accepts it: turned into
//! the equivalent HCL and read by the one configuration parser. An object
//! whose values are all objects gives block labels (`"storage": {"file":
//! {...}}` is `storage "file" { ... }`); a list of objects repeats the block
//! (`"listener": [{"tcp": {...}}]`); anything else is an attribute.

use serde_json::Value;

/// The HCL text for a JSON configuration.
pub fn to_hcl(src: &str) -> Result<String, String> {
    let v: Value = serde_json::from_str(src).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(top) = v else {
        return Err("a JSON configuration must be an object".into());
    };
    let mut out = String::new();
    for (k, v) in &top {
        item(&mut out, k, &[], v, 0)?;
    }
    Ok(out)
}

fn quote(s: &str) -> String {
    // JSON string escapes are valid HCL string escapes; `${` and `%{`
    // would start a template.
    serde_json::to_string(s)
        .unwrap_or_default()
        .replace("${", "$${")
        .replace("%{", "%%{")
}

fn ident(k: &str) -> Result<&str, String> {
    let ok = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(k)
    } else {
        Err(format!("{k:?} is not a valid configuration key"))
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(quote(s)),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn item(
    out: &mut String,
    key: &str,
    labels: &[&str],
    v: &Value,
    depth: usize,
) -> Result<(), String> {
    let pad = "  ".repeat(depth);
    match v {
        Value::Object(m)
            if !m.is_empty() && labels.len() < 2 && m.values().all(Value::is_object) =>
        {
            for (label, inner) in m {
                let mut next = labels.to_vec();
                next.push(label);
                item(out, key, &next, inner, depth)?;
            }
            Ok(())
        }
        Value::Object(m) => {
            out.push_str(&format!("{pad}{}", ident(key)?));
            for l in labels {
                out.push_str(&format!(" {}", quote(l)));
            }
            out.push_str(" {\n");
            for (k, inner) in m {
                item(out, k, &[], inner, depth + 1)?;
            }
            out.push_str(&format!("{pad}}}\n"));
            Ok(())
        }
        Value::Array(list) if !list.is_empty() && list.iter().all(Value::is_object) => {
            for inner in list {
                item(out, key, labels, inner, depth)?;
            }
            Ok(())
        }
        Value::Array(list) => {
            let items = list
                .iter()
                .map(|x| {
                    scalar(x)
                        .ok_or_else(|| format!("{key:?}: lists hold strings, numbers or bools"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.push_str(&format!("{pad}{} = [{}]\n", ident(key)?, items.join(", ")));
            Ok(())
        }
        Value::Null => Ok(()),
        other => {
            let s = scalar(other).unwrap_or_default();
            out.push_str(&format!("{pad}{} = {s}\n", ident(key)?));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_json_shapes_become_blocks() {
        let hcl = to_hcl(
            r#"{"storage": {"file": {"path": "/d"}}, "listener": [{"tcp": {"address": "127.0.0.1:8200", "tls_disable": true}}],
                "seal": {"transit": {"address": "https://k", "key_name": "k"}}, "default_lease_ttl": "1h", "ui": true,
                "audit": {"file": {"main": {"file_path": "/a.log"}}}}"#,
        )
        .unwrap();
        assert_eq!(
            hcl,
            "audit \"file\" \"main\" {\n  file_path = \"/a.log\"\n}\ndefault_lease_ttl = \"1h\"\nlistener \"tcp\" {\n  address = \"127.0.0.1:8200\"\n  tls_disable = true\n}\nseal \"transit\" {\n  address = \"https://k\"\n  key_name = \"k\"\n}\nstorage \"file\" {\n  path = \"/d\"\n}\nui = true\n"
        );
    }

    #[test]
    fn bad_json_is_refused_with_the_reason() {
        assert!(to_hcl("{").unwrap_err().contains("not valid JSON"));
        assert!(to_hcl("[1]").unwrap_err().contains("object"));
        assert!(to_hcl(r#"{"a b": 1}"#).unwrap_err().contains("not a valid"));
        assert_eq!(to_hcl(r#"{"x": "${y}"}"#).unwrap(), "x = \"$${y}\"\n");
    }
}
