//! The YAML store: documents with their key order and comments, scalars
//! typed as SOPS' YAML library types them (YAML 1.2 core: `yes` stays a
//! string, `0x1F` is an int, a plain date is a timestamp), anchors and
//! aliases expanded, and written back in SOPS' layout (4-space indent,
//! lists indented under their key).
//!
//! The parser (saphyr) drops comments, so they are found in the source
//! between the scalars it reports and put where they stand: own-line
//! comments before the entry that follows them, in the innermost block
//! whose indentation they share; `k: v # c` as a comment above the pair,
//! as sops' YAML library reads it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::LazyLock;

use base64::Engine as _;
use regex::Regex;
use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};

use crate::tree::{Item, Node};
use crate::value::format_float;
use crate::{Scalar, SopsError};

/// A position in the source: (line from 1, column in characters from 0).
type Pos = (usize, usize);

fn pos(m: &saphyr_parser::Marker) -> Pos {
    (m.line(), m.col())
}

fn bad(msg: impl Into<String>) -> SopsError {
    SopsError::Malformed(msg.into())
}

/// A comment found in the source.
struct Found {
    at: Pos,
    /// Text after `#`.
    text: String,
    /// Something stands before it on its line.
    inline: bool,
}

/// Parses a YAML stream. One document gives its mapping; several give a
/// list of mappings (one per document, SOPS' branches).
pub fn parse(text: &str) -> Result<Node, SopsError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let events = Parser::new_from_str(text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("invalid YAML: {e}")))?;
    let comments = find_comments(text, &events);
    let mut b = Builder {
        comments: comments.into(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        docs: Vec::new(),
        root: None,
        lines: text.split('\n').collect(),
    };
    for (ev, span) in &events {
        b.event(ev, span)?;
    }
    let mut docs = b.docs;
    for d in &mut docs {
        sink_foot_comments(d, true);
    }
    Ok(if docs.len() == 1 {
        docs.remove(0)
    } else {
        Node::List(docs)
    })
}

/// Comments after a nested mapping's last pair whose value is a block are
/// moved to the end of that block (the innermost last one), because that is
/// where SOPS' YAML library reads them from the written file; encrypting
/// them under the outer path would leave them unreadable to `sops`. The
/// root's last comments, at column 0, stay where they are.
fn sink_foot_comments(node: &mut Node, root: bool) {
    match node {
        Node::Map(items) => {
            for i in items.iter_mut() {
                if let Item::Pair(_, v) = i {
                    sink_foot_comments(v, false);
                }
            }
            if root {
                return;
            }
            let Some(last) = items.iter().rposition(|i| matches!(i, Item::Pair(..))) else {
                return;
            };
            let tail_start = items[last + 1..]
                .iter()
                .position(|i| matches!(i, Item::Comment(_)))
                .map(|p| last + 1 + p);
            let Some(from) = tail_start else { return };
            if let Item::Pair(_, v) = &items[last]
                && is_block(v)
            {
                let moved: Vec<String> = items
                    .drain(from..)
                    .map(|i| match i {
                        Item::Comment(c) | Item::LineComment(c) => c,
                        Item::Pair(..) => String::new(),
                    })
                    .collect();
                if let Item::Pair(_, v) = &mut items[last] {
                    append_innermost(v, moved);
                }
            }
        }
        Node::List(items) => items.iter_mut().for_each(|i| sink_foot_comments(i, false)),
        _ => {}
    }
}

fn is_block(n: &Node) -> bool {
    matches!(n, Node::Map(m) if !m.is_empty()) || matches!(n, Node::List(l) if !l.is_empty())
}

fn append_innermost(node: &mut Node, comments: Vec<String>) {
    match node {
        Node::Map(items) => {
            let last = items.iter().rposition(|i| matches!(i, Item::Pair(..)));
            if let Some(l) = last
                && l + 1 == items.len()
                && let Item::Pair(_, v) = &mut items[l]
                && is_block(v)
            {
                return append_innermost(v, comments);
            }
            items.extend(comments.into_iter().map(Item::Comment));
        }
        Node::List(items) => {
            items.extend(comments.into_iter().map(|c| Node::Leaf(Scalar::Comment(c))))
        }
        _ => {}
    }
}

