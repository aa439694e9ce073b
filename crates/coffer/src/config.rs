//! The server's HCL configuration file, in Vault's shape.
//!
//! Unknown keys and bad values are errors that name the key and its line, so
//! a typo never silently changes how secrets are stored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use coffer_core::fields::{parse_bool, parse_duration};
use hcl_edit::expr::Expression;
use hcl_edit::repr::Span;
use hcl_edit::structure::{Block, BlockLabel, Structure};

/// Where data is stored.
#[derive(Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// In memory; lost on exit.
    Inmem,
    /// Embedded redb file under a directory.
    File { path: PathBuf },
    /// A PostgreSQL table.
    Postgres {
        connection_url: String,
        table: String,
        max_parallel: usize,
        /// Set with `ha_enabled = "true"`.
        ha: Option<PostgresHaSettings>,
        /// Attempts to connect at start before giving up (`max_connect_retries`).
        connect_attempts: u32,
    },
}

/// The HA part of a PostgreSQL storage block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresHaSettings {
    /// The table of the leadership and fence rows (`ha_table`).
    pub table: String,
    /// How long leadership lasts unrenewed (`ha_lease_ttl`, coffer's own).
    pub lease_ttl: std::time::Duration,
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageConfig::Inmem => f.write_str("inmem"),
            StorageConfig::File { path } => write!(f, "file({})", path.display()),
            StorageConfig::Postgres { table, .. } => write!(f, "postgresql(table {table})"),
        }
    }
}

/// How the root key is protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealFileConfig {
    /// Operators unseal with key shares.
    Shamir,
    /// A static key from a file or an environment variable.
    Static {
        key_file: Option<PathBuf>,
        key_env: Option<String>,
    },
    /// A transit key on another coffer/Vault server.
    Transit(crate::transit_seal::TransitSealConfig),
}

/// The TCP listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// `host:port`.
    pub address: String,
    /// PEM files when TLS is on.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Where the cluster listener (forwarded requests, HA only) listens.
    pub cluster_address: Option<String>,
    /// Body size limit in bytes.
    pub max_request_size: usize,
    /// Timeouts and the connection bound.
    pub limits: coffer_http::ConnLimits,
    /// Whether `max_connections` was set (otherwise it follows the file
    /// descriptor limit at start).
    pub max_connections_set: bool,
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Storage backend.
    pub storage: StorageConfig,
    /// Listener.
    pub listener: ListenerConfig,
    /// Seal.
    pub seal: SealFileConfig,
    /// Address advertised to clients.
    pub api_addr: Option<String>,
    /// Address other nodes forward to (HA).
    pub cluster_addr: Option<String>,
    /// Log filter (`trace`, `debug`, `info`, `warn`, `error`).
    pub log_level: String,
    /// System default TTL, seconds.
    pub default_lease_ttl: u64,
    /// System max TTL, seconds.
    pub max_lease_ttl: u64,
    /// Reported cluster name.
    pub cluster_name: String,
    /// Entries kept in the storage read cache; 0 disables it.
    pub cache_size: usize,
    /// Audit devices declared with `audit "<type>" "<path>" { ... }`.
    pub audit: Vec<coffer_core::audit::DeviceSpec>,
    /// Where devices enabled through `sys/audit/:path` may write; set only
    /// when `audit_api = true`.
    pub audit_dir: Option<PathBuf>,
    /// Serve the web UI under `/ui/` (`ui = true`; dev mode turns it on).
    pub ui: bool,
    /// Log each completed request at this level (`log_requests_level`).
    pub log_requests: Option<tracing::Level>,
}

