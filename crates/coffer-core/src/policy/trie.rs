//! A byte trie for longest-prefix and all-prefixes lookups over policy paths.

/// Values keyed by byte strings.
pub(crate) struct Trie<V> {
    nodes: Vec<Node<V>>,
}

struct Node<V> {
    children: Vec<(u8, usize)>,
    value: Option<V>,
}

impl<V> Default for Trie<V> {
    fn default() -> Self {
        Self {
            nodes: vec![Node {
                children: Vec::new(),
                value: None,
            }],
        }
    }
}

impl<V> Trie<V> {
    fn child(&self, node: usize, b: u8) -> Option<usize> {
        self.nodes[node]
            .children
            .binary_search_by_key(&b, |(k, _)| *k)
            .ok()
            .map(|i| self.nodes[node].children[i].1)
    }

    /// The value slot for `key`, created empty if needed.
    pub(crate) fn slot(&mut self, key: &str) -> &mut Option<V> {
        let mut n = 0;
        for &b in key.as_bytes() {
            n = match self.child(n, b) {
                Some(c) => c,
                None => {
                    let id = self.nodes.len();
                    self.nodes.push(Node {
                        children: Vec::new(),
                        value: None,
                    });
                    let pos = self.nodes[n]
                        .children
                        .binary_search_by_key(&b, |(k, _)| *k)
                        .unwrap_or_else(|p| p);
                    self.nodes[n].children.insert(pos, (b, id));
                    id
                }
            };
        }
        &mut self.nodes[n].value
    }

    /// Every stored key that is a prefix of `s`, shortest first.
    pub(crate) fn prefixes_of<'a>(&'a self, s: &str) -> Vec<&'a V> {
        let mut out = Vec::new();
        let mut n = 0;
        if let Some(v) = &self.nodes[0].value {
            out.push(v);
        }
        for &b in s.as_bytes() {
            match self.child(n, b) {
                Some(c) => n = c,
                None => break,
            }
            if let Some(v) = &self.nodes[n].value {
                out.push(v);
            }
        }
        out
    }

    /// Every stored value, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.nodes.iter().filter_map(|n| n.value.as_ref())
    }

    /// The longest stored key that is a prefix of `s`.
    pub(crate) fn longest_prefix(&self, s: &str) -> Option<&V> {
        self.prefixes_of(s).pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_lookups() {
        let mut t = Trie::default();
        *t.slot("secret/") = Some(1);
        *t.slot("secret/app") = Some(2);
        *t.slot("") = Some(0);
        assert_eq!(t.longest_prefix("secret/app/x"), Some(&2));
        assert_eq!(t.longest_prefix("secret/ap"), Some(&1));
        assert_eq!(t.longest_prefix("other"), Some(&0));
        assert_eq!(t.prefixes_of("secret/app"), vec![&0, &1, &2]);
    }
}
