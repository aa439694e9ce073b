//! The binary store: a whole file as one value under `data` (any bytes),
//! written as JSON next to the `sops` block.

use std::io::{Read, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use zeroize::Zeroizing;

use crate::cipher::{self, DataKey};
use crate::document::{self, EncryptOptions};
use crate::mac::Mac;
use crate::metadata::{KeyGroup, Metadata};
use crate::stream::GcmEncryptor;
use crate::tree::{Item, Node};
use crate::{Scalar, SopsError, json};

/// The tree of a plain file.
pub fn parse(bytes: Vec<u8>) -> Node {
    let value = match String::from_utf8(bytes) {
        Ok(s) => Scalar::Str(s),
        Err(e) => Scalar::RawStr(e.into_bytes()),
    };
    Node::Map(vec![Item::Pair("data".into(), Node::Leaf(value))])
}

/// The file's bytes from a decrypted tree.
pub fn emit(root: &Node) -> Result<Vec<u8>, SopsError> {
    data(root).map(<[u8]>::to_vec)
}

/// The file's bytes in a decrypted tree, not copied.
pub fn data(root: &Node) -> Result<&[u8], SopsError> {
    let Node::Map(items) = root else {
        return Err(SopsError::Malformed(
            "a binary file's tree must be a mapping".into(),
        ));
    };
    items
        .iter()
        .find_map(|i| match i {
            Item::Pair(k, Node::Leaf(v)) if k == "data" => match v {
                Scalar::Str(s) => Some(s.as_bytes()),
                Scalar::RawStr(b) | Scalar::Bytes(b) => Some(b.as_slice()),
                _ => None,
            },
            _ => None,
        })
        .ok_or_else(|| SopsError::Malformed("a binary file has a single \"data\" value".into()))
}

/// Bytes read at a time: whole base64 groups (3) and whole GCM blocks (16).
const PIECE: usize = 3 * 16 * 4096;

fn read_full(input: &mut impl Read, buf: &mut [u8]) -> Result<usize, SopsError> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(SopsError::Malformed(format!("reading the file: {e}"))),
        }
    }
    Ok(n)
}

/// Encrypts a whole file while reading it and writes the encrypted
/// document (the same bytes [`parse`], encryption and JSON output give):
/// the plaintext is never held whole, and the MAC is computed on a second
/// thread while the pieces are encrypted and written.
pub fn encrypt_stream(
    mut input: impl Read,
    out: &mut dyn Write,
    key: &DataKey,
    groups: Vec<KeyGroup>,
    opts: &EncryptOptions,
) -> Result<(), SopsError> {
    let io = |e: std::io::Error| SopsError::Malformed(format!("writing: {e}"));
    let mut first = Zeroizing::new(vec![0u8; PIECE]);
    let n = read_full(&mut input, &mut first)?;
    if n == 0 {
        // SOPS leaves an empty value empty: nothing to stream.
        let enc = document::encrypt_with_key(parse(Vec::new()), opts, groups, key, None)?;
        return out.write_all(json::emit(&enc).as_bytes()).map_err(io);
    }
    first.truncate(n);
    let mut iv = [0u8; 32];
    getrandom::fill(&mut iv).map_err(|e| SopsError::Random(e.to_string()))?;
    let mut gcm = GcmEncryptor::new(key, &iv, b"data:");
    out.write_all(b"{\n\t\"data\": \"ENC[AES256_GCM,data:")
        .map_err(io)?;
    let mut text = String::with_capacity(PIECE / 3 * 4);
    let only_encrypted = opts.mac_only_encrypted;
    // Pieces go to the hashing thread and come back hashed, in order, to be
    // encrypted in place: no piece is copied, and the next one is hashed
    // while this one is encrypted.
    let mac = std::thread::scope(|s| -> Result<String, SopsError> {
        let (to_hash, unhashed) = std::sync::mpsc::sync_channel::<Zeroizing<Vec<u8>>>(2);
        let (back, hashed) = std::sync::mpsc::sync_channel::<Zeroizing<Vec<u8>>>(2);
        let hasher = s.spawn(move || {
            let mut mac = Mac::new(only_encrypted);
            for piece in unhashed {
                mac.add_bytes(&piece);
                if back.send(piece).is_err() {
                    break;
                }
            }
            mac.finish()
        });
        let gone = || SopsError::Malformed("the MAC thread stopped".into());
        let mut spare: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut in_flight = 1;
        to_hash.send(first).map_err(|_| gone())?;
        let mut eof = n < PIECE;
        while in_flight > 0 {
            if !eof {
                let mut buf = spare
                    .pop()
                    .unwrap_or_else(|| Zeroizing::new(Vec::with_capacity(PIECE)));
                buf.resize(PIECE, 0);
                let n = read_full(&mut input, &mut buf)?;
                eof = n < PIECE;
                if n > 0 {
                    buf.truncate(n);
                    to_hash.send(buf).map_err(|_| gone())?;
                    in_flight += 1;
                }
                if in_flight < 2 && !eof {
                    continue;
                }
            }
            let mut piece = hashed.recv().map_err(|_| gone())?;
            in_flight -= 1;
            gcm.update(&mut piece);
            text.clear();
            B64.encode_string(&*piece, &mut text);
            out.write_all(text.as_bytes()).map_err(io)?;
            spare.push(piece);
        }
        drop(to_hash);
        hasher
            .join()
            .map_err(|_| SopsError::Malformed("the MAC thread failed".into()))
    })?;
    let tag = gcm.finish();
    let meta = document::metadata(opts, groups, &mac, key)?;
    let tail = format!(
        ",iv:{},tag:{},type:str]\",\n\t\"sops\": {}\n}}\n",
        B64.encode(iv),
        B64.encode(tag),
        json::emit_value(&meta.to_node(), 1)
    );
    out.write_all(tail.as_bytes()).map_err(io)?;
    out.flush().map_err(io)
}

