//! The INI store, read and written as SOPS' INI library (go-ini) does:
//! each section is a top-level mapping (keys before the first section go to
//! `DEFAULT`, written back without a header), every value is a string,
//! comments are kept (a section's before its header, a key's before the
//! key), and the `sops` block is a `[sops]` section of flattened keys.

use crate::tree::{Item, Node};
use crate::{Scalar, SopsError, flat};

/// The section keys outside any `[section]` belong to.
pub const DEFAULT: &str = "DEFAULT";

fn bad(msg: String) -> SopsError {
    SopsError::Malformed(msg)
}

/// Parses an INI file. In the tree a section's comment is its first item
/// and a key's comment follows the key (SOPS' order); a `[sops]` section
/// comes back as the unflattened `sops` block.
pub fn parse(text: &str) -> Result<Node, SopsError> {
    let mut sections: Vec<(String, Vec<Item>)> = vec![(DEFAULT.into(), Vec::new())];
    let mut pending: Vec<String> = Vec::new();
    let mut meta: Vec<(String, String)> = Vec::new();
    let mut lines = text.split('\n').enumerate();
    while let Some((n, raw)) = lines.next() {
        let line = raw.trim_end_matches('\r').trim();
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix([';', '#']) {
            pending.push(c.trim_start_matches([';', '#']).trim_start().to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let (name, after) = rest
                .split_once(']')
                .ok_or_else(|| bad(format!("INI line {}: a section header needs ']'", n + 1)))?;
            let after = after.trim();
            if !after.is_empty() && !after.starts_with([';', '#']) {
                return Err(bad(format!(
                    "INI line {}: text after a section header",
                    n + 1
                )));
            }
            // A comment after the header is the section's, as go-ini reads it.
            if let Some(c) = after.get(1..) {
                pending.push(c.trim_start_matches([';', '#']).trim().to_owned());
            }
            let name = name.trim();
            if sections.iter().any(|(s, _)| s == name) {
                return Err(bad(format!(
                    "INI line {}: section [{name}] appears twice",
                    n + 1
                )));
            }
            let items = pending.drain(..).map(Item::Comment).collect();
            sections.push((name.to_owned(), items));
            continue;
        }
        let at = line.find(['=', ':']).ok_or_else(|| {
            // The line itself is not quoted: it may hold a secret.
            bad(format!("INI line {} is not `key = value`", n + 1))
        })?;
        let key = line[..at].trim().to_owned();
        if key.is_empty() {
            return Err(bad(format!("INI line {} has no key", n + 1)));
        }
        let (value, comment) = value(line[at + 1..].trim(), &mut lines)?;
        let Some((section, items)) = sections.last_mut() else {
            continue;
        };
        if section == "sops" {
            pending.clear();
            meta.push((key, value.replace("\\n", "\n")));
            continue;
        }
        if items
            .iter()
            .any(|i| matches!(i, Item::Pair(k, _) if *k == key))
        {
            return Err(bad(format!(
                "INI line {}: key {key:?} appears twice in [{section}]",
                n + 1
            )));
        }
        items.push(Item::Pair(key, Node::Leaf(Scalar::Str(value))));
        items.extend(pending.drain(..).chain(comment).map(Item::Comment));
    }
    // Comments after the last key stay in the last section.
    if let Some((_, items)) = sections.last_mut() {
        items.extend(pending.drain(..).map(Item::Comment));
    }
    let mut root: Vec<Item> = sections
        .into_iter()
        .filter(|(name, items)| !(name == DEFAULT && items.is_empty()) && name != "sops")
        .map(|(name, items)| Item::Pair(name, Node::Map(items)))
        .collect();
    if !meta.is_empty() {
        root.push(Item::Pair(
            "sops".into(),
            flat::unflatten(&meta, "[sops] ")?,
        ));
    }
    Ok(Node::Map(root))
}

/// A value after `=`: `"""…"""` over several lines, `` `…` `` and `"…"`
/// taken as they are, else cut at an inline `#` or `;` comment (go-ini's
/// rules); returns the value and that comment.
fn value<'a>(
    v: &'a str,
    lines: &mut impl Iterator<Item = (usize, &'a str)>,
) -> Result<(String, Option<String>), SopsError> {
    if let Some(rest) = v.strip_prefix("\"\"\"") {
        if let Some(inner) = rest.strip_suffix("\"\"\"") {
            return Ok((inner.to_owned(), None));
        }
        let mut out = rest.to_owned();
        for (_, l) in lines.by_ref() {
            let l = l.trim_end_matches('\r');
            out.push('\n');
            if let Some(end) = l.find("\"\"\"") {
                out.push_str(&l[..end]);
                return Ok((out, None));
            }
            out.push_str(l);
        }
        return Err(bad("INI: a \"\"\" value is not closed".into()));
    }
    for q in ['`', '"'] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return Ok((v[1..v.len() - 1].to_owned(), None));
        }
    }
    Ok(match v.find(['#', ';']) {
        Some(at) => (
            v[..at].trim_end().to_owned(),
            Some(v[at + 1..].trim_start_matches(['#', ';']).trim().to_owned()),
        ),
        None => (v.to_owned(), None),
    })
}

