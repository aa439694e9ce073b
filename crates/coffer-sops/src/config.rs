//! `.sops.yaml` creation rules: which keys and which encryption rule a new
//! file gets, chosen by its path. SOPS takes the first matching rule
//! silently; coffer does too, but reports every other rule that matched.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::SopsError;
use crate::metadata::Rule;

/// A string or a list of strings (SOPS accepts both, lists also
/// comma-separated).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn items(&self) -> Vec<String> {
        let all = match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        };
        all.iter()
            .flat_map(|s| s.split(','))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }
}

/// One `creation_rules` entry as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    path_regex: Option<String>,
    age: Option<OneOrMany>,
    hc_vault_transit_uri: Option<OneOrMany>,
    unencrypted_suffix: Option<String>,
    encrypted_suffix: Option<String>,
    unencrypted_regex: Option<String>,
    encrypted_regex: Option<String>,
    mac_only_encrypted: Option<bool>,
    key_groups: Option<Vec<RawGroup>>,
    shamir_threshold: Option<u64>,
    pgp: Option<serde_norway::Value>,
    kms: Option<serde_norway::Value>,
    gcp_kms: Option<serde_norway::Value>,
    azure_keyvault: Option<serde_norway::Value>,
    hckms: Option<serde_norway::Value>,
    aws_profile: Option<serde_norway::Value>,
    unencrypted_comment_regex: Option<String>,
    encrypted_comment_regex: Option<String>,
}

/// One `key_groups` entry as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    age: Option<OneOrMany>,
    hc_vault: Option<OneOrMany>,
    pgp: Option<serde_norway::Value>,
    kms: Option<serde_norway::Value>,
    gcp_kms: Option<serde_norway::Value>,
    azure_keyvault: Option<serde_norway::Value>,
    hckms: Option<serde_norway::Value>,
    merge: Option<serde_norway::Value>,
}

/// Other top-level keys (`stores`, `destination_rules`: output layout and
/// publishing) are accepted and have no effect here.
#[derive(Debug, Deserialize)]
struct RawConfig {
    #[serde(default)]
    creation_rules: Vec<RawRule>,
}

/// The master keys of one key group, as named in a creation rule or on
/// the command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupKeys {
    /// age recipients.
    pub age: Vec<String>,
    /// Transit key URIs.
    pub hc_vault: Vec<String>,
}

impl GroupKeys {
    /// Every key's name.
    pub fn names(&self) -> Vec<String> {
        self.age.iter().chain(&self.hc_vault).cloned().collect()
    }

    /// No key at all.
    pub fn is_empty(&self) -> bool {
        self.age.is_empty() && self.hc_vault.is_empty()
    }
}

/// What a matching creation rule gives a new file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Creation {
    /// The key groups (one for a rule without `key_groups`).
    pub groups: Vec<GroupKeys>,
    /// How many groups rebuild the data key (several groups only).
    pub shamir_threshold: Option<u64>,
    /// The encryption rule, when the creation rule sets one.
    pub rule: Option<Rule>,
    /// `mac_only_encrypted`.
    pub mac_only_encrypted: bool,
}

/// The rule chosen for a file.
#[derive(Debug)]
pub struct Choice {
    /// Index (0-based) of the rule used.
    pub index: usize,
    /// What it gives.
    pub creation: Creation,
    /// Indices of the other rules that matched too (SOPS ignores them),
    /// leaving out catch-all rules (no `path_regex`, or `.*`): a default
    /// rule at the end is the usual layout, not a mistake.
    pub also_matched: Vec<usize>,
}

/// A loaded `.sops.yaml`.
pub struct Config {
    dir: PathBuf,
    rules: Vec<RawRule>,
}

/// The nearest `.sops.yaml` from `start` upwards.
pub fn find(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join(".sops.yaml"))
        .find(|p| p.is_file())
}

