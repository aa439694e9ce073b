//! Transport-free request and response types shared by core and engines.

use serde_json::{Map, Value};

use crate::secret::SecretString;

/// What a request wants to do, as ACL capabilities name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// GET / HEAD.
    Read,
    /// POST/PUT on a path that does not exist yet.
    Create,
    /// POST/PUT.
    Update,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
    /// LIST or `?list=true`.
    List,
    /// SCAN or `?scan=true` (OpenBao): a recursive list.
    Scan,
}

impl Operation {
    /// The capability name used by policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
            Operation::List => "list",
            Operation::Scan => "scan",
        }
    }

    /// Create and update are one operation to handlers.
    pub fn is_write(self) -> bool {
        matches!(self, Operation::Create | Operation::Update)
    }
}

/// A decoded request.
#[derive(Clone)]
pub struct Request {
    /// UUID echoed as `request_id`.
    pub id: String,
    /// The operation.
    pub operation: Operation,
    /// Path below `/v1/`, without a leading slash; list paths end in `/`.
    pub path: String,
    /// Body or query parameters.
    pub data: Map<String, Value>,
    /// The client token, if one was sent.
    pub token: Option<SecretString>,
    /// The peer address, for audit and CIDR checks.
    pub remote_addr: Option<std::net::SocketAddr>,
    /// `X-Vault-Wrap-TTL`: answer with a single-use wrapping token instead.
    pub wrap_ttl: Option<u64>,
    /// `X-Coffer-Leak-Finding`: the scanner finding this request responds
    /// to (a gitleaks fingerprint), written to the audit log as a header.
    pub leak_finding: Option<String>,
}

impl std::fmt::Debug for Request {
    // Request data holds secret values and passwords: only its keys are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("operation", &self.operation)
            .field("path", &self.path)
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .field("remote_addr", &self.remote_addr)
            .field("wrap_ttl", &self.wrap_ttl)
            .finish_non_exhaustive()
    }
}

/// The header a leak response sends with each step, audited in clear.
pub const LEAK_FINDING_HEADER: &str = "x-coffer-leak-finding";

impl Request {
    /// A request with a fresh id and no data.
    pub fn new(operation: Operation, path: impl Into<String>) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            operation,
            path: path.into(),
            data: Map::new(),
            token: None,
            remote_addr: None,
            wrap_ttl: None,
            leak_finding: None,
        }
    }
}

/// A successful answer; the HTTP layer turns it into Vault's envelope.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// The `data` object.
    pub data: Option<Map<String, Value>>,
    /// Warnings shown to the client.
    pub warnings: Vec<String>,
    /// `lease_id` (empty when there is no lease).
    pub lease_id: String,
    /// Seconds the client may cache or hold the result.
    pub lease_duration: u64,
    /// Whether the lease can be renewed.
    pub renewable: bool,
    /// The `auth` block of a login or token creation.
    pub auth: Option<Value>,
    /// Copy `data`'s keys to the top level (legacy `sys/` routes clients rely on).
    pub inject_top_level: bool,
    /// A status other than 200, with the envelope as body (e.g. KV v2 404-with-body).
    pub status: Option<u16>,
    /// A successful login: core issues a token with these settings and fills `auth`.
    pub login: Option<LoginAuth>,
    /// Set when the real response was wrapped: the `wrap_info` block.
    pub wrap_info: Option<Value>,
    /// A secret with a lifetime: core records a lease and fills `lease_id`.
    pub secret: Option<LeaseSpec>,
    /// A body sent as it is instead of the envelope (`sys/metrics` in
    /// Prometheus format): content type and bytes.
    pub raw: Option<(&'static str, Vec<u8>)>,
}

/// What an engine says about a secret it created that must be revoked later.
#[derive(Clone, Default)]
pub struct LeaseSpec {
    /// Requested TTL, seconds (0: the mount's default).
    pub ttl: u64,
    /// Cap on renewals, seconds from issue (0: the mount's maximum).
    pub max_ttl: u64,
    /// Whether `sys/leases/renew` may extend it.
    pub renewable: bool,
    /// Kept with the lease behind the barrier and handed back to the engine
    /// at renewal and revocation (e.g. the database user's name); never sent
    /// to the client.
    pub internal: Map<String, Value>,
}

