//! Reports (JSON, SARIF, CSV, JUnit XML) and the filters applied before them: an
//! ignore file of fingerprints (`.gitleaksignore`) and a baseline report.

use std::collections::HashSet;

use crate::{Finding, ScanError};

/// A finding as gitleaks' JSON report has it: its fields, then its
/// `Fingerprint`.
#[derive(serde::Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    finding: &'a Finding,
    #[serde(rename = "Fingerprint")]
    fingerprint: String,
}

/// gitleaks' JSON report.
pub fn json(findings: &[Finding]) -> Result<String, ScanError> {
    let rows: Vec<Row<'_>> = findings
        .iter()
        .map(|f| Row {
            finding: f,
            fingerprint: f.fingerprint(),
        })
        .collect();
    serde_json::to_string_pretty(&rows)
        .map(|s| s + "\n")
        .map_err(|e| ScanError::Report(e.to_string()))
}

/// SARIF 2.1.0, as code-scanning services (GitHub, GitLab, Azure DevOps)
/// take it: one run whose driver lists every rule in force, one result per
/// finding with its file, region and a partial fingerprint, and for history
/// scans the commit, author and date as partial fingerprints too.
pub fn sarif(
    findings: &[Finding],
    rules: &[crate::rule::Rule],
    version: &str,
) -> Result<String, ScanError> {
    use serde_json::{Value, json};
    let rules_json: Vec<Value> = rules
        .iter()
        .map(|r| {
            let tags: Vec<&str> = ["security", "secret"]
                .into_iter()
                .chain(r.tags.iter().map(String::as_str))
                .collect();
            let precision = if r.tags.iter().any(|t| t == "generic") {
                "medium"
            } else {
                "high"
            };
            json!({
                "id": r.id,
                "name": r.id,
                "shortDescription": { "text": r.description },
                "fullDescription": { "text": r.description },
                "defaultConfiguration": { "level": "error" },
                "properties": {
                    "tags": tags,
                    "precision": precision,
                    "security-severity": "8.0",
                },
            })
        })
        .collect();
    let index: std::collections::HashMap<&str, usize> = rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut partial = serde_json::Map::new();
            partial.insert("secretFingerprint/v1".into(), f.fingerprint().into());
            if let Some(c) = &f.commit {
                partial.insert("commitSha".into(), c.clone().into());
            }
            for (key, value) in [("author", &f.author), ("email", &f.email), ("date", &f.date), ("commitMessage", &f.message)] {
                if let Some(v) = value {
                    partial.insert(key.into(), v.clone().into());
                }
            }
            let mut result = json!({
                "ruleId": f.rule_id,
                "level": "error",
                "message": { "text": match &f.commit {
                    Some(c) => format!("{}: {} in {} at commit {c}", f.rule_id, f.description, f.file),
                    None => format!("{}: {} in {}", f.rule_id, f.description, f.file),
                }},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": sarif_uri(&f.file) },
                        "region": {
                            "startLine": f.start_line,
                            "startColumn": f.start_column,
                            "endLine": f.end_line,
                            // SARIF's end column is exclusive.
                            "endColumn": f.end_column + 1,
                            "snippet": { "text": f.matched },
                        },
                    },
                }],
                "partialFingerprints": partial,
                "properties": { "tags": f.tags },
            });
            if let (Some(i), Some(o)) = (index.get(f.rule_id.as_str()), result.as_object_mut()) {
                o.insert("ruleIndex".into(), (*i).into());
            }
            result
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "coffer scan",
                "version": version,
                "semanticVersion": version,
                "rules": rules_json,
            }},
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&log)
        .map(|s| s + "\n")
        .map_err(|e| ScanError::Report(e.to_string()))
}

