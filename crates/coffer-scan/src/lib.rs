//! coffer's leak scanner: gitleaks-format rules (a built-in set of our
//! own, or a user's `.gitleaks.toml`), matched by keyword anchors and
//! regexes run only around them.
//!
//! `config` loads rule files, `rule` compiles rules and allowlists,
//! `keywords` finds keyword anchors, `engine` scans bytes.

pub mod config;
pub mod engine;
pub mod expr;
pub mod history;
pub mod keywords;
pub mod report;
pub mod rule;
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

/// One finding, with gitleaks' report field names.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Finding {
    /// The rule's id.
    #[serde(rename = "RuleID")]
    pub rule_id: String,
    /// The rule's description.
    pub description: String,
    /// The file, as given.
    pub file: String,
    /// The commit, in history scans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
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
    /// Shannon entropy of the secret.
    pub entropy: f64,
    /// The rule's tags.
    pub tags: Vec<String>,
    /// The commit's author, in history scans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The author's email, in history scans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The commit's date (RFC 3339), in history scans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// The commit message's first line, in history scans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Finding {
    /// The stable id used by ignore files and baselines:
    /// `commit:path:rule:line` in history, `path:rule:line` in trees.
    pub fn fingerprint(&self) -> String {
        match &self.commit {
            Some(c) => format!("{c}:{}:{}:{}", self.file, self.rule_id, self.start_line),
            None => format!("{}:{}:{}", self.file, self.rule_id, self.start_line),
        }
    }

    /// The secret hidden in `Secret` and `Match`.
    pub fn redact(&mut self) {
        if !self.secret.is_empty() {
            self.matched = self.matched.replace(&self.secret, "REDACTED");
        }
        self.secret = "REDACTED".into();
    }
}
