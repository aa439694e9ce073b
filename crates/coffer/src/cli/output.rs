//! Printing responses as Vault's CLI does: aligned tables, JSON or YAML.

use serde_json::Value;

use super::Format;

/// Formats seconds the way Go prints durations (`768h`, `1h30m`, `45s`).
pub fn go_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// A value as one table cell.
pub fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "n/a".into(),
        Value::Array(a) => format!("[{}]", a.iter().map(cell).collect::<Vec<_>>().join(" ")),
        Value::Object(_) => v.to_string(),
        other => other.to_string(),
    }
}

/// Prints one `-field` value: with a newline on a terminal, without one
/// into a pipe or file, as Vault's CLI does (`-field=key > key.pem` keeps
/// the bytes exact).
pub fn field(v: &Value) {
    use std::io::{IsTerminal as _, Write as _};
    let text = cell(v);
    let mut out = std::io::stdout();
    if out.is_terminal() {
        println!("{text}");
    } else {
        print!("{text}");
        let _ = out.flush();
    }
}

/// Prints rows under a `Key / Value` header with aligned columns.
pub fn table(rows: &[(String, String)]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(3).max(3);
    println!("{:<width$}    Value", "Key");
    println!("{:<width$}    -----", "---");
    for (k, v) in rows {
        println!("{k:<width$}    {v}");
    }
}

/// The `auth` block as Vault's CLI prints it (its Go client's fields:
/// `identity_policies` present, the server-only `num_uses` and
/// `token_type` absent), so scripts reading either CLI's JSON agree.
fn cli_auth(v: &Value) -> std::borrow::Cow<'_, Value> {
    let Some(Value::Object(auth)) = v.get("auth") else {
        return std::borrow::Cow::Borrowed(v);
    };
    let mut a = auth.clone();
    a.remove("num_uses");
    a.remove("token_type");
    a.entry("identity_policies").or_insert(Value::Null);
    let mut out = v.clone();
    out["auth"] = Value::Object(a);
    std::borrow::Cow::Owned(out)
}

/// Prints a response as JSON (pretty) or YAML, as `-format` asks; a table
/// format prints nothing, the caller draws its own.
pub fn structured(v: &Value, format: Format) {
    let v = cli_auth(v);
    let v = v.as_ref();
    match format {
        Format::Table => {}
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
        ),
        Format::Yaml => match serde_norway::to_string(v) {
            Ok(y) => print!("{y}"),
            Err(e) => eprintln!("Error: cannot print as YAML: {e}"),
        },
    }
}

/// A table with a header row, columns as wide as their widest cell.
pub fn columns(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("    ").trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for r in rows {
        line(r.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(2_764_800), "768h");
        assert_eq!(go_duration(5410), "1h30m10s");
        assert_eq!(go_duration(0), "0s");
    }
}