impl Config {
    /// Reads a configuration file.
    pub fn load(path: &Path) -> Result<Self, SopsError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SopsError::Malformed(format!("{}: {e}", path.display())))?;
        Self::parse(&text, path.parent().unwrap_or(Path::new(".")))
            .map_err(|e| SopsError::Malformed(format!("{}: {e}", path.display())))
    }

    /// Parses configuration text; rules' paths are relative to `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<Self, SopsError> {
        let raw: RawConfig =
            serde_norway::from_str(text).map_err(|e| SopsError::Malformed(e.to_string()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            rules: raw.creation_rules,
        })
    }

    /// The first rule whose `path_regex` matches `file` (taken relative to
    /// the configuration's directory; a rule without one matches every file).
    pub fn choose(&self, file: &Path) -> Result<Option<Choice>, SopsError> {
        let abs = std::path::absolute(file)
            .map_err(|e| SopsError::Malformed(format!("{}: {e}", file.display())))?;
        let dir = std::path::absolute(&self.dir).unwrap_or_else(|_| self.dir.clone());
        let rel = abs
            .strip_prefix(&dir)
            .unwrap_or(&abs)
            .to_string_lossy()
            .replace('\\', "/");
        let mut matched = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            let hit = match &r.path_regex {
                None => true,
                Some(re) => regex::Regex::new(re)
                    .map_err(|e| {
                        SopsError::Malformed(format!(
                            "creation rule {}: path_regex {re:?}: {e}",
                            i + 1
                        ))
                    })?
                    .is_match(&rel),
            };
            if hit {
                matched.push(i);
            }
        }
        let Some((&index, rest)) = matched.split_first() else {
            return Ok(None);
        };
        let catch_all = |i: &usize| {
            matches!(
                self.rules[*i].path_regex.as_deref().map(str::trim),
                None | Some("" | ".*" | "^.*" | ".*$" | "^.*$" | ".+" | "^.+$")
            )
        };
        Ok(Some(Choice {
            index,
            creation: creation(&self.rules[index], index)?,
            also_matched: rest.iter().copied().filter(|i| !catch_all(i)).collect(),
        }))
    }
}

