//! The matcher: one Aho-Corasick automaton over every rule's keywords finds
//! where a rule can match; the rule's regex then runs only in a window
//! around each keyword hit (merged per rule), never over the whole input.
//! A window is the hit's line when the line is short, and is cut at a
//! bounded distance from the hit when it is not, so time stays linear in
//! the input however long its lines are (minified bundles, lock files).
//! Rules without keywords run over the whole input, as in gitleaks.

use crate::config::Config;
use crate::keywords::Keywords;
use crate::rule::{Candidate, Rule, entropy};
use crate::{Finding, ScanError};

/// Bytes before the line of a keyword hit that a match may start in.
const BEFORE: usize = 256;
/// How far from its keyword a match of an unbounded regex may reach.
const UNBOUNDED_REACH: usize = 16 << 10;
/// The most of a long line that inline markers and line allowlists see
/// on each side of a match.
const LINE_CONTEXT: usize = 4096;

/// A compiled rule set, ready to scan bytes.
pub struct Scanner {
    config: Config,
    keywords: Option<Keywords>,
    /// For each keyword pattern, the rules that have it.
    owners: Vec<Vec<usize>>,
    /// Rules that run everywhere.
    unanchored: Vec<usize>,
    /// Whether `gitleaks:allow` on a line is obeyed.
    inline_allow: bool,
    /// How many layers of encoded text are decoded and scanned.
    decode_depth: usize,
    /// Whether matches under a rule's entropy floor are kept (tagged
    /// [`BELOW_ENTROPY`]) for a check against the store.
    keep_low_entropy: bool,
}

/// The tag of a finding kept although its secret is under its rule's
/// entropy floor: reported only if the store says it is live.
pub const BELOW_ENTROPY: &str = "coffer:below-entropy";

/// Where a piece of input comes from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin<'a> {
    /// The file's path as reported.
    pub path: &'a str,
    /// The commit, in history scans.
    pub commit: Option<&'a str>,
}

impl Scanner {
    /// Builds the automaton.
    pub fn new(config: Config) -> Result<Self, ScanError> {
        let mut words: Vec<String> = Vec::new();
        let mut owners: Vec<Vec<usize>> = Vec::new();
        let mut unanchored = Vec::new();
        for (i, r) in config.rules.iter().enumerate() {
            if r.keywords.is_empty() {
                unanchored.push(i);
            }
            for k in &r.keywords {
                match words.iter().position(|w| w == k) {
                    Some(at) => owners[at].push(i),
                    None => {
                        words.push(k.clone());
                        owners.push(vec![i]);
                    }
                }
            }
        }
        let keywords = if words.is_empty() {
            None
        } else {
            Some(Keywords::new(&words)?)
        };
        Ok(Self {
            config,
            keywords,
            owners,
            unanchored,
            inline_allow: true,
            decode_depth: 0,
            keep_low_entropy: false,
        })
    }

    /// Decodes base64, hex and percent-encoded text up to `depth` layers
    /// deep and scans it too (gitleaks' `--max-decode-depth`; 0: off).
    /// A finding in decoded text is placed on the encoded run and tagged
    /// `decoded:<encoding>` and `decode-depth:<n>`.
    pub fn max_decode_depth(mut self, depth: usize) -> Self {
        self.decode_depth = depth;
        self
    }

    /// Whether `gitleaks:allow` / `coffer:allow` silence a line (on by
    /// default; gitleaks' `--ignore-gitleaks-allow` turns it off).
    pub fn obey_inline_allow(mut self, on: bool) -> Self {
        self.inline_allow = on;
        self
    }

    /// Keeps matches whose secret is under the rule's entropy floor, tagged
    /// [`BELOW_ENTROPY`] (off by default): random passwords fall under a
    /// floor now and then, and a store that knows its values can tell.
    pub fn keep_low_entropy(mut self, on: bool) -> Self {
        self.keep_low_entropy = on;
        self
    }

    /// The rule set.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether nothing in a file at `path` can be reported, so it need not
    /// be read: a global allowlist allows the path on its own, or every
    /// rule is limited to other paths.
    pub fn skips_path(&self, path: &str) -> bool {
        let allowed = self.config.allowlists.iter().any(|a| {
            a.target_rules.is_empty()
                && a.allows_path_alone()
                && a.paths.iter().any(|p| p.is_match(path.as_bytes()))
        });
        let no_rule = !self.config.rules.is_empty()
            && self.config.rules.iter().all(|r| {
                r.path
                    .as_ref()
                    .is_some_and(|p| !p.is_match(path.as_bytes()))
            });
        allowed || no_rule
    }

