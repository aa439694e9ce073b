//! The mount table: which engine serves which path prefix.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Where the mount table is stored, behind the barrier.
pub const MOUNT_TABLE_PATH: &str = "core/mounts";
/// Where the auth method table is stored, behind the barrier.
pub const AUTH_TABLE_PATH: &str = "core/auth";

/// Which of the two mount tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    /// Secret engines, routed at `<path>`.
    Secret,
    /// Auth methods, routed at `auth/<path>`.
    Auth,
}

impl MountKind {
    /// Storage key of the table.
    pub fn table_path(self) -> &'static str {
        match self {
            MountKind::Secret => MOUNT_TABLE_PATH,
            MountKind::Auth => AUTH_TABLE_PATH,
        }
    }

    /// Prefix of a mount's storage view.
    pub fn view_root(self) -> &'static str {
        match self {
            MountKind::Secret => "logical/",
            MountKind::Auth => "auth/",
        }
    }
}

/// Prefixes no secret engine may be mounted at or under.
pub const PROTECTED_PREFIXES: &[&str] = &["sys/", "auth/", "audit/", "cubbyhole/", "identity/"];

/// Per-mount lease settings; 0 means "use the system default".
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountConfig {
    /// Default TTL in seconds.
    pub default_lease_ttl: u64,
    /// Maximum TTL in seconds.
    pub max_lease_ttl: u64,
    /// Ask clients not to cache.
    pub force_no_cache: bool,
}

/// One mounted engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountEntry {
    /// Mount path with a trailing `/`, e.g. `secret/`.
    pub path: String,
    /// Engine type, e.g. `kv`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Free text.
    pub description: String,
    /// Identity of the mount; names its storage view.
    pub uuid: String,
    /// `<type>_<8 hex>`.
    pub accessor: String,
    /// Lease settings.
    pub config: MountConfig,
    /// Engine options, e.g. KV `version`.
    pub options: Option<BTreeMap<String, String>>,
    /// Not replicated (kept for Vault compatibility).
    pub local: bool,
    /// Kept for Vault compatibility.
    pub seal_wrap: bool,
    /// Kept for Vault compatibility.
    pub external_entropy_access: bool,
}

impl MountEntry {
    /// A new entry with fresh uuid and accessor.
    pub fn new(path: &str, kind: &str) -> Self {
        let uuid = uuid::Uuid::new_v4().to_string();
        let accessor = format!("{kind}_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        Self::with_ids(path, kind, uuid, accessor)
    }

    /// A new auth method entry (accessor `auth_<type>_<8 hex>`).
    pub fn new_auth(path: &str, kind: &str) -> Self {
        let uuid = uuid::Uuid::new_v4().to_string();
        let accessor = format!(
            "auth_{kind}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Self::with_ids(path, kind, uuid, accessor)
    }

    fn with_ids(path: &str, kind: &str, uuid: String, accessor: String) -> Self {
        Self {
            path: path.to_owned(),
            kind: kind.to_owned(),
            description: String::new(),
            uuid,
            accessor,
            config: MountConfig::default(),
            options: None,
            local: false,
            seal_wrap: false,
            external_entropy_access: false,
        }
    }

    /// Storage prefix of this mount's view.
    pub fn view_prefix(&self, kind: MountKind) -> String {
        format!("{}{}/", kind.view_root(), self.uuid)
    }

    /// The entry as `sys/mounts` shows it.
    pub fn to_api(&self) -> Map<String, Value> {
        let v = json!({
            "accessor": self.accessor,
            "config": {
                "default_lease_ttl": self.config.default_lease_ttl,
                "max_lease_ttl": self.config.max_lease_ttl,
                "force_no_cache": self.config.force_no_cache,
            },
            "description": self.description,
            "external_entropy_access": self.external_entropy_access,
            "local": self.local,
            "options": self.options,
            "plugin_version": "",
            "running_plugin_version": "",
            "running_sha256": "",
            "seal_wrap": self.seal_wrap,
            "type": self.kind,
            "uuid": self.uuid,
        });
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

/// Normalises a mount path: no leading slash, exactly one trailing slash.
pub fn normalize_mount_path(p: &str) -> String {
    let trimmed = p.trim_matches('/');
    format!("{trimmed}/")
}

/// The built-in `token/` auth method as listed by `sys/auth`.
pub fn token_auth_mount() -> MountEntry {
    let mut m = MountEntry::new("token/", "token");
    m.description = "token based credentials".into();
    m.uuid = "00000000-0000-0000-0000-000000000001".into();
    m.accessor = "auth_token_00000000".into();
    m
}

/// The built-in `sys/` mount as listed by `sys/mounts`.
pub fn system_mount() -> MountEntry {
    let mut m = MountEntry::new("sys/", "system");
    m.description = "system endpoints used for control, policy and debugging".into();
    m.uuid = "00000000-0000-0000-0000-000000000000".into();
    m.accessor = "system_00000000".into();
    m
}
