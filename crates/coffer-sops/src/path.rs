//! SOPS' tree paths (`["db"]["password"]`, `["list"][0]`) for `--extract`,
//! `set` and `unset`.

use crate::SopsError;
use crate::tree::{Item, Node};

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A mapping key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// Parses `["a"][0]["b"]`.
pub fn parse(path: &str) -> Result<Vec<Step>, SopsError> {
    let bad = || {
        SopsError::Malformed(format!(
            "{path:?} is not a path like '[\"a\"][\"b\"]' or '[\"list\"][0]'"
        ))
    };
    let mut steps = Vec::new();
    let mut rest = path.trim();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[').ok_or_else(bad)?;
        let step = if let Some(q) = inner.strip_prefix('"') {
            let end = q.find("\"]").ok_or_else(bad)?;
            rest = &q[end + 2..];
            Step::Key(q[..end].to_owned())
        } else {
            let end = inner.find(']').ok_or_else(bad)?;
            let i = inner[..end].trim().parse().map_err(|_| bad())?;
            rest = &inner[end + 1..];
            Step::Index(i)
        };
        steps.push(step);
    }
    if steps.is_empty() {
        return Err(bad());
    }
    Ok(steps)
}

fn describe(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| match s {
            Step::Key(k) => format!("[{k:?}]"),
            Step::Index(i) => format!("[{i}]"),
        })
        .collect()
}

/// The node at a path.
pub fn get<'a>(root: &'a Node, steps: &[Step]) -> Result<&'a Node, SopsError> {
    let mut node = root;
    for (n, s) in steps.iter().enumerate() {
        let missing =
            || SopsError::Malformed(format!("{} is not in the file", describe(&steps[..=n])));
        node = match (node, s) {
            (Node::Map(items), Step::Key(k)) => items
                .iter()
                .find_map(|i| match i {
                    Item::Pair(name, v) if name == k => Some(v),
                    _ => None,
                })
                .ok_or_else(missing)?,
            (Node::List(items), Step::Index(i)) => items.get(*i).ok_or_else(missing)?,
            _ => return Err(missing()),
        };
    }
    Ok(node)
}

/// Sets the node at a path; missing keys are created (a new key goes at the
/// end of its mapping), list indices must exist or be the next one.
pub fn set(root: &mut Node, steps: &[Step], value: Node) -> Result<(), SopsError> {
    let Some((first, rest)) = steps.split_first() else {
        *root = value;
        return Ok(());
    };
    let child = match (root, first) {
        (Node::Map(items), Step::Key(k)) => {
            let at = match items
                .iter()
                .position(|i| matches!(i, Item::Pair(n, _) if n == k))
            {
                Some(at) => at,
                None => {
                    items.push(Item::Pair(k.clone(), Node::Map(Vec::new())));
                    items.len() - 1
                }
            };
            match &mut items[at] {
                Item::Pair(_, v) => v,
                Item::Comment(_) | Item::LineComment(_) => {
                    return Err(SopsError::Malformed("a comment is not a value".into()));
                }
            }
        }
        (Node::List(items), Step::Index(i)) if *i <= items.len() => {
            if *i == items.len() {
                items.push(Node::Null);
            }
            &mut items[*i]
        }
        _ => {
            return Err(SopsError::Malformed(format!(
                "{} does not fit the file's structure",
                describe(steps)
            )));
        }
    };
    set(child, rest, value)
}

/// Removes the node at a path.
pub fn unset(root: &mut Node, steps: &[Step]) -> Result<(), SopsError> {
    let (last, parents) = steps
        .split_last()
        .ok_or_else(|| SopsError::Malformed("empty path".into()))?;
    let mut node = root;
    for s in parents {
        node = match (node, s) {
            (Node::Map(items), Step::Key(k)) => items
                .iter_mut()
                .find_map(|i| match i {
                    Item::Pair(name, v) if name == k => Some(v),
                    _ => None,
                })
                .ok_or_else(|| {
                    SopsError::Malformed(format!("{} is not in the file", describe(steps)))
                })?,
            (Node::List(items), Step::Index(i)) => items.get_mut(*i).ok_or_else(|| {
                SopsError::Malformed(format!("{} is not in the file", describe(steps)))
            })?,
            _ => {
                return Err(SopsError::Malformed(format!(
                    "{} is not in the file",
                    describe(steps)
                )));
            }
        };
    }
    let removed = match (node, last) {
        (Node::Map(items), Step::Key(k)) => {
            let before = items.len();
            items.retain(|i| !matches!(i, Item::Pair(n, _) if n == k));
            before != items.len()
        }
        (Node::List(items), Step::Index(i)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    };
    if removed {
        Ok(())
    } else {
        Err(SopsError::Malformed(format!(
            "{} is not in the file",
            describe(steps)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    #[test]
    fn get_set_and_unset_follow_paths() {
        let mut n = json::parse(r#"{"a": {"b": [1, 2]}}"#).expect("json");
        let p = parse(r#"["a"]["b"][1]"#).expect("path");
        assert_eq!(
            p,
            vec![Step::Key("a".into()), Step::Key("b".into()), Step::Index(1)]
        );
        assert_eq!(
            get(&n, &p).expect("get"),
            &json::parse_value("2").expect("v")
        );
        set(
            &mut n,
            &parse(r#"["a"]["c"]["d"]"#).expect("path"),
            json::parse_value(r#""x""#).expect("v"),
        )
        .expect("set");
        assert_eq!(
            json::emit(&n),
            json::emit(&json::parse(r#"{"a": {"b": [1, 2], "c": {"d": "x"}}}"#).expect("json"))
        );
        unset(&mut n, &p).expect("unset");
        assert!(get(&n, &p).is_err());
        assert!(unset(&mut n, &parse(r#"["nope"]"#).expect("path")).is_err());
        assert!(parse("a.b").is_err());
    }
}
