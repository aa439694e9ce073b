//! Password policies (`sys/policies/password/:name`), in Vault's HCL:
//!
//! ```hcl
//! length = 24
//! rule "charset" {
//!   charset   = "abcdefghijklmnopqrstuvwxyz"
//!   min-chars = 1
//! }
//! ```
//!
//! A password is `length` characters drawn uniformly from the union of the
//! charsets, redrawn until every rule's minimum holds (for a bounded number
//! of draws; then built to hold them).

use hcl_edit::expr::Expression;
use hcl_edit::repr::Span;
use hcl_edit::structure::{BlockLabel, Structure};
use serde::{Deserialize, Serialize};

use crate::logical::LogicalError;
use crate::secret::SecretString;

/// Where policies are stored, behind the barrier.
pub(crate) const POLICY_PREFIX: &str = "core/password-policy/";

/// The longest password a policy may ask for (Vault's limit).
const MAX_LENGTH: usize = 4096;

/// One `rule "charset"` block.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CharsetRule {
    /// The characters (each counted once).
    pub charset: Vec<char>,
    /// At least this many characters from the set.
    pub min_chars: usize,
}

/// A parsed policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// The policy text as written.
    pub raw: String,
    /// Password length.
    pub length: usize,
    /// Charset rules.
    pub rules: Vec<CharsetRule>,
}

fn bad(m: impl Into<String>) -> LogicalError {
    LogicalError::BadRequest(format!("invalid password policy: {}", m.into()))
}

fn string_of(e: &Expression) -> Option<String> {
    match e {
        Expression::String(s) => Some(s.value().to_string()),
        _ => None,
    }
}

fn number_of(e: &Expression) -> Option<usize> {
    match e {
        Expression::Number(n) => n.value().as_u64().and_then(|v| usize::try_from(v).ok()),
        Expression::String(s) => s.value().parse().ok(),
        _ => None,
    }
}

impl PasswordPolicy {
    /// Parses and checks policy text.
    pub fn parse(raw: &str) -> Result<Self, LogicalError> {
        let (body, text) = crate::hcl1::parse_body(raw).map_err(bad)?;
        let mut length = None;
        let mut rules = Vec::new();
        for s in body.iter() {
            match s {
                Structure::Attribute(a) => match a.key.as_str() {
                    "length" => {
                        length = Some(number_of(&a.value).ok_or_else(|| {
                            bad(format!(
                                "{}length must be a number",
                                text.line_prefix(a.span())
                            ))
                        })?)
                    }
                    other => {
                        return Err(bad(format!(
                            "{}unknown key {other:?}",
                            text.line_prefix(a.span())
                        )));
                    }
                },
                Structure::Block(b) => {
                    let label = b.labels.first().map(|l| match l {
                        BlockLabel::String(s) => s.value().to_string(),
                        BlockLabel::Ident(i) => i.as_str().to_owned(),
                    });
                    if b.ident.as_str() != "rule" || label.as_deref() != Some("charset") {
                        return Err(bad(format!(
                            "{}only rule \"charset\" blocks are supported",
                            text.line_prefix(b.span())
                        )));
                    }
                    let (mut charset, mut min_chars) = (None, 0);
                    for inner in b.body.iter() {
                        let Structure::Attribute(a) = inner else {
                            return Err(bad(format!(
                                "{}rule \"charset\" holds only charset and min-chars",
                                text.line_prefix(inner.span())
                            )));
                        };
                        match a.key.as_str() {
                            "charset" => {
                                charset = Some(string_of(&a.value).ok_or_else(|| {
                                    bad(format!(
                                        "{}charset must be a string",
                                        text.line_prefix(a.span())
                                    ))
                                })?)
                            }
                            "min-chars" | "min_chars" => {
                                min_chars = number_of(&a.value).ok_or_else(|| {
                                    bad(format!(
                                        "{}min-chars must be a number",
                                        text.line_prefix(a.span())
                                    ))
                                })?
                            }
                            other => {
                                return Err(bad(format!(
                                    "{}unknown key {other:?} in rule",
                                    text.line_prefix(a.span())
                                )));
                            }
                        }
                    }
                    let mut chars: Vec<char> = charset
                        .ok_or_else(|| {
                            bad(format!(
                                "{}rule \"charset\" needs charset",
                                text.line_prefix(b.span())
                            ))
                        })?
                        .chars()
                        .collect();
                    chars.sort_unstable();
                    chars.dedup();
                    if chars.is_empty() {
                        return Err(bad(format!(
                            "{}charset must not be empty",
                            text.line_prefix(b.span())
                        )));
                    }
                    rules.push(CharsetRule {
                        charset: chars,
                        min_chars,
                    });
                }
            }
        }
        let length = length.ok_or_else(|| bad("length is required"))?;
        if !(4..=MAX_LENGTH).contains(&length) {
            return Err(bad(format!("length must be between 4 and {MAX_LENGTH}")));
        }
        if rules.is_empty() {
            return Err(bad("at least one rule \"charset\" is required"));
        }
        let mins: usize = rules.iter().map(|r| r.min_chars).sum();
        if mins > length {
            return Err(bad(format!(
                "the rules ask for {mins} characters but length is {length}"
            )));
        }
        Ok(Self {
            raw: raw.to_owned(),
            length,
            rules,
        })
    }

