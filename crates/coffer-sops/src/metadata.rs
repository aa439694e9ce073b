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

/// One `hc_vault` entry: the data key encrypted by a Vault/coffer transit key.
#[derive(Debug, Clone, PartialEq)]
pub struct VaultEntry {
    /// `scheme://host:port`.
    pub vault_address: String,
    /// The transit mount, e.g. `transit` (may have several segments).
    pub engine_path: String,
    /// The transit key's name.
    pub key_name: String,
    /// RFC 3339.
    pub created_at: String,
    /// The transit ciphertext, `vault:v1:…`.
    pub enc: String,
}

/// The master keys of one key group: any one of them opens the group's
/// share of the data key (the whole key when there is one group).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyGroup {
    /// age master keys.
    pub age: Vec<AgeEntry>,
    /// Vault/coffer transit master keys.
    pub hc_vault: Vec<VaultEntry>,
    /// Master keys coffer does not use (pgp, kms, gcp_kms, azure_kv …),
    /// kept as read.
    pub other: Vec<(String, Node)>,
}

impl KeyGroup {
    /// Each master key as the user names it: `age1…` or a transit URI.
    pub fn names(&self) -> Vec<String> {
        self.age
            .iter()
            .map(|a| a.recipient.clone())
            .chain(self.hc_vault.iter().map(VaultEntry::uri))
            .collect()
    }

    fn to_items(&self) -> Vec<(String, Node)> {
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
        if !self.hc_vault.is_empty() {
            items.push((
                "hc_vault".into(),
                Node::List(
                    self.hc_vault
                        .iter()
                        .map(|v| {
                            Node::Map(vec![
                                Item::Pair("vault_address".into(), s(&v.vault_address)),
                                Item::Pair("engine_path".into(), s(&v.engine_path)),
                                Item::Pair("key_name".into(), s(&v.key_name)),
                                Item::Pair("created_at".into(), s(&v.created_at)),
                                Item::Pair("enc".into(), s(&v.enc)),
                            ])
                        })
                        .collect(),
                ),
            ));
        }
        items
    }

    /// Reads a master key list of this group; false if `k` is not one.
    fn read(&mut self, k: &str, v: &Node) -> Result<bool, SopsError> {
        match k {
            "age" => {
                for f in entries(v, "age", &["recipient", "enc"])? {
                    let [recipient, enc] = <[String; 2]>::try_from(f)
                        .map_err(|_| SopsError::Malformed("an age entry is incomplete".into()))?;
                    self.age.push(AgeEntry { recipient, enc });
                }
            }
            "hc_vault" => {
                let names = [
                    "vault_address",
                    "engine_path",
                    "key_name",
                    "created_at",
                    "enc",
                ];
                for f in entries(v, "hc_vault", &names)? {
                    let [vault_address, engine_path, key_name, created_at, enc] =
                        <[String; 5]>::try_from(f).map_err(|_| {
                            SopsError::Malformed("an hc_vault entry is incomplete".into())
                        })?;
                    self.hc_vault.push(VaultEntry {
                        vault_address,
                        engine_path,
                        key_name,
                        created_at,
                        enc,
                    });
                }
            }
            "pgp" | "kms" | "gcp_kms" | "azure_kv" | "hckms" => {
                self.other.push((k.to_owned(), v.clone()));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl VaultEntry {
    /// `https://host:8200/v1/<engine path>/keys/<name>`.
    pub fn uri(&self) -> String {
        format!(
            "{}/v1/{}/keys/{}",
            self.vault_address, self.engine_path, self.key_name
        )
    }

    /// Splits `https://host:8200/v1/<engine path>/keys/<name>` (SOPS'
    /// `hc_vault_transit_uri`) into an entry without `enc` yet.
    pub fn from_uri(uri: &str) -> Result<Self, SopsError> {
        let bad = |why: &str| {
            SopsError::Malformed(format!(
                "{uri:?} is not a transit key URI ({why}); expected https://host:8200/v1/<mount>/keys/<name>"
            ))
        };
        let (scheme, rest) = uri.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (host, path) = rest.split_once('/').ok_or_else(|| bad("no path"))?;
        let path = path
            .strip_prefix("v1/")
            .ok_or_else(|| bad("the path must start with /v1/"))?;
        let (engine, name) = path.rsplit_once("/keys/").ok_or_else(|| bad("no /keys/"))?;
        if engine.is_empty() || name.is_empty() || name.contains('/') {
            return Err(bad("empty mount or key name"));
        }
        Ok(Self {
            vault_address: format!("{scheme}://{host}"),
            engine_path: engine.to_owned(),
            key_name: name.to_owned(),
            created_at: String::new(),
            enc: String::new(),
        })
    }
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
    /// Values under a matching comment stay in clear.
    UnencryptedCommentRegex(String),
    /// Only values under a matching comment are encrypted.
    EncryptedCommentRegex(String),
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
            Rule::UnencryptedCommentRegex(_) => "unencrypted_comment_regex",
            Rule::EncryptedCommentRegex(_) => "encrypted_comment_regex",
        }
    }

    fn value(&self) -> &str {
        match self {
            Rule::UnencryptedSuffix(s)
            | Rule::EncryptedSuffix(s)
            | Rule::UnencryptedRegex(s)
            | Rule::EncryptedRegex(s)
            | Rule::UnencryptedCommentRegex(s)
            | Rule::EncryptedCommentRegex(s) => s,
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
            Rule::UnencryptedCommentRegex(s) => r.unencrypted_comment_regex = Some(re(s)?),
            Rule::EncryptedCommentRegex(s) => r.encrypted_comment_regex = Some(re(s)?),
        }
        Ok(r)
    }
}

/// The whole block.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    /// The key groups: one for a file written without `key_groups` (its
    /// master keys at the top of the block); with several, the data key is
    /// split into one Shamir share per group.
    pub groups: Vec<KeyGroup>,
    /// How many groups' shares rebuild the data key (default: all).
    pub shamir_threshold: Option<u64>,
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
    /// Other keys of the block, kept as read.
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
                Item::Comment(_) | Item::LineComment(_) => None,
            })
            .collect()),
        _ => Err(SopsError::Malformed(format!("{what} must be a mapping"))),
    }
}