/// Where each scalar ends: saphyr's span of a quoted scalar runs on past
/// the closing quote, so the quote is looked for in the source.
fn scalar_extent(lines: &[&str], style: ScalarStyle, span: &Span) -> (Pos, Pos) {
    let start = pos(&span.start);
    let end = pos(&span.end);
    let quote = match style {
        ScalarStyle::SingleQuoted => '\'',
        ScalarStyle::DoubleQuoted => '"',
        _ => return (start, end),
    };
    let (mut line, mut col) = start;
    let mut first = true;
    while let Some(l) = lines.get(line - 1) {
        let mut chars = l.chars().enumerate().skip(col).peekable();
        if first {
            // The opening quote.
            chars.next();
            first = false;
        }
        while let Some((i, c)) = chars.next() {
            if quote == '"' && c == '\\' {
                chars.next();
            } else if c == quote {
                if quote == '\'' && chars.peek().is_some_and(|(_, n)| *n == '\'') {
                    chars.next();
                } else {
                    return (start, (line, i + 1));
                }
            }
        }
        line += 1;
        col = 0;
    }
    (start, end)
}

/// Every `#` that starts a comment: at the start of a line or after a
/// blank, and outside every scalar.
fn find_comments(text: &str, events: &[(Event<'_>, Span)]) -> Vec<Found> {
    let lines: Vec<&str> = text.split('\n').collect();
    let scalars: Vec<(Pos, Pos)> = events
        .iter()
        .filter_map(|(e, s)| match e {
            Event::Scalar(_, style, ..) => Some(scalar_extent(&lines, *style, s)),
            _ => None,
        })
        .collect();
    let mut next = 0;
    let mut found = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        if !line.contains('#') {
            continue;
        }
        let mut prev = ' ';
        let mut inline = false;
        for (col, (byte, c)) in line.char_indices().enumerate() {
            let here = (n + 1, col);
            while next < scalars.len() && scalars[next].1 <= here {
                next += 1;
            }
            let in_scalar = next < scalars.len() && scalars[next].0 <= here;
            if c == '#' && !in_scalar && (prev == ' ' || prev == '\t') {
                let text = line[byte + 1..].trim_end_matches('\r');
                found.push(Found {
                    at: here,
                    text: text.to_owned(),
                    inline,
                });
                break;
            }
            if !c.is_whitespace() {
                inline = true;
            }
            prev = c;
        }
    }
    found
}

enum Frame {
    Map {
        items: Vec<Item>,
        key: Option<String>,
        seen: HashSet<String>,
        /// Comments on the line of the key being read, written after its pair.
        trailing: Vec<String>,
        col: usize,
        /// The column of the key or `-` this block is the value of.
        owner: usize,
        flow: bool,
        anchor: usize,
    },
    Seq {
        items: Vec<Node>,
        col: usize,
        owner: usize,
        flow: bool,
        anchor: usize,
    },
}

struct Builder<'a> {
    comments: VecDeque<Found>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    docs: Vec<Node>,
    root: Option<Node>,
    lines: Vec<&'a str>,
}