/// Writes a tree (plain or encrypted) as INI: keys aligned within each
/// section, a blank line between sections, values quoted as go-ini quotes
/// them; the `sops` block last as a `[sops]` section, keys sorted.
pub fn emit(root: &Node) -> Result<String, SopsError> {
    let Node::Map(sections) = root else {
        return Err(bad("an INI file is a mapping of sections to keys".into()));
    };
    let mut blocks: Vec<String> = Vec::new();
    let mut meta = None;
    for s in sections {
        match s {
            Item::Pair(name, block) if name == "sops" => meta = Some(flat::flatten(block)),
            Item::Pair(name, Node::Map(items)) => blocks.push(section(name, items)?),
            Item::Pair(name, _) => {
                return Err(bad(format!(
                    "INI values live in sections; {name:?} is not a section (a mapping of strings)"
                )));
            }
            Item::Comment(_) | Item::LineComment(_) => {}
        }
    }
    if let Some(pairs) = meta {
        let width = pairs
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        let mut out = String::from("[sops]\n");
        for (k, v) in pairs {
            out.push_str(&format!("{k:width$} = {}\n", v.replace('\n', "\\n")));
        }
        blocks.push(out);
    }
    Ok(blocks.join("\n"))
}

fn section(name: &str, items: &[Item]) -> Result<String, SopsError> {
    let width = items
        .iter()
        .filter_map(|i| match i {
            Item::Pair(k, _) => Some(k.chars().count()),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    // Comments before the first key are the section's.
    let first = items
        .iter()
        .position(|i| matches!(i, Item::Pair(..)))
        .unwrap_or(items.len());
    for i in &items[..first] {
        if let Item::Comment(c) | Item::LineComment(c) = i {
            comment(&mut out, c);
        }
    }
    if name != DEFAULT {
        out.push_str(&format!("[{name}]\n"));
    }
    let mut rest = &items[first..];
    while let Some((Item::Pair(k, v), after)) = rest.split_first() {
        // A key's comments follow it in the tree and precede it in the file.
        let n = after
            .iter()
            .position(|i| matches!(i, Item::Pair(..)))
            .unwrap_or(after.len());
        for i in &after[..n] {
            if let Item::Comment(c) | Item::LineComment(c) = i {
                comment(&mut out, c);
            }
        }
        let text = match v {
            Node::Leaf(s) => String::from_utf8_lossy(&s.to_bytes()).into_owned(),
            Node::Null => String::new(),
            _ => {
                return Err(bad(format!(
                    "INI values are strings; [{name}] {k} is nested"
                )));
            }
        };
        out.push_str(&format!("{k:width$} = {}\n", quote(&text)));
        rest = &after[n..];
    }
    Ok(out)
}

fn comment(out: &mut String, c: &str) {
    out.push_str("; ");
    out.push_str(c.trim_start());
    out.push('\n');
}

/// go-ini's quoting when it writes a value.
fn quote(v: &str) -> String {
    if v.contains(['\n', '`']) {
        format!("\"\"\"{v}\"\"\"")
    } else if v.contains(['#', ';']) {
        format!("`{v}`")
    } else if v.trim() != v {
        format!("\"{v}\"")
    } else {
        v.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INI: &str = "; top comment\nglobal = 1\n# hash comment\n[database] ; header\n; key comment\nuser = app\npassword = \"  spaced  \"\nurl = `http://x#frag`\nnote = text ; inline\nmulti = \"\"\"one\ntwo\"\"\"\nempty =\n";

    #[test]
    fn values_comments_and_sections_round_trip() {
        let tree = parse(INI).expect("parse");
        let Node::Map(sections) = &tree else {
            panic!("map")
        };
        let Item::Pair(name, Node::Map(default)) = &sections[0] else {
            panic!("default")
        };
        assert_eq!(name, DEFAULT);
        assert_eq!(
            default[..2],
            [
                Item::Pair("global".into(), Node::Leaf(Scalar::Str("1".into()))),
                Item::Comment("top comment".into())
            ]
        );
        let Item::Pair(_, Node::Map(db)) = &sections[1] else {
            panic!("database")
        };
        assert_eq!(db[0], Item::Comment("hash comment".into()));
        assert_eq!(db[1], Item::Comment("header".into()));
        let value = |k: &str| {
            db.iter()
                .find_map(|i| match i {
                    Item::Pair(n, Node::Leaf(Scalar::Str(v))) if n == k => Some(v.clone()),
                    _ => None,
                })
                .expect(k)
        };
        assert_eq!(value("password"), "  spaced  ");
        assert_eq!(value("url"), "http://x#frag");
        assert_eq!(value("note"), "text");
        assert_eq!(value("multi"), "one\ntwo");
        assert_eq!(value("empty"), "");
        let text = emit(&tree).expect("emit");
        assert_eq!(
            text,
            "; top comment\nglobal = 1\n\n; hash comment\n; header\n[database]\n; key comment\nuser     = app\npassword = \"  spaced  \"\nurl      = `http://x#frag`\n; inline\nnote     = text\nmulti    = \"\"\"one\ntwo\"\"\"\nempty    = \n"
        );
        assert_eq!(parse(&text).expect("again"), tree);
    }

    #[test]
    fn bad_lines_are_refused_without_quoting_them() {
        for (text, want) in [
            ("[a\nk = v\n", "line 1"),
            ("just words\n", "line 1 is not `key = value`"),
            ("[a]\nk = 1\nk = 2\n", "appears twice"),
            ("k = \"\"\"open\n", "not closed"),
        ] {
            let e = parse(text).expect_err(text).to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