impl std::fmt::Debug for LeaseSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseSpec")
            .field("ttl", &self.ttl)
            .field("max_ttl", &self.max_ttl)
            .field("renewable", &self.renewable)
            .field("internal_keys", &self.internal.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What an auth method asks core to issue after a successful login.
#[derive(Debug, Clone, Default)]
pub struct LoginAuth {
    /// Policy names (normalised by core; `default` added unless `no_default_policy`).
    pub policies: Vec<String>,
    /// Token TTL, seconds (0: mount/system default).
    pub ttl: u64,
    /// Cap on renewals, seconds (0: mount/system max).
    pub max_ttl: u64,
    /// Hard cap, seconds.
    pub explicit_max_ttl: u64,
    /// Periodic token, seconds.
    pub period: u64,
    /// Use limit (0: unlimited).
    pub num_uses: i64,
    /// Do not add `default`.
    pub no_default_policy: bool,
    /// Metadata shown in the `auth` block and lookups.
    pub metadata: std::collections::BTreeMap<String, String>,
    /// Appended to the method name for the token's display name.
    pub display_name: String,
    /// Addresses the token may be used from (empty: anywhere).
    pub bound_cidrs: Vec<String>,
}

impl Response {
    /// A response carrying `data`.
    pub fn data(data: Map<String, Value>) -> Self {
        Self {
            data: Some(data),
            ..Self::default()
        }
    }

    /// A list response `{keys: [...]}`.
    pub fn list(keys: Vec<String>) -> Self {
        let mut m = Map::new();
        m.insert(
            "keys".into(),
            Value::Array(keys.into_iter().map(Value::String).collect()),
        );
        Self::data(m)
    }
}

/// Why a request failed; each maps to one HTTP status.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogicalError {
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 403.
    #[error("permission denied")]
    PermissionDenied,
    /// 403 with a specific message.
    #[error("{0}")]
    Forbidden(String),
    /// A bare 403 to the client (as Vault answers a refused login), whose
    /// reason only the audit log and the server log see.
    #[error("permission denied")]
    Refused(String),
    /// 404 with an empty error list.
    #[error("not found")]
    NotFound,
    /// 404 for a path no handler serves.
    #[error("unsupported path")]
    UnsupportedPath,
    /// 405.
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// 408: the request's body did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 429: the server is saturated with this kind of work; retry.
    #[error("{0}")]
    TooManyRequests(String),
    /// 415.
    #[error("PATCH requires Content-Type: application/merge-patch+json")]
    UnsupportedMediaType,
    /// 500.
    #[error("{0}")]
    Internal(String),
    /// 503.
    #[error("Vault is sealed")]
    Sealed,
    /// 503 for a part of the server that is briefly out of service; retry.
    #[error("{0}")]
    Unavailable(String),
    /// 503: the request would write and this node is not (or no longer) the
    /// active node of its HA cluster; nothing was written. A standby that
    /// began a request locally forwards it on this error.
    #[error("this node is not the active node; nothing was written; retry")]
    NotActive,
}

impl LogicalError {
    /// The HTTP status Vault uses for this error.
    pub fn status(&self) -> u16 {
        match self {
            LogicalError::BadRequest(_) => 400,
            LogicalError::PermissionDenied
            | LogicalError::Forbidden(_)
            | LogicalError::Refused(_) => 403,
            LogicalError::NotFound | LogicalError::UnsupportedPath => 404,
            LogicalError::UnsupportedOperation => 405,
            LogicalError::RequestTimeout(_) => 408,
            LogicalError::PayloadTooLarge(_) => 413,
            LogicalError::UnsupportedMediaType => 415,
            LogicalError::TooManyRequests(_) => 429,
            LogicalError::Internal(_) => 500,
            LogicalError::Sealed | LogicalError::Unavailable(_) | LogicalError::NotActive => 503,
        }
    }

    /// The error as audit entries record it: what the client saw, plus the
    /// reason of a refusal.
    pub fn audit_text(&self) -> String {
        match self {
            LogicalError::Refused(why) => format!("permission denied: {why}"),
            other => other.to_string(),
        }
    }

    /// The `errors` list of the body.
    pub fn messages(&self) -> Vec<String> {
        match self {
            LogicalError::NotFound => vec![],
            other => vec![other.to_string()],
        }
    }
}

impl From<crate::barrier::BarrierError> for LogicalError {
    fn from(e: crate::barrier::BarrierError) -> Self {
        match e {
            crate::barrier::BarrierError::Sealed => LogicalError::Sealed,
            crate::barrier::BarrierError::Storage(coffer_storage::StorageError::Fenced) => {
                LogicalError::NotActive
            }
            other => {
                tracing::error!(error = %other, "storage failure");
                LogicalError::Internal(other.to_string())
            }
        }
    }
}
