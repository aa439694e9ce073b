//! Vault's ACL policy language: parsing (HCL or JSON), evaluation, storage.

mod acl;
mod format;
mod parse;
pub(crate) mod store;
mod trie;

use std::collections::BTreeMap;

pub use acl::{Acl, AclDecision, AclRequest};
pub use format::{FormatError, format_policy};
pub use parse::parse_policy;
pub use store::{DEFAULT_POLICY, PolicyStore, RESPONSE_WRAPPING, normalize_policy_names};

/// A set of capabilities as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps(u16);

impl Caps {
    /// `deny`: overrides everything.
    pub const DENY: Caps = Caps(1);
    /// `create`.
    pub const CREATE: Caps = Caps(2);
    /// `read`.
    pub const READ: Caps = Caps(4);
    /// `update`.
    pub const UPDATE: Caps = Caps(8);
    /// `delete`.
    pub const DELETE: Caps = Caps(16);
    /// `list`.
    pub const LIST: Caps = Caps(32);
    /// `sudo`: needed on root-protected paths.
    pub const SUDO: Caps = Caps(64);
    /// `patch`.
    pub const PATCH: Caps = Caps(128);
    /// `scan` (OpenBao): recursive listing.
    pub const SCAN: Caps = Caps(256);

    const NAMES: [(&'static str, Caps); 9] = [
        ("create", Caps::CREATE),
        ("delete", Caps::DELETE),
        ("deny", Caps::DENY),
        ("list", Caps::LIST),
        ("patch", Caps::PATCH),
        ("read", Caps::READ),
        ("scan", Caps::SCAN),
        ("sudo", Caps::SUDO),
        ("update", Caps::UPDATE),
    ];

    /// The capability named `s`.
    pub fn from_name(s: &str) -> Option<Caps> {
        Caps::NAMES.iter().find(|(n, _)| *n == s).map(|(_, c)| *c)
    }

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Caps) -> bool {
        self.0 & other.0 == other.0
    }

    /// Union.
    pub fn union(self, other: Caps) -> Caps {
        Caps(self.0 | other.0)
    }

    /// Names in sorted order, as `sys/capabilities` reports them.
    pub fn names(self) -> Vec<&'static str> {
        Caps::NAMES
            .iter()
            .filter(|(_, c)| self.contains(*c))
            .map(|(n, _)| *n)
            .collect()
    }

    /// True when no capability is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// What one path rule grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    /// Capabilities.
    pub caps: Caps,
    /// Parameter name (lower-cased) -> allowed values (empty: any value).
    pub allowed_parameters: BTreeMap<String, Vec<String>>,
    /// Parameter name (lower-cased) -> denied values (empty: any value).
    pub denied_parameters: BTreeMap<String, Vec<String>>,
    /// Parameters that must be present.
    pub required_parameters: Vec<String>,
    /// Seconds; 0 = no bound.
    pub min_wrapping_ttl: u64,
    /// Seconds; 0 = no bound.
    pub max_wrapping_ttl: u64,
}

/// One `path "..." { ... }` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    /// The pattern as written, leading `/` removed.
    pub pattern: String,
    /// What it grants.
    pub perms: Permissions,
}

/// A named, parsed policy with its original text.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Lower-case name.
    pub name: String,
    /// The text exactly as written.
    pub raw: String,
    /// Path rules in file order.
    pub rules: Vec<PathRule>,
}