impl Builder<'_> {
    fn event(&mut self, ev: &Event<'_>, span: &Span) -> Result<(), SopsError> {
        let at = pos(&span.start);
        match ev {
            Event::Nothing | Event::StreamStart => Ok(()),
            Event::StreamEnd => {
                if let Some(Node::Map(items)) = self.docs.last_mut() {
                    items.extend(self.comments.drain(..).map(|c| Item::Comment(c.text)));
                }
                Ok(())
            }
            Event::DocumentStart(_) => {
                self.root = None;
                Ok(())
            }
            Event::DocumentEnd => {
                let mut items = match self.root.take() {
                    Some(Node::Map(items)) => items,
                    None | Some(Node::Null) => Vec::new(),
                    Some(_) => {
                        return Err(bad(
                            "a YAML document must be a mapping at the top level (SOPS refuses top-level lists and scalars)",
                        ));
                    }
                };
                // Comments of a document without content, or after it.
                while self.comments.front().is_some_and(|c| c.at < at) {
                    if let Some(c) = self.comments.pop_front() {
                        items.push(Item::Comment(c.text));
                    }
                }
                self.docs.push(Node::Map(items));
                Ok(())
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                self.flush(at, true);
                let owner = match self.stack.last() {
                    Some(Frame::Map { col, .. } | Frame::Seq { col, .. }) => *col,
                    None => 0,
                };
                let flow = self
                    .lines
                    .get(at.0.saturating_sub(1))
                    .and_then(|l| l.chars().nth(at.1))
                    .is_some_and(|c| c == '[' || c == '{');
                if self.awaiting_key() {
                    return Err(bad(format!(
                        "line {}: a mapping or list used as a key (only string keys are supported)",
                        at.0
                    )));
                }
                let frame = if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map {
                        items: Vec::new(),
                        key: None,
                        seen: HashSet::new(),
                        trailing: Vec::new(),
                        col: at.1,
                        owner,
                        flow,
                        anchor: *anchor,
                    }
                } else {
                    Frame::Seq {
                        items: Vec::new(),
                        col: at.1,
                        owner,
                        flow,
                        anchor: *anchor,
                    }
                };
                self.stack.push(frame);
                Ok(())
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.flush_end(at);
                let node = match self.stack.pop() {
                    Some(Frame::Map { items, anchor, .. }) => (Node::Map(items), anchor),
                    Some(Frame::Seq { items, anchor, .. }) => (Node::List(items), anchor),
                    None => return Err(bad("unbalanced YAML events")),
                };
                if node.1 != 0 {
                    self.anchors.insert(node.1, node.0.clone());
                }
                self.value(node.0, at)
            }
            Event::Alias(id) => {
                self.flush(at, false);
                let node = self
                    .anchors
                    .get(id)
                    .cloned()
                    .ok_or_else(|| bad(format!("line {}: alias of an unknown anchor", at.0)))?;
                if self.awaiting_key() {
                    return Err(bad(format!(
                        "line {}: an alias used as a key (only string keys are supported)",
                        at.0
                    )));
                }
                self.value(node, at)
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.flush(at, false);
                let node = typed(text, *style, tag.as_deref())
                    .map_err(|e| bad(format!("line {}: {e}", at.0)))?;
                if *anchor != 0 {
                    self.anchors.insert(*anchor, node.clone());
                }
                if self.awaiting_key() {
                    let key = match &node {
                        Node::Leaf(Scalar::Str(s)) => s.clone(),
                        other => {
                            return Err(bad(format!(
                                "line {}: the key {text:?} is a {}, not a string (SOPS supports only string keys)",
                                at.0,
                                kind(other)
                            )));
                        }
                    };
                    if let Some(Frame::Map { key: k, seen, .. }) = self.stack.last_mut() {
                        if !seen.insert(key.clone()) {
                            return Err(bad(format!(
                                "line {}: mapping key {key:?} is defined twice",
                                at.0
                            )));
                        }
                        *k = Some(key);
                    }
                    return Ok(());
                }
                self.value(node, at)
            }
        }
    }

    fn awaiting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    /// A finished value goes to its mapping key, its list, or the document.
    fn value(&mut self, node: Node, at: Pos) -> Result<(), SopsError> {
        match self.stack.last_mut() {
            Some(Frame::Map {
                items,
                key,
                trailing,
                ..
            }) => {
                let k = key.take().ok_or_else(|| {
                    bad(format!(
                        "line {}: a mapping or list used as a key (only string keys are supported)",
                        at.0
                    ))
                })?;
                // A comment on the key's line goes above the key, as sops'
                // YAML library reads it.
                items.extend(trailing.drain(..).map(Item::Comment));
                items.push(Item::Pair(k, node));
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            None => self.root = Some(node),
        }
        Ok(())
    }

    /// Comments before `at` go to the innermost open block. When a block
    /// opens under a key, only the comments on the key's line are taken (as
    /// its line comment): the lines after it belong inside the new block. A
    /// block opening in a list starts on its `-` line, so what comes before
    /// it is the list's.
    fn flush(&mut self, at: Pos, opening: bool) {
        let in_list = matches!(self.stack.last(), Some(Frame::Seq { .. }));
        while let Some(c) = self.comments.front() {
            if c.at >= at || (opening && !c.inline && !(in_list && c.at.0 < at.0)) {
                break;
            }
            let Some(c) = self.comments.pop_front() else {
                break;
            };
            match self.stack.last_mut() {
                Some(Frame::Map {
                    items,
                    key,
                    trailing,
                    ..
                }) => {
                    if c.inline && key.is_some() {
                        trailing.push(c.text);
                    } else {
                        push_map_comment(items, c);
                    }
                }
                Some(Frame::Seq { items, .. }) => push_seq_comment(items, c),
                // Before the document's first block: kept for it.
                None => {
                    self.comments.push_front(c);
                    break;
                }
            }
        }
    }

    /// At the end of a block (`at` is the next token), the comments before
    /// it are its last entries as SOPS' YAML library reads them: those
    /// indented at least as far as the key (or `-`) owning the block and
    /// further than the next token (a comment lined up with the next key
    /// is that key's); all of them in a flow block or the document's root.
    fn flush_end(&mut self, at: Pos) {
        let (owner, flow) = match self.stack.last() {
            Some(Frame::Map { owner, flow, .. } | Frame::Seq { owner, flow, .. }) => {
                (*owner, *flow)
            }
            None => return,
        };
        let outermost = self.stack.len() == 1;
        while let Some(c) = self.comments.front() {
            let foot = c.at.1 >= owner && c.at.1 > at.1;
            if c.at >= at || !(flow || outermost || c.inline || foot) {
                break;
            }
            self.flush_one();
        }
    }

    fn flush_one(&mut self) {
        let Some(c) = self.comments.pop_front() else {
            return;
        };
        match self.stack.last_mut() {
            Some(Frame::Map { items, .. }) => push_map_comment(items, c),
            Some(Frame::Seq { items, .. }) => push_seq_comment(items, c),
            None => {}
        }
    }
}