/// Vault's default physical cache size.
pub const DEFAULT_CACHE_SIZE: usize = 131_072;

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            address: "127.0.0.1:8200".into(),
            tls: None,
            cluster_address: None,
            max_request_size: coffer_http::DEFAULT_MAX_REQUEST_SIZE,
            limits: coffer_http::ConnLimits::default(),
            max_connections_set: false,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        let core = coffer_core::CoreConfig::default();
        Self {
            storage: StorageConfig::File {
                path: PathBuf::from("coffer-data"),
            },
            listener: ListenerConfig::default(),
            seal: SealFileConfig::Shamir,
            api_addr: None,
            cluster_addr: None,
            log_level: "info".into(),
            default_lease_ttl: core.default_lease_ttl,
            max_lease_ttl: core.max_lease_ttl,
            cluster_name: core.cluster_name,
            cache_size: DEFAULT_CACHE_SIZE,
            audit: Vec::new(),
            audit_dir: None,
            ui: false,
            log_requests: None,
        }
    }
}

/// A configuration problem, with its place in the file.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", .line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct ConfigError {
    file: String,
    line: Option<usize>,
    message: String,
}

#[derive(Debug, Clone)]
enum Scalar {
    Str(String),
    Num(String),
    Bool(bool),
}

/// A file being read: its name and text, for errors with line numbers.
pub(crate) struct Ctx<'a> {
    pub(crate) file: &'a str,
    pub(crate) src: &'a str,
}

impl Ctx<'_> {
    pub(crate) fn line(&self, span: Option<std::ops::Range<usize>>) -> Option<usize> {
        span.map(|r| {
            self.src[..r.start.min(self.src.len())]
                .matches('\n')
                .count()
                + 1
        })
    }

    pub(crate) fn err(&self, span: Option<std::ops::Range<usize>>, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: self.line(span),
            message,
        }
    }
}

/// Attributes of one block: key -> (value, line span).
struct Attrs<'c> {
    ctx: &'c Ctx<'c>,
    items: BTreeMap<String, (Scalar, Option<std::ops::Range<usize>>)>,
    what: String,
}

impl<'c> Attrs<'c> {
    fn read<'b>(
        ctx: &'c Ctx<'c>,
        structures: impl Iterator<Item = &'b Structure>,
        what: &str,
        allowed: &[&str],
    ) -> Result<Self, ConfigError> {
        let mut items = BTreeMap::new();
        for s in structures {
            match s {
                Structure::Attribute(a) => {
                    let key = a.key.value().as_str().to_owned();
                    if !allowed.contains(&key.as_str()) {
                        return Err(ctx.err(
                            a.span(),
                            format!(
                                "unknown key {key:?} in {what}; known keys: {}",
                                allowed.join(", ")
                            ),
                        ));
                    }
                    let v = scalar(&a.value).ok_or_else(|| {
                        ctx.err(
                            a.span(),
                            format!("{what}: {key:?} must be a string, number or bool"),
                        )
                    })?;
                    if items.insert(key.clone(), (v, a.span())).is_some() {
                        return Err(ctx.err(a.span(), format!("{what}: {key:?} is set twice")));
                    }
                }
                Structure::Block(b) => {
                    return Err(ctx.err(
                        b.span(),
                        format!("unexpected block {:?} in {what}", b.ident.value().as_str()),
                    ));
                }
            }
        }
        Ok(Self {
            ctx,
            items,
            what: what.to_owned(),
        })
    }

    fn bad(&self, key: &str, expected: &str) -> ConfigError {
        let span = self.items.get(key).and_then(|(_, s)| s.clone());
        self.ctx
            .err(span, format!("{}: {key:?} must be {expected}", self.what))
    }

    fn str(&self, key: &str) -> Option<String> {
        self.items.get(key).map(|(v, _)| match v {
            Scalar::Str(s) | Scalar::Num(s) => s.clone(),
            Scalar::Bool(b) => b.to_string(),
        })
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.items.get(key) {
            None => Ok(None),
            Some((Scalar::Bool(b), _)) => Ok(Some(*b)),
            Some((Scalar::Str(s) | Scalar::Num(s), _)) => {
                parse_bool(s).map(Some).ok_or_else(|| {
                    let hint = did_you_mean(s, &["true", "false"])
                        .map(|w| format!(" (did you mean {w}?)"))
                        .unwrap_or_default();
                    self.bad(key, &format!("true or false{hint}"))
                })
            }
        }
    }

    fn uint(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.str(key) {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| self.bad(key, "a whole number")),
        }
    }

    fn duration(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.str(key) {
            None => Ok(None),
            Some(s) => parse_duration(&s)
                .map(Some)
                .map_err(|_| self.bad(key, "a duration such as \"768h\" or 3600")),
        }
    }
}