/// The named string fields of each entry of a master-key list (an empty
/// list, or `null`, has none).
fn entries(v: &Node, what: &str, names: &[&str]) -> Result<Vec<Vec<String>>, SopsError> {
    let list = match v {
        Node::List(l) => l.as_slice(),
        _ if is_empty_list(v) => &[],
        _ => return Err(SopsError::Malformed(format!("sops.{what} must be a list"))),
    };
    list.iter()
        .map(|e| {
            let f = pairs(e, &format!("an {what} entry"))?;
            names
                .iter()
                .map(|name| {
                    f.iter()
                        .find(|(k, _)| k == name)
                        .ok_or_else(|| {
                            SopsError::Malformed(format!("an {what} entry has no {name}"))
                        })
                        .and_then(|(_, v)| text(v, name))
                })
                .collect()
        })
        .collect()
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
        let mut flat = KeyGroup::default();
        let mut groups = Vec::new();
        for (k, v) in pairs(n, "sops")? {
            if flat.read(&k, &v)? {
                continue;
            }
            match k.as_str() {
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
                    let Node::List(list) = &v else {
                        return Err(SopsError::Malformed(
                            "sops.key_groups must be a list".into(),
                        ));
                    };
                    for g in list {
                        let mut group = KeyGroup::default();
                        for (gk, gv) in pairs(g, "a key group")? {
                            if !group.read(&gk, &gv)? {
                                group.other.push((gk, gv));
                            }
                        }
                        groups.push(group);
                    }
                }
                "shamir_threshold" => {
                    m.shamir_threshold = match &v {
                        Node::Leaf(Scalar::Int(i)) if *i > 0 => Some(*i as u64),
                        // The flattened dotenv and INI blocks hold text.
                        Node::Leaf(Scalar::Str(t)) if t.parse::<u64>().is_ok_and(|n| n > 0) => {
                            t.parse().ok()
                        }
                        Node::Leaf(Scalar::Float(f)) if *f >= 1.0 && f.fract() == 0.0 => {
                            Some(*f as u64)
                        }
                        Node::Null => None,
                        _ => {
                            return Err(SopsError::Malformed(
                                "sops.shamir_threshold must be a positive integer".into(),
                            ));
                        }
                    }
                }
                "unencrypted_comment_regex" => {
                    rules.push(Rule::UnencryptedCommentRegex(text(&v, &k)?))
                }
                "encrypted_comment_regex" => rules.push(Rule::EncryptedCommentRegex(text(&v, &k)?)),
                _ => m.other.push((k, v)),
            }
        }
        m.groups = if groups.is_empty() {
            vec![flat]
        } else {
            groups
        };
        if rules.len() > 1 {
            return Err(SopsError::Malformed(
                "the sops block sets more than one of unencrypted_suffix, encrypted_suffix, unencrypted_regex, encrypted_regex, unencrypted_comment_regex, encrypted_comment_regex".into(),
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

    /// The block as written (keys sorted): the master keys at the top for
    /// one group, else `key_groups` and `shamir_threshold`.
    pub fn to_node(&self) -> Node {
        let s = |v: &str| Node::Leaf(Scalar::Str(v.to_owned()));
        let mut items: Vec<(String, Node)> = self.other.clone();
        match self.groups.as_slice() {
            [one] => items.extend(one.to_items()),
            groups => {
                items.push((
                    "key_groups".into(),
                    Node::List(
                        groups
                            .iter()
                            .map(|g| {
                                let mut kv = g.to_items();
                                kv.sort_by(|a, b| a.0.cmp(&b.0));
                                Node::Map(kv.into_iter().map(|(k, v)| Item::Pair(k, v)).collect())
                            })
                            .collect(),
                    ),
                ));
                if let Some(t) = self.shamir_threshold {
                    items.push((
                        "shamir_threshold".into(),
                        Node::Leaf(Scalar::Int(i64::try_from(t).unwrap_or(i64::MAX))),
                    ));
                }
            }
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