fn creation(r: &RawRule, index: usize) -> Result<Creation, SopsError> {
    let n = index + 1;
    let unsupported = [
        ("pgp", r.pgp.is_some()),
        ("kms", r.kms.is_some()),
        ("gcp_kms", r.gcp_kms.is_some()),
        ("azure_keyvault", r.azure_keyvault.is_some()),
        ("hckms", r.hckms.is_some()),
        ("aws_profile", r.aws_profile.is_some()),
    ];
    if let Some((k, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err(SopsError::Malformed(format!(
            "creation rule {n} uses {k}, which coffer sops does not support yet (age and hc_vault_transit_uri keys are)"
        )));
    }
    let rules: Vec<Rule> = [
        r.unencrypted_suffix.clone().map(Rule::UnencryptedSuffix),
        r.encrypted_suffix.clone().map(Rule::EncryptedSuffix),
        r.unencrypted_regex.clone().map(Rule::UnencryptedRegex),
        r.encrypted_regex.clone().map(Rule::EncryptedRegex),
        r.unencrypted_comment_regex
            .clone()
            .map(Rule::UnencryptedCommentRegex),
        r.encrypted_comment_regex
            .clone()
            .map(Rule::EncryptedCommentRegex),
    ]
    .into_iter()
    .flatten()
    .collect();
    if rules.len() > 1 {
        return Err(SopsError::Malformed(format!(
            "creation rule {n} sets more than one of unencrypted_suffix, encrypted_suffix, unencrypted_regex, encrypted_regex, unencrypted_comment_regex, encrypted_comment_regex"
        )));
    }
    let items = |v: &Option<OneOrMany>| v.as_ref().map(OneOrMany::items).unwrap_or_default();
    let groups = match &r.key_groups {
        Some(groups) if !groups.is_empty() => {
            let mut out = Vec::new();
            for (i, g) in groups.iter().enumerate() {
                let other = [
                    ("pgp", g.pgp.is_some()),
                    ("kms", g.kms.is_some()),
                    ("gcp_kms", g.gcp_kms.is_some()),
                    ("azure_keyvault", g.azure_keyvault.is_some()),
                    ("hckms", g.hckms.is_some()),
                    ("merge", g.merge.is_some()),
                ];
                if let Some((k, _)) = other.iter().find(|(_, set)| *set) {
                    return Err(SopsError::Malformed(format!(
                        "creation rule {n}, key group {}: {k} is not supported by coffer sops (age and hc_vault are)",
                        i + 1
                    )));
                }
                let keys = GroupKeys {
                    age: items(&g.age),
                    hc_vault: items(&g.hc_vault),
                };
                if keys.is_empty() {
                    return Err(SopsError::Malformed(format!(
                        "creation rule {n}, key group {} has no key",
                        i + 1
                    )));
                }
                out.push(keys);
            }
            if r.age.is_some() || r.hc_vault_transit_uri.is_some() {
                return Err(SopsError::Malformed(format!(
                    "creation rule {n} names keys both in key_groups and outside them; put them in the groups"
                )));
            }
            out
        }
        _ => vec![GroupKeys {
            age: items(&r.age),
            hc_vault: items(&r.hc_vault_transit_uri),
        }],
    };
    if let Some(t) = r.shamir_threshold {
        if t < 2 {
            return Err(SopsError::Malformed(format!(
                "creation rule {n}: shamir_threshold {t}: the threshold must be at least 2 \
                 (to let any one key group open the file, leave shamir_threshold out)"
            )));
        }
        if t > groups.len() as u64 {
            return Err(SopsError::Malformed(format!(
                "creation rule {n}: shamir_threshold {t} is more than the {} key groups: \
                 the file could never be opened",
                groups.len()
            )));
        }
    }
    Ok(Creation {
        groups,
        shamir_threshold: r.shamir_threshold,
        rule: rules.into_iter().next(),
        mac_only_encrypted: r.mac_only_encrypted.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> (tempfile::TempDir, Config) {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join(".sops.yaml");
        std::fs::write(&p, text).expect("write");
        let c = Config::load(&p).expect("load");
        (d, c)
    }

    #[test]
    fn first_match_wins_and_the_others_are_reported() {
        let (d, c) = config(
            "creation_rules:\n  - path_regex: prod/.*\\.json$\n    age: age1a,age1b\n    encrypted_regex: ^(data|pw)$\n  - path_regex: \\.json$\n    age: [age1c]\n    mac_only_encrypted: true\n  - age: age1d\n",
        );
        let prod = c
            .choose(&d.path().join("prod/app.json"))
            .expect("choose")
            .expect("match");
        assert_eq!(prod.index, 0);
        // Rule 3 matches too, but a catch-all is not worth a warning.
        assert_eq!(prod.also_matched, vec![1]);
        assert_eq!(prod.creation.groups[0].age, vec!["age1a", "age1b"]);
        assert_eq!(
            prod.creation.rule,
            Some(Rule::EncryptedRegex("^(data|pw)$".into()))
        );
        let dev = c
            .choose(&d.path().join("dev/app.json"))
            .expect("choose")
            .expect("match");
        assert_eq!((dev.index, dev.creation.mac_only_encrypted), (1, true));
        let other = c
            .choose(&d.path().join("notes.txt"))
            .expect("choose")
            .expect("match");
        assert_eq!(other.index, 2);
    }

    #[test]
    fn unknown_and_unsupported_keys_are_errors() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join(".sops.yaml");
        std::fs::write(&p, "creation_rules:\n  - path_regx: x\n").expect("write");
        assert!(Config::load(&p).is_err());
        let (d, c) = config("creation_rules:\n  - pgp: ABC\n");
        let e = c.choose(&d.path().join("a.json")).expect_err("pgp");
        assert!(e.to_string().contains("pgp"), "{e}");
        let (d, c) = config(
            "creation_rules:\n  - key_groups:\n      - age: [age1a]\n    shamir_threshold: 2\n",
        );
        let e = c.choose(&d.path().join("a.json")).expect_err("threshold");
        assert!(
            e.to_string()
                .contains("shamir_threshold 2 is more than the 1 key groups"),
            "{e}"
        );
        let (d, c) = config(
            "creation_rules:\n  - key_groups:\n      - age: [age1a]\n      - age: [age1b]\n    shamir_threshold: 1\n",
        );
        let e = c.choose(&d.path().join("a.json")).expect_err("threshold 1");
        assert!(
            e.to_string().contains("the threshold must be at least 2"),
            "{e}"
        );
    }

    #[test]
    fn key_groups_and_a_threshold_are_read() {
        let (d, c) = config(
            "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [age1a, age1b]\n      - hc_vault: [https://v:8200/v1/transit/keys/k]\n      - age: age1c\n",
        );
        let got = c
            .choose(&d.path().join("a.yaml"))
            .expect("choose")
            .expect("match");
        assert_eq!(got.creation.shamir_threshold, Some(2));
        assert_eq!(got.creation.groups.len(), 3);
        assert_eq!(got.creation.groups[0].age, vec!["age1a", "age1b"]);
        assert_eq!(
            got.creation.groups[1].hc_vault,
            vec!["https://v:8200/v1/transit/keys/k"]
        );
    }
}
