//! The `sys/` backend: mounts, keys, tools and UI helpers.

mod audit;
mod catalog;
mod leak;
mod leases;
mod mounts;
mod password_policies;
mod policy;
mod remount;
mod rotation;
mod wrapping;

pub(crate) use leases::LeaseOp;
use policy::PolicyApi;
pub(crate) use remount::Remounts;
pub use rotation::RotationHealth;

use serde_json::{Map, Value, json};

use crate::core::{Active, Core};
use crate::logical::{LogicalError, Operation, Request, Response};
use crate::mounts::MountKind;
use crate::paths::{PathSpec, PathTable};
use crate::token::Token;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SysRoute {
    MountsList,
    Mount,
    AuthList,
    Auth,
    KeyStatus,
    Rotate,
    Random,
    Hash,
    UiMounts,
    UiMount,
    Seal,
    StepDown,
    HaStatus,
    PolicyList,
    Policy,
    AclPolicyList,
    AclPolicy,
    Capabilities,
    CapabilitiesSelf,
    CapabilitiesAccessor,
    Wrapping,
    Lease(LeaseOp),
    RotationStatus,
    Metrics,
    PasswordPolicy,
    PasswordPolicyGenerate,
    AuditList,
    Audit,
    AuditHash,
    AuditHead,
    AuditSearch,
    Remount,
    RemountStatus,
    VersionHistory,
    PluginCatalog,
    PluginList,
    EventsSubscribe,
    PluginInfo,
    LeakCheck,
    LeakStatus,
}

use Operation::*;