/// An encrypted binary-store document split for streaming: the `data`
/// value still encrypted (borrowed from the text) and the rest of the
/// document (`data` emptied) for its `sops` block. `None` when the text is
/// not in the layout SOPS and coffer write; the caller then parses it whole.
pub fn split_encrypted(text: &str) -> Option<(&str, Node)> {
    const OPEN: &str = "\"data\": \"ENC[AES256_GCM,data:";
    let at = text.find(OPEN)? + OPEN.len() - "ENC[AES256_GCM,data:".len();
    // An encrypted value holds no quote (nor backslash: base64 would fail).
    let len = text[at..].find('"')?;
    let value = &text[at..at + len];
    let rest = format!("{}{}", &text[..at], &text[at + len..]);
    let tree = json::parse(&rest).ok()?;
    // The match must be the top-level "data", not text elsewhere.
    let Node::Map(items) = &tree else { return None };
    let data = items.iter().find_map(|i| match i {
        Item::Pair(k, Node::Leaf(Scalar::Str(v))) if k == "data" => Some(v),
        _ => None,
    })?;
    data.is_empty().then_some((value, tree))
}

/// Decrypts a binary-store `data` value with its file's key, checking the
/// GCM tag and the file's MAC before returning the bytes. The value is
/// decoded, decrypted and hashed piece by piece (the hash on a second
/// thread), straight into the one buffer returned.
pub fn decrypt_data(
    value: &str,
    meta: &Metadata,
    key: &DataKey,
) -> Result<Zeroizing<Vec<u8>>, SopsError> {
    let failed = || SopsError::Decrypt {
        path: "data:".into(),
    };
    let (data, iv, tag, kind) = cipher::split(value)?;
    let bad = || SopsError::Malformed("the data value is not a SOPS encrypted value".into());
    let iv: [u8; 32] = B64
        .decode(iv)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(bad)?;
    let tag = B64.decode(tag).map_err(|_| bad())?;
    if kind != "str" {
        return Err(bad());
    }
    let mut plain = Zeroizing::new(vec![0u8; data.len() / 4 * 3]);
    let mut gcm = GcmEncryptor::decryptor(key, &iv, b"data:");
    let only_encrypted = meta.mac_only_encrypted;
    let chars = PIECE / 3 * 4;
    let (total, computed) = std::thread::scope(|s| -> Result<(usize, String), SopsError> {
        let (to_hash, pieces) = std::sync::mpsc::sync_channel::<&[u8]>(4);
        let hasher = s.spawn(move || {
            let mut mac = Mac::new(only_encrypted);
            for piece in pieces {
                mac.add_bytes(piece);
            }
            mac.finish()
        });
        let mut rest: &mut [u8] = &mut plain;
        let mut total = 0;
        for text in data.as_bytes().chunks(chars) {
            let n = B64.decode_slice(text, &mut *rest).map_err(|_| bad())?;
            let (piece, after) = std::mem::take(&mut rest).split_at_mut(n);
            gcm.update(piece);
            total += n;
            // Hashed as it comes; nothing is returned unless the tag holds.
            let _ = to_hash.send(&*piece);
            rest = after;
        }
        drop(to_hash);
        let mac = hasher
            .join()
            .map_err(|_| SopsError::Malformed("the MAC thread failed".into()))?;
        Ok((total, mac))
    })?;
    if !gcm.verify(&tag) {
        return Err(failed());
    }
    plain.truncate(total);
    crate::mac::check(&meta.mac, &computed, key, &meta.lastmodified)?;
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_file_decrypts_like_any_other() {
        let id = age::x25519::Identity::generate();
        let key = DataKey::random().expect("key");
        for len in [0, 5, PIECE - 1, PIECE, PIECE + 1, 3 * PIECE + 17] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 131 % 256) as u8).collect();
            let parts = document::key_parts(&key, 1, None).expect("parts");
            let groups = vec![KeyGroup {
                age: document::age_entries(&parts[0], &[id.to_public().to_string()]).expect("wrap"),
                ..KeyGroup::default()
            }];
            let mut out = Vec::new();
            encrypt_stream(
                &plain[..],
                &mut out,
                &key,
                groups,
                &EncryptOptions::default(),
            )
            .expect("stream");
            let text = String::from_utf8(out).expect("utf-8");
            let tree = json::parse(&text).unwrap_or_else(|e| panic!("{len}: {e}\n{text:.300}"));
            let back = document::decrypt(tree, &[crate::age_keys::Identity::from(id.clone())])
                .expect("decrypt");
            assert_eq!(data(&back).expect("data"), plain.as_slice(), "len {len}");
            // The layout is json::emit's.
            let again = json::emit(&json::parse(&text).expect("json"));
            assert_eq!(again, text, "len {len}");
            // And the streaming reader takes it back.
            if len > 0 {
                let (value, rest) = split_encrypted(&text).expect("split");
                let (_, meta) = document::split(rest).expect("meta");
                let got = decrypt_data(value, &meta, &key).expect("stream decrypt");
                assert_eq!(got.as_slice(), plain.as_slice(), "len {len}");
                // A flipped ciphertext byte is caught by the tag.
                let mut bytes = value.as_bytes().to_vec();
                bytes[30] = if bytes[30] == b'A' { b'B' } else { b'A' };
                let tampered = String::from_utf8(bytes).expect("utf-8");
                assert!(decrypt_data(&tampered, &meta, &key).is_err());
            }
        }
    }
}