fn kind(n: &Node) -> &'static str {
    match n {
        Node::Null => "null",
        Node::Leaf(v) => v.type_name(),
        Node::Map(_) => "mapping",
        Node::List(_) => "list",
    }
}

/// A scalar as SOPS' YAML library types it: quoted scalars are strings,
/// plain ones are resolved, tags are obeyed.
fn typed(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Node, String> {
    let core = tag.and_then(|t| {
        (t.handle == "!!" || t.handle == "tag:yaml.org,2002:").then_some(t.suffix.as_str())
    });
    match core {
        Some("str") => return Ok(Node::Leaf(Scalar::Str(text.to_owned()))),
        Some("binary") => {
            let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(clean)
                .map_err(|_| "a !!binary value is not base64".to_owned())?;
            return Ok(Node::Leaf(match String::from_utf8(bytes) {
                Ok(s) => Scalar::Str(s),
                Err(e) => Scalar::RawStr(e.into_bytes()),
            }));
        }
        Some(t @ ("int" | "float" | "bool" | "null" | "timestamp")) => {
            let v = resolve(text);
            let ok = matches!(
                (t, &v),
                ("int", Node::Leaf(Scalar::Int(_)))
                    | ("float", Node::Leaf(Scalar::Float(_)))
                    | ("bool", Node::Leaf(Scalar::Bool(_)))
                    | ("null", Node::Null)
                    | ("timestamp", Node::Leaf(Scalar::Time(_)))
            );
            return match (t, v) {
                (_, v) if ok => Ok(v),
                ("float", Node::Leaf(Scalar::Int(i))) => Ok(Node::Leaf(Scalar::Float(i as f64))),
                _ => Err(format!("{text:?} is not a valid !!{t}")),
            };
        }
        _ => {}
    }
    Ok(match style {
        ScalarStyle::Plain => resolve(text),
        _ => Node::Leaf(Scalar::Str(text.to_owned())),
    })
}

static FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$").expect("float pattern")
});

static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:([Tt ])([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:\.([0-9]{1,9}))?(Z|[+-][0-9]{2}:[0-9]{2})?)?$",
    )
    .expect("timestamp pattern")
});

/// A plain scalar's type, as go-yaml v3 resolves it.
pub fn resolve(s: &str) -> Node {
    let leaf = |v| Node::Leaf(v);
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Node::Null,
        "true" | "True" | "TRUE" => return leaf(Scalar::Bool(true)),
        "false" | "False" | "FALSE" => return leaf(Scalar::Bool(false)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return leaf(Scalar::Float(f64::INFINITY));
        }
        "-.inf" | "-.Inf" | "-.INF" => return leaf(Scalar::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return leaf(Scalar::Float(f64::NAN)),
        _ => {}
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return leaf(Scalar::Str(s.to_owned()));
    }
    if let Some(t) = timestamp(s) {
        return leaf(Scalar::Time(t));
    }
    let plain = s.replace('_', "");
    if let Some(i) = go_int(&plain) {
        return leaf(Scalar::Int(i));
    }
    if FLOAT.is_match(&plain)
        && let Ok(f) = plain.parse::<f64>()
    {
        return leaf(Scalar::Float(f));
    }
    leaf(Scalar::Str(s.to_owned()))
}

