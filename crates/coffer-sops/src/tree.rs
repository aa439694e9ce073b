//! The document tree every format loads into, and the walk that encrypts or
//! decrypts its values and computes the MAC, with SOPS' key paths (mapping
//! keys only, joined by `:`) as associated data.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::cipher::{self, DataKey};
use crate::mac::Mac;
use crate::{Scalar, SopsError};

/// The IVs of the values a file had when it was decrypted, by a hash of
/// (key path, plaintext): re-encrypting an unchanged value with the same
/// data key reuses its IV, so its ciphertext (and the file's diff) stays the
/// same. Plaintexts are not kept.
#[derive(Default)]
pub struct IvStash(HashMap<[u8; 32], [u8; 32]>);

impl IvStash {
    fn id(aad: &str, v: &Scalar) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(aad.as_bytes());
        h.update([0u8]);
        h.update(v.type_name().as_bytes());
        h.update([0u8]);
        h.update(v.to_bytes());
        h.finalize().into()
    }
}

/// A node of a document, in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A mapping: keys in order, with comments between them.
    Map(Vec<Item>),
    /// A sequence (comments are `Leaf(Scalar::Comment)` elements).
    List(Vec<Node>),
    /// A value.
    Leaf(Scalar),
    /// `null`: never encrypted, not in the MAC.
    Null,
}

/// One entry of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `key: value`.
    Pair(String, Node),
    /// A comment line inside the mapping (cleartext, or an `ENC[…]` string).
    Comment(String),
    /// A comment at the end of the previous pair's line (YAML `k: v # c`).
    LineComment(String),
}

/// Which values are encrypted (SOPS' `shouldBeEncrypted`, applied in order).
#[derive(Debug, Clone, Default)]
pub struct Rules {
    /// Keys ending with this (and everything below them) stay in clear.
    pub unencrypted_suffix: Option<String>,
    /// Only keys ending with this (and what is below them) are encrypted.
    pub encrypted_suffix: Option<String>,
    /// Keys matching this stay in clear.
    pub unencrypted_regex: Option<regex::Regex>,
    /// Only keys matching this are encrypted.
    pub encrypted_regex: Option<regex::Regex>,
    /// Values under a comment matching this stay in clear (the comment too).
    pub unencrypted_comment_regex: Option<regex::Regex>,
    /// Only values under a comment matching this are encrypted (the
    /// comment itself stays in clear).
    pub encrypted_comment_regex: Option<regex::Regex>,
    /// The MAC covers only encrypted values.
    pub mac_only_encrypted: bool,
}

impl Rules {
    /// Whether the value at `path` is encrypted.
    pub fn encrypts(&self, path: &[String]) -> bool {
        let mut enc = true;
        if let Some(s) = &self.unencrypted_suffix
            && path.iter().any(|p| p.ends_with(s.as_str()))
        {
            enc = false;
        }
        if let Some(s) = &self.encrypted_suffix {
            enc = path.iter().any(|p| p.ends_with(s.as_str()));
        }
        if let Some(r) = &self.unencrypted_regex
            && path.iter().any(|p| r.is_match(p))
        {
            enc = false;
        }
        if let Some(r) = &self.encrypted_regex {
            enc = path.iter().any(|p| r.is_match(p));
        }
        enc
    }

    /// Whether a value (or, with `own`, a comment) is encrypted, given the
    /// comments in force: those just before it and before each block that
    /// holds it (`comments`, one list per nesting level, `own` included).
    /// A comment that matches `encrypted_comment_regex` stays readable, so
    /// the file says which values are encrypted.
    fn decide(&self, path: &[String], comments: &[Vec<String>], own: Option<&str>) -> bool {
        let mut enc = self.encrypts(path);
        let any = |r: &regex::Regex| comments.iter().flatten().any(|c| r.is_match(c));
        if let Some(r) = &self.unencrypted_comment_regex
            && any(r)
        {
            enc = false;
        }
        if let Some(r) = &self.encrypted_comment_regex {
            enc = any(r) && !own.is_some_and(|c| r.is_match(c));
        }
        enc
    }
}

/// The associated data of a value at `path`.
pub fn aad(path: &[String]) -> String {
    let mut s = path.join(":");
    s.push(':');
    s
}

/// Values at least this large are hashed and encrypted in parallel.
const PARALLEL_MIN: usize = 1 << 20;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Encrypt,
    Decrypt,
}

struct Walk<'a> {
    key: &'a DataKey,
    rules: &'a Rules,
    mac: Mac,
    mode: Mode,
    stash: Option<&'a mut IvStash>,
    /// The comments in force, one list per nesting level: those since the
    /// last value at that level (as the file stores them).
    comments: Vec<Vec<String>>,
}

