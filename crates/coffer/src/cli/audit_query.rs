//! `coffer audit query`: incident questions over an audit log, streamed.
//!
//! The log is read in large chunks and split with memchr; a line is parsed
//! only after cheap byte searches (path literal, accessor, token HMAC) say it
//! can match, and then only the fields a query needs are decoded.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

/// What lines to keep.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    /// Glob over `request.path` (`*` any run of characters, `?` one).
    pub path: Option<String>,
    /// `auth.accessor` / `request.client_token_accessor` as written in the log.
    pub accessor: Option<String>,
    /// `auth.client_token` / `request.client_token` as written in the log.
    pub token_hmac: Option<String>,
    /// Inclusive lower bound, `YYYY-MM-DDTHH:MM:SS` (UTC).
    pub since: Option<String>,
    /// Inclusive upper bound, same form.
    pub until: Option<String>,
    /// `request.operation`.
    pub operation: Option<String>,
    /// Also count response entries (by default only requests, so that each
    /// request counts once).
    pub responses: bool,
}

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    time: Cow<'a, str>,
    #[serde(borrow, default)]
    auth: Option<AuthPart<'a>>,
    #[serde(borrow, default)]
    request: Option<RequestPart<'a>>,
    #[serde(borrow, default)]
    error: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct AuthPart<'a> {
    #[serde(borrow, default)]
    client_token: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    accessor: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
struct RequestPart<'a> {
    #[serde(borrow, default)]
    path: Cow<'a, str>,
    #[serde(borrow, default)]
    operation: Cow<'a, str>,
    #[serde(borrow, default)]
    client_token: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    client_token_accessor: Option<Cow<'a, str>>,
}

/// One row of the summary (its path and operation are its keys in
/// [`Outcome::rows`]).
#[derive(Debug, Default, Clone)]
pub struct Row {
    /// Matching entries.
    pub count: u64,
    /// Of those, refused or failed (they carry an error).
    pub errors: u64,
    /// Earliest entry time.
    pub first: String,
    /// Latest entry time.
    pub last: String,
    /// Distinct accessors (as written in the log).
    pub accessors: BTreeSet<String>,
}

/// What a query found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Lines read.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Lines that are not audit entries (skipped).
    pub unreadable: u64,
    /// Lines that matched.
    pub matched: u64,
    /// The summary, by path then operation.
    pub rows: BTreeMap<String, BTreeMap<String, Row>>,
}

/// A compiled glob: literal pieces between `*`s, `?` kept per piece.
struct Glob {
    pattern: Vec<u8>,
    /// The longest piece without wildcards, searched for before parsing.
    literal: Vec<u8>,
}

impl Glob {
    fn new(p: &str) -> Self {
        let literal = p
            .split(['*', '?'])
            .max_by_key(|s| s.len())
            .unwrap_or("")
            .as_bytes()
            .to_vec();
        Self {
            pattern: p.as_bytes().to_vec(),
            literal,
        }
    }

    fn matches(&self, s: &[u8]) -> bool {
        glob_match(&self.pattern, s)
    }
}

/// Iterative wildcard match with single backtracking point (linear-ish).
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == b'*')
}

/// A query ready to run over many lines.
pub struct Query {
    filters: Filters,
    glob: Option<Glob>,
    finders: Vec<memchr::memmem::Finder<'static>>,
}

impl Query {
    /// Compiles the filters.
    pub fn new(filters: Filters) -> Self {
        let glob = filters.path.as_deref().map(Glob::new);
        let mut needles: Vec<Vec<u8>> = Vec::new();
        if let Some(g) = &glob
            && !g.literal.is_empty()
        {
            needles.push(g.literal.clone());
        }
        for v in [&filters.accessor, &filters.token_hmac]
            .into_iter()
            .flatten()
        {
            needles.push(v.as_bytes().to_vec());
        }
        let finders = needles
            .into_iter()
            .map(|n| memchr::memmem::Finder::new(&n).into_owned())
            .collect();
        Self {
            filters,
            glob,
            finders,
        }
    }