fn scalar(e: &Expression) -> Option<Scalar> {
    Some(match e {
        Expression::String(s) => Scalar::Str(s.value().clone()),
        Expression::Number(n) => Scalar::Num(n.value().to_string()),
        Expression::Bool(b) => Scalar::Bool(*b.value()),
        _ => return None,
    })
}

fn one_label(ctx: &Ctx<'_>, b: &Block) -> Result<String, ConfigError> {
    let what = b.ident.value().as_str();
    match b.labels.as_slice() {
        [l] => Ok(match l {
            BlockLabel::Ident(i) => i.value().as_str().to_owned(),
            BlockLabel::String(s) => s.value().clone(),
        }),
        _ => Err(ctx.err(
            b.span(),
            format!("{what} block needs exactly one label, e.g. {what} \"file\" {{ ... }}"),
        )),
    }
}

/// The word of `known` that `given` is a likely typo of (at most two
/// single-letter edits or one swap of neighbours).
fn did_you_mean<'a>(given: &str, known: &[&'a str]) -> Option<&'a str> {
    let g: Vec<char> = given.to_lowercase().chars().collect();
    known.iter().copied().find(|k| {
        let k: Vec<char> = k.chars().collect();
        let swapped = g.len() == k.len()
            && (0..g.len().saturating_sub(1)).any(|i| {
                let mut s = g.clone();
                s.swap(i, i + 1);
                s == k
            });
        swapped || edit_distance(&g, &k) <= 2
    })
}

fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let (file, src) = read_source(path)?;
    parse(&file, &src)
}

/// A configuration file's name (for errors) and text.
pub(crate) fn read_source(path: &Path) -> Result<(String, String), ConfigError> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        line: None,
        message: format!("cannot read: {e}"),
    })?;
    Ok((file, src))
}

/// Parses HCL, naming the line of a syntax error.
pub(crate) fn parse_body(ctx: &Ctx<'_>) -> Result<hcl_edit::structure::Body, ConfigError> {
    hcl_edit::parser::parse_body(ctx.src).map_err(|e| ConfigError {
        file: ctx.file.to_owned(),
        line: Some(e.location().line()),
        message: format!("not valid HCL: {}", e.message()),
    })
}

/// Parses configuration text (HCL, or JSON as Vault accepts it); `file`
/// names it in errors.
pub fn parse(file: &str, src: &str) -> Result<Config, ConfigError> {
    if src.trim_start().starts_with('{') {
        let hcl = crate::config_json::to_hcl(src).map_err(|message| ConfigError {
            file: file.to_owned(),
            line: None,
            message,
        })?;
        // Lines of the converted text mean nothing to the reader.
        return parse_hcl(file, &hcl).map_err(|e| ConfigError { line: None, ..e });
    }
    parse_hcl(file, src)
}