static SYS_PATHS: &[PathSpec<SysRoute>] = &[
    PathSpec {
        pattern: "version-history",
        operations: &[Read, List],
        route: SysRoute::VersionHistory,
        help: "The coffer versions that have unsealed this storage, oldest first.",
    },
    PathSpec {
        pattern: "version-history/",
        operations: &[List],
        route: SysRoute::VersionHistory,
        help: "The coffer versions that have unsealed this storage, oldest first.",
    },
    PathSpec {
        pattern: "plugins/catalog",
        operations: &[Read],
        route: SysRoute::PluginCatalog,
        help: "The built-in secret engines, auth methods and database plugins.",
    },
    PathSpec {
        pattern: "plugins/catalog/{type}/",
        operations: &[List],
        route: SysRoute::PluginList,
        help: "The built-in plugins of one type (auth, database, secret).",
    },
    PathSpec {
        pattern: "plugins/catalog/{type}/{name}",
        operations: &[Read],
        route: SysRoute::PluginInfo,
        help: "One built-in plugin.",
    },
    PathSpec {
        pattern: "remount",
        operations: &[Update],
        route: SysRoute::Remount,
        help: "Move a secret engine or auth method (from, to) with its data and leases.",
    },
    PathSpec {
        pattern: "remount/status/{id}",
        operations: &[Read],
        route: SysRoute::RemountStatus,
        help: "The outcome of a move, by its migration_id.",
    },
    PathSpec {
        pattern: "mounts",
        operations: &[Read],
        route: SysRoute::MountsList,
        help: "List mounted secret engines.",
    },
    PathSpec {
        pattern: "mounts/{*path}",
        operations: &[Read, Update, Delete],
        route: SysRoute::Mount,
        help: "Read, enable, disable or tune (with /tune) a secret engine.",
    },
    PathSpec {
        pattern: "auth",
        operations: &[Read],
        route: SysRoute::AuthList,
        help: "List enabled auth methods.",
    },
    PathSpec {
        pattern: "auth/{*path}",
        operations: &[Read, Update, Delete],
        route: SysRoute::Auth,
        help: "Read, enable, disable or tune (with /tune) an auth method.",
    },
    PathSpec {
        pattern: "key-status",
        operations: &[Read],
        route: SysRoute::KeyStatus,
        help: "The barrier keyring's active term.",
    },
    PathSpec {
        pattern: "rotate",
        operations: &[Update],
        route: SysRoute::Rotate,
        help: "Add a keyring term used for new writes.",
    },
    PathSpec {
        pattern: "rotate/keyring",
        operations: &[Update],
        route: SysRoute::Rotate,
        help: "Same as sys/rotate.",
    },
    PathSpec {
        pattern: "tools/random",
        operations: &[Update],
        route: SysRoute::Random,
        help: "Random bytes.",
    },
    PathSpec {
        pattern: "tools/random/{a}",
        operations: &[Update],
        route: SysRoute::Random,
        help: "Random bytes (source or byte count).",
    },
    PathSpec {
        pattern: "tools/random/{a}/{b}",
        operations: &[Update],
        route: SysRoute::Random,
        help: "Random bytes (source and byte count).",
    },
    PathSpec {
        pattern: "tools/hash",
        operations: &[Update],
        route: SysRoute::Hash,
        help: "Hash base64 input.",
    },
    PathSpec {
        pattern: "tools/hash/{alg}",
        operations: &[Update],
        route: SysRoute::Hash,
        help: "Hash base64 input with an algorithm.",
    },
    PathSpec {
        pattern: "events/subscribe/{*type}",
        operations: &[Read],
        route: SysRoute::EventsSubscribe,
        help: "Stream change events of the types matching a glob (WebSocket, server-sent events or long poll).",
    },
    PathSpec {
        pattern: "internal/ui/mounts",
        operations: &[Read],
        route: SysRoute::UiMounts,
        help: "Mounts visible without a token.",
    },
    PathSpec {
        pattern: "internal/ui/mounts/{*path}",
        operations: &[Read],
        route: SysRoute::UiMount,
        help: "The mount serving a path, with its options.",
    },
    PathSpec {
        pattern: "seal",
        operations: &[Update],
        route: SysRoute::Seal,
        help: "Seal the server.",
    },
    PathSpec {
        pattern: "step-down",
        operations: &[Update],
        route: SysRoute::StepDown,
        help: "Make the active node of an HA cluster give up leadership.",
    },
    PathSpec {
        pattern: "ha-status",
        operations: &[Read],
        route: SysRoute::HaStatus,
        help: "The nodes of the HA cluster and which one is active.",
    },
    PathSpec {
        pattern: "wrapping/{op}",
        operations: &[Read, Update],
        route: SysRoute::Wrapping,
        help: "Wrap, unwrap, look up or rewrap a response-wrapping token.",
    },
    PathSpec {
        pattern: "policy",
        operations: &[Read, List],
        route: SysRoute::PolicyList,
        help: "List policies (legacy API).",
    },
    PathSpec {
        pattern: "policy/",
        operations: &[List],
        route: SysRoute::PolicyList,
        help: "List policies (legacy API).",
    },
    PathSpec {
        pattern: "policy/{name}",
        operations: &[Read, Update, Delete],
        route: SysRoute::Policy,
        help: "Read, write or delete a policy (legacy API).",
    },
    PathSpec {
        pattern: "policies/acl",
        operations: &[List],
        route: SysRoute::AclPolicyList,
        help: "List ACL policies.",
    },
    PathSpec {
        pattern: "policies/acl/",
        operations: &[List],
        route: SysRoute::AclPolicyList,
        help: "List ACL policies.",
    },
    PathSpec {
        pattern: "policies/acl/{name}",
        operations: &[Read, Update, Delete],
        route: SysRoute::AclPolicy,
        help: "Read, write or delete an ACL policy.",
    },
    PathSpec {
        pattern: "capabilities",
        operations: &[Update],
        route: SysRoute::Capabilities,
        help: "A token's capabilities on paths.",
    },
    PathSpec {
        pattern: "capabilities-self",
        operations: &[Update],
        route: SysRoute::CapabilitiesSelf,
        help: "The caller's capabilities on paths.",
    },
    PathSpec {
        pattern: "capabilities-accessor",
        operations: &[Update],
        route: SysRoute::CapabilitiesAccessor,
        help: "Capabilities of the token behind an accessor.",
    },
    PathSpec {
        pattern: "leases/lookup",
        operations: &[Update],
        route: SysRoute::Lease(LeaseOp::Lookup),
        help: "Look up a lease.",
    },
    PathSpec {
        pattern: "leases/lookup/",
        operations: &[List],
        route: SysRoute::Lease(LeaseOp::List),
        help: "List lease ids (sudo).",
    },
    PathSpec {
        pattern: "leases/lookup/{*param}",
        operations: &[List],
        route: SysRoute::Lease(LeaseOp::List),
        help: "List lease ids under a prefix (sudo).",
    },
    PathSpec {
        pattern: "leases/renew",
        operations: &[Update],
        route: SysRoute::Lease(LeaseOp::Renew),
        help: "Renew a lease.",
    },
    PathSpec {
        pattern: "leases/renew/{*param}",
        operations: &[Update],
        route: SysRoute::Lease(LeaseOp::Renew),
        help: "Renew a lease.",
    },
    PathSpec {
        pattern: "leases/revoke",
        operations: &[Update],
        route: SysRoute::Lease(LeaseOp::Revoke),
        help: "Revoke a lease.",
    },
    PathSpec {
        pattern: "leases/revoke/{*param}",
        operations: &[Update],
        route: SysRoute::Lease(LeaseOp::Revoke),
        help: "Revoke a lease.",
    },
    PathSpec {
        pattern: "leases/revoke-prefix/{*param}",
        operations: &[Update],
        route: SysRoute::Lease(LeaseOp::RevokePrefix),
        help: "Revoke every lease under a prefix (sudo).",
    },
    PathSpec {
        pattern: "leases/revoke-force/{*param}",
        operations: &[Update],
        route: SysRoute::Lease(LeaseOp::RevokeForce),
        help: "Drop every lease under a prefix even when the engine fails (sudo).",
    },
    PathSpec {
        pattern: "leases/tidy",
        operations: &[Update],
        route: SysRoute::Lease(LeaseOp::Tidy),
        help: "Remove dangling lease index entries.",
    },
    PathSpec {
        pattern: "leases/count",
        operations: &[Read],
        route: SysRoute::Lease(LeaseOp::Count),
        help: "Count irrevocable (or all) leases (sudo).",
    },
    PathSpec {
        pattern: "leases",
        operations: &[Read],
        route: SysRoute::Lease(LeaseOp::Irrevocable),
        help: "List irrevocable leases (sudo).",
    },
    PathSpec {
        pattern: "renew",
        operations: &[Update],
        route: SysRoute::Lease(LeaseOp::Renew),
        help: "Renew a lease (Vault's older path).",
    },
    PathSpec {
        pattern: "renew/{*param}",
        operations: &[Update],
        route: SysRoute::Lease(LeaseOp::Renew),
        help: "Renew a lease (Vault's older path).",
    },
    PathSpec {
        pattern: "revoke",
        operations: &[Update],
        route: SysRoute::Lease(LeaseOp::Revoke),
        help: "Revoke a lease (Vault's older path).",
    },
    PathSpec {
        pattern: "revoke/{*param}",
        operations: &[Update],
        route: SysRoute::Lease(LeaseOp::Revoke),
        help: "Revoke a lease (Vault's older path).",
    },
    PathSpec {
        pattern: "revoke-prefix/{*param}",
        operations: &[Update],
        route: SysRoute::Lease(LeaseOp::RevokePrefix),
        help: "Revoke by prefix (Vault's older path, sudo).",
    },
    PathSpec {
        pattern: "revoke-force/{*param}",
        operations: &[Update],
        route: SysRoute::Lease(LeaseOp::RevokeForce),
        help: "Force revoke by prefix (Vault's older path, sudo).",
    },
    PathSpec {
        pattern: "policies/password",
        operations: &[List],
        route: SysRoute::PasswordPolicy,
        help: "List password policies.",
    },
    PathSpec {
        pattern: "policies/password/",
        operations: &[List],
        route: SysRoute::PasswordPolicy,
        help: "List password policies.",
    },
    PathSpec {
        pattern: "policies/password/{name}",
        operations: &[Read, Update, Delete],
        route: SysRoute::PasswordPolicy,
        help: "Read, write or delete a password policy.",
    },
    PathSpec {
        pattern: "policies/password/{name}/generate",
        operations: &[Read],
        route: SysRoute::PasswordPolicyGenerate,
        help: "A password from the policy.",
    },
    PathSpec {
        pattern: "rotation/status",
        operations: &[Read],
        route: SysRoute::RotationStatus,
        help: "Everything that rotates on a schedule, with its last success and failures.",
    },
    PathSpec {
        pattern: "audit",
        operations: &[Read],
        route: SysRoute::AuditList,
        help: "List enabled audit devices.",
    },
    PathSpec {
        pattern: "audit/{*path}",
        operations: &[Update, Delete],
        route: SysRoute::Audit,
        help: "Enable or disable an audit device (only when the server configuration allows it).",
    },
    PathSpec {
        pattern: "audit-hash/{*path}",
        operations: &[Update],
        route: SysRoute::AuditHash,
        help: "The HMAC an audit device writes for an input.",
    },
    PathSpec {
        pattern: "audit-search",
        operations: &[Read, Update],
        route: SysRoute::AuditSearch,
        help: "Who did what on a path (default: who read it), from the audit devices that can be read back (files), newest first (sudo).",
    },
    PathSpec {
        pattern: "audit-head/{*path}",
        operations: &[Read],
        route: SysRoute::AuditHead,
        help: "An audit device's chain head: the sequence number and hash of its last line.",
    },
    PathSpec {
        pattern: "leak/check",
        operations: &[Update],
        route: SysRoute::LeakCheck,
        help: "Which of the given strings are live in coffer (held or handed out), and where; never the values.",
    },
    PathSpec {
        pattern: "leak/status",
        operations: &[Read],
        route: SysRoute::LeakStatus,
        help: "The leak index: values indexed, memory, whether indexing since the unseal finished, limits.",
    },
    PathSpec {
        pattern: "metrics",
        operations: &[Read],
        route: SysRoute::Metrics,
        help: "Counters and gauges (format=prometheus for Prometheus text).",
    },
];