/// Go's `strconv.ParseInt(s, 0, 64)`: decimal, `0x`, `0o`, `0b`, and a
/// leading `0` for octal.
fn go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i128::from_str_radix(digits, radix).ok()?;
    i64::try_from(if neg { -v } else { v }).ok()
}

/// A plain timestamp in one of go-yaml's layouts, as Go's RFC3339Nano.
fn timestamp(s: &str) -> Option<String> {
    let c = TIMESTAMP.captures(s)?;
    let num = |i: usize| -> Option<u32> { c.get(i).and_then(|m| m.as_str().parse().ok()) };
    let (y, mo, d) = (num(1)?, num(2)?, num(3)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d == 0 || d > days {
        return None;
    }
    let date = format!("{y:04}-{mo:02}-{d:02}");
    let Some(sep) = c.get(4) else {
        return Some(format!("{date}T00:00:00Z"));
    };
    let zone = c.get(9).map(|m| m.as_str());
    // `T` needs a zone; a space means none.
    if (sep.as_str() == " ") == zone.is_some() {
        return None;
    }
    let (h, mi, se) = (num(5)?, num(6)?, num(7)?);
    if h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let frac = c
        .get(8)
        .map(|m| m.as_str().trim_end_matches('0'))
        .filter(|f| !f.is_empty())
        .map(|f| format!(".{f}"))
        .unwrap_or_default();
    let zone = match zone {
        None | Some("Z" | "+00:00" | "-00:00") => "Z",
        Some(z) => z,
    };
    Some(format!("{date}T{h:02}:{mi:02}:{se:02}{frac}{zone}"))
}

/// Writes a tree in SOPS' YAML layout; a list of mappings at the top is a
/// stream of documents separated by `---`.
pub fn emit(root: &Node) -> Result<String, SopsError> {
    emit_indented(root, INDENT)
}

/// [`emit`] with blocks indented by `w` spaces (sops' `--indent`).
pub fn emit_indented(root: &Node, w: usize) -> Result<String, SopsError> {
    let w = w.max(1);
    let mut out = String::new();
    match root {
        Node::Map(items) => map(&mut out, items, 0, false, w, w),
        Node::List(docs) => {
            for (i, d) in docs.iter().enumerate() {
                if i > 0 {
                    out.push_str("---\n");
                }
                match d {
                    Node::Map(items) => map(&mut out, items, 0, false, w, w),
                    _ => return Err(bad("each YAML document must be a mapping")),
                }
            }
        }
        _ => return Err(bad("a YAML document must be a mapping at the top level")),
    }
    Ok(out)
}

/// A list as a YAML block of its own (`sops decrypt --extract` of a list).
pub fn emit_list(items: &[Node]) -> String {
    let mut out = String::new();
    if items.is_empty() {
        out.push_str("[]\n");
    } else {
        list(&mut out, items, 0, false, INDENT);
    }
    out
}

const INDENT: usize = 4;

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// A comment read in a mapping: one at the end of a pair's line goes
/// above that pair (sops' YAML library makes a line comment a head
/// comment), any other where it is.
fn push_map_comment(items: &mut Vec<Item>, c: Found) {
    match items.last() {
        Some(Item::Pair(..)) if c.inline => items.insert(items.len() - 1, Item::Comment(c.text)),
        _ => items.push(Item::Comment(c.text)),
    }
}

/// The same in a list: a comment after an entry on its line goes above it.
fn push_seq_comment(items: &mut Vec<Node>, c: Found) {
    let comment = Node::Leaf(Scalar::Comment(c.text));
    match items.last() {
        Some(last) if c.inline && !matches!(last, Node::Leaf(Scalar::Comment(_))) => {
            items.insert(items.len() - 1, comment);
        }
        _ => items.push(comment),
    }
}

/// A block mapping with its keys at `indent` and nested blocks at `child`;
/// with `inline`, the first line's indent is already written (after `- `).
/// (In a list, go-yaml puts keys 2 columns after the `-` and nested blocks
/// 4 after it.)
fn map(out: &mut String, items: &[Item], indent: usize, mut inline: bool, child: usize, w: usize) {
    if items.is_empty() {
        if !inline {
            pad(out, indent);
        }
        out.push_str("{}\n");
        return;
    }
    let mut i = 0;
    while i < items.len() {
        if !inline {
            pad(out, indent);
        }
        inline = false;
        match &items[i] {
            Item::Comment(c) | Item::LineComment(c) => {
                out.push('#');
                out.push_str(c);
                out.push('\n');
            }
            Item::Pair(k, v) => {
                out.push_str(&scalar(&Scalar::Str(k.clone())));
                out.push(':');
                // Line comments of this pair go on its line.
                let mut line = Vec::new();
                while let Some(Item::LineComment(c)) = items.get(i + 1) {
                    line.push(c.as_str());
                    i += 1;
                }
                match v {
                    Node::Map(m) if !m.is_empty() => {
                        line_comments(out, &line);
                        out.push('\n');
                        map(out, m, child, false, child + w, w);
                    }
                    Node::List(l) if !l.is_empty() => {
                        line_comments(out, &line);
                        out.push('\n');
                        list(out, l, child, false, w);
                    }
                    _ => {
                        out.push(' ');
                        scalar_value(out, v, child, &line);
                    }
                }
            }
        }
        i += 1;
    }
}

fn line_comments(out: &mut String, comments: &[&str]) {
    for c in comments {
        out.push_str(" #");
        out.push_str(c);
    }
}

/// A scalar (or empty block) where a value starts; a literal block's lines
/// go at `indent`.
fn scalar_value(out: &mut String, v: &Node, indent: usize, comments: &[&str]) {
    match v {
        Node::Map(_) => out.push_str("{}"),
        Node::List(_) => out.push_str("[]"),
        Node::Null => out.push_str("null"),
        Node::Leaf(s) => {
            if let Scalar::Str(text) = s
                && let Some(chomp) = literal_chomp(text)
            {
                out.push('|');
                out.push_str(chomp);
                line_comments(out, comments);
                out.push('\n');
                let body = text.trim_end_matches('\n');
                for l in body.split('\n') {
                    if !l.is_empty() {
                        pad(out, indent);
                        out.push_str(l);
                    }
                    out.push('\n');
                }
                // `|+` keeps the empty lines at the end.
                for _ in 1..(text.len() - body.len()) {
                    out.push('\n');
                }
                return;
            }
            out.push_str(&scalar(s));
        }
    }
    line_comments(out, comments);
    out.push('\n');
}

/// A block list with its `-` at `indent` (the first one already written
/// with `inline`).
fn list(out: &mut String, items: &[Node], indent: usize, mut inline: bool, w: usize) {
    for v in items {
        if !inline {
            pad(out, indent);
        }
        inline = false;
        match v {
            // sops stores an encrypted comment in a list as an element of
            // its own (go-yaml has nowhere else to keep it).
            Node::Leaf(Scalar::Comment(c)) if c.starts_with("ENC[AES256_GCM,") => {
                out.push_str("- ");
                out.push_str(c);
                out.push('\n');
            }
            Node::Leaf(Scalar::Comment(c)) => {
                out.push('#');
                out.push_str(c);
                out.push('\n');
            }
            Node::Map(m) if !m.is_empty() => {
                // Comments heading the mapping go above its `-`, as
                // go-yaml writes them.
                let lead = m
                    .iter()
                    .take_while(|i| matches!(i, Item::Comment(_)))
                    .count();
                for (k, c) in m[..lead].iter().enumerate() {
                    if let Item::Comment(c) = c {
                        if k > 0 {
                            pad(out, indent);
                        }
                        out.push('#');
                        out.push_str(c);
                        out.push('\n');
                    }
                }
                if lead > 0 {
                    pad(out, indent);
                }
                out.push_str("- ");
                if lead == m.len() {
                    out.push_str("{}\n");
                } else {
                    // go-yaml nests under a key of a mapping in a list at
                    // least 4 past the `-`, whatever the indent.
                    map(out, &m[lead..], indent + 2, true, indent + w.max(4), w);
                }
            }
            Node::List(l) if !l.is_empty() => {
                out.push_str("- ");
                list(out, l, indent + 2, true, w);
            }
            _ => {
                out.push_str("- ");
                scalar_value(out, v, indent + 2, &[]);
            }
        }
    }
}

/// `|`, `|-` or `|+` when a string is best written as a literal block.
fn literal_chomp(s: &str) -> Option<&'static str> {
    if !s.contains('\n')
        || s.starts_with([' ', '\n'])
        || s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
        || s.contains(['\u{85}', '\u{2028}', '\u{2029}', '\u{feff}'])
        || s.contains(" \n")
    {
        return None;
    }
    let body = s.trim_end_matches('\n');
    if body.is_empty() {
        return None;
    }
    Some(match s.len() - body.len() {
        0 => "-",
        1 => "",
        _ => "+",
    })
}

