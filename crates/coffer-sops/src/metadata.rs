//! The `sops` metadata block: master keys, `lastmodified`, `mac`, the
//! encryption rule, `version`. Read in any key order; written with sorted
//! keys, as SOPS 3.13 writes it.

use crate::tree::{Item, Node, Rules};
use crate::{Scalar, SopsError};

/// What coffer writes as `version` (the SOPS format version it follows).
pub const FORMAT_VERSION: &str = "3.11.0";

/// One `age` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AgeEntry {
    /// `age1…`.
    pub recipient: String,
    /// The armored age file holding the data key.
    pub enc: String,
}

/// Which values a file encrypts (at most one rule per file).
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// Keys ending with the suffix stay in clear (SOPS' default `_unencrypted`).
    UnencryptedSuffix(String),
    /// Only keys ending with the suffix are encrypted.
    EncryptedSuffix(String),
    /// Keys matching stay in clear.
    UnencryptedRegex(String),
    /// Only keys matching are encrypted.
    EncryptedRegex(String),
}

impl Default for Rule {
    fn default() -> Self {
        Rule::UnencryptedSuffix("_unencrypted".into())
    }
}

impl Rule {
    fn key(&self) -> &'static str {
        match self {
            Rule::UnencryptedSuffix(_) => "unencrypted_suffix",
            Rule::EncryptedSuffix(_) => "encrypted_suffix",
            Rule::UnencryptedRegex(_) => "unencrypted_regex",
            Rule::EncryptedRegex(_) => "encrypted_regex",
        }
    }

    fn value(&self) -> &str {
        match self {
            Rule::UnencryptedSuffix(s)
            | Rule::EncryptedSuffix(s)
            | Rule::UnencryptedRegex(s)
            | Rule::EncryptedRegex(s) => s,
        }
    }

    /// The tree walk's rules.
    pub fn rules(&self, mac_only_encrypted: bool) -> Result<Rules, SopsError> {
        let re = |s: &str| {
            regex::Regex::new(s)
                .map_err(|e| SopsError::Malformed(format!("regex {s:?} does not compile: {e}")))
        };
        let mut r = Rules {
            mac_only_encrypted,
            ..Rules::default()
        };
        match self {
            Rule::UnencryptedSuffix(s) => r.unencrypted_suffix = Some(s.clone()),
            Rule::EncryptedSuffix(s) => r.encrypted_suffix = Some(s.clone()),
            Rule::UnencryptedRegex(s) => r.unencrypted_regex = Some(re(s)?),
            Rule::EncryptedRegex(s) => r.encrypted_regex = Some(re(s)?),
        }
        Ok(r)
    }
}

/// The whole block.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// age master keys.
    pub age: Vec<AgeEntry>,
    /// RFC 3339 time of the last encryption (the MAC's associated data).
    pub lastmodified: String,
    /// The encrypted MAC.
    pub mac: String,
    /// Which values are encrypted.
    pub rule: Rule,
    /// The MAC covers only encrypted values.
    pub mac_only_encrypted: bool,
    /// The writer's version.
    pub version: String,
    /// Master keys coffer does not use (kms, pgp, hc_vault ...), kept as read.
    pub other: Vec<(String, Node)>,
}

fn text(n: &Node, what: &str) -> Result<String, SopsError> {
    match n {
        Node::Leaf(Scalar::Str(s) | Scalar::Time(s)) => Ok(s.clone()),
        _ => Err(SopsError::Malformed(format!(
            "sops.{what} must be a string"
        ))),
    }
}

fn pairs(n: &Node, what: &str) -> Result<Vec<(String, Node)>, SopsError> {
    match n {
        Node::Map(items) => Ok(items
            .iter()
            .filter_map(|i| match i {
                Item::Pair(k, v) => Some((k.clone(), v.clone())),
                Item::Comment(_) => None,
            })
            .collect()),
        _ => Err(SopsError::Malformed(format!("{what} must be a mapping"))),
    }
}

fn is_empty_list(n: &Node) -> bool {
    matches!(n, Node::List(l) if l.is_empty()) || matches!(n, Node::Null)
}