    /// Every finding in `data`, in order of position then rule.
    pub fn scan(&self, data: &[u8], origin: Origin<'_>) -> Vec<Finding> {
        let mut found = self.scan_plain(data, origin);
        if self.decode_depth > 0 {
            let decoded = self.scan_decoded(data, origin, 1);
            if !decoded.is_empty() {
                let lines = Lines::new(data);
                let mut known: std::collections::HashSet<(String, String)> = found
                    .iter()
                    .map(|g| (g.rule_id.clone(), g.secret.clone()))
                    .collect();
                for (start, end, mut f) in decoded {
                    (f.start_line, f.start_column) = lines.line_col(start);
                    (f.end_line, f.end_column) = lines.line_col(end.saturating_sub(1).max(start));
                    if known.insert((f.rule_id.clone(), f.secret.clone())) {
                        found.push(f);
                    }
                }
                sort(&mut found);
            }
        }
        found
    }

    /// Findings in the encoded runs of `data` (this layer and those
    /// below it), each with the span of its run in `data`.
    fn scan_decoded(
        &self,
        data: &[u8],
        origin: Origin<'_>,
        depth: usize,
    ) -> Vec<(usize, usize, Finding)> {
        let mut out = Vec::new();
        for seg in crate::decode::segments(data) {
            let mut inner = self.scan_plain(&seg.text, origin);
            for f in &mut inner {
                f.tags.push(format!("decoded:{}", seg.encoding));
                f.tags.push(format!("decode-depth:{depth}"));
            }
            if depth < self.decode_depth {
                for (_, _, mut f) in self.scan_decoded(&seg.text, origin, depth + 1) {
                    let tag = format!("decoded:{}", seg.encoding);
                    if !f.tags.contains(&tag) {
                        f.tags.push(tag);
                    }
                    inner.push(f);
                }
            }
            out.extend(inner.into_iter().map(|f| (seg.start, seg.end, f)));
        }
        out
    }

    /// The findings in `data` as it is, without decoding anything.
    fn scan_plain(&self, data: &[u8], origin: Origin<'_>) -> Vec<Finding> {
        let rules = &self.config.rules;
        // Per rule, the byte ranges its regex must look at.
        let mut windows: Vec<Vec<(usize, usize)>> = vec![Vec::new(); rules.len()];
        if let Some(ac) = &self.keywords {
            for hit in ac.find_all(data) {
                for &r in &self.owners[hit.keyword] {
                    let reach = rules[r].max_len.unwrap_or(UNBOUNDED_REACH);
                    push_merged(&mut windows[r], window(data, hit.start, reach));
                }
            }
        }
        for &r in &self.unanchored {
            windows[r] = vec![(0, data.len())];
        }
        let mut found = Vec::new();
        // Where each finding's secret lies, in step with `found`.
        let mut secret_spans: Vec<(usize, usize)> = Vec::new();
        let lines = Lines::new(data);
        for (i, rule) in rules.iter().enumerate() {
            if windows[i].is_empty() {
                continue;
            }
            if let Some(p) = &rule.path
                && !p.is_match(origin.path.as_bytes())
            {
                continue;
            }
            if !rule.has_regex() {
                // A path-only rule: the file itself is the finding.
                found.push(finding(rule, &lines, origin, (0, 0), b"", b""));
                secret_spans.push((0, 0));
                continue;
            }
            // A regex over the size limit: Rule::check reports it.
            let Some(re) = rule.regex() else { continue };
            let mut seen: std::collections::HashSet<(usize, usize)> = Default::default();
            for &(ws, we) in &windows[i] {
                for caps in re.captures_iter(&data[ws..we]) {
                    let Some(m) = caps.get(0) else { continue };
                    let span = (ws + m.start(), ws + m.end());
                    if !seen.insert(span) {
                        continue;
                    }
                    let secret_m = if rule.secret_group > 0 {
                        caps.get(rule.secret_group)
                    } else {
                        caps.iter().skip(1).flatten().find(|g| !g.is_empty())
                    }
                    .unwrap_or(m);
                    let secret = secret_m.as_bytes();
                    let secret_span = (ws + secret_m.start(), ws + secret_m.end());
                    let low = rule.entropy.is_some_and(|min| entropy(secret) <= min);
                    if low && !self.keep_low_entropy {
                        continue;
                    }
                    let line = &data[line_start_near(data, span.0, LINE_CONTEXT)
                        ..line_end_near(data, span.1, LINE_CONTEXT)];
                    if self.inline_allow && allowed_inline(line) {
                        continue;
                    }
                    let c = Candidate {
                        path: origin.path,
                        commit: origin.commit,
                        matched: m.as_bytes(),
                        secret,
                        line,
                    };
                    let global =
                        self.config.allowlists.iter().filter(|a| {
                            a.target_rules.is_empty() || a.target_rules.contains(&rule.id)
                        });
                    if rule.allowlists.iter().chain(global).any(|a| a.allows(&c)) {
                        continue;
                    }
                    let mut f = finding(rule, &lines, origin, span, m.as_bytes(), secret);
                    if low {
                        f.tags.push(BELOW_ENTROPY.to_owned());
                    }
                    found.push(f);
                    secret_spans.push(secret_span);
                }
            }
        }
        drop_generic_overlaps(&mut found, &secret_spans);
        sort(&mut found);
        found
    }
}

