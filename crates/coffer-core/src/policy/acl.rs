//! An ACL compiled from a token's policies, evaluated the way Vault does.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::trie::Trie;
use super::{Caps, Permissions, Policy};
use crate::logical::Operation;

struct Rule {
    pattern: String,
    perms: Permissions,
}

struct SegmentRule {
    rule: Rule,
    segments: Vec<String>,
    is_prefix: bool,
}

/// The merged rules of a set of policies.
#[derive(Default)]
pub struct Acl {
    root: bool,
    exact: HashMap<String, Permissions>,
    prefix: Trie<Rule>,
    segment: Trie<Vec<SegmentRule>>,
}

/// What is being asked.
pub struct AclRequest<'a> {
    /// The operation.
    pub operation: Operation,
    /// Full request path (list paths end in `/`).
    pub path: &'a str,
    /// Request parameters.
    pub data: &'a Map<String, Value>,
    /// The path needs `sudo`.
    pub root_protected: bool,
    /// Requested wrapping TTL, seconds.
    pub wrap_ttl: Option<u64>,
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclDecision {
    /// May proceed.
    pub allowed: bool,
    /// The token has the root policy.
    pub root: bool,
}

fn merge(into: &mut Permissions, new: &Permissions) {
    if into.caps.contains(Caps::DENY) {
        return;
    }
    if new.caps.contains(Caps::DENY) {
        *into = Permissions {
            caps: Caps::DENY,
            ..Permissions::default()
        };
        return;
    }
    into.caps = into.caps.union(new.caps);
    for (mine, theirs) in [
        (&mut into.allowed_parameters, &new.allowed_parameters),
        (&mut into.denied_parameters, &new.denied_parameters),
    ] {
        for (k, v) in theirs {
            match mine.get_mut(k) {
                // An empty list means "any value": the wider grant wins.
                Some(existing) if existing.is_empty() || v.is_empty() => existing.clear(),
                Some(existing) => existing.extend(v.iter().cloned()),
                None => {
                    mine.insert(k.clone(), v.clone());
                }
            }
        }
    }
    for r in &new.required_parameters {
        if !into.required_parameters.contains(r) {
            into.required_parameters.push(r.clone());
        }
    }
    let lower = |a: u64, b: u64| match (a, b) {
        (0, x) | (x, 0) => x,
        (x, y) => x.min(y),
    };
    into.min_wrapping_ttl = lower(into.min_wrapping_ttl, new.min_wrapping_ttl);
    into.max_wrapping_ttl = lower(into.max_wrapping_ttl, new.max_wrapping_ttl);
}

/// Vault's ordering of two matching non-exact patterns: the greater key wins.
fn priority(pattern: &str) -> (usize, bool, std::cmp::Reverse<usize>, usize, &str) {
    let first_wildcard = pattern.find(['+', '*']).unwrap_or(pattern.len());
    let plus = pattern.split('/').filter(|s| *s == "+").count();
    (
        first_wildcard,
        !pattern.ends_with('*'),
        std::cmp::Reverse(plus),
        pattern.len(),
        pattern,
    )
}

impl SegmentRule {
    fn matches(&self, parts: &[&str]) -> bool {
        let n = self.segments.len();
        if parts.len() < n || (!self.is_prefix && parts.len() != n) {
            return false;
        }
        self.segments.iter().enumerate().all(|(i, seg)| {
            if seg == "+" {
                return true;
            }
            if i == n - 1 && self.is_prefix {
                return parts[i].starts_with(seg.as_str());
            }
            parts[i] == seg
        })
    }
}

impl Acl {
    /// Compiles policies; a `root` policy makes the ACL allow everything.
    pub fn new(policies: &[&Policy]) -> Self {
        let mut acl = Acl::default();
        for p in policies {
            if p.name == "root" {
                acl.root = true;
                continue;
            }
            for rule in &p.rules {
                let pat = rule.pattern.as_str();
                if pat.contains('+') {
                    let (body, is_prefix) = match pat.strip_suffix('*') {
                        Some(b) => (b, true),
                        None => (pat, false),
                    };
                    let literal = &pat[..pat.find('+').unwrap_or(pat.len())];
                    let list = acl.segment.slot(literal).get_or_insert_with(Vec::new);
                    match list.iter_mut().find(|r| r.rule.pattern == pat) {
                        Some(existing) => merge(&mut existing.rule.perms, &rule.perms),
                        None => list.push(SegmentRule {
                            rule: Rule {
                                pattern: pat.to_owned(),
                                perms: rule.perms.clone(),
                            },
                            segments: body.split('/').map(String::from).collect(),
                            is_prefix,
                        }),
                    }
                } else if let Some(prefix) = pat.strip_suffix('*') {
                    match acl.prefix.slot(prefix) {
                        Some(existing) => merge(&mut existing.perms, &rule.perms),
                        slot => {
                            *slot = Some(Rule {
                                pattern: pat.to_owned(),
                                perms: rule.perms.clone(),
                            })
                        }
                    }
                } else {
                    match acl.exact.get_mut(pat) {
                        Some(existing) => merge(existing, &rule.perms),
                        None => {
                            acl.exact.insert(pat.to_owned(), rule.perms.clone());
                        }
                    }
                }
            }
        }
        acl
    }

    /// True for the root policy.
    pub fn is_root(&self) -> bool {
        self.root
    }

