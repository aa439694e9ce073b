//! coffer's leak scanner: gitleaks-format rules (a built-in set of our
//! own, or a user's `.gitleaks.toml`), matched by keyword anchors and
//! regexes run only around them.
//!
//! `config` loads rule files, `rule` compiles rules and allowlists,
//! `keywords` finds keyword anchors, `engine` scans bytes.

pub mod config;
pub mod decode;
pub mod engine;
pub mod expr;
pub mod history;
pub mod keywords;
pub mod report;
pub mod rule;
pub mod template;
pub mod text;
pub mod walk;

pub use config::Config;
pub use engine::{Origin, Scanner};

/// Counters a scan advances as it goes, for a progress display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Files or blobs scanned.
    pub done: std::sync::atomic::AtomicU64,
    /// Bytes scanned.
    pub bytes: std::sync::atomic::AtomicU64,
    /// Files or blobs to scan, once known (0: not known).
    pub total: std::sync::atomic::AtomicU64,
}

impl Progress {
    /// One more file or blob of `bytes` done.
    pub fn add(&self, bytes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.done.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }
}

/// Why rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// A rule file is not valid.
    #[error("{file}: {message}")]
    Config {
        /// The file (or "built-in rules").
        file: String,
        /// What is wrong, and where.
        message: String,
    },
    /// A regex does not compile.
    #[error("regex {0}")]
    Regex(String),
    /// A report could not be written or read.
    #[error("report: {0}")]
    Report(String),
    /// The git repository could not be read.
    #[error("git: {0}")]
    Git(String),
}

/// One finding, with gitleaks' report field names and order. Fields a
/// scan has no value for are empty strings, as in gitleaks' reports.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Finding {
    /// The rule's id.
    #[serde(rename = "RuleID")]
    pub rule_id: String,
    /// The rule's description.
    pub description: String,
    /// 1-based.
    pub start_line: usize,
    /// 1-based.
    pub end_line: usize,
    /// 1-based, in bytes.
    pub start_column: usize,
    /// 1-based, in bytes, inclusive.
    pub end_column: usize,
    /// The text the rule matched.
    #[serde(rename = "Match")]
    pub matched: String,
    /// The secret inside it.
    pub secret: String,
    /// The file, as given.
    pub file: String,
    /// The symbolic link the file was reached through, when it was.
    #[serde(serialize_with = "or_empty")]
    pub symlink_file: Option<String>,
    /// The commit, in history scans.
    #[serde(serialize_with = "or_empty")]
    pub commit: Option<String>,
    /// Shannon entropy of the secret.
    pub entropy: f64,
    /// The commit's author, in history scans.
    #[serde(serialize_with = "or_empty")]
    pub author: Option<String>,
    /// The author's email, in history scans.
    #[serde(serialize_with = "or_empty")]
    pub email: Option<String>,
    /// The commit's date (RFC 3339), in history scans.
    #[serde(serialize_with = "or_empty")]
    pub date: Option<String>,
    /// The commit message's first line, in history scans.
    #[serde(serialize_with = "or_empty")]
    pub message: Option<String>,
    /// The rule's tags.
    pub tags: Vec<String>,
    /// With `--check-store`: whether the secret is live in coffer (not
    /// part of gitleaks' report; absent without the check).
    #[serde(rename = "LiveInCoffer", skip_serializing_if = "Option::is_none")]
    pub live: Option<bool>,
}

fn or_empty<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_deref().unwrap_or(""))
}

impl Finding {
    /// The stable id used by ignore files and baselines:
    /// `commit:path:rule:line` in history, `path:rule:line` in trees.
    pub fn fingerprint(&self) -> String {
        match &self.commit {
            Some(c) => format!("{c}:{}", self.short_fingerprint()),
            None => self.short_fingerprint(),
        }
    }

    /// The secret hidden in `Secret` and `Match`: all of it at 100 (as
    /// `REDACTED`), else all but the first `100 - percent`% of it, followed
    /// by `...` (gitleaks' `--redact=N`).
    pub fn redact(&mut self, percent: u8) {
        if percent == 0 {
            return;
        }
        let shown = if percent >= 100 {
            "REDACTED".to_owned()
        } else {
            let chars: Vec<char> = self.secret.chars().collect();
            let keep = (chars.len() as f64 * f64::from(100 - percent) / 100.0).round_ties_even();
            let mut s: String = chars.iter().take(keep as usize).collect();
            s.push_str("...");
            s
        };
        if !self.secret.is_empty() {
            self.matched = self.matched.replace(&self.secret, &shown);
        }
        self.secret = shown;
    }

    /// The `path:rule:line` form of the fingerprint, which ignore files
    /// may use for a finding in any commit.
    pub fn short_fingerprint(&self) -> String {
        format!("{}:{}:{}", self.file, self.rule_id, self.start_line)
    }
}
