//! The flattened form of the `sops` block that the dotenv and INI stores
//! write: one `key=value` per leaf, nested maps as `__map_<key>`, list
//! elements as `__list_<i>` (`age__list_0__map_recipient`).

use crate::tree::{Item, Node};
use crate::{Scalar, SopsError};

/// The block's leaves as sorted (flattened key, value) pairs.
pub fn flatten(block: &Node) -> Vec<(String, String)> {
    let mut out = Vec::new();
    flatten_into(block, "", &mut out);
    out.sort();
    out
}

fn flatten_into(n: &Node, key: &str, out: &mut Vec<(String, String)>) {
    match n {
        Node::Map(items) => {
            for i in items {
                if let Item::Pair(k, v) = i {
                    let name = if key.is_empty() {
                        k.clone()
                    } else {
                        format!("{key}__map_{k}")
                    };
                    flatten_into(v, &name, out);
                }
            }
        }
        Node::List(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten_into(v, &format!("{key}__list_{i}"), out);
            }
        }
        Node::Leaf(Scalar::Bool(b)) => out.push((key.to_owned(), b.to_string())),
        Node::Leaf(v) => out.push((
            key.to_owned(),
            String::from_utf8_lossy(&v.to_bytes()).into_owned(),
        )),
        Node::Null => {}
    }
}

#[derive(Debug)]
enum Step {
    Map(String),
    List(usize),
}

/// The block from its flattened keys (`prefix` only names them in errors).
pub fn unflatten(pairs: &[(String, String)], prefix: &str) -> Result<Node, SopsError> {
    let mut root = Node::Map(Vec::new());
    for (k, v) in pairs {
        let (head, rest) = match k.split_once("__") {
            Some((h, r)) => (h, format!("__{r}")),
            None => (k.as_str(), String::new()),
        };
        let mut steps = vec![Step::Map(head.to_owned())];
        let mut r = rest.as_str();
        while !r.is_empty() {
            if let Some(after) = r.strip_prefix("__map_") {
                let end = after.find("__").unwrap_or(after.len());
                steps.push(Step::Map(after[..end].to_owned()));
                r = &after[end..];
            } else if let Some(after) = r.strip_prefix("__list_") {
                let end = after.find("__").unwrap_or(after.len());
                let i = after[..end].parse().map_err(|_| {
                    SopsError::Malformed(format!("metadata key {prefix}{k} has a bad list index"))
                })?;
                steps.push(Step::List(i));
                r = &after[end..];
            } else {
                return Err(SopsError::Malformed(format!(
                    "metadata key {prefix}{k} is not understood"
                )));
            }
        }
        insert(
            &mut root,
            &steps,
            Node::Leaf(Scalar::Str(v.clone())),
            &format!("{prefix}{k}"),
        )?;
    }
    Ok(root)
}

fn insert(node: &mut Node, steps: &[Step], value: Node, key: &str) -> Result<(), SopsError> {
    let Some((first, rest)) = steps.split_first() else {
        *node = value;
        return Ok(());
    };
    let bad = || SopsError::Malformed(format!("metadata key {key} clashes with another"));
    match first {
        Step::Map(k) => {
            if matches!(node, Node::Null) {
                *node = Node::Map(Vec::new());
            }
            let Node::Map(items) = node else {
                return Err(bad());
            };
            let at = match items
                .iter()
                .position(|i| matches!(i, Item::Pair(n, _) if n == k))
            {
                Some(at) => at,
                None => {
                    items.push(Item::Pair(k.clone(), Node::Null));
                    items.len() - 1
                }
            };
            let Item::Pair(_, child) = &mut items[at] else {
                return Err(bad());
            };
            insert(child, rest, value, key)
        }
        Step::List(i) => {
            if matches!(node, Node::Null) {
                *node = Node::List(Vec::new());
            }
            let Node::List(items) = node else {
                return Err(bad());
            };
            while items.len() <= *i {
                items.push(Node::Null);
            }
            insert(&mut items[*i], rest, value, key)
        }
    }
}