/// The compiled `sys/` path table.
pub(crate) struct SysPaths {
    table: PathTable<SysRoute>,
}

impl SysPaths {
    pub(crate) fn new() -> Result<Self, String> {
        Ok(Self {
            table: PathTable::new(SYS_PATHS)?,
        })
    }

    pub(crate) fn help(&self) -> crate::paths::MountHelp {
        crate::paths::MountHelp {
            description: "The system backend: seal and unseal, mounts and auth methods, policies, \
leases, audit devices, response wrapping, key rotation and tools.",
            paths: self.table.docs(),
        }
    }

    /// Paths that work without a token (a token is still used when sent).
    pub(crate) fn is_unauthenticated(&self, path: &str) -> bool {
        path == "sys/internal/ui/mounts"
            || path.starts_with("sys/internal/ui/mounts/")
            || path == "sys/wrapping/lookup"
    }
}

pub(crate) fn top_level(mut r: Response) -> Response {
    r.inject_top_level = true;
    r
}

pub(crate) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl Core {
    pub(crate) async fn handle_sys(
        &self,
        active: &Active,
        req: &Request,
        rest: &str,
        token: Option<&Token>,
    ) -> Result<Option<Response>, LogicalError> {
        let m = self.sys_paths().table.route(req.operation, rest)?;
        match m.route {
            SysRoute::MountsList => self.list_mounts(active, MountKind::Secret).map(Some),
            SysRoute::Mount => {
                // Vault serves an auth method's tune here too
                // (`bao auth tune` posts to sys/mounts/auth/<path>/tune).
                let path = m.param("path");
                match path.strip_prefix("auth/") {
                    Some(auth) if auth.trim_end_matches('/').ends_with("/tune") => {
                        self.mount_op(active, req, auth, MountKind::Auth).await
                    }
                    _ => self.mount_op(active, req, path, MountKind::Secret).await,
                }
            }
            SysRoute::AuthList => self.list_mounts(active, MountKind::Auth).map(Some),
            SysRoute::VersionHistory => self.version_history().await.map(Some),
            SysRoute::PluginCatalog => Ok(Some(self.plugin_catalog())),
            SysRoute::PluginList => self.plugin_list(m.param("type")).map(Some),
            // The HTTP layer streams the events once this admitted the
            // request (token, ACL, audit).
            SysRoute::EventsSubscribe => Ok(Some(Response::data(
                json!({"event_type": m.param("type")})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ))),
            SysRoute::PluginInfo => self.plugin_info(m.param("type"), m.param("name")),
            SysRoute::Remount => self.remount(active, &req.data).await.map(Some),
            SysRoute::RemountStatus => self.remount_status(m.param("id")),
            SysRoute::Auth => {
                self.mount_op(active, req, m.param("path"), MountKind::Auth)
                    .await
            }
            SysRoute::KeyStatus => {
                let (term, nanos, encryptions) = self.barrier.key_status()?;
                let when = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default();
                Ok(Some(top_level(Response::data(obj(json!({
                    "term": term,
                    "install_time": when,
                    "encryptions": encryptions,
                }))))))
            }
            SysRoute::Rotate => {
                let term = self.barrier.rotate().await?;
                tracing::info!(term, "barrier keyring rotated");
                Ok(None)
            }
            SysRoute::Random => {
                crate::tools::random(&req.data, m.param("a"), m.param("b")).map(Some)
            }
            SysRoute::Hash => crate::tools::hash(&req.data, m.param("alg")).map(Some),
            SysRoute::UiMounts => self.ui_mounts(active, token).await.map(Some),
            SysRoute::UiMount => self
                .ui_mount(active, m.param("path"), token)
                .await
                .map(Some),
            SysRoute::Seal => {
                self.seal().await;
                Ok(None)
            }
            SysRoute::StepDown => {
                self.request_step_down()?;
                Ok(None)
            }
            SysRoute::HaStatus => self.ha_status().await.map(Some),
            SysRoute::PolicyList => self.policy_list(active, PolicyApi::Legacy).await.map(Some),
            SysRoute::Policy => {
                self.policy_op(active, req, m.param("name"), PolicyApi::Legacy)
                    .await
            }
            SysRoute::AclPolicyList => self.policy_list(active, PolicyApi::Acl).await.map(Some),
            SysRoute::AclPolicy => {
                self.policy_op(active, req, m.param("name"), PolicyApi::Acl)
                    .await
            }
            SysRoute::Capabilities => self
                .capabilities(active, req, token, "token")
                .await
                .map(Some),
            SysRoute::CapabilitiesSelf => self
                .capabilities(active, req, token, "self")
                .await
                .map(Some),
            SysRoute::Wrapping => match m.param("op") {
                op @ ("wrap" | "unwrap" | "lookup" | "rewrap") => {
                    self.wrapping_op(active, req, token, op).await.map(Some)
                }
                _ => Err(LogicalError::UnsupportedPath),
            },
            SysRoute::Lease(op) => self.lease_op(active, req, op, m.param("param")).await,
            SysRoute::PasswordPolicy => self.password_policy_op(req, m.param("name"), false).await,
            SysRoute::PasswordPolicyGenerate => {
                self.password_policy_op(req, m.param("name"), true).await
            }
            SysRoute::RotationStatus => self.rotation_status_response(active).await.map(Some),
            SysRoute::Metrics => self.metrics_response(active, req).await.map(Some),
            SysRoute::LeakCheck => self.leak_check(active, req, token).await.map(Some),
            SysRoute::LeakStatus => Ok(Some(self.leak_status(active))),
            SysRoute::AuditList => Ok(Some(self.audit_list())),
            SysRoute::Audit => self.audit_op(req, m.param("path")).await,
            SysRoute::AuditHash => self.audit_hash(req, m.param("path")).map(Some),
            SysRoute::AuditHead => self.audit_head(active, m.param("path")).await.map(Some),
            SysRoute::AuditSearch => self.audit_search(req).await.map(Some),
            SysRoute::CapabilitiesAccessor => self
                .capabilities(active, req, token, "accessor")
                .await
                .map(Some),
        }
    }

    /// Without a token nothing is listed (no mount opts into
    /// `listing_visibility` yet); with one, only the mounts it may do
    /// something under, as Vault lists them.
    async fn ui_mounts(
        &self,
        active: &Active,
        token: Option<&Token>,
    ) -> Result<Response, LogicalError> {
        let mut secret = Map::new();
        if let Some(t) = token {
            let acl = match t.entry.is_root() {
                true => None,
                false => Some(active.policies.acl(&t.entry.policies).await?),
            };
            let sees = |path: &str| acl.as_ref().is_none_or(|a| a.any_access_below(path));
            for m in self.mounts(active, MountKind::Secret)?.iter() {
                if sees(&m.entry.path) {
                    secret.insert(m.entry.path.clone(), Value::Object(m.entry.to_api()));
                }
            }
            let sys = crate::mounts::system_mount();
            if sees(&sys.path) {
                secret.insert(sys.path.clone(), Value::Object(sys.to_api()));
            }
        }
        Ok(Response::data(obj(json!({"auth": {}, "secret": secret}))))
    }

    async fn ui_mount(
        &self,
        active: &Active,
        path: &str,
        token: Option<&Token>,
    ) -> Result<Response, LogicalError> {
        let denied = || {
            LogicalError::Forbidden(
                "preflight capability check returned 403, please ensure client's policies grant access to path"
                    .to_string()
                    + &format!(" \"{path}\""),
            )
        };
        if token.is_none() {
            return Err(denied());
        }
        let mounts = self.mounts(active, MountKind::Secret)?;
        let m = crate::core::find_mount(&mounts, path).ok_or_else(denied)?;
        if let Some(t) = token.filter(|t| !t.entry.is_root()) {
            // Vault's preflight: the token may do something somewhere in the mount.
            let acl = active.policies.acl(&t.entry.policies).await?;
            if !acl.any_access_below(&m.entry.path) {
                return Err(denied());
            }
        }
        let mut data = m.entry.to_api();
        data.insert("path".into(), Value::String(m.entry.path.clone()));
        Ok(Response::data(data))
    }
}

pub(crate) fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}
