//! The JSON store: key order kept, written the way SOPS writes it (tab
//! indentation, `<`, `>` and `&` escaped, Go's number formatting).

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::tree::{Item, Node};
use crate::{Scalar, SopsError};

/// Parses a JSON document; the top level must be an object.
pub fn parse(text: &str) -> Result<Node, SopsError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let node = NodeSeed
        .deserialize(&mut de)
        .and_then(|n| de.end().map(|()| n))
        .map_err(|e| SopsError::Malformed(format!("not valid JSON: {e}")))?;
    match node {
        Node::Map(_) => Ok(node),
        _ => Err(SopsError::Malformed(
            "a JSON document must be an object at the top level".into(),
        )),
    }
}

/// Parses any JSON value (e.g. the value given to `set`).
pub fn parse_value(text: &str) -> Result<Node, SopsError> {
    let mut de = serde_json::Deserializer::from_str(text);
    NodeSeed
        .deserialize(&mut de)
        .and_then(|n| de.end().map(|()| n))
        .map_err(|e| SopsError::Malformed(format!("not a JSON value: {e}")))
}

struct NodeSeed;

impl<'de> DeserializeSeed<'de> for NodeSeed {
    type Value = Node;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Leaf(Scalar::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Leaf(Scalar::Int(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Leaf(match i64::try_from(v) {
            Ok(i) => Scalar::Int(i),
            Err(_) => Scalar::Float(v as f64),
        }))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Leaf(Scalar::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Leaf(Scalar::Str(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Leaf(Scalar::Str(v)))
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element_seed(NodeSeed)? {
            items.push(n);
        }
        Ok(Node::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut items: Vec<Item> = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(NodeSeed)?;
            if items
                .iter()
                .any(|i| matches!(i, Item::Pair(e, _) if *e == k))
            {
                return Err(serde::de::Error::custom(format!("duplicate key {k:?}")));
            }
            items.push(Item::Pair(k, v));
        }
        Ok(Node::Map(items))
    }
}

/// Writes a document as SOPS does: tab-indented, trailing newline.
pub fn emit(root: &Node) -> String {
    let mut out = String::new();
    write_node(root, 0, &mut out);
    out.push('\n');
    out
}

/// [`emit`] indented by `n` spaces instead of tabs (sops' `--indent`; 0
/// keeps tabs). JSON strings hold no raw tab, so only indentation changes.
pub fn emit_indented(root: &Node, n: usize) -> String {
    let text = emit(root);
    if n == 0 {
        return text;
    }
    let unit = " ".repeat(n);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_start_matches('\t');
        for _ in 0..(line.len() - body.len()) {
            out.push_str(&unit);
        }
        out.push_str(body);
    }
    out
}

/// A value as it is written inside a document at nesting `level`.
pub fn emit_value(node: &Node, level: usize) -> String {
    let mut out = String::new();
    write_node(node, level, &mut out);
    out
}

fn indent(level: usize, out: &mut String) {
    for _ in 0..level {
        out.push('\t');
    }
}

/// A JSON string as Go's `json.Marshal` writes it (HTML characters escaped).
pub fn go_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_go_string(&mut out, s);
    out
}

/// [`go_string`] appended to `out`.
pub fn push_go_string(out: &mut String, s: &str) {
    // Most values (all ciphertext) need no escape at all. Checked 64 bytes
    // at a time without an early exit, which the compiler vectorizes.
    let special = |b: &u8| *b < 0x20 || matches!(*b, b'"' | b'\\' | b'<' | b'>' | b'&' | 0x7f..);
    let mut chunks = s.as_bytes().chunks_exact(64);
    let tail = chunks.remainder();
    let escapes =
        chunks.any(|c| c.iter().fold(false, |acc, b| acc | special(b))) || tail.iter().any(special);
    if !escapes {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    let quoted = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    out.reserve(quoted.len());
    for c in quoted.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
}

/// A float as Go's encoding/json writes it: plain decimals, with an
/// exponent below 1e-6 and from 1e21.
pub fn go_float(f: f64) -> String {
    if !f.is_finite() {
        // JSON has no infinities; SOPS would fail. Keep the text visible.
        return go_string(&crate::value::format_float(f));
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        // Rust writes 1e21 and 1.5e-7; Go writes 1e+21 and 1.5e-07.
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = match e.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', e),
                };
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    } else {
        format!("{f}")
    }
}

fn write_scalar(v: &Scalar, out: &mut String) {
    match v {
        Scalar::Str(s) | Scalar::Time(s) | Scalar::Comment(s) => push_go_string(out, s),
        Scalar::Int(i) => out.push_str(&i.to_string()),
        Scalar::Float(f) => out.push_str(&go_float(*f)),
        Scalar::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Scalar::Bytes(b) | Scalar::RawStr(b) => {
            out.push_str(&go_string(&String::from_utf8_lossy(b)))
        }
    }
}

fn write_node(n: &Node, level: usize, out: &mut String) {
    match n {
        Node::Null => out.push_str("null"),
        Node::Leaf(v) => write_scalar(v, out),
        Node::List(items) => {
            // A plain comment (from YAML) has no place in JSON; an
            // encrypted one is an element, as sops keeps it.
            let entries: Vec<(Option<&String>, &Node)> = items
                .iter()
                .filter(|v| !matches!(v, Node::Leaf(Scalar::Comment(c)) if !c.starts_with("ENC[")))
                .map(|v| (None, v))
                .collect();
            write_block(('[', ']'), &entries, level, out);
        }
        Node::Map(items) => {
            // JSON has no comments: they are not written.
            let entries: Vec<(Option<&String>, &Node)> = items
                .iter()
                .filter_map(|i| match i {
                    Item::Pair(k, v) => Some((Some(k), v)),
                    Item::Comment(_) | Item::LineComment(_) => None,
                })
                .collect();
            write_block(('{', '}'), &entries, level, out);
        }
    }
}

/// A list or an object: one entry per line, `[]`/`{}` when empty.
fn write_block(
    (open, close): (char, char),
    entries: &[(Option<&String>, &Node)],
    level: usize,
    out: &mut String,
) {
    out.push(open);
    if entries.is_empty() {
        out.push(close);
        return;
    }
    out.push('\n');
    for (i, (key, v)) in entries.iter().enumerate() {
        indent(level + 1, out);
        if let Some(k) = key {
            push_go_string(out, k);
            out.push_str(": ");
        }
        write_node(v, level + 1, out);
        if i + 1 < entries.len() {
            out.push(',');
        }
        out.push('\n');
    }
    indent(level, out);
    out.push(close);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_types_and_go_formatting_survive() {
        let text = r#"{"z":1,"a":{"b":[true,null,1.5,"x<y"]},"big":1e21,"u":18446744073709551615}"#;
        let n = parse(text).expect("parse");
        let out = emit(&n);
        assert_eq!(
            out,
            "{\n\t\"z\": 1,\n\t\"a\": {\n\t\t\"b\": [\n\t\t\ttrue,\n\t\t\tnull,\n\t\t\t1.5,\n\t\t\t\"x\\u003cy\"\n\t\t]\n\t},\n\t\"big\": 1e+21,\n\t\"u\": 18446744073709552000\n}\n"
        );
        assert_eq!(parse(&out).expect("again"), n);
        assert!(parse("[1]").is_err());
        assert!(parse(r#"{"a":1,"a":2}"#).is_err());
        assert_eq!(go_float(1.5e-7), "1.5e-07");
        assert_eq!(go_float(8080.0), "8080");
    }
}
