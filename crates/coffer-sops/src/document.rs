//! Whole-document operations, whatever the format: encrypt a plain tree for
//! a set of master keys, decrypt an encrypted one and check its MAC.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use zeroize::Zeroizing;

use crate::age_keys;
use crate::cipher::DataKey;
use crate::metadata::{AgeEntry, FORMAT_VERSION, KeyGroup, Metadata, Rule};
use crate::tree::{self, Item, Node};
use crate::{SopsError, mac};

/// How to encrypt a document (the master keys come separately, wrapped).
#[derive(Debug, Clone, Default)]
pub struct EncryptOptions {
    /// Which values are encrypted.
    pub rule: Rule,
    /// The MAC covers only encrypted values.
    pub mac_only_encrypted: bool,
    /// With several key groups: how many of them rebuild the data key
    /// (default: all).
    pub shamir_threshold: Option<u64>,
}

/// RFC 3339 now, without fractional seconds (`lastmodified`, `created_at`).
pub fn now_rfc3339() -> Result<String, SopsError> {
    let t = OffsetDateTime::now_utc();
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339)
        .map_err(|e| SopsError::Malformed(format!("time: {e}")))
}

/// What each key group wraps: the data key itself for one group; for
/// several, one Shamir share each (x = 1, 2, 3 … in group order, as SOPS
/// numbers them), any `threshold` of which rebuild the key.
pub fn key_parts(
    key: &DataKey,
    groups: usize,
    threshold: Option<u64>,
) -> Result<Vec<Zeroizing<Vec<u8>>>, SopsError> {
    if groups <= 1 {
        return Ok(vec![Zeroizing::new(key.expose().to_vec())]);
    }
    let t = threshold_of(groups, threshold)?;
    let xs: Vec<u8> = (1..=groups)
        .map(|x| {
            u8::try_from(x).map_err(|_| SopsError::Malformed("more than 255 key groups".into()))
        })
        .collect::<Result<_, _>>()?;
    coffer_shamir::split_at(key.expose(), &xs, t)
        .map_err(|e| SopsError::Malformed(format!("splitting the data key: {e}")))
}

fn threshold_of(groups: usize, threshold: Option<u64>) -> Result<u8, SopsError> {
    let t = threshold.unwrap_or(groups as u64);
    if t < 2 || t > groups as u64 {
        return Err(SopsError::Malformed(format!(
            "shamir_threshold {t} must be at least 2 and at most the number of key groups ({groups})"
        )));
    }
    u8::try_from(t).map_err(|_| SopsError::Malformed("shamir_threshold above 255".into()))
}

/// age entries wrapping `part` for each recipient.
pub fn age_entries(part: &[u8], recipients: &[String]) -> Result<Vec<AgeEntry>, SopsError> {
    recipients
        .iter()
        .map(|r| {
            Ok(AgeEntry {
                recipient: r.trim().to_owned(),
                enc: age_keys::wrap(part, &age_keys::recipient(r)?)?,
            })
        })
        .collect()
}

/// Encrypts a plain document for age recipients only, one key group per
/// list (several lists: the data key is split between them).
pub fn encrypt(
    root: Node,
    groups: &[Vec<String>],
    opts: &EncryptOptions,
) -> Result<Node, SopsError> {
    let key = DataKey::random()?;
    let parts = key_parts(&key, groups.len(), opts.shamir_threshold)?;
    let groups = groups
        .iter()
        .zip(&parts)
        .map(|(g, part)| {
            Ok(KeyGroup {
                age: age_entries(part, g)?,
                ..KeyGroup::default()
            })
        })
        .collect::<Result<Vec<_>, SopsError>>()?;
    encrypt_with_key(root, opts, groups, &key, None)
}

/// Encrypts under a given data key whose parts the caller already wrapped
/// into `groups` (see [`key_parts`]); with the stash of the same key,
/// unchanged values keep their ciphertext. The `sops` block is appended.
pub fn encrypt_with_key(
    mut root: Node,
    opts: &EncryptOptions,
    groups: Vec<KeyGroup>,
    key: &DataKey,
    stash: Option<&mut tree::IvStash>,
) -> Result<Node, SopsError> {
    if branches(&mut root)?.iter().any(|items| {
        items
            .iter()
            .any(|i| matches!(i, Item::Pair(k, _) if k == "sops"))
    }) {
        return Err(SopsError::AlreadyEncrypted(
            "the file already has a top-level \"sops\" key: it is already encrypted".into(),
        ));
    }
    check_groups(&groups, opts)?;
    let rules = opts.rule.rules(opts.mac_only_encrypted)?;
    let computed = tree::encrypt(&mut root, key, &rules, stash)?;
    Ok(join(root, &metadata(opts, groups, &computed, key)?))
}

