//! Rule files in gitleaks' TOML format (`[[rules]]`, `[extend]`, rule and
//! global allowlists in both the old single-table and the newer list form).
//! Keys coffer does not use are reported as warnings, never ignored silently.
//! betterleaks' files (the same shape, with Expr `filter`s instead of
//! allowlists) load too: see `expr` for the part of a filter that is read.

use serde::Deserialize;

use std::collections::BTreeMap;

use crate::ScanError;
use crate::expr;
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
    /// The gitleaks version a file asks for; coffer reads every 8.x file.
    #[allow(dead_code)]
    min_version: Option<String>,
    extend: Option<RawExtend>,
    /// betterleaks: drops candidates everywhere.
    filter: Option<String>,
    /// betterleaks: drops files (by path) before they are scanned.
    prefilter: Option<String>,
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
    /// betterleaks: Expr code dropping candidates.
    filter: Option<String>,
    /// betterleaks: a rule used only inside composite rules.
    #[serde(default)]
    skip_report: bool,
    /// betterleaks: a label; findings are reported whatever it says.
    #[allow(dead_code)]
    confidence: Option<String>,
    /// betterleaks: live checks against the provider, never run here.
    validate: Option<toml::Value>,
    analyze: Option<toml::Value>,
    revoke: Option<toml::Value>,
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
        // Per key, the rules that have it: one warning per key, not one per
        // rule (a betterleaks file has hundreds).
        let mut unknown_in_rules: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut live_checks: Vec<String> = Vec::new();
        let mut partial_filters: Vec<String> = Vec::new();
        for (i, r) in raw.rules.into_iter().enumerate() {
            let place = format!("rule {}", i + 1);
            let name = r.id.clone().unwrap_or_else(|| place.clone());
            for k in r.other.keys() {
                unknown_in_rules
                    .entry(k.clone())
                    .or_default()
                    .push(name.clone());
            }
            if r.validate.is_some() || r.analyze.is_some() || r.revoke.is_some() {
                live_checks.push(name.clone());
            }
            if r.skip_report {
                continue;
            }
            for a in r.allowlist.iter().chain(&r.allowlists) {
                unknown(&mut warnings, &a.other, &format!("{place} allowlist"));
                if !a.target_rules.is_empty() {
                    warnings.push(format!(
                        "{source}: {place}: targetRules belongs in a global [[allowlists]]; ignored here"
                    ));
                }
            }
            let (rule, skipped) = rule(r, source, &place)?;
            if skipped > 0 {
                partial_filters.push(name);
            }
            match config.rules.iter_mut().find(|x| x.id == rule.id) {
                Some(existing) => *existing = rule,
                None => config.rules.push(rule),
            }
        }
        for (key, rules) in unknown_in_rules {
            warnings.push(format!(
                "{source}: {}: `{key}` is not a key coffer knows; ignored",
                some_rules(&rules)
            ));
        }
        if !live_checks.is_empty() {
            warnings.push(format!(
                "{source}: {}: `validate`/`analyze`/`revoke` ignored: coffer never sends a credential it finds anywhere",
                some_rules(&live_checks)
            ));
        }
        if !partial_filters.is_empty() {
            warnings.push(format!(
                "{source}: {}: part of the `filter` is Expr code coffer does not run (it reads entropy limits and matchesAny/containsAny lists); more may be reported than betterleaks reports",
                some_rules(&partial_filters)
            ));
        }
        for (key, code, paths_only) in [
            ("filter", &raw.filter, false),
            ("prefilter", &raw.prefilter, true),
        ] {
            let Some(code) = code else { continue };
            let (lists, skipped) = filter_allowlists(code, paths_only, &mut None);
            config.allowlists.extend(lists);
            if skipped > 0 {
                warnings.push(format!(
                    "{source}: top level: part of the `{key}` is Expr code coffer does not run; more may be reported than betterleaks reports"
                ));
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

/// "rule a-id" or "3 rules (a, b, c)" or "40 rules (a, b, c, …)".
fn some_rules(names: &[String]) -> String {
    match names {
        [one] => format!("rule {one}"),
        _ => {
            let shown: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
            let more = if names.len() > 3 { ", …" } else { "" };
            format!("{} rules ({}{more})", names.len(), shown.join(", "))
        }
    }
}

/// The allowlists (and entropy floor) a betterleaks filter translates to,
/// and how many of its tests were left out. A list whose regexes do not
/// compile counts as left out.
fn filter_allowlists(
    code: &str,
    paths_only: bool,
    entropy: &mut Option<f64>,
) -> (Vec<Allowlist>, usize) {
    let f = expr::translate(code);
    let mut skipped = f.skipped;
    if let Some(e) = f.entropy {
        *entropy = Some(entropy.map_or(e, |x: f64| x.max(e)));
    }
    let mut lists = Vec::new();
    for l in f.lists {
        if paths_only && l.target != "path" {
            skipped += 1;
            continue;
        }
        let mut regexes = l.regexes;
        regexes.extend(l.words.iter().map(|w| regex::escape(w)));
        let target = match l.target {
            "match" => Target::Match,
            "line" => Target::Line,
            _ => Target::Secret,
        };
        let (regexes, paths) = if l.target == "path" {
            (Vec::new(), regexes)
        } else {
            (regexes, Vec::new())
        };
        match Allowlist::new(
            Condition::Or,
            target,
            &regexes,
            &paths,
            Vec::new(),
            Vec::new(),
            Vec::new(),
        ) {
            Ok(a) => lists.push(a),
            Err(_) => skipped += 1,
        }
    }
    (lists, skipped)
}

fn rule(r: RawRule, source: &str, place: &str) -> Result<(Rule, usize), ScanError> {
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
    let mut allowlists = r
        .allowlist
        .into_iter()
        .chain(r.allowlists)
        .map(|a| allowlist(a, source, &place))
        .collect::<Result<Vec<_>, _>>()?;
    let mut entropy = r.entropy;
    let mut skipped = 0;
    if let Some(code) = &r.filter {
        let (lists, left_out) = filter_allowlists(code, false, &mut entropy);
        allowlists.extend(lists);
        skipped = left_out;
    }
    Rule::new(
        id,
        r.description.unwrap_or_default(),
        r.regex.as_deref(),
        r.secret_group,
        entropy,
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
        Ok((rule, skipped))
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
    use crate::{Origin, Scanner};

    #[test]
    fn a_betterleaks_file_loads_with_its_filters_read_and_one_warning_per_key() {
        let c = Config::parse(
            r#"
title = "betterleaks config"
minVersion = "v2.0.0"
prefilter = '''
matchesAny(attributes["path"], [`(?i)\.lock$`])
'''
filter = '''
matchesAny(finding["secret"], [`^\$\{[A-Z_]+}$`]) || containsAny(finding["secret"], ["EXAMPLE"])
'''

[[rules]]
id = "acme-key"
description = "ACME key"
regex = '''acme_([A-Za-z0-9${}_]{16,})'''
keywords = ["acme_"]
confidence = "high"
filter = '''
entropy(finding["secret"]) < 3.0 || tokenRatio(finding["secret"]) >= 2.5
'''
validate = '''http.get("https://acme.example/me")'''
components = [{ id = "acme-id" }]

[[rules]]
id = "acme-id"
description = "ACME id, reported only with a key"
regex = '''acmeid_[0-9]{6}'''
keywords = ["acmeid_"]
skipReport = true
components = [{ id = "x" }]
"#,
            "bl.toml",
        )
        .expect("loads");
        let ids: Vec<&str> = c.rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["acme-key"], "a skipReport rule is not reported");
        assert_eq!(c.warnings.len(), 3, "{:#?}", c.warnings);
        assert!(c.warnings[0].contains("2 rules (acme-key, acme-id): `components`"));
        assert!(c.warnings[1].contains("rule acme-key: `validate`"));
        assert!(c.warnings[2].contains("rule acme-key: part of the `filter`"));
        let s = Scanner::new(c).expect("scanner");
        let at = |path| Origin { path, commit: None };
        let text = b"acme_Q8zr2LmX0vTk5NwPb
acme_aaaaaaaaaaaaaaaaaa
acme_${ACME_TOKEN_VALUE}
acme_Q8zr2LmX0vEXAMPLE
acmeid_123456
";
        let found = s.scan(text, at("app.env"));
        let lines: Vec<usize> = found.iter().map(|f| f.start_line).collect();
        assert_eq!(
            lines,
            [1],
            "entropy, secret regex and word filters: {found:?}"
        );
        assert!(
            s.scan(text, at("Cargo.lock")).is_empty(),
            "the prefilter's paths"
        );
    }

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