    /// Looks at one line (without its newline); returns whether it matched.
    pub fn line(&self, line: &[u8], out: &mut Outcome) -> bool {
        out.lines += 1;
        out.bytes += line.len() as u64 + 1;
        if self.finders.iter().any(|f| f.find(line).is_none()) {
            return false;
        }
        let Some(start) = memchr::memchr(b'{', line) else {
            out.unreadable += 1;
            return false;
        };
        let Ok(e) = serde_json::from_slice::<Entry<'_>>(&line[start..]) else {
            out.unreadable += 1;
            return false;
        };
        if !self.keep(&e) {
            return false;
        }
        out.matched += 1;
        let req = e.request.unwrap_or_default();
        let accessor = e
            .auth
            .as_ref()
            .and_then(|a| a.accessor.as_deref())
            .filter(|a| !a.is_empty())
            .or(req
                .client_token_accessor
                .as_deref()
                .filter(|a| !a.is_empty()));
        // Keys are allocated only for a path or operation seen first.
        let by_op = match out.rows.get_mut(req.path.as_ref()) {
            Some(m) => m,
            None => out.rows.entry(req.path.clone().into_owned()).or_default(),
        };
        let row = match by_op.get_mut(req.operation.as_ref()) {
            Some(r) => r,
            None => by_op
                .entry(req.operation.clone().into_owned())
                .or_insert_with(|| Row {
                    first: e.time.clone().into_owned(),
                    last: e.time.clone().into_owned(),
                    ..Row::default()
                }),
        };
        row.count += 1;
        if e.error.as_deref().is_some_and(|x| !x.is_empty()) {
            row.errors += 1;
        }
        if e.time.as_ref() < row.first.as_str() {
            row.first = e.time.clone().into_owned();
        }
        if e.time.as_ref() > row.last.as_str() {
            row.last = e.time.clone().into_owned();
        }
        if let Some(a) = accessor
            && !row.accessors.contains(a)
        {
            row.accessors.insert(a.to_owned());
        }
        true
    }

    fn keep(&self, e: &Entry<'_>) -> bool {
        let f = &self.filters;
        if !f.responses && e.kind != "request" {
            return false;
        }
        let Some(req) = &e.request else {
            return false;
        };
        if let Some(g) = &self.glob
            && !g.matches(req.path.as_bytes())
        {
            return false;
        }
        if let Some(op) = &f.operation
            && req.operation != op.as_str()
        {
            return false;
        }
        let second = e.time.get(..19).unwrap_or(&e.time);
        if let Some(s) = &f.since
            && second < s.as_str()
        {
            return false;
        }
        if let Some(u) = &f.until
            && second > u.as_str()
        {
            return false;
        }
        let auth = e.auth.as_ref();
        if let Some(a) = &f.accessor {
            let hit = auth.and_then(|x| x.accessor.as_deref()) == Some(a.as_str())
                || req.client_token_accessor.as_deref() == Some(a.as_str());
            if !hit {
                return false;
            }
        }
        if let Some(t) = &f.token_hmac {
            let hit = auth.and_then(|x| x.client_token.as_deref()) == Some(t.as_str())
                || req.client_token.as_deref() == Some(t.as_str());
            if !hit {
                return false;
            }
        }
        true
    }
}

/// Calls `f` with each line of `path` (without its newline) and whether it
/// had one; memory stays at one 4 MiB chunk plus the longest line.
pub fn for_each_line(path: &Path, mut f: impl FnMut(&[u8], bool)) -> std::io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 4 << 20];
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            // A single line longer than the buffer: grow it.
            buf.resize(buf.len() * 2, 0);
        }
        let n = file.read(&mut buf[filled..])?;
        let scanned = filled;
        filled += n;
        let mut start = 0;
        // Only the new bytes can hold newlines not yet seen.
        for nl in memchr::memchr_iter(b'\n', &buf[scanned..filled]) {
            let nl = scanned + nl;
            f(&buf[start..nl], true);
            start = nl + 1;
        }
        if n == 0 {
            if start < filled {
                f(&buf[start..filled], false);
            }
            return Ok(());
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
    }
}

/// Streams `path` through `query` into `out` (several files add up),
/// calling `on_match` with each matching line.
pub fn run_file(
    path: &Path,
    query: &Query,
    out: &mut Outcome,
    mut on_match: impl FnMut(&[u8]),
) -> std::io::Result<()> {
    for_each_line(path, |line, _| {
        if query.line(line, out) {
            on_match(line);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_a_shell_across_slashes() {
        assert!(glob_match(b"secret/data/prod/*", b"secret/data/prod/db"));
        assert!(glob_match(b"secret/*/db", b"secret/data/prod/db"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(!glob_match(b"secret/data/prod", b"secret/data/prod/db"));
        assert!(!glob_match(b"a*b*c", b"aXbY"));
    }

    #[test]
    fn a_query_counts_requests_by_path_and_accessor() {
        let lines = [
            r#"{"auth":{"accessor":"A","client_token":"T1"},"request":{"path":"secret/data/prod/db","operation":"read"},"time":"2026-11-28T10:00:00Z","type":"request","seq":1,"prev":"x"}"#,
            r#"{"auth":{"accessor":"A","client_token":"T1"},"request":{"path":"secret/data/prod/db","operation":"read"},"response":{},"time":"2026-11-28T10:00:00.5Z","type":"response","seq":2,"prev":"x"}"#,
            r#"{"auth":{"accessor":"B","client_token":"T2"},"request":{"path":"secret/data/prod/db","operation":"read"},"error":"permission denied","time":"2026-11-28T11:00:00Z","type":"request","seq":3,"prev":"x"}"#,
            r#"{"auth":{"accessor":"A","client_token":"T1"},"request":{"path":"secret/data/dev/x","operation":"update"},"time":"2026-11-28T12:00:00Z","type":"request","seq":4,"prev":"x"}"#,
            "not json",
        ];
        let q = Query::new(Filters {
            path: Some("secret/data/prod/*".into()),
            ..Filters::default()
        });
        let mut out = Outcome::default();
        for l in lines {
            q.line(l.as_bytes(), &mut out);
        }
        assert_eq!(out.matched, 2);
        let row = &out.rows["secret/data/prod/db"]["read"];
        assert_eq!((row.count, row.errors), (2, 1));
        assert_eq!(row.accessors.len(), 2);

        let q = Query::new(Filters {
            accessor: Some("A".into()),
            since: Some("2026-11-28T10:30:00".into()),
            ..Filters::default()
        });
        let mut out = Outcome::default();
        for l in lines {
            q.line(l.as_bytes(), &mut out);
        }
        assert_eq!(out.matched, 1);
        assert!(
            out.rows
                .get("secret/data/dev/x")
                .is_some_and(|ops| ops.contains_key("update"))
        );
    }
}