fn parse_hcl(file: &str, src: &str) -> Result<Config, ConfigError> {
    let ctx = Ctx { file, src };
    let body = parse_body(&ctx)?;
    let mut cfg = Config::default();
    let mut seen_storage = false;
    let mut seen_listener = false;
    for s in body.iter() {
        let Structure::Block(b) = s else { continue };
        match b.ident.value().as_str() {
            "storage" => {
                if std::mem::replace(&mut seen_storage, true) {
                    return Err(ctx.err(b.span(), "only one storage block is allowed".into()));
                }
                cfg.storage = storage(&ctx, b)?;
            }
            "listener" => {
                if std::mem::replace(&mut seen_listener, true) {
                    return Err(ctx.err(b.span(), "only one listener block is supported".into()));
                }
                cfg.listener = listener(&ctx, b)?;
            }
            "seal" => cfg.seal = seal(&ctx, b)?,
            "audit" => {
                let device = audit(&ctx, b)?;
                if cfg.audit.iter().any(|d| d.path == device.path) {
                    return Err(ctx.err(
                        b.span(),
                        format!("audit device path {:?} is declared twice", device.path),
                    ));
                }
                cfg.audit.push(device);
            }
            other => {
                return Err(ctx.err(
                    b.span(),
                    format!(
                        "unknown block {other:?}; known blocks: storage, listener, seal, audit"
                    ),
                ));
            }
        }
    }
    let a = Attrs::read(
        &ctx,
        body.iter().filter(|s| s.is_attribute()),
        "the top level",
        &[
            "api_addr",
            "cluster_addr",
            "ui",
            "log_level",
            "log_requests_level",
            "default_lease_ttl",
            "max_lease_ttl",
            "cluster_name",
            "disable_mlock",
            "cache_size",
            "disable_cache",
            "audit_api",
            "audit_dir",
        ],
    )?;
    cfg.api_addr = a.str("api_addr");
    cfg.cluster_addr = a.str("cluster_addr");
    cfg.ui = a.bool("ui")?.unwrap_or(false);
    if let Some(l) = a.str("log_requests_level") {
        cfg.log_requests = match l.to_lowercase().as_str() {
            "off" | "" => None,
            "error" => Some(tracing::Level::ERROR),
            "warn" => Some(tracing::Level::WARN),
            "info" => Some(tracing::Level::INFO),
            "debug" => Some(tracing::Level::DEBUG),
            "trace" => Some(tracing::Level::TRACE),
            _ => {
                return Err(a.bad(
                    "log_requests_level",
                    "one of off, trace, debug, info, warn, error",
                ));
            }
        };
    }
    a.bool("disable_mlock")?;
    if let Some(l) = a.str("log_level") {
        let l = l.to_lowercase();
        if !["trace", "debug", "info", "warn", "error"].contains(&l.as_str()) {
            return Err(a.bad("log_level", "one of trace, debug, info, warn, error"));
        }
        cfg.log_level = l;
    }
    if let Some(d) = a.duration("default_lease_ttl")? {
        cfg.default_lease_ttl = d;
    }
    if let Some(m) = a.duration("max_lease_ttl")? {
        cfg.max_lease_ttl = m;
    }
    if cfg.default_lease_ttl > cfg.max_lease_ttl {
        return Err(a.bad("default_lease_ttl", "no more than max_lease_ttl"));
    }
    if let Some(n) = a.str("cluster_name") {
        cfg.cluster_name = n;
    }
    if let Some(n) = a.uint("cache_size")? {
        cfg.cache_size = n as usize;
    }
    if a.bool("disable_cache")?.unwrap_or(false) {
        cfg.cache_size = 0;
    }
    match (a.bool("audit_api")?.unwrap_or(false), a.str("audit_dir")) {
        (true, Some(dir)) => cfg.audit_dir = Some(PathBuf::from(dir)),
        (true, None) => {
            return Err(a.bad(
                "audit_api",
                "accompanied by audit_dir, the only directory API-enabled devices may write in",
            ));
        }
        (false, _) => {}
    }
    Ok(cfg)
}