impl Walk<'_> {
    fn node(&mut self, node: &mut Node, path: &mut Vec<String>) -> Result<(), SopsError> {
        match node {
            Node::Null => Ok(()),
            Node::Map(items) => {
                self.comments.push(Vec::new());
                for item in items.iter_mut() {
                    match item {
                        Item::Pair(k, v) => {
                            path.push(k.clone());
                            let r = self.node(v, path);
                            path.pop();
                            r?;
                            self.level().clear();
                        }
                        Item::Comment(c) | Item::LineComment(c) => *c = self.comment(c, path)?,
                    }
                }
                self.comments.pop();
                Ok(())
            }
            Node::List(items) => {
                self.comments.push(Vec::new());
                for v in items.iter_mut() {
                    // List indices are not part of the path.
                    self.node(v, path)?;
                    if !matches!(v, Node::Leaf(Scalar::Comment(_))) {
                        self.level().clear();
                    }
                }
                self.comments.pop();
                Ok(())
            }
            Node::Leaf(Scalar::Comment(c)) => {
                let text = self.comment(c, path)?;
                *node = Node::Leaf(Scalar::Comment(text));
                Ok(())
            }
            Node::Leaf(v) => {
                let encrypts = self.rules.decide(path, &self.comments, None);
                let aad = aad(path);
                match self.mode {
                    Mode::Encrypt => {
                        let hashed = encrypts || !self.rules.mac_only_encrypted;
                        if !encrypts {
                            if hashed {
                                self.mac.add(v);
                            }
                            return Ok(());
                        }
                        let iv = self
                            .stash
                            .as_ref()
                            .and_then(|s| s.0.get(&IvStash::id(&aad, v)).copied());
                        let (key, mac) = (self.key, &mut self.mac);
                        let seal = |v: &Scalar| match iv {
                            Some(iv) => cipher::encrypt_with_iv(v, key, &aad, &iv),
                            None => cipher::encrypt(v, key, &aad),
                        };
                        // A large value (a whole binary file) is hashed on a
                        // second core while it is encrypted.
                        let sealed = if hashed && v.bytes().len() >= PARALLEL_MIN {
                            std::thread::scope(|s| {
                                let value: &Scalar = v;
                                s.spawn(move || mac.add(value));
                                seal(value)
                            })?
                        } else {
                            if hashed {
                                mac.add(v);
                            }
                            seal(v)?
                        };
                        *v = Scalar::Str(sealed);
                    }
                    Mode::Decrypt => {
                        if encrypts && let Scalar::Str(s) = v {
                            let iv = match (&self.stash, cipher::is_encrypted(s)) {
                                (Some(_), true) => cipher::parse(s)?.iv.try_into().ok(),
                                _ => None,
                            };
                            *v = cipher::decrypt(s, self.key, &aad).map_err(|e| match e {
                                SopsError::Malformed(reason) => SopsError::Unreadable {
                                    path: aad.clone(),
                                    reason,
                                },
                                other => other,
                            })?;
                            if let (Some(stash), Some(iv)) = (self.stash.as_mut(), iv) {
                                stash.0.insert(IvStash::id(&aad, v), iv);
                            }
                        }
                        if encrypts || !self.rules.mac_only_encrypted {
                            self.mac.add(v);
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// The innermost level's comments.
    fn level(&mut self) -> &mut Vec<String> {
        if self.comments.is_empty() {
            self.comments.push(Vec::new());
        }
        let last = self.comments.len() - 1;
        &mut self.comments[last]
    }

    /// Comments are encrypted under the path of what contains them when the
    /// rules encrypt that path (as SOPS does), and are never part of the MAC.
    fn comment(&mut self, text: &str, path: &[String]) -> Result<String, SopsError> {
        let aad = aad(path);
        self.level().push(text.to_owned());
        if !self.rules.decide(path, &self.comments, Some(text)) {
            return Ok(text.to_owned());
        }
        match self.mode {
            Mode::Encrypt => {
                let v = Scalar::Comment(text.to_owned());
                let sealed = match self
                    .stash
                    .as_ref()
                    .and_then(|s| s.0.get(&IvStash::id(&aad, &v)))
                {
                    Some(iv) => cipher::encrypt_with_iv(&v, self.key, &aad, iv),
                    None => cipher::encrypt(&v, self.key, &aad),
                }?;
                // Read back, a comment that matched would leave what
                // follows it in clear.
                if let Some(r) = &self.rules.unencrypted_comment_regex
                    && r.is_match(&sealed)
                {
                    return Err(SopsError::Malformed(format!(
                        "the encrypted form of a comment matches unencrypted_comment_regex {:?}; choose a regex that ciphertext cannot match",
                        r.as_str()
                    )));
                }
                Ok(sealed)
            }
            Mode::Decrypt if cipher::is_encrypted(text.trim_start()) => {
                // Where a comment belongs is a guess of the YAML parser that
                // wrote it (SOPS itself files a mapping's last comment under
                // the value before it), so every enclosing path is tried;
                // comments are not in the MAC and GCM still authenticates.
                let enc = text.trim_start();
                let result = cipher::decrypt(enc, self.key, &aad);
                let own_path = result.is_ok();
                let plain = result.or_else(|_| {
                    (0..path.len())
                        .rev()
                        .find_map(|n| cipher::decrypt(enc, self.key, &self::aad(&path[..n])).ok())
                        .ok_or_else(|| SopsError::Decrypt { path: aad.clone() })
                })?;
                // An IV is only reused with the associated data it was made
                // with (GCM must never see one nonce with two AADs).
                if let Some(stash) = self.stash.as_mut()
                    && own_path
                    && let Ok(iv) = <[u8; 32]>::try_from(cipher::parse(enc)?.iv)
                {
                    stash.0.insert(IvStash::id(&aad, &plain), iv);
                }
                plain.take_text().ok_or_else(|| {
                    SopsError::Malformed("a comment decrypted to a non-text value".into())
                })
            }
            // Comments written before they were encrypted stay as they are.
            Mode::Decrypt => Ok(text.to_owned()),
        }
    }
}

/// Encrypts every value the rules select, in place; returns the MAC.
/// Values found in `stash` keep their previous IV.
pub fn encrypt(
    root: &mut Node,
    key: &DataKey,
    rules: &Rules,
    stash: Option<&mut IvStash>,
) -> Result<String, SopsError> {
    run(root, key, rules, Mode::Encrypt, stash)
}

/// Decrypts every encrypted value in place; returns the MAC of the values.
/// With a stash, each value's IV is remembered for re-encryption.
pub fn decrypt(
    root: &mut Node,
    key: &DataKey,
    rules: &Rules,
    stash: Option<&mut IvStash>,
) -> Result<String, SopsError> {
    run(root, key, rules, Mode::Decrypt, stash)
}

fn run(
    root: &mut Node,
    key: &DataKey,
    rules: &Rules,
    mode: Mode,
    stash: Option<&mut IvStash>,
) -> Result<String, SopsError> {
    let mut w = Walk {
        key,
        rules,
        mac: Mac::new(rules.mac_only_encrypted),
        mode,
        stash,
        comments: Vec::new(),
    };
    w.node(root, &mut Vec::new())?;
    Ok(w.mac.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Node {
        Node::Map(vec![
            Item::Pair(
                "db".into(),
                Node::Map(vec![
                    Item::Pair("password".into(), Node::Leaf(Scalar::Str("pw".into()))),
                    Item::Pair("port_unencrypted".into(), Node::Leaf(Scalar::Int(5432))),
                ]),
            ),
            Item::Comment(" top".into()),
            Item::Pair(
                "list".into(),
                Node::List(vec![
                    Node::Leaf(Scalar::Bool(true)),
                    Node::Null,
                    Node::Map(vec![Item::Pair("k".into(), Node::Leaf(Scalar::Float(1.5)))]),
                ]),
            ),
        ])
    }

    #[test]
    fn round_trip_with_paths_rules_and_the_mac() {
        let key = DataKey::random().expect("random");
        let rules = Rules {
            unencrypted_suffix: Some("_unencrypted".into()),
            ..Rules::default()
        };
        let mut d = doc();
        let mac = encrypt(&mut d, &key, &rules, None).expect("encrypt");
        let Node::Map(items) = &d else { panic!("map") };
        let Item::Pair(_, Node::Map(db)) = &items[0] else {
            panic!("db")
        };
        assert!(
            matches!(&db[0], Item::Pair(_, Node::Leaf(Scalar::Str(s))) if s.starts_with("ENC["))
        );
        assert!(matches!(
            &db[1],
            Item::Pair(_, Node::Leaf(Scalar::Int(5432)))
        ));
        assert!(matches!(&items[1], Item::Comment(c) if c.starts_with("ENC[")));
        let again = decrypt(&mut d, &key, &rules, None).expect("decrypt");
        assert_eq!(d, doc());
        assert_eq!(mac, again);
        assert_eq!(aad(&["a".into(), "b".into()]), "a:b:");
        assert_eq!(aad(&[]), ":");
    }

    #[test]
    fn regex_and_suffix_rules_follow_sops_order() {
        let r = Rules {
            encrypted_regex: Some(regex::Regex::new("^(data|stringData)$").expect("regex")),
            ..Rules::default()
        };
        assert!(r.encrypts(&["data".into(), "x".into()]));
        assert!(!r.encrypts(&["metadata".into(), "name".into()]));
        let s = Rules {
            encrypted_suffix: Some("_secret".into()),
            ..Rules::default()
        };
        assert!(s.encrypts(&["a_secret".into(), "b".into()]));
        assert!(!s.encrypts(&["a".into()]));
    }
}
