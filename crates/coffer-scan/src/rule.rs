//! A compiled rule and its allowlists. Regexes are compiled in ASCII mode
//! (`\w`, `\d`, `\s`, `\b` as Go's RE2 reads them in gitleaks rules, and
//! about a hundred times faster to build than Unicode classes).

use std::sync::OnceLock;

use regex::bytes::{Regex, RegexBuilder};

use crate::ScanError;

/// Compiled-size limit for one rule's regex.
const SIZE_LIMIT: usize = 64 << 20;

/// Compiles a rule or allowlist regex.
pub fn compile(pattern: &str) -> Result<Regex, ScanError> {
    RegexBuilder::new(&from_re2(pattern))
        .unicode(false)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| ScanError::Regex(format!("{pattern:?}: {e}")))
}

/// Rewrites what Go's RE2 (gitleaks' regex engine) reads literally but the
/// regex crate would not: a `{` that opens no repetition (`{{[^}]+}}` in
/// template allowlists), a lone `}`, and inside a class a `[` that starts no
/// `[:name:]` and the doubled `--`, `&&`, `~~` the regex crate takes as set
/// operations. Everything else passes through unchanged.
pub fn from_re2(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\\' {
            out.push(c);
            if let Some(n) = next {
                out.push(n);
            }
            i += 2;
            continue;
        }
        if in_class {
            match c {
                ']' => in_class = false,
                '[' if next == Some(':') => {
                    if let Some(len) = posix_class_len(&chars[i..]) {
                        out.extend(&chars[i..i + len]);
                        i += len;
                        continue;
                    }
                    out.push('\\');
                }
                '[' => out.push('\\'),
                '-' | '&' | '~' if next == Some(c) => out.push('\\'),
                _ => {}
            }
            out.push(c);
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push(c);
                i += 1;
                // `[]…]` and `[^]…]`: a leading `]` is a member.
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
                continue;
            }
            '{' => {
                let len = repetition_len(&chars[i..]);
                if len > 0 {
                    out.extend(&chars[i..i + len]);
                    i += len;
                    continue;
                }
                out.push('\\');
            }
            '}' => out.push('\\'),
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Length of `{n}`, `{n,}` or `{n,m}` at the start of `s`, else 0.
fn repetition_len(s: &[char]) -> usize {
    let mut i = 1;
    let digits = |i: &mut usize| {
        let start = *i;
        while s.get(*i).is_some_and(char::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return 0;
    }
    if s.get(i) == Some(&',') {
        i += 1;
        digits(&mut i);
    }
    if s.get(i) == Some(&'}') { i + 1 } else { 0 }
}

/// Length of `[:name:]` or `[:^name:]` at the start of `s`, if it is one.
fn posix_class_len(s: &[char]) -> Option<usize> {
    let end = (2..s.len().min(16)).find(|&j| s[j] == ']')?;
    let name: String = s[2..end].iter().collect();
    let name = name.strip_prefix('^').unwrap_or(&name);
    (name.ends_with(':')
        && name.len() > 1
        && name[..name.len() - 1]
            .chars()
            .all(|c| c.is_ascii_lowercase()))
    .then_some(end + 1)
}

/// What an allowlist's regexes are matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The secret (the rule's secret group).
    Secret,
    /// The whole match.
    Match,
    /// The line(s) of the match.
    Line,
}

/// Whether one criterion (OR) or all that are set (AND) must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Any criterion.
    Or,
    /// Every criterion given.
    And,
}

/// Matches that are not findings.
#[derive(Debug)]
pub struct Allowlist {
    /// OR or AND.
    pub condition: Condition,
    /// What `regexes` look at.
    pub target: Target,
    /// Regexes on the target.
    pub regexes: Vec<Regex>,
    /// Regexes on the file path.
    pub paths: Vec<Regex>,
    /// Words which, inside the secret (any case), mark it as not one.
    pub stopwords: Vec<String>,
    /// Commit ids (history scans).
    pub commits: Vec<String>,
    /// Rule ids this global allowlist is limited to (none: all).
    pub target_rules: Vec<String>,
}

