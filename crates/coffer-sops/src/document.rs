//! Whole-document operations, whatever the format: encrypt a plain tree for
//! a set of master keys, decrypt an encrypted one and check its MAC.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::age_keys;
use crate::cipher::DataKey;
use crate::metadata::{AgeEntry, FORMAT_VERSION, Metadata, Rule, VaultEntry};
use crate::tree::{self, Item, Node};
use crate::{SopsError, mac};

/// How to encrypt a document.
#[derive(Debug, Clone, Default)]
pub struct EncryptOptions {
    /// age recipients (`age1…`); each gets its own copy of the data key.
    pub age: Vec<String>,
    /// Which values are encrypted.
    pub rule: Rule,
    /// The MAC covers only encrypted values.
    pub mac_only_encrypted: bool,
    /// Transit master keys, their `enc` already made from the data key
    /// given to [`encrypt_with_key`] (the caller talks to the server).
    pub hc_vault: Vec<VaultEntry>,
}

/// RFC 3339 now, without fractional seconds (`lastmodified`, `created_at`).
pub fn now_rfc3339() -> Result<String, SopsError> {
    let t = OffsetDateTime::now_utc();
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339)
        .map_err(|e| SopsError::Malformed(format!("time: {e}")))
}

/// Encrypts a plain document under a fresh data key; the `sops` block is
/// appended at the end.
pub fn encrypt(root: Node, opts: &EncryptOptions) -> Result<Node, SopsError> {
    encrypt_with_key(root, opts, &DataKey::random()?, None)
}

/// Encrypts under a given data key (already wrapped by the caller for
/// `opts.hc_vault`); with the stash of the same key, unchanged values keep
/// their ciphertext.
pub fn encrypt_with_key(
    mut root: Node,
    opts: &EncryptOptions,
    key: &DataKey,
    stash: Option<&mut tree::IvStash>,
) -> Result<Node, SopsError> {
    if branches(&mut root)?.iter().any(|items| {
        items
            .iter()
            .any(|i| matches!(i, Item::Pair(k, _) if k == "sops"))
    }) {
        return Err(SopsError::Malformed(
            "the file already has a top-level \"sops\" key: it is already encrypted".into(),
        ));
    }
    if opts.age.is_empty() && opts.hc_vault.is_empty() {
        return Err(SopsError::Malformed(
            "no master key: give at least one age recipient or transit key".into(),
        ));
    }
    let mut age = Vec::new();
    for r in &opts.age {
        let recipient = age_keys::recipient(r)?;
        age.push(AgeEntry {
            recipient: r.trim().to_owned(),
            enc: age_keys::wrap(key, &recipient)?,
        });
    }
    let rules = opts.rule.rules(opts.mac_only_encrypted)?;
    let computed = tree::encrypt(&mut root, key, &rules, stash)?;
    let lastmodified = now_rfc3339()?;
    let meta = Metadata {
        age,
        hc_vault: opts.hc_vault.clone(),
        mac: mac::seal(&computed, key, &lastmodified)?,
        lastmodified,
        rule: opts.rule.clone(),
        mac_only_encrypted: opts.mac_only_encrypted,
        version: FORMAT_VERSION.into(),
        other: Vec::new(),
    };
    Ok(join(root, &meta))
}

/// The top-level mappings of a document: the root, or each document of a
/// YAML stream (a list of mappings).
fn branches(root: &mut Node) -> Result<Vec<&mut Vec<Item>>, SopsError> {
    let not_map = || SopsError::Malformed("the document must be a mapping at the top level".into());
    match root {
        Node::Map(items) => Ok(vec![items]),
        Node::List(docs) => docs
            .iter_mut()
            .map(|d| match d {
                Node::Map(items) => Ok(items),
                _ => Err(not_map()),
            })
            .collect(),
        _ => Err(not_map()),
    }
}

/// Splits the `sops` block off an encrypted document (off every document
/// of a YAML stream, which each carry it; the first is used).
pub fn split(mut root: Node) -> Result<(Node, Metadata), SopsError> {
    let mut block = None;
    for items in branches(&mut root)? {
        if let Some(at) = items
            .iter()
            .position(|i| matches!(i, Item::Pair(k, _) if k == "sops"))
            && let Item::Pair(_, b) = items.remove(at)
            && block.is_none()
        {
            block = Some(b);
        }
    }
    let block = block.ok_or_else(|| {
        SopsError::Malformed("no \"sops\" metadata: the file is not encrypted".into())
    })?;
    Ok((root, Metadata::from_node(&block)?))
}