/// `audit "file" "name" { file_path = ..., ... }`: type and path as labels,
/// the rest as the device's options.
fn audit(ctx: &Ctx<'_>, b: &Block) -> Result<coffer_core::audit::DeviceSpec, ConfigError> {
    let labels: Vec<String> = b
        .labels
        .iter()
        .map(|l| match l {
            BlockLabel::Ident(i) => i.value().as_str().to_owned(),
            BlockLabel::String(s) => s.value().clone(),
        })
        .collect();
    let [kind, path] = labels.as_slice() else {
        return Err(ctx.err(
            b.span(),
            "audit block needs a type and a path, e.g. audit \"file\" \"file\" { file_path = \"/var/log/coffer/audit.log\" }"
                .into(),
        ));
    };
    let what = format!("audit {kind:?} {path:?}");
    let mut known = crate::audit::known_options(kind).ok_or_else(|| {
        ctx.err(
            b.span(),
            format!("unknown audit device type {kind:?}; use \"file\" or \"socket\""),
        )
    })?;
    let option_keys = known.clone();
    known.extend(["description", "local"]);
    // OpenBao's form puts the options in a nested `options { ... }` block;
    // coffer's puts them in the stanza itself. Both load.
    let (nested, direct): (Vec<&Structure>, Vec<&Structure>) = b.body.iter().partition(|st| {
        matches!(st, Structure::Block(ob) if ob.ident.value().as_str() == "options" && ob.labels.is_empty())
    });
    let a = Attrs::read(ctx, direct.into_iter(), &what, &known)?;
    let path = coffer_core::audit::normalize_path(path).map_err(|e| ctx.err(b.span(), e))?;
    let mut options = BTreeMap::new();
    for (k, _) in a.items.iter() {
        if k != "description" && k != "local" {
            options.insert(k.clone(), a.str(k).unwrap_or_default());
        }
    }
    for st in nested {
        let Structure::Block(ob) = st else { continue };
        let o = Attrs::read(
            ctx,
            ob.body.iter(),
            &format!("{what} options"),
            &option_keys,
        )?;
        for (k, (_, span)) in o.items.iter() {
            if options
                .insert(k.clone(), o.str(k).unwrap_or_default())
                .is_some()
            {
                return Err(ctx.err(span.clone(), format!("{what}: {k:?} is set twice")));
            }
        }
    }
    let spec = coffer_core::audit::DeviceSpec {
        path,
        kind: kind.clone(),
        description: a.str("description").unwrap_or_default(),
        options,
        local: a.bool("local")?.unwrap_or(false),
    };
    coffer_core::audit::DeviceOptions::parse(&spec.options)
        .map_err(|e| ctx.err(b.span(), format!("{what}: {e}")))?;
    Ok(spec)
}

fn storage(ctx: &Ctx<'_>, b: &Block) -> Result<StorageConfig, ConfigError> {
    let kind = one_label(ctx, b)?;
    let what = format!("storage {kind:?}");
    match kind.as_str() {
        "inmem" => {
            Attrs::read(ctx, b.body.iter(), &what, &[])?;
            Ok(StorageConfig::Inmem)
        }
        "file" => {
            let a = Attrs::read(ctx, b.body.iter(), &what, &["path"])?;
            let path = a.str("path").ok_or_else(|| {
                ctx.err(b.span(), format!("{what} needs path = \"/dir/for/data\""))
            })?;
            Ok(StorageConfig::File { path: path.into() })
        }
        "postgresql" => {
            let a = Attrs::read(
                ctx,
                b.body.iter(),
                &what,
                &[
                    "connection_url",
                    "table",
                    "max_parallel",
                    "ha_enabled",
                    "ha_table",
                    "ha_lease_ttl",
                    "max_connect_retries",
                ],
            )?;
            let ha = if a.bool("ha_enabled")?.unwrap_or(false) {
                let lease_ttl = a.duration("ha_lease_ttl")?.unwrap_or(5);
                if lease_ttl < 1 {
                    return Err(a.bad("ha_lease_ttl", "at least 1s"));
                }
                Some(PostgresHaSettings {
                    table: a.str("ha_table").unwrap_or_else(|| "coffer_ha".into()),
                    lease_ttl: std::time::Duration::from_secs(lease_ttl),
                })
            } else {
                for k in ["ha_table", "ha_lease_ttl"] {
                    if a.str(k).is_some() {
                        return Err(a.bad(k, "used only with ha_enabled = \"true\""));
                    }
                }
                None
            };
            let connection_url = a
                .str("connection_url")
                .or_else(|| std::env::var("COFFER_PG_CONNECTION_URL").ok())
                .ok_or_else(|| {
                    ctx.err(
                        b.span(),
                        format!("{what} needs connection_url (or COFFER_PG_CONNECTION_URL)"),
                    )
                })?;
            Ok(StorageConfig::Postgres {
                connection_url,
                table: a.str("table").unwrap_or_else(|| "coffer_store".into()),
                max_parallel: a.uint("max_parallel")?.unwrap_or(16) as usize,
                ha,
                connect_attempts: u32::try_from(a.uint("max_connect_retries")?.unwrap_or(1))
                    .unwrap_or(u32::MAX)
                    .max(1),
            })
        }
        other => Err(ctx.err(
            b.span(),
            format!("unknown storage type {other:?}; use \"file\", \"postgresql\" or \"inmem\""),
        )),
    }
}