/// A path as a relative URI reference: `%`-escaped where RFC 3986 needs it.
fn sarif_uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// CSV with gitleaks' columns, in its order.
pub fn csv(findings: &[Finding]) -> String {
    let mut out = String::from(
        "RuleID,Commit,File,SymlinkFile,Secret,Match,StartLine,EndLine,StartColumn,EndColumn,Author,Message,Date,Email,Fingerprint,Tags\n",
    );
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    for f in findings {
        let fields = [
            f.rule_id.clone(),
            text(&f.commit),
            f.file.clone(),
            text(&f.symlink_file),
            f.secret.clone(),
            f.matched.clone(),
            f.start_line.to_string(),
            f.end_line.to_string(),
            f.start_column.to_string(),
            f.end_column.to_string(),
            text(&f.author),
            text(&f.message),
            text(&f.date),
            text(&f.email),
            f.fingerprint(),
            f.tags.join(" "),
        ];
        let row: Vec<String> = fields.iter().map(|x| csv_field(x)).collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// JUnit XML: one test case per finding, failed; a clean scan is one
/// passing case, so CI systems show that the scan ran.
pub fn junit(findings: &[Finding]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    out.push_str(&format!(
        "  <testsuite name=\"coffer scan\" tests=\"{}\" failures=\"{}\">\n",
        findings.len().max(1),
        findings.len()
    ));
    if findings.is_empty() {
        out.push_str("    <testcase classname=\"coffer scan\" name=\"no leaks found\"/>\n");
    }
    for f in findings {
        out.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>\n",
            xml(&f.rule_id),
            xml(&format!("{}:{}", f.file, f.start_line)),
            xml(&f.description),
            xml(&f.rule_id),
            xml(&format!(
                "{} at {}:{}:{} ({})",
                f.description,
                f.file,
                f.start_line,
                f.start_column,
                f.fingerprint()
            ))
        ));
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// Drops findings whose fingerprint is listed in an ignore file (one per
/// line, `#` comments; gitleaks' `.gitleaksignore` format). A
/// `path:rule:line` entry matches in every commit as well. Returns how
/// many were dropped.
pub fn apply_ignore_file(findings: &mut Vec<Finding>, text: &str) -> usize {
    let ignored: HashSet<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let before = findings.len();
    findings.retain(|f| {
        !ignored.contains(f.fingerprint().as_str())
            && !ignored.contains(f.short_fingerprint().as_str())
    });
    before - findings.len()
}

/// Drops findings already in a baseline (a JSON report from an earlier
/// scan): same rule, file, line and commit, and the same secret when both
/// reports show it. Returns how many were dropped.
pub fn apply_baseline(findings: &mut Vec<Finding>, baseline: &str) -> Result<usize, ScanError> {
    let rows: Vec<serde_json::Value> = serde_json::from_str(baseline)
        .map_err(|e| ScanError::Report(format!("the baseline is not a JSON report: {e}")))?;
    let known: Vec<(String, String, u64, String, String)> = rows
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (
                s("RuleID"),
                s("File"),
                r["StartLine"].as_u64().unwrap_or(0),
                s("Commit"),
                s("Secret"),
            )
        })
        .collect();
    let before = findings.len();
    findings.retain(|f| {
        !known.iter().any(|(rule, file, line, commit, secret)| {
            *rule == f.rule_id
                && *file == f.file
                && *line == f.start_line as u64
                && *commit == f.commit.clone().unwrap_or_default()
                && (secret == "REDACTED" || f.secret == "REDACTED" || *secret == f.secret)
        })
    });
    Ok(before - findings.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(file: &str, line: usize) -> Finding {
        Finding {
            rule_id: "github-pat".into(),
            description: "GitHub <classic> token".into(),
            file: file.into(),
            commit: None,
            start_line: line,
            end_line: line,
            start_column: 3,
            end_column: 42,
            matched: "t=\"ghp_x\", y".into(),
            secret: "ghp_x".into(),
            entropy: 2.5,
            tags: vec!["vcs".into()],
            author: None,
            email: None,
            date: None,
            message: None,
            symlink_file: None,
            live: None,
        }
    }

    #[test]
    fn csv_and_junit_escape_what_they_must() {
        let f = [finding("a,b.txt", 2)];
        let text = csv(&f);
        assert!(text.contains("\"a,b.txt\""), "{text}");
        assert!(text.contains("\"t=\"\"ghp_x\"\", y\""), "{text}");
        let x = junit(&f);
        assert!(
            x.contains("failures=\"1\"") && x.contains("GitHub &lt;classic&gt; token"),
            "{x}"
        );
        assert!(junit(&[]).contains("tests=\"1\" failures=\"0\""));
    }

    #[test]
    fn ignore_files_and_baselines_drop_known_findings() {
        let mut f = vec![finding("a.txt", 1), finding("b.txt", 2)];
        assert_eq!(
            apply_ignore_file(&mut f, "# known\na.txt:github-pat:1\n"),
            1
        );
        assert_eq!(f[0].file, "b.txt");
        let mut g = vec![finding("a.txt", 1), finding("b.txt", 2)];
        let mut old = vec![finding("b.txt", 2)];
        old[0].redact(100);
        let base = json(&old).expect("json");
        assert_eq!(apply_baseline(&mut g, &base).expect("baseline"), 1);
        assert_eq!(g[0].file, "a.txt");
        assert!(apply_baseline(&mut g, "not json").is_err());
    }
}
