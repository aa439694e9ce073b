//! The binary store: a whole file as one value under `data` (any bytes),
//! written as JSON next to the `sops` block.

use crate::tree::{Item, Node};
use crate::{Scalar, SopsError};

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
    let Node::Map(items) = root else {
        return Err(SopsError::Malformed(
            "a binary file's tree must be a mapping".into(),
        ));
    };
    items
        .iter()
        .find_map(|i| match i {
            Item::Pair(k, Node::Leaf(v)) if k == "data" => Some(v.to_bytes()),
            _ => None,
        })
        .ok_or_else(|| SopsError::Malformed("a binary file has a single \"data\" value".into()))
}