fn listener(ctx: &Ctx<'_>, b: &Block) -> Result<ListenerConfig, ConfigError> {
    let kind = one_label(ctx, b)?;
    if kind != "tcp" {
        return Err(ctx.err(
            b.span(),
            format!("unknown listener type {kind:?}; only \"tcp\" exists"),
        ));
    }
    let a = Attrs::read(
        ctx,
        b.body.iter(),
        "listener \"tcp\"",
        &[
            "address",
            "tls_disable",
            "tls_cert_file",
            "tls_key_file",
            "max_request_size",
            "http_read_header_timeout",
            "http_read_timeout",
            "http_idle_timeout",
            "tls_handshake_timeout",
            "max_connections",
            "cluster_address",
        ],
    )?;
    let mut l = ListenerConfig::default();
    if let Some(addr) = a.str("cluster_address") {
        if addr.parse::<std::net::SocketAddr>().is_err() && !addr.contains(':') {
            return Err(a.bad("cluster_address", "host:port, e.g. \"127.0.0.1:8201\""));
        }
        l.cluster_address = Some(addr);
    }
    // Vault's names; 0 keeps the default rather than meaning "no limit".
    for (key, slot) in [
        (
            "http_read_header_timeout",
            &mut l.limits.read_header_timeout,
        ),
        ("http_read_timeout", &mut l.limits.read_timeout),
        ("http_idle_timeout", &mut l.limits.idle_timeout),
        ("tls_handshake_timeout", &mut l.limits.tls_handshake_timeout),
    ] {
        if let Some(d) = a.duration(key)?.filter(|d| *d > 0) {
            *slot = std::time::Duration::from_secs(d);
        }
    }
    if let Some(m) = a.uint("max_connections")? {
        if m == 0 {
            return Err(a.bad("max_connections", "at least 1"));
        }
        l.limits.max_connections = usize::try_from(m).unwrap_or(usize::MAX);
        l.max_connections_set = true;
    }
    if let Some(addr) = a.str("address") {
        if addr.parse::<std::net::SocketAddr>().is_err() && !addr.contains(':') {
            return Err(a.bad("address", "host:port, e.g. \"127.0.0.1:8200\""));
        }
        l.address = addr;
    }
    if let Some(m) = a.uint("max_request_size")? {
        l.max_request_size = if m == 0 {
            coffer_http::DEFAULT_MAX_REQUEST_SIZE
        } else {
            m as usize
        };
    }
    let disabled = a.bool("tls_disable")?.unwrap_or(false);
    match (disabled, a.str("tls_cert_file"), a.str("tls_key_file")) {
        (true, _, _) => {}
        (false, Some(c), Some(k)) => l.tls = Some((c.into(), k.into())),
        (false, _, _) => {
            return Err(ctx.err(
                b.span(),
                "listener \"tcp\": TLS is on by default: set tls_cert_file and tls_key_file, or tls_disable = true"
                    .into(),
            ));
        }
    }
    Ok(l)
}