/// Every group needs a key, and several groups a threshold they can meet.
fn check_groups(groups: &[KeyGroup], opts: &EncryptOptions) -> Result<(), SopsError> {
    if groups.is_empty()
        || groups
            .iter()
            .any(|g| g.age.is_empty() && g.hc_vault.is_empty())
    {
        return Err(SopsError::Malformed(
            "no master key: give at least one age recipient or transit key (in every key group)"
                .into(),
        ));
    }
    if groups.len() > 1 {
        threshold_of(groups.len(), opts.shamir_threshold)?;
    }
    Ok(())
}

/// The `sops` block of a file just encrypted: its groups, the rule, now as
/// `lastmodified`, and the MAC of its values sealed under it.
pub fn metadata(
    opts: &EncryptOptions,
    groups: Vec<KeyGroup>,
    computed_mac: &str,
    key: &DataKey,
) -> Result<Metadata, SopsError> {
    check_groups(&groups, opts)?;
    let lastmodified = now_rfc3339()?;
    Ok(Metadata {
        shamir_threshold: if groups.len() > 1 {
            Some(opts.shamir_threshold.unwrap_or(groups.len() as u64))
        } else {
            None
        },
        groups,
        mac: mac::seal(computed_mac, key, &lastmodified)?,
        lastmodified,
        rule: opts.rule.clone(),
        mac_only_encrypted: opts.mac_only_encrypted,
        version: FORMAT_VERSION.into(),
        other: Vec::new(),
    })
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

/// A group's part of the data key from the first of its age entries one of
/// `identities` opens.
pub fn age_part(group: &KeyGroup, identities: &[age_keys::Identity]) -> Option<Zeroizing<Vec<u8>>> {
    group
        .age
        .iter()
        .find_map(|a| age_keys::unwrap(&a.enc, identities))
}

/// The data key from the parts the groups gave (`None` for a group none of
/// whose keys could be used): the part itself for one group, else the
/// Shamir combination of at least `shamir_threshold` shares.
pub fn assemble_key(
    meta: &Metadata,
    parts: Vec<Option<Zeroizing<Vec<u8>>>>,
) -> Result<DataKey, SopsError> {
    let opened: Vec<Zeroizing<Vec<u8>>> = parts.into_iter().flatten().collect();
    let n = meta.groups.len();
    if n <= 1 {
        return opened
            .first()
            .and_then(|p| DataKey::from_slice(p))
            .ok_or_else(|| SopsError::Malformed("no master key could open the data key".into()));
    }
    let t = usize::from(threshold_of(n, meta.shamir_threshold)?);
    if opened.len() < t {
        return Err(SopsError::Malformed(format!(
            "only {} of the file's {n} key groups could be opened; its shamir_threshold needs {t}",
            opened.len()
        )));
    }
    let key = coffer_shamir::combine(&opened)
        .map_err(|e| SopsError::Malformed(format!("combining the key groups' shares: {e}")))?;
    DataKey::from_slice(&key)
        .ok_or_else(|| SopsError::Malformed("the key groups' shares do not make a data key".into()))
}

/// The data key, from age identities only.
pub fn data_key(meta: &Metadata, identities: &[age_keys::Identity]) -> Result<DataKey, SopsError> {
    let parts: Vec<_> = meta
        .groups
        .iter()
        .map(|g| age_part(g, identities))
        .collect();
    if parts.iter().all(Option::is_none) {
        let wanted: Vec<String> = meta.groups.iter().flat_map(|g| g.names()).collect();
        return Err(SopsError::Malformed(if wanted.is_empty() {
            "the file has no age master key coffer can use".into()
        } else {
            format!(
                "none of the age identities found (SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, ~/.config/sops/age/keys.txt) opens this file; it is encrypted for {}",
                wanted.join(", ")
            )
        }));
    }
    assemble_key(meta, parts)
}

/// Decrypts a document and checks its MAC; returns the plain tree.
pub fn decrypt(root: Node, identities: &[age_keys::Identity]) -> Result<Node, SopsError> {
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

/// Decrypts like [`decrypt_with_key`] but returns the tree whatever the
/// MAC says (sops' `--ignore-mac`, to recover a file edited by hand), with
/// the MAC check's error when it failed.
pub fn decrypt_ignoring_mac(
    mut root: Node,
    meta: &Metadata,
    key: &DataKey,
) -> Result<(Node, Option<SopsError>), SopsError> {
    let rules = meta.rule.rules(meta.mac_only_encrypted)?;
    let computed = tree::decrypt(&mut root, key, &rules, None)?;
    let mac = mac::check(&meta.mac, &computed, key, &meta.lastmodified).err();
    Ok((root, mac))
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
    crate::cipher::decrypt(&meta.mac, key, &mac::mac_aad(&meta.lastmodified)?)
        .map(|_| ())
        .map_err(|e| match e {
            SopsError::Decrypt { .. } => SopsError::MacUnreadable,
            other => other,
        })
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
        let opts = EncryptOptions::default();
        let groups = [vec![id.to_public().to_string()]];
        let plain =
            json::parse(r#"{"db":{"password":"pw","port":5432},"note_unencrypted":"clear"}"#)
                .expect("json");
        let enc = encrypt(plain.clone(), &groups, &opts).expect("encrypt");
        let text = json::emit(&enc);
        assert!(!text.contains("\"pw\""), "{text}");
        assert!(text.contains("\"clear\""), "{text}");
        let back = decrypt(
            json::parse(&text).expect("json"),
            &[age_keys::Identity::from(id.clone())],
        )
        .expect("decrypt");
        assert_eq!(back, plain);
        // A changed cleartext value is covered by the MAC.
        let tampered = text.replace("\"clear\"", "\"changed\"");
        assert!(matches!(
            decrypt(
                json::parse(&tampered).expect("json"),
                &[age_keys::Identity::from(id.clone())]
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
                &[age_keys::Identity::from(id.clone())]
            )
            .is_err()
        );
        // A removed value changes the MAC.
        let removed = text.replace(",\n\t\"note_unencrypted\": \"clear\"", "");
        assert!(
            decrypt(
                json::parse(&removed).expect("json"),
                &[age_keys::Identity::from(id.clone())]
            )
            .is_err()
        );
        // Already encrypted, and no key to decrypt with.
        assert!(encrypt(enc, &groups, &opts).is_err());
        let stranger = age::x25519::Identity::generate();
        assert!(decrypt(json::parse(&text).expect("json"), &[stranger.into()]).is_err());
    }

    #[test]
    fn key_groups_split_the_data_key_and_need_the_threshold() {
        let ids: Vec<_> = (0..3).map(|_| age::x25519::Identity::generate()).collect();
        let groups: Vec<Vec<String>> = ids
            .iter()
            .map(|i| vec![i.to_public().to_string()])
            .collect();
        let opts = EncryptOptions {
            shamir_threshold: Some(2),
            ..EncryptOptions::default()
        };
        let plain = json::parse(r#"{"a":"secret"}"#).expect("json");
        let enc = encrypt(plain.clone(), &groups, &opts).expect("encrypt");
        let text = json::emit(&enc);
        assert!(
            text.contains("\"key_groups\"") && text.contains("\"shamir_threshold\": 2"),
            "{text}"
        );
        let read = |t: &str| json::parse(t).expect("json");
        let (_, meta) = split(read(&text)).expect("split");
        assert_eq!(meta.groups.len(), 3);
        // Each group's share ends in its x-coordinate, 1, 2, 3.
        for (i, g) in meta.groups.iter().enumerate() {
            let share = age_part(g, &[age_keys::Identity::from(ids[i].clone())]).expect("share");
            assert_eq!(share.len(), 33);
            assert_eq!(usize::from(share[32]), i + 1);
        }
        for pair in [[0, 1], [2, 0], [1, 2]] {
            let have: Vec<age_keys::Identity> =
                pair.iter().map(|&i| ids[i].clone().into()).collect();
            assert_eq!(decrypt(read(&text), &have).expect("two groups"), plain);
        }
        let e = decrypt(read(&text), &[age_keys::Identity::from(ids[1].clone())])
            .expect_err("one group");
        assert!(
            e.to_string().contains("only 1 of the file's 3 key groups"),
            "{e}"
        );
        // A threshold the groups cannot meet is refused before anything is written.
        let bad = EncryptOptions {
            shamir_threshold: Some(4),
            ..EncryptOptions::default()
        };
        assert!(encrypt(plain, &groups, &bad).is_err());
    }
}