/// A scalar on one line.
pub fn scalar(v: &Scalar) -> String {
    match v {
        Scalar::Str(s) | Scalar::Comment(s) => match style(s) {
            Style::Plain => s.clone(),
            Style::Single => format!("'{}'", s.replace('\'', "''")),
            Style::Double => quoted(s),
        },
        Scalar::Time(s) => s.clone(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Float(f) => go_yaml_float(*f),
        Scalar::Bool(b) => b.to_string(),
        Scalar::RawStr(b) | Scalar::Bytes(b) => format!(
            "!!binary {}",
            base64::engine::general_purpose::STANDARD.encode(b)
        ),
    }
}

/// go-yaml's float: Go's `%g` (shortest digits; an exponent from 1e6 up
/// and below 1e-4), `.inf`, `.nan`.
fn go_yaml_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        return format_float(f);
    }
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mant}e{sign}{:02}", exp.abs())
}

enum Style {
    Plain,
    Single,
    Double,
}

/// How go-yaml quotes a string: double quotes for what would read back as
/// another type (or needs escapes), single quotes for what is only unsafe
/// as YAML syntax, else plain.
fn style(s: &str) -> Style {
    let special =
        |c: char| c.is_control() || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}');
    if s.is_empty() || !matches!(resolve(s), Node::Leaf(Scalar::Str(_))) || s.contains(special) {
        return Style::Double;
    }
    if plain_ok(s) {
        Style::Plain
    } else if yaml11_bool(s) {
        Style::Double
    } else {
        Style::Single
    }
}