    /// A fresh password. Uniform draws from the union of the charsets are
    /// checked against the rules a bounded number of times; a policy whose
    /// minimums such draws rarely meet then gets a password built to meet
    /// them (each rule's minimum drawn from its own set, the rest from the
    /// union, shuffled). `parse` guarantees the minimums fit the length, so
    /// this always ends, in time linear in the length. CPU-heavy for long
    /// policies: callers run it through [`crate::heavy::run`].
    pub fn generate(&self) -> Result<SecretString, LogicalError> {
        let mut alphabet: Vec<char> = self
            .rules
            .iter()
            .flat_map(|r| r.charset.iter().copied())
            .collect();
        alphabet.sort_unstable();
        alphabet.dedup();
        let mut rng = Draws::default();
        let attempts = (MAX_DRAWN / self.length).max(1);
        for _ in 0..attempts {
            let mut out = String::with_capacity(self.length * 4);
            for _ in 0..self.length {
                out.push(alphabet[rng.below(alphabet.len())?]);
            }
            if self.meets_rules(&out) {
                return Ok(SecretString::new(out));
            }
            zeroize::Zeroize::zeroize(&mut out);
        }
        let mut chars: Vec<char> = Vec::with_capacity(self.length);
        for r in &self.rules {
            for _ in 0..r.min_chars {
                chars.push(r.charset[rng.below(r.charset.len())?]);
            }
        }
        while chars.len() < self.length {
            chars.push(alphabet[rng.below(alphabet.len())?]);
        }
        for i in (1..chars.len()).rev() {
            chars.swap(i, rng.below(i + 1)?);
        }
        let out: String = chars.iter().collect();
        zeroize::Zeroize::zeroize(&mut chars[..]);
        Ok(SecretString::new(out))
    }

    fn meets_rules(&self, pw: &str) -> bool {
        self.rules.iter().all(|r| {
            r.min_chars == 0
                || pw
                    .chars()
                    .filter(|c| r.charset.binary_search(c).is_ok())
                    .count()
                    >= r.min_chars
        })
    }
}

/// Characters drawn by uniform attempts before building a password instead.
const MAX_DRAWN: usize = 1 << 16;

/// Uniform random indexes from buffered OS randomness.
#[derive(Default)]
struct Draws {
    buf: Vec<u8>,
}