/// Drops a generic rule's finding where a specific rule's secret covers
/// the same bytes: it adds nothing. Sorted spans keep this linear-ish when
/// one long line holds thousands of findings.
fn drop_generic_overlaps(found: &mut Vec<Finding>, spans: &[(usize, usize)]) {
    let generic = |f: &Finding| f.tags.iter().any(|t| t == "generic");
    let mut specific: Vec<(usize, usize)> = found
        .iter()
        .zip(spans)
        .filter(|(f, s)| !generic(f) && s.1 > s.0)
        .map(|(_, s)| *s)
        .collect();
    if specific.is_empty() {
        return;
    }
    specific.sort_unstable();
    // furthest[i]: the furthest end among the first i + 1 spans.
    let furthest: Vec<usize> = specific
        .iter()
        .scan(0, |m, s| {
            *m = (*m).max(s.1);
            Some(*m)
        })
        .collect();
    let covered = |(start, end): (usize, usize)| {
        let mut j = specific.partition_point(|s| s.0 < end.max(start + 1));
        while j > 0 && furthest[j - 1] > start {
            j -= 1;
            if specific[j].1 > start {
                return true;
            }
        }
        false
    };
    let mut i = 0;
    found.retain(|f| {
        let keep = !generic(f) || !covered(spans[i]);
        i += 1;
        keep
    });
}

/// In order of position, then rule.
fn sort(found: &mut [Finding]) {
    found.sort_by(|a, b| {
        (a.start_line, a.start_column, &a.rule_id).cmp(&(b.start_line, b.start_column, &b.rule_id))
    });
}

/// `gitleaks:allow` and `coffer:allow` on a line silence it.
fn allowed_inline(line: &[u8]) -> bool {
    [b"gitleaks:allow".as_slice(), b"coffer:allow"]
        .iter()
        .any(|m| memchr::memmem::find(line, m).is_some())
}

/// The range a rule whose matches reach at most `reach` bytes from their
/// keyword must search around a hit at `at`: the hit's line (and the end
/// of the line before, for matches that span lines), cut where the line
/// runs on further than the match could.
fn window(data: &[u8], at: usize, reach: usize) -> (usize, usize) {
    let start = line_start_near(data, at, reach + BEFORE);
    let start = if start > 0 && data[start - 1] == b'\n' {
        start.saturating_sub(BEFORE)
    } else {
        start
    };
    let end = line_end_near(data, at.saturating_add(reach).min(data.len()), BEFORE);
    (start, end)
}

/// The start of the line holding `at`, or `at - limit` when the line
/// starts further back than that.
fn line_start_near(data: &[u8], at: usize, limit: usize) -> usize {
    let at = at.min(data.len());
    let floor = at.saturating_sub(limit);
    memchr::memrchr(b'\n', &data[floor..at]).map_or(floor, |p| floor + p + 1)
}

/// The end of the line holding `at` (its newline's offset), or
/// `at + limit` when the line ends further on than that.
fn line_end_near(data: &[u8], at: usize, limit: usize) -> usize {
    let at = at.min(data.len());
    let ceil = at.saturating_add(limit).min(data.len());
    memchr::memchr(b'\n', &data[at..ceil]).map_or(ceil, |p| at + p)
}

/// Where each line starts, found once per input and only when something
/// is reported, so a finding's line and column cost a binary search.
struct Lines<'a> {
    data: &'a [u8],
    starts: std::cell::OnceCell<Vec<usize>>,
}

impl<'a> Lines<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            starts: std::cell::OnceCell::new(),
        }
    }

    /// 1-based line and column (in bytes) of a byte offset.
    fn line_col(&self, at: usize) -> (usize, usize) {
        let starts = self.starts.get_or_init(|| {
            std::iter::once(0)
                .chain(memchr::memchr_iter(b'\n', self.data).map(|p| p + 1))
                .collect()
        });
        let at = at.min(self.data.len());
        let line = starts.partition_point(|s| *s <= at);
        (line, at - starts[line.saturating_sub(1)] + 1)
    }
}