fn yaml11_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    )
}

/// Whether a string can be written plain and read back as the same string.
fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !matches!(resolve(s), Node::Leaf(Scalar::Str(_))) {
        return false;
    }
    // YAML 1.1 booleans: other readers would take them as such.
    if yaml11_bool(s) {
        return false;
    }
    // `-`, `?` and `:` start a plain scalar when a non-blank follows.
    let second = s.chars().nth(1);
    let indicator = if "-?:".contains(first) {
        second.is_none_or(char::is_whitespace)
    } else {
        ",[]{}#&*!|>'\"%@`".contains(first)
    };
    if indicator || first.is_whitespace() || s.starts_with("---") || s.starts_with("...") {
        return false;
    }
    !(s.ends_with(char::is_whitespace)
        || s.ends_with(':')
        || s.contains(": ")
        || s.contains(" #")
        || s.contains(":\t")
        || s.contains("\t#")
        || s.chars().any(|c| {
            c.is_control() || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}')
        }))
}

/// A double-quoted scalar.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{feff}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(n: &Node) -> &Scalar {
        match n {
            Node::Leaf(s) => s,
            other => panic!("not a leaf: {other:?}"),
        }
    }

    #[test]
    fn plain_scalars_are_typed_as_go_yaml_v3_types_them() {
        let cases: &[(&str, Scalar)] = &[
            ("yes", Scalar::Str("yes".into())),
            ("on", Scalar::Str("on".into())),
            ("0o17", Scalar::Int(15)),
            ("017", Scalar::Int(15)),
            ("0x1F", Scalar::Int(31)),
            ("-0b101", Scalar::Int(-5)),
            ("1_000", Scalar::Int(1000)),
            ("08", Scalar::Float(8.0)),
            ("1e3", Scalar::Float(1000.0)),
            ("1.5e+30", Scalar::Float(1.5e30)),
            (".inf", Scalar::Float(f64::INFINITY)),
            ("True", Scalar::Bool(true)),
            ("2024-01-02", Scalar::Time("2024-01-02T00:00:00Z".into())),
            (
                "2024-1-2T3:04:05.120+01:00",
                Scalar::Time("2024-01-02T03:04:05.12+01:00".into()),
            ),
            (
                "2024-01-02 03:04:05",
                Scalar::Time("2024-01-02T03:04:05Z".into()),
            ),
            ("2024-02-30", Scalar::Str("2024-02-30".into())),
            ("1.2.3", Scalar::Str("1.2.3".into())),
        ];
        for (text, want) in cases {
            assert_eq!(leaf(&resolve(text)), want, "{text}");
        }
        for null in ["", "~", "null", "NULL"] {
            assert_eq!(resolve(null), Node::Null);
        }
        let doc = parse("a: \"123\"\nb: '0x1F'\nc: !!binary aGVsbG8=\nd: !!str 12\ne: !!float 3\n")
            .expect("parse");
        let Node::Map(items) = doc else { panic!("map") };
        let values: Vec<&Scalar> = items
            .iter()
            .map(|i| match i {
                Item::Pair(_, v) => leaf(v),
                _ => panic!("pair"),
            })
            .collect();
        assert_eq!(
            values,
            [
                &Scalar::Str("123".into()),
                &Scalar::Str("0x1F".into()),
                &Scalar::Str("hello".into()),
                &Scalar::Str("12".into()),
                &Scalar::Float(3.0),
            ]
        );
    }

    const DOC: &str = "# head
