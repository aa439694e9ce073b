//! `coffer policy fmt`: canonical layout for HCL policies, comments kept.
//!
//! Lines are re-indented by bracket depth (two spaces), `key = value` spacing
//! is normalised and `=` aligned within runs of attributes. The result must
//! parse to exactly the same rules as the input, or nothing is returned.

use super::parse_policy;

/// Why a policy could not be formatted.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

/// One line of the laid-out policy.
enum Line {
    Blank,
    Text {
        indent: usize,
        text: String,
    },
    Attr {
        indent: usize,
        key: String,
        value: String,
    },
}

/// The characters of `line` outside string literals, with their byte offsets.
fn outside_strings(line: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let (mut in_str, mut escaped) = (false, false);
    line.char_indices().filter(move |&(_, c)| {
        if in_str {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            return false;
        }
        if c == '"' {
            in_str = true;
            return false;
        }
        true
    })
}

/// Bracket depth change of a line (comments ignored), and whether it opens with a closer.
fn depth_change(line: &str) -> (i32, bool) {
    let mut delta = 0i32;
    let mut prev = ' ';
    for (_, c) in outside_strings(line) {
        match c {
            '#' => break,
            '/' if prev == '/' => break,
            '{' | '[' => delta += 1,
            '}' | ']' => delta -= 1,
            _ => {}
        }
        prev = c;
    }
    (delta, line.starts_with(['}', ']']))
}

/// Splits `key = value` at the first `=` outside quotes.
fn split_attr(line: &str) -> Option<(&str, &str)> {
    for (i, c) in outside_strings(line) {
        match c {
            '=' => {
                let (k, v) = (line[..i].trim(), line[i + 1..].trim());
                let plain_key = !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-\"*/.+".contains(c));
                return plain_key.then_some((k, v));
            }
            '{' | '[' | '#' => return None,
            _ => {}
        }
    }
    None
}

/// Formats policy text; the rules it parses to do not change.
pub fn format_policy(src: &str) -> Result<String, FormatError> {
    if src.trim_start().starts_with('{') {
        return Err(FormatError("this policy is JSON; fmt formats HCL".into()));
    }
    let before = parse_policy("fmt", src).map_err(|e| FormatError(e.to_string()))?;
    // First pass: indentation and attribute spacing.
    let mut lines: Vec<Line> = Vec::new();
    let mut depth: i32 = 0;
    for raw in src.lines() {
        let line = raw.trim();
        if line.is_empty() {
            if !matches!(lines.last(), None | Some(Line::Blank)) {
                lines.push(Line::Blank);
            }
            continue;
        }
        let (delta, leading_close) = depth_change(line);
        let indent = (depth - i32::from(leading_close)).max(0) as usize;
        depth = (depth + delta).max(0);
        lines.push(match split_attr(line) {
            Some((k, v)) if !v.is_empty() => Line::Attr {
                indent,
                key: k.to_owned(),
                value: v.to_owned(),
            },
            // Block headers: one space before the brace.
            _ if line.ends_with('{') => Line::Text {
                indent,
                text: format!("{} {{", line.trim_end_matches('{').trim_end()),
            },
            _ => Line::Text {
                indent,
                text: line.to_owned(),
            },
        });
    }
    while matches!(lines.last(), Some(Line::Blank)) {
        lines.pop();
    }
    // Second pass: align `=` within runs of attributes at the same indent.
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        match &lines[i] {
            Line::Blank => out.push('\n'),
            Line::Text { indent, text } => {
                out.push_str(&format!("{}{text}\n", "  ".repeat(*indent)))
            }
            Line::Attr { indent, .. } => {
                let run: Vec<(&String, &String)> = lines[i..]
                    .iter()
                    .map_while(|l| match l {
                        Line::Attr {
                            indent: d,
                            key,
                            value,
                        } if d == indent => Some((key, value)),
                        _ => None,
                    })
                    .collect();
                let width = run.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                for (k, v) in &run {
                    out.push_str(&format!("{}{k:<width$} = {v}\n", "  ".repeat(*indent)));
                }
                i += run.len();
                continue;
            }
        }
        i += 1;
    }
    let after = parse_policy("fmt", &out)
        .map_err(|e| FormatError(format!("formatting broke the policy ({e}); left unchanged")))?;
    if after.rules != before.rules {
        return Err(FormatError(
            "formatting would change the policy's meaning; left unchanged".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messy_policy_is_laid_out_and_keeps_comments() {
        let messy = "# readers\npath \"secret/*\"   {\ncapabilities=[\"read\",\"list\"]\n     # only in the day\n  min_wrapping_ttl=\"1s\"\n}\n\n\n\npath \"sys/mounts\" {\n policy = \"write\"\nallowed_parameters = {\n\"type\" = [\"kv\"]\n}\n}\n\n";
        let want = "# readers\npath \"secret/*\" {\n  capabilities = [\"read\",\"list\"]\n  # only in the day\n  min_wrapping_ttl = \"1s\"\n}\n\npath \"sys/mounts\" {\n  policy             = \"write\"\n  allowed_parameters = {\n    \"type\" = [\"kv\"]\n  }\n}\n";
        let got = format_policy(messy).unwrap();
        assert_eq!(got, want);
        assert_eq!(format_policy(&got).unwrap(), got, "idempotent");
    }

    #[test]
    fn json_and_broken_policies_are_refused() {
        assert!(format_policy("{\"path\": {}}").is_err());
        assert!(format_policy("path \"a\" { capabilities = [\"fly\"] }").is_err());
    }
}
