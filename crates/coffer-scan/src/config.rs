//! Rule files in gitleaks' TOML format (`[[rules]]`, `[extend]`, rule and
//! global allowlists in both the old single-table and the newer list form).
//! Keys coffer does not use are reported as warnings, never ignored silently.

use serde::Deserialize;

use crate::ScanError;
use crate::rule::{Allowlist, Condition, Rule, Target};

/// The built-in rules, in the same format.
pub const DEFAULT_RULES: &str = include_str!("../rules/default.toml");

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    #[allow(dead_code)] // accepted; nothing to do with it
    title: Option<String>,
    #[allow(dead_code)] // accepted; nothing to do with it
    description: Option<String>,
    extend: Option<RawExtend>,
    #[serde(default)]
    rules: Vec<RawRule>,
    allowlist: Option<RawAllowlist>,
    #[serde(default)]
    allowlists: Vec<RawAllowlist>,
    #[serde(flatten)]
    other: toml::Table,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawExtend {
    #[serde(default)]
    use_default: bool,
    path: Option<String>,
    url: Option<String>,
    #[serde(default)]
    disabled_rules: Vec<String>,
    #[serde(flatten)]
    other: toml::Table,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRule {
    id: Option<String>,
    description: Option<String>,
    regex: Option<String>,
    #[serde(default)]
    secret_group: usize,
    entropy: Option<f64>,
    #[serde(default)]
    keywords: Vec<String>,
    path: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    allowlist: Option<RawAllowlist>,
    #[serde(default)]
    allowlists: Vec<RawAllowlist>,
    #[serde(flatten)]
    other: toml::Table,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAllowlist {
    #[allow(dead_code)] // accepted; nothing to do with it
    description: Option<String>,
    condition: Option<String>,
    #[serde(default)]
    commits: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    regex_target: Option<String>,
    #[serde(default)]
    regexes: Vec<String>,
    #[serde(default)]
    stopwords: Vec<String>,
    #[serde(default)]
    target_rules: Vec<String>,
    #[serde(flatten)]
    other: toml::Table,
}

/// A loaded rule set.
#[derive(Debug, Default)]
pub struct Config {
    /// The rules, defaults first when extended.
    pub rules: Vec<Rule>,
    /// Allowlists that apply to every rule (or to `target_rules`).
    pub allowlists: Vec<Allowlist>,
    /// What the file had that coffer does not use.
    pub warnings: Vec<String>,
}

impl Config {
    /// The built-in rules.
    pub fn defaults() -> Result<Self, ScanError> {
        Self::parse(DEFAULT_RULES, BUILT_IN)
    }

    /// Parses a gitleaks-format file; `[extend] useDefault = true` puts the
    /// built-in rules first (a user rule with the same id replaces one).
    pub fn parse(text: &str, source: &str) -> Result<Self, ScanError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ScanError::Config {
            file: source.to_owned(),
            message: e.to_string(),
        })?;
        let mut warnings = Vec::new();
        let unknown = |warnings: &mut Vec<String>, table: &toml::Table, place: &str| {
            for k in table.keys() {
                warnings.push(format!(
                    "{source}: {place}: `{k}` is not a key coffer knows; ignored"
                ));
            }
        };
        unknown(&mut warnings, &raw.other, "top level");
        let mut config = Config::default();
        if let Some(ext) = &raw.extend {
            unknown(&mut warnings, &ext.other, "[extend]");
            if ext.path.is_some() || ext.url.is_some() {
                return Err(ScanError::Config {
                    file: source.to_owned(),
                    message: "[extend] path and url are not supported; use useDefault = true or copy the rules in".into(),
                });
            }
            if ext.use_default {
                let base = Self::defaults()?;
                config.rules = base
                    .rules
                    .into_iter()
                    .filter(|r| !ext.disabled_rules.contains(&r.id))
                    .collect();
                config.allowlists = base.allowlists;
            }
        }
        for (i, r) in raw.rules.into_iter().enumerate() {
            let place = format!("rule {}", i + 1);
            unknown(&mut warnings, &r.other, &place);
            for a in r.allowlist.iter().chain(&r.allowlists) {
                unknown(&mut warnings, &a.other, &format!("{place} allowlist"));
                if !a.target_rules.is_empty() {
                    warnings.push(format!(
                        "{source}: {place}: targetRules belongs in a global [[allowlists]]; ignored here"
                    ));
                }
            }
            let rule = rule(r, source, &place)?;
            match config.rules.iter_mut().find(|x| x.id == rule.id) {
                Some(existing) => *existing = rule,
                None => config.rules.push(rule),
            }
        }
        for (i, a) in raw.allowlist.into_iter().chain(raw.allowlists).enumerate() {
            let place = format!("global allowlist {}", i + 1);
            unknown(&mut warnings, &a.other, &place);
            config.allowlists.push(allowlist(a, source, &place)?);
        }
        if config.rules.is_empty() {
            return Err(ScanError::Config {
                file: source.to_owned(),
                message: "no rules: add [[rules]] or [extend] useDefault = true (an allowlist alone would disable every rule)".into(),
            });
        }
        config.warnings = warnings;
        Ok(config)
    }
}