impl Draws {
    fn next_u32(&mut self) -> Result<u32, LogicalError> {
        if self.buf.len() < 4 {
            self.buf.resize(4096, 0);
            getrandom::fill(&mut self.buf).map_err(|e| LogicalError::Internal(e.to_string()))?;
        }
        let at = self.buf.len() - 4;
        let v = u32::from_le_bytes([
            self.buf[at],
            self.buf[at + 1],
            self.buf[at + 2],
            self.buf[at + 3],
        ]);
        self.buf[at..].fill(0);
        self.buf.truncate(at);
        Ok(v)
    }

    /// Uniform in `0..n` (rejection sampling: no modulo bias).
    fn below(&mut self, n: usize) -> Result<usize, LogicalError> {
        let n = u32::try_from(n).map_err(|_| LogicalError::Internal("charset too large".into()))?;
        let limit = u32::MAX - u32::MAX % n;
        loop {
            let v = self.next_u32()?;
            if v < limit {
                return Ok((v % n) as usize);
            }
        }
    }
}

impl Drop for Draws {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
length = 16
rule "charset" {
  charset = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 1
}
rule "charset" {
  charset = "0123456789"
  min-chars = 4
}
"#;

    #[test]
    fn generates_within_the_rules() {
        let p = PasswordPolicy::parse(POLICY).unwrap();
        for _ in 0..50 {
            let pw = p.generate().unwrap();
            let s = pw.expose();
            assert_eq!(s.chars().count(), 16);
            assert!(
                s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                "{s}"
            );
            assert!(s.chars().filter(char::is_ascii_digit).count() >= 4, "{s}");
        }
    }

    #[test]
    fn unlikely_minimums_are_met_in_bounded_time() {
        // 4,000 of 4,096 characters from a 1-character set inside a
        // 95-character union: uniform draws practically never meet it.
        let printable: String = (' '..='~').filter(|c| *c != '"' && *c != '\\').collect();
        let src = format!(
            "length = 4096\nrule \"charset\" {{\n charset = \"{printable}\"\n}}\nrule \"charset\" {{\n charset = \"x\"\n min-chars = 4000\n}}\n"
        );
        let p = PasswordPolicy::parse(&src).unwrap();
        let pw = p.generate().unwrap();
        assert_eq!(pw.expose().chars().count(), 4096);
        assert!(pw.expose().chars().filter(|c| *c == 'x').count() >= 4000);
    }

    #[test]
    fn one_line_policies_parse_as_in_openbao() {
        let p = PasswordPolicy::parse("length=12 rule \"charset\" { charset = \"abc\" }").unwrap();
        let pw = p.generate().unwrap();
        assert_eq!(pw.expose().len(), 12);
        assert!(pw.expose().chars().all(|c| "abc".contains(c)));
        let p = PasswordPolicy::parse(
            "length = 8 rule \"charset\" { charset = \"ab\" min-chars = 1 } rule \"charset\" { charset = \"9\" min-chars = 2 }",
        )
        .unwrap();
        let pw = p.generate().unwrap();
        assert!(pw.expose().chars().filter(|c| *c == '9').count() >= 2);
    }

    #[test]
    fn mistakes_are_refused() {
        for (src, needle) in [
            (
                "length = 2\nrule \"charset\" { charset = \"ab\" }",
                "between 4",
            ),
            (
                "rule \"charset\" { charset = \"ab\" }",
                "length is required",
            ),
            ("length = 8", "at least one rule"),
            (
                "length = 4\nrule \"charset\" {\n charset = \"ab\"\n min-chars = 5\n}",
                "ask for 5",
            ),
            (
                "length = 8\nfoo = 1\nrule \"charset\" { charset = \"ab\" }",
                "line 2: unknown key",
            ),
            (
                "length = 8 rule \"charset\" {\n charset = \"ab\"\n}\nrule \"charset\" {\n charset = 3\n}",
                "line 5: charset must be a string",
            ),
        ] {
            let e = PasswordPolicy::parse(src).unwrap_err().to_string();
            assert!(e.contains(needle), "{src}: {e}");
        }
    }
}
