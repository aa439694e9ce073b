//! The dotenv store: `KEY=value` lines and `#` comments; the `sops` block is
//! flattened into `sops_…` keys (`sops_age__list_0__map_recipient=…`), as
//! SOPS writes it.

use crate::tree::{Item, Node};
use crate::{Scalar, SopsError, flat};

const PREFIX: &str = "sops_";

/// Parses a dotenv file. A `sops_…` key belongs to the metadata block,
/// which comes back as a top-level `sops` entry (unflattened).
pub fn parse(text: &str) -> Result<Node, SopsError> {
    let mut items = Vec::new();
    let mut meta: Vec<(String, String)> = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            items.push(Item::Comment(c.to_owned()));
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| {
            // The line itself is not quoted: it may hold a secret.
            SopsError::Malformed(format!("dotenv line {} has no '='", n + 1))
        })?;
        let v = v.replace("\\n", "\n");
        match k.strip_prefix(PREFIX) {
            Some(rest) => meta.push((rest.to_owned(), v)),
            None => items.push(Item::Pair(k.to_owned(), Node::Leaf(Scalar::Str(v)))),
        }
    }
    if !meta.is_empty() {
        items.push(Item::Pair("sops".into(), flat::unflatten(&meta, PREFIX)?));
    }
    Ok(Node::Map(items))
}

/// Writes a tree (plain or encrypted) as dotenv lines; a `sops` entry is
/// flattened and written sorted, as SOPS does.
pub fn emit(root: &Node) -> Result<String, SopsError> {
    let Node::Map(items) = root else {
        return Err(SopsError::Malformed(
            "a dotenv file is a flat list of KEY=value".into(),
        ));
    };
    let mut out = String::new();
    let mut meta = Vec::new();
    for i in items {
        match i {
            Item::Comment(c) | Item::LineComment(c) => {
                out.push('#');
                out.push_str(c);
                out.push('\n');
            }
            Item::Pair(k, v) if k == "sops" => meta = flat::flatten(v),
            Item::Pair(k, Node::Leaf(v)) => {
                out.push_str(k);
                out.push('=');
                out.push_str(&String::from_utf8_lossy(&v.to_bytes()).replace('\n', "\\n"));
                out.push('\n');
            }
            Item::Pair(k, Node::Null) => {
                out.push_str(k);
                out.push_str("=\n");
            }
            Item::Pair(k, _) => {
                return Err(SopsError::Malformed(format!(
                    "dotenv values must be plain values; {k:?} is nested"
                )));
            }
        }
    }
    for (k, v) in meta {
        out.push_str(PREFIX);
        out.push_str(&k);
        out.push('=');
        out.push_str(&v.replace('\n', "\\n"));
        out.push('\n');
    }
    Ok(out)
}

/// Refuses a plain file that uses the reserved `sops_` prefix.
pub fn check_plain(root: &Node) -> Result<(), SopsError> {
    if let Node::Map(items) = root
        && let Some(Item::Pair(k, _)) = items
            .iter()
            .find(|i| matches!(i, Item::Pair(k, _) if k == "sops"))
    {
        return Err(SopsError::AlreadyEncrypted(format!(
            "the file has {PREFIX}… keys ({k}): it is already encrypted, or uses the prefix SOPS reserves"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_and_flattened_metadata_round_trip() {
        let text = "# db\nDB_PASSWORD=pw=with=equals\nMULTI=a\\nb\nSPACED =v \nsops_age__list_0__map_enc=-----BEGIN\\nx\\n\nsops_age__list_0__map_recipient=age1x\nsops_lastmodified=2026-11-28T10:00:00Z\nsops_mac=ENC[x]\nsops_version=3.11.0\n";
        let n = parse(text).expect("parse");
        let Node::Map(items) = &n else { panic!("map") };
        assert_eq!(items[0], Item::Comment(" db".into()));
        assert_eq!(
            items[1],
            Item::Pair(
                "DB_PASSWORD".into(),
                Node::Leaf(Scalar::Str("pw=with=equals".into()))
            )
        );
        assert_eq!(
            items[2],
            Item::Pair("MULTI".into(), Node::Leaf(Scalar::Str("a\nb".into())))
        );
        assert_eq!(
            items[3],
            Item::Pair("SPACED ".into(), Node::Leaf(Scalar::Str("v ".into())))
        );
        let Item::Pair(_, sops) = &items[4] else {
            panic!("sops")
        };
        let meta = crate::metadata::Metadata::from_node(sops).expect("metadata");
        assert_eq!(meta.groups[0].age[0].recipient, "age1x");
        assert_eq!(meta.groups[0].age[0].enc, "-----BEGIN\nx\n");
        assert_eq!(emit(&n).expect("emit"), text);
        assert!(parse("NOEQUALS\n").is_err());
    }
}