impl Allowlist {
    /// Compiles an allowlist.
    pub fn new(
        condition: Condition,
        target: Target,
        regexes: &[String],
        paths: &[String],
        stopwords: Vec<String>,
        commits: Vec<String>,
        target_rules: Vec<String>,
    ) -> Result<Self, ScanError> {
        Ok(Self {
            condition,
            target,
            regexes: regexes
                .iter()
                .map(|r| compile(r))
                .collect::<Result<_, _>>()?,
            paths: paths.iter().map(|r| compile(r)).collect::<Result<_, _>>()?,
            stopwords: stopwords
                .into_iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            commits,
            target_rules,
        })
    }

    /// Whether a matching path is enough for this list to allow a
    /// candidate, whatever the candidate holds.
    pub fn allows_path_alone(&self) -> bool {
        !self.paths.is_empty()
            && match self.condition {
                Condition::Or => true,
                Condition::And => {
                    self.regexes.is_empty() && self.stopwords.is_empty() && self.commits.is_empty()
                }
            }
    }

    /// Whether a candidate is allowed (not a finding).
    pub fn allows(&self, c: &Candidate<'_>) -> bool {
        let mut checks: Vec<bool> = Vec::new();
        if !self.commits.is_empty() {
            checks.push(
                c.commit
                    .is_some_and(|id| self.commits.iter().any(|x| x == id)),
            );
        }
        if !self.paths.is_empty() {
            checks.push(self.paths.iter().any(|p| p.is_match(c.path.as_bytes())));
        }
        if !self.regexes.is_empty() {
            let target = match self.target {
                Target::Secret => c.secret,
                Target::Match => c.matched,
                Target::Line => c.line,
            };
            checks.push(self.regexes.iter().any(|r| r.is_match(target)));
        }
        if !self.stopwords.is_empty() {
            let secret = c.secret.to_ascii_lowercase();
            checks.push(self.stopwords.iter().any(|w| {
                secret
                    .windows(w.len().max(1))
                    .any(|win| win == w.as_bytes())
            }));
        }
        match self.condition {
            Condition::Or => checks.iter().any(|x| *x),
            Condition::And => !checks.is_empty() && checks.iter().all(|x| *x),
        }
    }
}

/// A match being judged.
pub struct Candidate<'a> {
    /// The file's path (as reported).
    pub path: &'a str,
    /// The commit, in history scans.
    pub commit: Option<&'a str>,
    /// The whole match.
    pub matched: &'a [u8],
    /// The secret.
    pub secret: &'a [u8],
    /// The line(s) the match is on.
    pub line: &'a [u8],
}

/// One rule.
#[derive(Debug)]
pub struct Rule {
    /// Its id (`aws-access-token`).
    pub id: String,
    /// What it finds.
    pub description: String,
    /// The pattern (none: a path-only rule), checked when the rule is
    /// loaded and compiled the first time a keyword calls for it: a
    /// pre-commit scan touches a few rules, not all of them.
    pattern: Option<String>,
    compiled: OnceLock<Option<Regex>>,
    /// Which capture group is the secret (0: the first non-empty group,
    /// else the whole match).
    pub secret_group: usize,
    /// Minimum Shannon entropy of the secret.
    pub entropy: Option<f64>,
    /// Lower-case literals one of which must occur for the rule to run.
    pub keywords: Vec<String>,
    /// Only files whose path matches.
    pub path: Option<Regex>,
    /// Labels.
    pub tags: Vec<String>,
    /// The rule's own allowlists.
    pub allowlists: Vec<Allowlist>,
    /// The longest text the regex can match, when bounded.
    pub max_len: Option<usize>,
}