    /// The permissions governing `path`: exact rule, else the best wildcard rule.
    fn permissions(&self, path: &str, op: Operation) -> Option<&Permissions> {
        if let Some(p) = self.exact.get(path) {
            return Some(p);
        }
        if matches!(op, Operation::List | Operation::Scan)
            && let Some(p) = path.strip_suffix('/').and_then(|t| self.exact.get(t))
        {
            return Some(p);
        }
        let mut best: Option<&Rule> = self.prefix.longest_prefix(path);
        let parts: Vec<&str> = path.split('/').collect();
        for list in self.segment.prefixes_of(path) {
            for r in list.iter().filter(|r| r.matches(&parts)) {
                if best.is_none_or(|b| priority(&r.rule.pattern) > priority(&b.pattern)) {
                    best = Some(&r.rule);
                }
            }
        }
        best.map(|r| &r.perms)
    }

    /// Whether some rule grants anything on `mount` or a path below it: Vault's
    /// test for showing a mount to a token (`sys/internal/ui/mounts/:path`).
    pub fn any_access_below(&self, mount: &str) -> bool {
        if self.root {
            return true;
        }
        let grants = |p: &Permissions| !p.caps.is_empty() && !p.caps.contains(Caps::DENY);
        // A pattern reaches below the mount if one is a prefix of the other.
        let overlaps = |literal: &str| literal.starts_with(mount) || mount.starts_with(literal);
        self.exact
            .iter()
            .any(|(path, p)| path.starts_with(mount) && grants(p))
            || self
                .prefix
                .values()
                .any(|r| overlaps(r.pattern.trim_end_matches('*')) && grants(&r.perms))
            || self.segment.values().flatten().any(|r| {
                let literal = &r.rule.pattern[..r.rule.pattern.find('+').unwrap_or(0)];
                overlaps(literal) && grants(&r.rule.perms)
            })
    }

    /// Sorted capability names on `path`, as `sys/capabilities` reports them.
    pub fn capabilities(&self, path: &str) -> Vec<String> {
        if self.root {
            return vec!["root".into()];
        }
        match self.permissions(path, Operation::Read) {
            Some(p) if !p.caps.is_empty() && !p.caps.contains(Caps::DENY) => {
                p.caps.names().into_iter().map(String::from).collect()
            }
            _ => vec!["deny".into()],
        }
    }

    /// Decides one request.
    pub fn allow(&self, req: &AclRequest<'_>) -> AclDecision {
        let deny = AclDecision {
            allowed: false,
            root: false,
        };
        if self.root {
            return AclDecision {
                allowed: true,
                root: true,
            };
        }
        let Some(p) = self.permissions(req.path, req.operation) else {
            return deny;
        };
        if p.caps.contains(Caps::DENY) {
            return deny;
        }
        if req.root_protected && !p.caps.contains(Caps::SUDO) {
            return deny;
        }
        let needed = match req.operation {
            Operation::Read => Caps::READ,
            Operation::List => Caps::LIST,
            Operation::Scan => Caps::SCAN,
            Operation::Create => Caps::CREATE,
            Operation::Update => Caps::UPDATE,
            Operation::Patch => Caps::PATCH,
            Operation::Delete => Caps::DELETE,
        };
        if !p.caps.contains(needed) {
            return deny;
        }
        if matches!(
            req.operation,
            Operation::Read | Operation::Create | Operation::Update | Operation::Patch
        ) && !parameters_allowed(p, req.data)
        {
            return deny;
        }
        if p.min_wrapping_ttl > 0 || p.max_wrapping_ttl > 0 {
            let Some(ttl) = req.wrap_ttl else { return deny };
            if (p.min_wrapping_ttl > 0 && ttl < p.min_wrapping_ttl)
                || (p.max_wrapping_ttl > 0 && ttl > p.max_wrapping_ttl)
            {
                return deny;
            }
        }
        AclDecision {
            allowed: true,
            root: false,
        }
    }
}

/// A value as policies compare it.
fn value_texts(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(value_texts).collect(),
        Value::Null => vec![],
        other => vec![other.to_string()],
    }
}

/// `prefix*` and `*suffix` globs, else equality.
fn glob_eq(pattern: &str, v: &str) -> bool {
    if let Some(p) = pattern.strip_suffix('*') {
        return v.starts_with(p);
    }
    if let Some(s) = pattern.strip_prefix('*') {
        return v.ends_with(s);
    }
    pattern == v
}

fn parameters_allowed(p: &Permissions, data: &Map<String, Value>) -> bool {
    let lowered: Vec<(String, &Value)> = data.iter().map(|(k, v)| (k.to_lowercase(), v)).collect();
    if p.required_parameters
        .iter()
        .any(|r| !lowered.iter().any(|(k, _)| *k == r.to_lowercase()))
    {
        return false;
    }
    if lowered.is_empty() {
        return true;
    }
    if p.denied_parameters.contains_key("*") {
        return false;
    }
    for (k, v) in &lowered {
        if let Some(denied) = p.denied_parameters.get(k) {
            if denied.is_empty() {
                return false;
            }
            if value_texts(v)
                .iter()
                .any(|t| denied.iter().any(|d| glob_eq(d, t)))
            {
                return false;
            }
        }
    }
    let allowed = &p.allowed_parameters;
    if allowed.is_empty() {
        return true;
    }
    let star = allowed.get("*");
    for (k, v) in &lowered {
        let values = match (allowed.get(k), star) {
            (Some(vals), _) => vals,
            (None, Some(vals)) => vals,
            (None, None) => return false,
        };
        if !values.is_empty()
            && !value_texts(v)
                .iter()
                .all(|t| values.iter().any(|a| glob_eq(a, t)))
        {
            return false;
        }
    }
    true
}

#[cfg(test)]
#[path = "acl_tests.rs"]
mod tests;