app:
    name: billing # inline
    # before db
    db:
        password: 's3cret: with # and ''quotes'''
        hosts:
            - db1
            # the replica
            - db2
        options: {}
        none: []
    script: |
        #!/bin/sh
        echo hi
    kept: |+
        a

    stripped: |-
        a
        b
    unicode: grüße ✓
    empty: \"\"
    nothing: null
    yes_string: \"yes\"
    items:
        - name: a
          value:
            - x
            - - 1
              - 2
        - - m
# end
";

    #[test]
    fn comments_order_and_layout_survive_a_round_trip() {
        let tree = parse(DOC).expect("parse");
        // A comment at the end of a line goes above it, as sops writes it.
        assert_eq!(
            emit(&tree).expect("emit"),
            DOC.replace(
                "    name: billing # inline\n",
                "    # inline\n    name: billing\n"
            )
        );
        let Node::Map(items) = &tree else {
            panic!("map")
        };
        assert_eq!(items[0], Item::Comment(" head".into()));
        let Item::Pair(_, Node::Map(app)) = &items[1] else {
            panic!("app")
        };
        assert_eq!(app[0], Item::Comment(" inline".into()));
        assert_eq!(app[2], Item::Comment(" before db".into()));
    }

    #[test]
    fn anchors_are_expanded_and_streams_are_lists_of_documents() {
        let tree = parse("base: &b\n    x: 1\ncopy: *b\n---\nsecond: 2\n").expect("parse");
        let Node::List(docs) = &tree else {
            panic!("stream")
        };
        assert_eq!(docs.len(), 2);
        assert_eq!(
            emit(&tree).expect("emit"),
            "base:\n    x: 1\ncopy:\n    x: 1\n---\nsecond: 2\n"
        );
    }

    #[test]
    fn what_sops_refuses_is_refused_with_the_line() {
        for (text, want) in [
            ("a: 1\na: 2\n", "line 2: mapping key \"a\" is defined twice"),
            ("1: x\n", "line 1: the key \"1\" is a int"),
            ("- a\n", "must be a mapping"),
            ("a: [\n", "invalid YAML"),
        ] {
            let e = parse(text).expect_err(text).to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn strings_are_quoted_only_when_they_would_read_back_differently() {
        for (s, want) in [
            ("plain", "plain"),
            ("-dash", "-dash"),
            ("123", "\"123\""),
            ("yes", "\"yes\""),
            ("a: b", "'a: b'"),
            ("x #y", "'x #y'"),
            ("'", "''''"),
            ("tab\there", "\"tab\\there\""),
            ("", "\"\""),
            (
                "ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]",
                "ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]",
            ),
        ] {
            let out = scalar(&Scalar::Str(s.into()));
            assert_eq!(out, want, "{s:?}");
            let back = parse(&format!("k: {out}\n")).expect("parse");
            assert_eq!(
                back,
                Node::Map(vec![Item::Pair(
                    "k".into(),
                    Node::Leaf(Scalar::Str(s.into()))
                )])
            );
        }
        assert_eq!(scalar(&Scalar::Float(1234567.0)), "1.234567e+06");
        assert_eq!(scalar(&Scalar::Float(1e-7)), "1e-07");
        assert_eq!(scalar(&Scalar::Float(0.5)), "0.5");
    }
}