fn seal(ctx: &Ctx<'_>, b: &Block) -> Result<SealFileConfig, ConfigError> {
    let kind = one_label(ctx, b)?;
    match kind.as_str() {
        "shamir" => {
            Attrs::read(ctx, b.body.iter(), "seal \"shamir\"", &[])?;
            Ok(SealFileConfig::Shamir)
        }
        "static" => {
            let a = Attrs::read(
                ctx,
                b.body.iter(),
                "seal \"static\"",
                &["key_file", "key_env"],
            )?;
            let (key_file, key_env) = (a.str("key_file").map(PathBuf::from), a.str("key_env"));
            if key_file.is_some() == key_env.is_some() {
                return Err(ctx.err(
                    b.span(),
                    "seal \"static\" needs exactly one of key_file or key_env".into(),
                ));
            }
            Ok(SealFileConfig::Static { key_file, key_env })
        }
        "transit" => {
            let a = Attrs::read(
                ctx,
                b.body.iter(),
                "seal \"transit\"",
                &[
                    "address",
                    "token",
                    "key_name",
                    "mount_path",
                    "tls_ca_cert",
                    "tls_client_cert",
                    "tls_client_key",
                    "tls_server_name",
                    "tls_skip_verify",
                    "disable_renewal",
                ],
            )?;
            Ok(SealFileConfig::Transit(
                crate::transit_seal::TransitSealConfig {
                    address: a.str("address"),
                    token: a.str("token"),
                    key_name: a.str("key_name"),
                    mount_path: a.str("mount_path"),
                    tls_ca_cert: a.str("tls_ca_cert").map(PathBuf::from),
                    tls_client_cert: a.str("tls_client_cert").map(PathBuf::from),
                    tls_client_key: a.str("tls_client_key").map(PathBuf::from),
                    tls_server_name: a.str("tls_server_name"),
                    tls_skip_verify: a.bool("tls_skip_verify")?,
                    disable_renewal: a.bool("disable_renewal")?,
                },
            ))
        }
        other => Err(ctx.err(
            b.span(),
            format!("unknown seal type {other:?}; use \"shamir\", \"static\" or \"transit\""),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config_parses() {
        let c = parse(
            "t.hcl",
            r#"
storage "postgresql" {
  connection_url = "host=127.0.0.1 user=postgres"
  table = "t1"
  max_parallel = "8"
}
listener "tcp" {
  address = "127.0.0.1:9200"
  tls_disable = 1
}
seal "static" { key_env = "K" }
api_addr = "http://127.0.0.1:9200"
ui = true
log_level = "debug"
default_lease_ttl = "1h"
max_lease_ttl = "24h"
disable_mlock = true
"#,
        )
        .unwrap();
        assert_eq!(
            c.storage,
            StorageConfig::Postgres {
                connection_url: "host=127.0.0.1 user=postgres".into(),
                table: "t1".into(),
                max_parallel: 8,
                ha: None,
                connect_attempts: 1,
            }
        );
        assert_eq!(c.listener.address, "127.0.0.1:9200");
        assert!(c.listener.tls.is_none());
        assert_eq!(c.default_lease_ttl, 3600);
        assert!(matches!(c.seal, SealFileConfig::Static { .. }));
        assert!(c.ui);
        assert_eq!(c.log_requests, None);
    }

    #[test]
    fn log_requests_level_takes_a_level_or_off() {
        let at = |v: &str| parse("t.hcl", &format!("log_requests_level = \"{v}\"\n"));
        assert_eq!(at("INFO").unwrap().log_requests, Some(tracing::Level::INFO));
        assert_eq!(at("off").unwrap().log_requests, None);
        let e = at("loud").unwrap_err().to_string();
        assert!(
            e.contains("log_requests_level") && e.contains("line 1"),
            "{e}"
        );
        assert!(
            !parse("t.hcl", "").unwrap().ui,
            "the UI is off unless asked for, as in Vault"
        );
    }

    #[test]
    fn json_configs_read_like_hcl() {
        let c = parse(
            "c.json",
            r#"{"storage": {"postgresql": {"connection_url": "host=h", "table": "t2"}},
                "listener": [{"tcp": {"address": "127.0.0.1:9300", "tls_disable": "true"}}],
                "api_addr": "http://127.0.0.1:9300", "default_lease_ttl": "2h", "ui": true}"#,
        )
        .unwrap();
        assert_eq!(c.listener.address, "127.0.0.1:9300");
        assert_eq!(c.default_lease_ttl, 7200);
        assert!(matches!(c.storage, StorageConfig::Postgres { ref table, .. } if table == "t2"));
        let e = parse("c.json", r#"{"listener": {"tcp": {"adress": "x"}}}"#).unwrap_err();
        assert!(
            e.line.is_none() && e.message.contains("unknown key \"adress\""),
            "{e}"
        );
        let e = parse("c.json", "{\"storage\": ").unwrap_err();
        assert!(e.message.contains("not valid JSON"), "{e}");
    }

    #[test]
    fn typos_of_booleans_get_a_suggestion() {
        let e = parse("t.hcl", "listener \"tcp\" {\n  tls_disable = \"ture\"\n}\n").unwrap_err();
        assert!(e.message.contains("(did you mean true?)"), "{e}");
        assert_eq!(e.line, Some(2));
        let e = parse(
            "t.hcl",
            "listener \"tcp\" {\n  tls_disable = \"flase\"\n}\n",
        )
        .unwrap_err();
        assert!(e.message.contains("(did you mean false?)"), "{e}");
        let e = parse(
            "t.hcl",
            "listener \"tcp\" {\n  tls_disable = \"perhaps\"\n}\n",
        )
        .unwrap_err();
        assert!(!e.message.contains("did you mean"), "{e}");
    }

    #[test]
    fn audit_stanzas_in_both_shapes() {
        let c = parse(
            "a.hcl",
            r#"
audit "file" "file" {
  file_path = "/var/log/coffer/audit.log"
  hmac_accessor = false
}
audit "file" "bao-style" {
  description = "as OpenBao writes it"
  options {
    file_path = "/var/log/coffer/bao.log"
    log_raw = "false"
  }
}
audit_api = true
audit_dir = "/var/log/coffer/api"
"#,
        )
        .unwrap();
        assert_eq!(c.audit.len(), 2);
        assert_eq!(c.audit[0].path, "file/");
        assert_eq!(c.audit[0].options["hmac_accessor"], "false");
        assert_eq!(c.audit[1].description, "as OpenBao writes it");
        assert_eq!(c.audit[1].options["file_path"], "/var/log/coffer/bao.log");
        assert_eq!(
            c.audit_dir.as_deref(),
            Some(Path::new("/var/log/coffer/api"))
        );
        for (src, needle) in [
            ("audit \"file\" {\n}\n", "a type and a path"),
            ("audit \"syslog\" \"s\" {\n}\n", "unknown audit device type"),
            (
                "audit \"file\" \"f\" {\n file_path = \"x\"\n colour = 1\n}\n",
                "unknown key \"colour\"",
            ),
            (
                "audit \"file\" \"f\" {\n file_path = \"x\"\n options {\n  file_path = \"y\"\n }\n}\n",
                "set twice",
            ),
            (
                "audit \"file\" \"f\" {\n file_path = \"x\"\n prefix = \"a\\nb\"\n}\n",
                "control characters",
            ),
            ("audit_api = true\n", "audit_dir"),
        ] {
            let e = parse("c.hcl", src).unwrap_err().to_string();
            assert!(e.contains(needle), "{src:?} gave {e}");
        }
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let cases = [
            (
                "storage \"file\" {\n  path = \"x\"\n  paht = \"y\"\n}\n",
                "line 3",
                "unknown key \"paht\"",
            ),
            (
                "listener \"tcp\" {\n tls_disable = \"maybe\"\n}\n",
                "line 2",
                "tls_disable",
            ),
            ("\n\nfoo = 1\n", "line 3", "unknown key \"foo\""),
            ("storage \"s3\" {}\n", "line 1", "unknown storage type"),
            (
                "listener \"tcp\" {\n address = \"127.0.0.1:1\"\n}\n",
                "line 1",
                "tls_cert_file",
            ),
            ("storage \"file\" {\n", "line", "not valid HCL"),
            ("default_lease_ttl = \"1y\"\n", "line 1", "duration"),
        ];
        for (src, line, needle) in cases {
            let e = parse("c.hcl", src).unwrap_err().to_string();
            assert!(e.contains(line) && e.contains(needle), "{src:?} gave {e}");
        }
    }
}