impl Metadata {
    /// Reads the block (any key order; empty lists and unknown keys kept).
    pub fn from_node(n: &Node) -> Result<Self, SopsError> {
        let mut m = Metadata::default();
        let mut rules = Vec::new();
        let mut have_mac = false;
        for (k, v) in pairs(n, "sops")? {
            match k.as_str() {
                "age" => {
                    let Node::List(entries) = &v else {
                        if is_empty_list(&v) {
                            continue;
                        }
                        return Err(SopsError::Malformed("sops.age must be a list".into()));
                    };
                    for e in entries {
                        let f = pairs(e, "an age entry")?;
                        let get = |name: &str| {
                            f.iter()
                                .find(|(k, _)| k == name)
                                .ok_or_else(|| {
                                    SopsError::Malformed(format!("an age entry has no {name}"))
                                })
                                .and_then(|(_, v)| text(v, name))
                        };
                        m.age.push(AgeEntry {
                            recipient: get("recipient")?,
                            enc: get("enc")?,
                        });
                    }
                }
                "lastmodified" => m.lastmodified = text(&v, "lastmodified")?,
                "mac" => {
                    m.mac = text(&v, "mac")?;
                    have_mac = true;
                }
                "version" => m.version = text(&v, "version")?,
                "mac_only_encrypted" => {
                    m.mac_only_encrypted = matches!(v, Node::Leaf(Scalar::Bool(true)))
                        || matches!(&v, Node::Leaf(Scalar::Str(s)) if s == "true")
                }
                "unencrypted_suffix" => rules.push(Rule::UnencryptedSuffix(text(&v, &k)?)),
                "encrypted_suffix" => rules.push(Rule::EncryptedSuffix(text(&v, &k)?)),
                "unencrypted_regex" => rules.push(Rule::UnencryptedRegex(text(&v, &k)?)),
                "encrypted_regex" => rules.push(Rule::EncryptedRegex(text(&v, &k)?)),
                "key_groups" if !is_empty_list(&v) => {
                    return Err(SopsError::Malformed(
                        "key groups (Shamir) are not supported by coffer yet".into(),
                    ));
                }
                "unencrypted_comment_regex" | "encrypted_comment_regex" => {
                    return Err(SopsError::Malformed(format!(
                        "sops.{k} is not supported by coffer yet"
                    )));
                }
                _ => m.other.push((k, v)),
            }
        }
        if rules.len() > 1 {
            return Err(SopsError::Malformed(
                "the sops block sets more than one of unencrypted_suffix, encrypted_suffix, unencrypted_regex, encrypted_regex".into(),
            ));
        }
        if let Some(r) = rules.pop() {
            m.rule = r;
        }
        if m.lastmodified.is_empty() {
            return Err(SopsError::Malformed("sops.lastmodified is missing".into()));
        }
        if !have_mac {
            return Err(SopsError::Malformed("sops.mac is missing".into()));
        }
        Ok(m)
    }

    /// The block as written (keys sorted).
    pub fn to_node(&self) -> Node {
        let s = |v: &str| Node::Leaf(Scalar::Str(v.to_owned()));
        let mut items: Vec<(String, Node)> = self.other.clone();
        if !self.age.is_empty() {
            items.push((
                "age".into(),
                Node::List(
                    self.age
                        .iter()
                        .map(|a| {
                            Node::Map(vec![
                                Item::Pair("recipient".into(), s(&a.recipient)),
                                Item::Pair("enc".into(), s(&a.enc)),
                            ])
                        })
                        .collect(),
                ),
            ));
        }
        items.push(("lastmodified".into(), s(&self.lastmodified)));
        items.push(("mac".into(), s(&self.mac)));
        if self.mac_only_encrypted {
            items.push(("mac_only_encrypted".into(), Node::Leaf(Scalar::Bool(true))));
        }
        items.push((self.rule.key().into(), s(self.rule.value())));
        items.push(("version".into(), s(&self.version)));
        items.sort_by(|a, b| a.0.cmp(&b.0));
        Node::Map(items.into_iter().map(|(k, v)| Item::Pair(k, v)).collect())
    }
}