/// The data key, from the first age entry one of `identities` opens.
pub fn data_key(
    meta: &Metadata,
    identities: &[age::x25519::Identity],
) -> Result<DataKey, SopsError> {
    meta.age
        .iter()
        .find_map(|a| age_keys::unwrap(&a.enc, identities))
        .ok_or_else(|| {
            let wanted: Vec<&str> = meta.age.iter().map(|a| a.recipient.as_str()).collect();
            SopsError::Malformed(if wanted.is_empty() {
                "the file has no age master key coffer can use".into()
            } else {
                format!(
                    "none of the age identities found (SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, ~/.config/sops/age/keys.txt) opens this file; it is encrypted for {}",
                    wanted.join(", ")
                )
            })
        })
}

/// Decrypts a document and checks its MAC; returns the plain tree.
pub fn decrypt(root: Node, identities: &[age::x25519::Identity]) -> Result<Node, SopsError> {
    let (root, meta) = split(root)?;
    let key = data_key(&meta, identities)?;
    decrypt_with_key(root, &meta, &key, None)
}

/// Decrypts a document split by [`split`] with a data key the caller
/// obtained (e.g. from a transit server) and checks its MAC; a stash
/// records the values' IVs for re-encryption.
pub fn decrypt_with_key(
    mut root: Node,
    meta: &Metadata,
    key: &DataKey,
    stash: Option<&mut tree::IvStash>,
) -> Result<Node, SopsError> {
    let rules = meta.rule.rules(meta.mac_only_encrypted)?;
    let computed = tree::decrypt(&mut root, key, &rules, stash)?;
    mac::check(&meta.mac, &computed, key, &meta.lastmodified)?;
    Ok(root)
}

/// Puts the `sops` block back on an encrypted tree (after its master keys
/// changed; values, MAC and `lastmodified` untouched).
pub fn join(mut root: Node, meta: &Metadata) -> Node {
    let block = meta.to_node();
    if let Ok(all) = branches(&mut root) {
        for items in all {
            items.push(Item::Pair("sops".into(), block.clone()));
        }
    }
    root
}

/// Checks that `key` is the file's data key (it opens the stored MAC)
/// without decrypting any value.
pub fn check_key(meta: &Metadata, key: &DataKey) -> Result<(), SopsError> {
    crate::cipher::decrypt(&meta.mac, key, &mac::mac_aad(&meta.lastmodified)?).map(|_| ())
}

/// Re-encrypts a decrypted document under the same data key (its master
/// keys stay as they are): a new `lastmodified` and MAC; with the stash from
/// its decryption, unchanged values keep their ciphertext.
pub fn reseal(
    mut root: Node,
    mut meta: Metadata,
    key: &DataKey,
    stash: Option<&mut tree::IvStash>,
) -> Result<Node, SopsError> {
    let rules = meta.rule.rules(meta.mac_only_encrypted)?;
    let computed = tree::encrypt(&mut root, key, &rules, stash)?;
    meta.lastmodified = now_rfc3339()?;
    meta.mac = mac::seal(&computed, key, &meta.lastmodified)?;
    Ok(join(root, &meta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    #[test]
    fn json_round_trip_and_tampering_is_refused() {
        let id = age::x25519::Identity::generate();
        let opts = EncryptOptions {
            age: vec![id.to_public().to_string()],
            ..EncryptOptions::default()
        };
        let plain =
            json::parse(r#"{"db":{"password":"pw","port":5432},"note_unencrypted":"clear"}"#)
                .expect("json");
        let enc = encrypt(plain.clone(), &opts).expect("encrypt");
        let text = json::emit(&enc);
        assert!(!text.contains("\"pw\""), "{text}");
        assert!(text.contains("\"clear\""), "{text}");
        let back =
            decrypt(json::parse(&text).expect("json"), std::slice::from_ref(&id)).expect("decrypt");
        assert_eq!(back, plain);
        // A changed cleartext value is covered by the MAC.
        let tampered = text.replace("\"clear\"", "\"changed\"");
        assert!(matches!(
            decrypt(
                json::parse(&tampered).expect("json"),
                std::slice::from_ref(&id)
            ),
            Err(SopsError::MacMismatch { .. })
        ));
        // So is lastmodified.
        let meta_at = text.find("\"lastmodified\": \"").expect("lastmodified") + 17;
        let mut moved = text.clone();
        moved.replace_range(meta_at..meta_at + 4, "1999");
        assert!(
            decrypt(
                json::parse(&moved).expect("json"),
                std::slice::from_ref(&id)
            )
            .is_err()
        );
        // A removed value changes the MAC.
        let removed = text.replace(",\n\t\"note_unencrypted\": \"clear\"", "");
        assert!(
            decrypt(
                json::parse(&removed).expect("json"),
                std::slice::from_ref(&id)
            )
            .is_err()
        );
        // Already encrypted, and no key to decrypt with.
        assert!(encrypt(enc, &opts).is_err());
        let stranger = age::x25519::Identity::generate();
        assert!(decrypt(json::parse(&text).expect("json"), &[stranger]).is_err());
    }
}