/// Adds a range, merging it with the last one when they touch (hits come
/// in order of their end, so a new range overlaps only recent ones).
fn push_merged(list: &mut Vec<(usize, usize)>, (s, e): (usize, usize)) {
    if let Some(last) = list.last_mut()
        && s <= last.1
    {
        last.0 = last.0.min(s);
        last.1 = last.1.max(e);
        return;
    }
    list.push((s, e));
}

fn finding(
    rule: &Rule,
    lines: &Lines<'_>,
    origin: Origin<'_>,
    (start, end): (usize, usize),
    matched: &[u8],
    secret: &[u8],
) -> Finding {
    let (start_line, start_column) = lines.line_col(start);
    let (end_line, end_column) = lines.line_col(end.saturating_sub(1).max(start));
    Finding {
        rule_id: rule.id.clone(),
        description: rule.description.clone(),
        file: origin.path.to_owned(),
        commit: origin.commit.map(str::to_owned),
        start_line,
        end_line,
        start_column,
        end_column,
        matched: String::from_utf8_lossy(matched).into_owned(),
        secret: String::from_utf8_lossy(secret).into_owned(),
        entropy: entropy(secret),
        tags: rule.tags.clone(),
        author: None,
        email: None,
        date: None,
        message: None,
        symlink_file: None,
        live: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner(toml: &str) -> Scanner {
        Scanner::new(Config::parse(toml, "test").expect("config")).expect("scanner")
    }

    #[test]
    fn keywords_anchor_the_regex_and_the_secret_group_is_reported() {
        let s = scanner(
            "[[rules]]\nid = 'tok'\nregex = '''(?i)token\\s*=\\s*([a-z0-9]{20})'''\nsecretGroup = 1\nkeywords = ['token']\nentropy = 3.0\n",
        );
        let data =
            b"a = 1\nTOKEN = q8zr2lmx0vtk5nwpb7yc\ntoken = aaaaaaaaaaaaaaaaaaaa\nnothing here\n";
        let f = s.scan(
            data,
            Origin {
                path: "app.env",
                commit: None,
            },
        );
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].secret, "q8zr2lmx0vtk5nwpb7yc");
        assert_eq!((f[0].start_line, f[0].start_column), (2, 1));
        assert_eq!(f[0].file, "app.env");
        // No keyword, no regex run: a match without one is not reported.
        let f = s.scan(b"tokn = q8zr2lmx0vtk5nwpb7yc\n", Origin::default());
        assert!(f.is_empty());
    }

    #[test]
    fn inline_markers_and_allowlists_silence_findings() {
        let s = scanner(
            "[[rules]]\nid = 'k'\nregex = '''key_[a-z0-9]{8}'''\nkeywords = ['key_']\n[allowlist]\nstopwords = ['dummy']\n",
        );
        let data = b"key_ab12cd34\nkey_ab12cd35 # gitleaks:allow\nkey_dummy123\n";
        let f = s.scan(data, Origin::default());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].start_line, 1);
    }

    #[test]
    fn a_very_long_line_is_searched_in_windows_and_places_findings_right() {
        let s = scanner(
            "[[rules]]\nid = 'tok'\nregex = '''(?i)token\\s*=\\s*([a-z0-9]{20})'''\nsecretGroup = 1\nkeywords = ['token']\n",
        );
        // A 2 MB line with a keyword every 100 bytes and no match but one.
        let mut data = Vec::new();
        while data.len() < 2 << 20 {
            data.extend_from_slice(b"token=x;");
            data.extend_from_slice(&[b'a'; 92]);
        }
        let at = data.len();
        data.extend_from_slice(b"TOKEN = q8zr2lmx0vtk5nwpb7yc;");
        data.extend_from_slice(b"pad;".repeat(5000).as_slice());
        data.extend_from_slice(b"\nsecond line\n");
        let f = s.scan(&data, Origin::default());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].start_line, f[0].start_column), (1, at + 1));
        // A marker next to it silences it; one far along the same line
        // does not.
        let mut marked = data.clone();
        marked.splice(at..at, b"gitleaks:allow ".iter().copied());
        assert!(s.scan(&marked, Origin::default()).is_empty());
        let cut = data.len() - 13;
        let far = [&data[..cut], b" gitleaks:allow", &data[cut..]].concat();
        assert_eq!(s.scan(&far, Origin::default()).len(), 1);
    }

    #[test]
    fn a_multi_line_match_is_found_from_its_keyword() {
        let s = scanner(
            "[[rules]]\nid = 'pem'\nregex = '''-----BEGIN PRIVATE KEY-----[\\s\\S]{10,}?-----END PRIVATE KEY-----'''\nkeywords = ['-----BEGIN PRIVATE']\n",
        );
        let data = b"x\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
        let f = s.scan(data, Origin::default());
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].start_line, f[0].end_line), (2, 4));
    }
}