impl Rule {
    /// Compiles a rule.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        description: String,
        regex: Option<&str>,
        secret_group: usize,
        entropy: Option<f64>,
        keywords: Vec<String>,
        path: Option<&str>,
        tags: Vec<String>,
        allowlists: Vec<Allowlist>,
    ) -> Result<Self, ScanError> {
        let mut max_len = None;
        if let Some(pattern) = regex {
            // The regex crate's own parser, as compile() configures it:
            // a pattern that parses here compiles later.
            let hir = regex_syntax::ParserBuilder::new()
                .unicode(false)
                .utf8(false)
                .build()
                .parse(&from_re2(pattern))
                .map_err(|e| ScanError::Regex(format!("{pattern:?}: {e}")))?;
            let groups = hir.properties().explicit_captures_len();
            if secret_group > groups {
                return Err(ScanError::Regex(format!(
                    "secretGroup {secret_group} but the regex has {groups} groups"
                )));
            }
            max_len = hir.properties().maximum_len();
        }
        Ok(Self {
            id,
            description,
            pattern: regex.map(str::to_owned),
            compiled: OnceLock::new(),
            secret_group,
            entropy,
            keywords: keywords
                .into_iter()
                .map(|k| k.to_ascii_lowercase())
                .filter(|k| !k.is_empty())
                .collect(),
            path: path.map(compile).transpose()?,
            tags,
            allowlists,
            max_len,
        })
    }

    /// Whether the rule has a regex (else it matches paths only).
    pub fn has_regex(&self) -> bool {
        self.pattern.is_some()
    }

    /// The compiled regex; `None` for a path-only rule or one whose regex
    /// is over the compiled-size limit (see [`Rule::check`]).
    pub fn regex(&self) -> Option<&Regex> {
        self.compiled
            .get_or_init(|| self.pattern.as_deref().and_then(|p| compile(p).ok()))
            .as_ref()
    }

    /// Compiles the regex now, reporting why it does not compile (a
    /// pattern that parses can still be too large).
    pub fn check(&self) -> Result<(), ScanError> {
        match &self.pattern {
            Some(p) if self.regex().is_none() => compile(p).map(|_| ()),
            _ => Ok(()),
        }
    }
}

/// Shannon entropy in bits per byte.
pub fn entropy(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0usize; 256];
    for b in data {
        counts[usize::from(*b)] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = *c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_is_shannons() {
        assert_eq!(entropy(b""), 0.0);
        assert_eq!(entropy(b"aaaa"), 0.0);
        assert!((entropy(b"ab") - 1.0).abs() < 1e-9);
        assert!(entropy(b"q8Zr2LmX0vTk5NwPb7Yc") > 4.0);
    }

    #[test]
    fn re2_literal_braces_and_brackets_compile_as_re2_reads_them() {
        let cases: [(&str, &[u8], bool); 8] = [
            (r"\$?{{[^}]+}}", b"${{ secrets.TOKEN }}", true),
            (r"a{2}b{1,}c{1,3}", b"aabbc", true),
            (r"x{,3}", b"x{,3}", true),
            (r"[a[]+", b"a[a", true),
            (r"[\w.--]+", b"a--b", true),
            (r"[[:alpha:]]+", b"abc", true),
            (r"[]a]", b"]", true),
            (r"}", b"}", true),
        ];
        for (pattern, text, want) in cases {
            let re = compile(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
            assert_eq!(
                re.is_match(text),
                want,
                "{pattern} on {:?}",
                String::from_utf8_lossy(text)
            );
        }
        assert_eq!(from_re2(r"\{x\}[a-z]{3}"), r"\{x\}[a-z]{3}");
    }

    #[test]
    fn allowlists_combine_with_or_and_and() {
        let c = Candidate {
            path: "tests/fixtures/a.env",
            commit: None,
            matched: b"token=EXAMPLEabc",
            secret: b"EXAMPLEabc",
            line: b"token=EXAMPLEabc # test",
        };
        let or = Allowlist::new(
            Condition::Or,
            Target::Secret,
            &[],
            &["^docs/".into()],
            vec!["example".into()],
            vec![],
            vec![],
        )
        .expect("allowlist");
        assert!(or.allows(&c), "the stopword is enough");
        let and = Allowlist::new(
            Condition::And,
            Target::Line,
            &["# test$".into()],
            &["^docs/".into()],
            vec![],
            vec![],
            vec![],
        )
        .expect("allowlist");
        assert!(!and.allows(&c), "the path does not match");
    }
}
