//! The matcher: one Aho-Corasick automaton over every rule's keywords finds
//! where a rule can match; the rule's regex then runs only on the lines
//! around each keyword hit (merged per rule), never over the whole input.
//! Rules without keywords run over the whole input, as in gitleaks.

use crate::config::Config;
use crate::keywords::Keywords;
use crate::rule::{Candidate, Rule, entropy};
use crate::{Finding, ScanError};

/// Bytes before the line of a keyword hit that a match may start in.
const BEFORE: usize = 256;
/// How far past the hit's line an unbounded regex may match.
const UNBOUNDED_AFTER: usize = 16 << 10;

/// A compiled rule set, ready to scan bytes.
pub struct Scanner {
    config: Config,
    keywords: Option<Keywords>,
    /// For each keyword pattern, the rules that have it.
    owners: Vec<Vec<usize>>,
    /// Rules that run everywhere.
    unanchored: Vec<usize>,
}

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
        })
    }

    /// The rule set.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every finding in `data`, in order of position then rule.
    pub fn scan(&self, data: &[u8], origin: Origin<'_>) -> Vec<Finding> {
        let rules = &self.config.rules;
        // Per rule, the byte ranges its regex must look at.
        let mut windows: Vec<Vec<(usize, usize)>> = vec![Vec::new(); rules.len()];
        if let Some(ac) = &self.keywords {
            for hit in ac.find_all(data) {
                for &r in &self.owners[hit.keyword] {
                    let after = rules[r].max_len.unwrap_or(UNBOUNDED_AFTER);
                    let start = line_start(data, hit.start).saturating_sub(BEFORE);
                    let end = (line_end(data, hit.end) + after).min(data.len());
                    let end = line_end(data, end);
                    push_merged(&mut windows[r], (start, end));
                }
            }
        }
        for &r in &self.unanchored {
            windows[r] = vec![(0, data.len())];
        }
        let mut found = Vec::new();
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
                found.push(finding(rule, data, origin, (0, 0), b"", b""));
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
                    let secret = if rule.secret_group > 0 {
                        caps.get(rule.secret_group).map(|g| g.as_bytes())
                    } else {
                        caps.iter()
                            .skip(1)
                            .flatten()
                            .map(|g| g.as_bytes())
                            .find(|g| !g.is_empty())
                    }
                    .unwrap_or(m.as_bytes());
                    if let Some(min) = rule.entropy
                        && entropy(secret) <= min
                    {
                        continue;
                    }
                    let line = &data[line_start(data, span.0)..line_end(data, span.1)];
                    if allowed_inline(line) {
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
                    found.push(finding(rule, data, origin, span, m.as_bytes(), secret));
                }
            }
        }
        // A generic rule's finding adds nothing where a specific rule found
        // the same secret on the same line.
        let specific: Vec<(usize, String)> = found
            .iter()
            .filter(|f| !f.tags.iter().any(|t| t == "generic"))
            .map(|f| (f.start_line, f.secret.clone()))
            .collect();
        found.retain(|f| {
            !f.tags.iter().any(|t| t == "generic")
                || !specific
                    .iter()
                    .any(|(line, secret)| *line == f.start_line && secret.contains(&f.secret))
        });
        found.sort_by(|a, b| {
            (a.start_line, a.start_column, &a.rule_id).cmp(&(
                b.start_line,
                b.start_column,
                &b.rule_id,
            ))
        });
        found
    }
}

/// `gitleaks:allow` and `coffer:allow` on a line silence it.
fn allowed_inline(line: &[u8]) -> bool {
    [b"gitleaks:allow".as_slice(), b"coffer:allow"]
        .iter()
        .any(|m| line.windows(m.len()).any(|w| w == *m))
}

fn line_start(data: &[u8], at: usize) -> usize {
    data[..at.min(data.len())]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |p| p + 1)
}

fn line_end(data: &[u8], at: usize) -> usize {
    data[at.min(data.len())..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(data.len(), |p| at + p)
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
    data: &[u8],
    origin: Origin<'_>,
    (start, end): (usize, usize),
    matched: &[u8],
    secret: &[u8],
) -> Finding {
    let (start_line, start_column) = line_col(data, start);
    let (end_line, end_column) = line_col(data, end.saturating_sub(1).max(start));
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
    }
}

/// 1-based line and column of a byte offset.
fn line_col(data: &[u8], at: usize) -> (usize, usize) {
    let before = &data[..at.min(data.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    (line, at - line_start(data, at) + 1)
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