fn rule(r: RawRule, source: &str, place: &str) -> Result<Rule, ScanError> {
    let err = |message: String| ScanError::Config {
        file: source.to_owned(),
        message: format!("{place}: {message}"),
    };
    let id =
        r.id.filter(|i| !i.is_empty())
            .ok_or_else(|| err("no id".into()))?;
    let place = format!("{place} ({id})");
    let err = |message: String| ScanError::Config {
        file: source.to_owned(),
        message: format!("{place}: {message}"),
    };
    if r.regex.is_none() && r.path.is_none() {
        return Err(err("needs a regex or a path".into()));
    }
    let allowlists = r
        .allowlist
        .into_iter()
        .chain(r.allowlists)
        .map(|a| allowlist(a, source, &place))
        .collect::<Result<Vec<_>, _>>()?;
    Rule::new(
        id,
        r.description.unwrap_or_default(),
        r.regex.as_deref(),
        r.secret_group,
        r.entropy,
        r.keywords,
        r.path.as_deref(),
        r.tags,
        allowlists,
    )
    .and_then(|rule| {
        // A user's regex is compiled now, so a bad one stops the scan at
        // once; the built-in ones (all compiled by the tests) wait until
        // a keyword needs them.
        if source != BUILT_IN {
            rule.check()?;
        }
        Ok(rule)
    })
    .map_err(|e| err(e.to_string()))
}

/// The name built-in rules are loaded under.
const BUILT_IN: &str = "built-in rules";

fn allowlist(a: RawAllowlist, source: &str, place: &str) -> Result<Allowlist, ScanError> {
    let err = |message: String| ScanError::Config {
        file: source.to_owned(),
        message: format!("{place}: {message}"),
    };
    let condition = match a
        .condition
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("OR") => Condition::Or,
        Some("AND") => Condition::And,
        Some(other) => return Err(err(format!("condition {other:?} is not OR or AND"))),
    };
    let target = match a.regex_target.as_deref() {
        None | Some("secret") => Target::Secret,
        Some("match") => Target::Match,
        Some("line") => Target::Line,
        Some(other) => {
            return Err(err(format!(
                "regexTarget {other:?} is not secret, match or line"
            )));
        }
    };
    Allowlist::new(
        condition,
        target,
        &a.regexes,
        &a.paths,
        a.stopwords,
        a.commits,
        a.target_rules,
    )
    .map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extend_defaults_with_a_rule_an_allowlist_and_warnings() {
        let c = Config::parse(
            r#"
title = "mine"
[extend]
useDefault = true
disabledRules = ["jwt"]

[[rules]]
id = "internal-token"
description = "Internal token"
regex = '''itk_[a-z0-9]{24}'''
keywords = ["itk_"]
colour = "red"

[[rules.allowlists]]
regexes = ['''itk_0{24}''']

[allowlist]
paths = ['''fixtures/''']
stopwords = ["example"]
"#,
            "mine.toml",
        )
        .expect("parse");
        assert!(c.rules.iter().any(|r| r.id == "aws-access-token"));
        assert!(!c.rules.iter().any(|r| r.id == "jwt"));
        let mine = c
            .rules
            .iter()
            .find(|r| r.id == "internal-token")
            .expect("mine");
        assert_eq!(mine.allowlists.len(), 1);
        assert_eq!(c.allowlists.len(), 1);
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("colour"));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        for (text, want) in [
            ("[[rules]]\nregex = 'x'\n", "no id"),
            ("[[rules]]\nid = 'a'\nregex = '('\n", "rule 1 (a)"),
            ("[allowlist]\npaths = ['x']\n", "no rules"),
            ("[[rules]]\nid = 'a'\n", "needs a regex or a path"),
            ("rules = 3\n", "mine.toml"),
        ] {
            let e = Config::parse(text, "mine.toml")
                .expect_err(text)
                .to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
