//! The agent's HCL configuration, in Vault/OpenBao Agent's shape, so an
//! existing agent file runs unchanged. Every error names the line; a block
//! or key the agent does not know is an error, never ignored.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use coffer_core::fields::{parse_bool, parse_duration};
use hcl_edit::expr::Expression;
use hcl_edit::repr::Span;
use hcl_edit::structure::{Block, BlockLabel, Structure};

pub use crate::config::ConfigError;
use crate::config::Ctx;

/// `vault { ... }`.
#[derive(Debug, Clone, Default)]
pub struct VaultBlock {
    pub address: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub tls_skip_verify: bool,
    pub tls_server_name: Option<String>,
    /// `retry { num_retries }`: attempts after the first (-1: none, 0: default 12).
    pub num_retries: i64,
}

/// `auto_auth { method "<type>" { ... } }`.
#[derive(Debug, Clone)]
pub struct Method {
    pub kind: String,
    pub mount_path: String,
    pub config: BTreeMap<String, String>,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    pub exit_on_err: bool,
}

/// `sink "file" { config { path, mode } }`.
#[derive(Debug, Clone)]
pub struct FileSink {
    pub path: PathBuf,
    pub mode: u32,
}

/// One `template { ... }`.
#[derive(Debug, Clone, Default)]
pub struct TemplateBlock {
    pub source: Option<PathBuf>,
    pub contents: Option<String>,
    pub destination: PathBuf,
    pub create_dest_dirs: bool,
    pub perms: Option<u32>,
    pub backup: bool,
    pub error_on_missing_key: bool,
    pub left_delimiter: String,
    pub right_delimiter: String,
    /// `exec { command }` or the older `command`: run after each change.
    pub command: Vec<String>,
    pub command_timeout: Duration,
    /// `wait { min }`: quiet time before rendering after a change.
    pub wait_min: Duration,
    /// The line, for messages.
    pub line: usize,
    /// `env_template "NAME"`: the text becomes this variable of the
    /// supervised command instead of a file.
    pub env: Option<String>,
}

/// `exec { ... }`: the command the agent supervises.
#[derive(Debug, Clone)]
pub struct ExecBlock {
    pub command: Vec<String>,
    /// `restart_on_secret_changes`: "always" (true) or "never".
    pub restart: bool,
    /// Sent to stop the command before a restart (default SIGTERM).
    pub stop_signal: i32,
    /// coffer's addition: signal the command instead of restarting it
    /// when only rendered files changed (its environment cannot change).
    pub reload_signal: Option<i32>,
    pub stdout: Option<PathBuf>,
    pub stderr: Option<PathBuf>,
    pub line: usize,
    /// Variables of the agent's own environment the command does not get.
    pub env_remove: Vec<String>,
}

/// Where the API proxy listens.
#[derive(Debug, Clone)]
pub enum Listener {
    Tcp {
        address: String,
        tls: Option<(PathBuf, PathBuf)>,
    },
    Unix {
        path: PathBuf,
        mode: u32,
    },
}

/// Whose token the API proxy sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProxyToken {
    /// The client's, always (`use_auto_auth_token = false`).
    #[default]
    Client,
    /// The agent's when the client sent none (`true`).
    WhenMissing,
    /// The agent's, always (`"force"`).
    Force,
}

/// A signal by name (`SIGHUP` or `HUP`).
pub fn signal_number(name: &str) -> Option<i32> {
    let n = name.trim().to_uppercase();
    let n = n.strip_prefix("SIG").unwrap_or(&n);
    Some(match n {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "TERM" => libc::SIGTERM,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "WINCH" => libc::SIGWINCH,
        _ => return None,
    })
}

/// The whole file.
#[derive(Debug, Clone, Default)]
pub struct AgentConfig {
    pub vault: VaultBlock,
    pub method: Option<Method>,
    pub sinks: Vec<FileSink>,
    pub templates: Vec<TemplateBlock>,
    pub exec: Option<ExecBlock>,
    pub listeners: Vec<Listener>,
    /// `api_proxy { use_auto_auth_token }`.
    pub auto_auth_token: ProxyToken,
    /// `cache {}`: the proxy keeps leased answers.
    pub cache: bool,
    pub static_secret_render_interval: Duration,
    pub exit_on_retry_failure: bool,
    pub exit_after_auth: bool,
    pub pid_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
enum Val {
    Str(String),
    Bool(bool),
    List(Vec<String>),
    /// `config = { ... }`: the attribute form of a block of scalars.
    Map(Vec<(String, Val)>),
}

/// One block's attributes and nested blocks, checked against what it may hold.
struct Body<'c, 'b> {
    ctx: &'c Ctx<'c>,
    what: String,
    attrs: BTreeMap<String, (Val, Option<Range<usize>>)>,
    blocks: Vec<&'b Block>,
}

impl<'c, 'b> Body<'c, 'b> {
    fn read(
        ctx: &'c Ctx<'c>,
        what: &str,
        body: &'b hcl_edit::structure::Body,
        keys: &[&str],
        blocks: &[&str],
    ) -> Result<Self, ConfigError> {
        let mut out = Body {
            ctx,
            what: what.to_owned(),
            attrs: BTreeMap::new(),
            blocks: Vec::new(),
        };
        for s in body.iter() {
            match s {
                Structure::Attribute(a) => {
                    let key = a.key.value().as_str().to_owned();
                    let as_block =
                        blocks.contains(&key.as_str()) && matches!(a.value, Expression::Object(_));
                    if !keys.contains(&key.as_str()) && !as_block {
                        return Err(ctx.err(
                            a.span(),
                            format!(
                                "unknown key {key:?} in {what}; known keys: {}",
                                keys.join(", ")
                            ),
                        ));
                    }
                    let v = value(&a.value).ok_or_else(|| {
                        ctx.err(
                            a.span(),
                            format!(
                                "{what}: {key:?} must be a string, number, bool or list of strings"
                            ),
                        )
                    })?;
                    if out.attrs.insert(key.clone(), (v, a.span())).is_some() {
                        return Err(ctx.err(a.span(), format!("{what}: {key:?} is set twice")));
                    }
                }
                Structure::Block(b) => {
                    let name = b.ident.value().as_str();
                    if !blocks.contains(&name) {
                        return Err(ctx.err(
                            b.span(),
                            if blocks.is_empty() {
                                format!("unexpected block {name:?} in {what}")
                            } else {
                                format!(
                                    "unknown block {name:?} in {what}; known blocks: {}",
                                    blocks.join(", ")
                                )
                            },
                        ));
                    }
                    out.blocks.push(b);
                }
            }
        }
        Ok(out)
    }

    fn bad(&self, key: &str, expected: &str) -> ConfigError {
        let span = self.attrs.get(key).and_then(|(_, s)| s.clone());
        self.ctx
            .err(span, format!("{}: {key:?} must be {expected}", self.what))
    }

    fn str(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.attrs.get(key) {
            None => Ok(None),
            Some((Val::Str(s), _)) => Ok(Some(s.clone())),
            Some((Val::Bool(b), _)) => Ok(Some(b.to_string())),
            Some((Val::List(_) | Val::Map(_), _)) => Err(self.bad(key, "a string")),
        }
    }

    /// `name { k = v }` or `name = { k = v }`, with only `known` keys.
    fn map(
        &self,
        name: &str,
        known: &[&str],
    ) -> Result<Option<BTreeMap<String, String>>, ConfigError> {
        let what = format!("{} {name}", self.what);
        if let Some((Val::Map(items), span)) = self.attrs.get(name) {
            let mut out = BTreeMap::new();
            for (k, v) in items {
                if !known.contains(&k.as_str()) {
                    return Err(self.ctx.err(
                        span.clone(),
                        format!(
                            "unknown key {k:?} in {what}; known keys: {}",
                            known.join(", ")
                        ),
                    ));
                }
                let v = match v {
                    Val::Str(s) => s.clone(),
                    Val::Bool(b) => b.to_string(),
                    _ => {
                        return Err(self
                            .ctx
                            .err(span.clone(), format!("{what}: {k:?} must be a string")));
                    }
                };
                out.insert(k.clone(), v);
            }
            return Ok(Some(out));
        }
        let Some(b) = self.one_block(name)? else {
            return Ok(None);
        };
        let body = Body::read(self.ctx, &what, &b.body, known, &[])?;
        let mut out = BTreeMap::new();
        for k in body.attrs.keys() {
            out.insert(k.clone(), body.str(k)?.unwrap_or_default());
        }
        Ok(Some(out))
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.attrs.get(key) {
            None => Ok(default),
            Some((Val::Bool(b), _)) => Ok(*b),
            Some((Val::Str(s), _)) => parse_bool(s).ok_or_else(|| self.bad(key, "true or false")),
            Some((Val::List(_) | Val::Map(_), _)) => Err(self.bad(key, "true or false")),
        }
    }

    fn duration(&self, key: &str) -> Result<Option<Duration>, ConfigError> {
        match self.str(key)? {
            None => Ok(None),
            Some(s) => parse_duration(&s)
                .map(|d| Some(Duration::from_secs(d)))
                .map_err(|_| self.bad(key, "a duration such as \"30s\" or 30")),
        }
    }

    fn mode(&self, key: &str) -> Result<Option<u32>, ConfigError> {
        match self.str(key)? {
            None => Ok(None),
            Some(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .map(Some)
                .ok_or_else(|| self.bad(key, "an octal file mode such as \"0600\"")),
        }
    }

    /// A command: a list, or one string split on spaces (the older form).
    fn command(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        Ok(match self.attrs.get(key) {
            None => Vec::new(),
            Some((Val::List(l), _)) => l.clone(),
            Some((Val::Str(s), _)) => s.split_whitespace().map(str::to_owned).collect(),
            Some((Val::Bool(_) | Val::Map(_), _)) => return Err(self.bad(key, "a list of strings")),
        })
    }

    fn blocks<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'b Block> + 's {
        self.blocks
            .iter()
            .copied()
            .filter(move |b| b.ident.value().as_str() == name)
    }

    fn one_block(&self, name: &str) -> Result<Option<&'b Block>, ConfigError> {
        let mut it = self.blocks(name);
        let first = it.next();
        if let Some(second) = it.next() {
            return Err(self.ctx.err(
                second.span(),
                format!("only one {name} block is allowed in {}", self.what),
            ));
        }
        Ok(first)
    }
}

fn value(e: &Expression) -> Option<Val> {
    Some(match e {
        Expression::String(s) => Val::Str(s.value().clone()),
        Expression::Number(n) => Val::Str(n.value().to_string()),
        Expression::Bool(b) => Val::Bool(*b.value()),
        Expression::Array(a) => Val::List(
            a.iter()
                .map(|x| match x {
                    Expression::String(s) => Some(s.value().clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?,
        ),
        // `<<EOT` text without `${...}`: templates are often written so.
        Expression::HeredocTemplate(h) => Val::Str(literal(&h.template)?),
        Expression::Object(o) => Val::Map(
            o.iter()
                .map(|(k, v)| {
                    let key = match k {
                        hcl_edit::expr::ObjectKey::Ident(i) => i.value().as_str().to_owned(),
                        hcl_edit::expr::ObjectKey::Expression(Expression::String(s)) => {
                            s.value().clone()
                        }
                        _ => return None,
                    };
                    Some((key, value(v.expr())?))
                })
                .collect::<Option<Vec<_>>>()?,
        ),
        _ => return None,
    })
}

/// A template's text when it is only literal text (no `${...}`).
fn literal(t: &hcl_edit::template::Template) -> Option<String> {
    t.iter()
        .map(|e| match e {
            hcl_edit::template::Element::Literal(s) => Some(s.value().clone()),
            _ => None,
        })
        .collect()
}

fn label(b: &Block) -> Option<String> {
    match b.labels.as_slice() {
        [l] => Some(match l {
            BlockLabel::Ident(i) => i.value().as_str().to_owned(),
            BlockLabel::String(s) => s.value().clone(),
        }),
        _ => None,
    }
}

/// Reads and parses `path`.
pub fn load(path: &std::path::Path) -> Result<AgentConfig, ConfigError> {
    let (file, src) = crate::config::read_source(path)?;
    parse(&file, &src)
}

/// Blocks Vault's agent has that this one does not serve yet: refused by
/// name, so nobody believes they took effect.
const NOT_YET: &[&str] = &["telemetry"];

/// Parses agent configuration text; `file` names it in errors.
pub fn parse(file: &str, src: &str) -> Result<AgentConfig, ConfigError> {
    let ctx = Ctx { file, src };
    let body = crate::config::parse_body(&ctx)?;
    let mut top_blocks = vec![
        "vault",
        "auto_auth",
        "template",
        "template_config",
        "exec",
        "env_template",
        "listener",
        "api_proxy",
        "cache",
    ];
    top_blocks.extend(NOT_YET);
    let top = Body::read(
        &ctx,
        "the agent configuration",
        &body,
        &[
            "pid_file",
            "exit_after_auth",
            "log_level",
            "log_file",
            "disable_idle_connections",
            "disable_keep_alives",
        ],
        &top_blocks,
    )?;
    if let Some(b) = NOT_YET.iter().find_map(|n| top.blocks(n).next()) {
        let name = b.ident.value().as_str();
        return Err(ctx.err(
            b.span(),
            format!("coffer agent does not serve {name:?} blocks yet; run bao agent for them, or remove the block"),
        ));
    }
    let mut cfg = AgentConfig {
        static_secret_render_interval: Duration::from_secs(300),
        exit_after_auth: top.bool("exit_after_auth", false)?,
        pid_file: top.str("pid_file")?.map(PathBuf::from),
        ..AgentConfig::default()
    };
    if let Some(v) = top.one_block("vault")? {
        cfg.vault = vault(&ctx, v)?;
    }
    if let Some(a) = top.one_block("auto_auth")? {
        let (method, sinks) = auto_auth(&ctx, a)?;
        cfg.method = Some(method);
        cfg.sinks = sinks;
    }
    if let Some(t) = top.one_block("template_config")? {
        let b = Body::read(
            &ctx,
            "template_config",
            &t.body,
            &[
                "static_secret_render_interval",
                "exit_on_retry_failure",
                "max_connections_per_host",
                "lease_renewal_threshold",
            ],
            &[],
        )?;
        if let Some(d) = b.duration("static_secret_render_interval")? {
            cfg.static_secret_render_interval = d.max(Duration::from_secs(1));
        }
        cfg.exit_on_retry_failure = b.bool("exit_on_retry_failure", false)?;
    }
    for t in top.blocks("template") {
        cfg.templates.push(template(&ctx, t)?);
    }
    let files = cfg.templates.len();
    for t in top.blocks("env_template") {
        cfg.templates.push(env_template(&ctx, t)?);
    }
    if let Some(e) = top.one_block("exec")? {
        cfg.exec = Some(exec(&ctx, e)?);
    }
    for l in top.blocks("listener") {
        cfg.listeners.push(listener(&ctx, l)?);
    }
    if let Some(p) = top.one_block("api_proxy")? {
        let pb = Body::read(&ctx, "api_proxy", &p.body, &["use_auto_auth_token"], &[])?;
        cfg.auto_auth_token = match pb.attrs.get("use_auto_auth_token").map(|(v, _)| v) {
            None | Some(Val::Bool(false)) => ProxyToken::Client,
            Some(Val::Bool(true)) => ProxyToken::WhenMissing,
            Some(Val::Str(s)) if s == "force" => ProxyToken::Force,
            Some(Val::Str(s)) if s == "true" => ProxyToken::WhenMissing,
            Some(Val::Str(s)) if s == "false" => ProxyToken::Client,
            Some(_) => return Err(pb.bad("use_auto_auth_token", "true, false or \"force\"")),
        };
        if cfg.auto_auth_token != ProxyToken::Client && cfg.method.is_none() {
            return Err(ctx.err(
                p.span(),
                "api_proxy.use_auto_auth_token needs an auto_auth block".into(),
            ));
        }
        if top.blocks("env_template").next().is_some() {
            return Err(ctx.err(
                p.span(),
                "api_proxy cannot be used with env_template entries".into(),
            ));
        }
        if cfg.listeners.is_empty() {
            return Err(ctx.err(
                p.span(),
                "api_proxy needs a listener block to serve on".into(),
            ));
        }
    }
    if let Some(c) = top.one_block("cache")? {
        let cb = Body::read(&ctx, "cache", &c.body, &["use_auto_auth_token"], &[])?;
        if cfg.listeners.is_empty() {
            return Err(ctx.err(
                c.span(),
                "cache needs a listener block: it caches what the API proxy passes on".into(),
            ));
        }
        if top.one_block("api_proxy")?.is_none() {
            // The older form: cache { use_auto_auth_token = ... }.
            cfg.auto_auth_token = match cb.str("use_auto_auth_token")?.as_deref() {
                None | Some("false") => ProxyToken::Client,
                Some("true") => ProxyToken::WhenMissing,
                Some("force") => ProxyToken::Force,
                Some(_) => return Err(cb.bad("use_auto_auth_token", "true, false or \"force\"")),
            };
        }
        cfg.cache = true;
    }
    let envs = cfg.templates.len() - files;
    if envs > 0 && cfg.exec.is_none() {
        let first = top.blocks("env_template").next().and_then(|b| b.span());
        return Err(ctx.err(first, "env_template entries need an exec block: their values are the environment of its command".into()));
    }
    if cfg.method.is_none()
        && cfg.templates.is_empty()
        && cfg.exec.is_none()
        && cfg.listeners.is_empty()
    {
        return Err(ctx.err(
            None,
            "nothing to do: add an auto_auth block or template blocks".into(),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for t in cfg.templates.iter().filter(|t| t.env.is_none()) {
        if !seen.insert(t.destination.clone()) {
            return Err(ctx.err(
                None,
                format!(
                    "template at line {}: destination {} is used by two templates",
                    t.line,
                    t.destination.display()
                ),
            ));
        }
    }
    Ok(cfg)
}

fn vault(ctx: &Ctx<'_>, b: &Block) -> Result<VaultBlock, ConfigError> {
    let v = Body::read(
        ctx,
        "vault",
        &b.body,
        &[
            "address",
            "ca_cert",
            "ca_path",
            "client_cert",
            "client_key",
            "tls_skip_verify",
            "tls_server_name",
            "namespace",
        ],
        &["retry"],
    )?;
    if v.attrs.contains_key("ca_path") {
        return Err(v.bad("ca_path", "left out: give one PEM file as ca_cert"));
    }
    let mut out = VaultBlock {
        address: v.str("address")?,
        ca_cert: v.str("ca_cert")?.map(PathBuf::from),
        client_cert: v.str("client_cert")?.map(PathBuf::from),
        client_key: v.str("client_key")?.map(PathBuf::from),
        tls_skip_verify: v.bool("tls_skip_verify", false)?,
        tls_server_name: v.str("tls_server_name")?,
        num_retries: 0,
    };
    if let Some(r) = v.one_block("retry")? {
        let r = Body::read(ctx, "vault.retry", &r.body, &["num_retries"], &[])?;
        if let Some(n) = r.str("num_retries")? {
            out.num_retries = n
                .parse()
                .map_err(|_| r.bad("num_retries", "a whole number"))?;
        }
    }
    Ok(out)
}

fn auto_auth(ctx: &Ctx<'_>, b: &Block) -> Result<(Method, Vec<FileSink>), ConfigError> {
    let a = Body::read(
        ctx,
        "auto_auth",
        &b.body,
        &["enable_reauth_on_new_credentials"],
        &["method", "sink"],
    )?;
    let m = a
        .one_block("method")?
        .ok_or_else(|| ctx.err(b.span(), "auto_auth needs a method block".into()))?;
    let kind = label(m)
        .or_else(|| {
            // `method { type = "approle" }` is the older form.
            m.body.iter().find_map(|s| match s {
                Structure::Attribute(at) if at.key.value().as_str() == "type" => match &at.value {
                    Expression::String(s) => Some(s.value().clone()),
                    _ => None,
                },
                _ => None,
            })
        })
        .ok_or_else(|| {
            ctx.err(
                m.span(),
                "method needs a type: method \"approle\" { ... }".into(),
            )
        })?;
    let known: &[&str] = match kind.as_str() {
        "approle" => &[
            "role_id_file_path",
            "secret_id_file_path",
            "remove_secret_id_file_after_reading",
        ],
        "token_file" => &["token_file_path"],
        "jwt" => &[
            "path",
            "role",
            "remove_jwt_after_reading",
            "remove_jwt_follows_symlinks",
        ],
        "kubernetes" => &["role", "token_path"],
        other => {
            return Err(ctx.err(
                m.span(),
                format!("auto_auth method {other:?} is not one coffer agent has: approle, token_file, jwt, kubernetes"),
            ));
        }
    };
    let mb = Body::read(
        ctx,
        &format!("method {kind:?}"),
        &m.body,
        &[
            "type",
            "mount_path",
            "namespace",
            "wrap_ttl",
            "min_backoff",
            "max_backoff",
            "exit_on_err",
        ],
        &["config"],
    )?;
    if mb.attrs.contains_key("wrap_ttl") {
        return Err(mb.bad(
            "wrap_ttl",
            "left out: coffer agent renews its own token, which a wrapped login would prevent",
        ));
    }
    let config = mb.map("config", known)?.unwrap_or_default();
    let required: &[&str] = match kind.as_str() {
        "approle" => &["role_id_file_path", "secret_id_file_path"],
        "token_file" => &["token_file_path"],
        "jwt" => &["path", "role"],
        _ => &["role"],
    };
    if let Some(missing) = required.iter().find(|k| !config.contains_key(**k)) {
        return Err(ctx.err(
            m.span(),
            format!("method {kind:?}: config needs {missing:?}"),
        ));
    }
    let method = Method {
        mount_path: mb
            .str("mount_path")?
            .unwrap_or_else(|| format!("auth/{kind}"))
            .trim_matches('/')
            .to_owned(),
        kind,
        config,
        min_backoff: mb
            .duration("min_backoff")?
            .unwrap_or(Duration::from_secs(1)),
        max_backoff: mb
            .duration("max_backoff")?
            .unwrap_or(Duration::from_secs(300)),
        exit_on_err: mb.bool("exit_on_err", false)?,
    };
    let mut sinks = Vec::new();
    for s in a.blocks("sink") {
        let kind = label(s).unwrap_or_default();
        if kind != "file" {
            return Err(ctx.err(
                s.span(),
                format!("sink {kind:?}: only \"file\" sinks exist"),
            ));
        }
        let sb = Body::read(
            ctx,
            "sink \"file\"",
            &s.body,
            &[
                "wrap_ttl",
                "dh_type",
                "dh_path",
                "aad",
                "aad_env_var",
                "derive_key",
            ],
            &["config"],
        )?;
        if let Some(k) = [
            "wrap_ttl",
            "dh_type",
            "dh_path",
            "aad",
            "aad_env_var",
            "derive_key",
        ]
        .iter()
        .find(|k| sb.attrs.contains_key(**k))
        {
            return Err(sb.bad(k, "left out: coffer agent writes the plain token, with the file's mode as its protection"));
        }
        let c = sb
            .map("config", &["path", "mode"])?
            .ok_or_else(|| ctx.err(s.span(), "sink \"file\" needs config { path = ... }".into()))?;
        let path = c
            .get("path")
            .ok_or_else(|| ctx.err(s.span(), "sink \"file\" config needs a path".into()))?;
        let mode = match c.get("mode") {
            // Vault's agent writes sinks 0640 unless told otherwise.
            None => 0o640,
            Some(m) => u32::from_str_radix(m, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| {
                    ctx.err(
                        s.span(),
                        format!("sink \"file\" config: mode {m:?} is not an octal file mode"),
                    )
                })?,
        };
        sinks.push(FileSink {
            path: PathBuf::from(path),
            mode,
        });
    }
    Ok((method, sinks))
}

fn listener(ctx: &Ctx<'_>, b: &Block) -> Result<Listener, ConfigError> {
    let kind = label(b).unwrap_or_default();
    let what = format!("listener {kind:?}");
    match kind.as_str() {
        "tcp" => {
            let l = Body::read(
                ctx,
                &what,
                &b.body,
                &["address", "tls_disable", "tls_cert_file", "tls_key_file"],
                &[],
            )?;
            let address = l.str("address")?.unwrap_or_else(|| "127.0.0.1:8200".into());
            let tls = if l.bool("tls_disable", false)? {
                None
            } else {
                match (l.str("tls_cert_file")?, l.str("tls_key_file")?) {
                    (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
                    _ => {
                        return Err(ctx.err(
                            b.span(),
                            format!(
                                "{what} needs tls_cert_file and tls_key_file, or tls_disable = true"
                            ),
                        ));
                    }
                }
            };
            Ok(Listener::Tcp { address, tls })
        }
        "unix" => {
            let l = Body::read(
                ctx,
                &what,
                &b.body,
                &["address", "socket_mode", "tls_disable"],
                &[],
            )?;
            let path = l.str("address")?.ok_or_else(|| {
                ctx.err(
                    b.span(),
                    format!("{what} needs an address (the socket's path)"),
                )
            })?;
            Ok(Listener::Unix {
                path: PathBuf::from(path),
                mode: l.mode("socket_mode")?.unwrap_or(0o600),
            })
        }
        other => Err(ctx.err(
            b.span(),
            format!("listener {other:?}: use \"tcp\" or \"unix\""),
        )),
    }
}

fn exec(ctx: &Ctx<'_>, b: &Block) -> Result<ExecBlock, ConfigError> {
    let e = Body::read(
        ctx,
        "exec",
        &b.body,
        &[
            "command",
            "restart_on_secret_changes",
            "restart_stop_signal",
            "reload_signal",
            "child_process_stdout",
            "child_process_stderr",
        ],
        &[],
    )?;
    let command = e.command("command")?;
    if command.is_empty() {
        return Err(ctx.err(
            b.span(),
            "exec needs a command, e.g. command = [\"./app\", \"--serve\"]".into(),
        ));
    }
    let restart = match e.str("restart_on_secret_changes")?.as_deref() {
        None | Some("always") => true,
        Some("never") => false,
        Some(_) => return Err(e.bad("restart_on_secret_changes", "\"always\" or \"never\"")),
    };
    let signal = |key: &str| -> Result<Option<i32>, ConfigError> {
        match e.str(key)? {
            None => Ok(None),
            Some(s) => signal_number(&s)
                .map(Some)
                .ok_or_else(|| e.bad(key, "a signal name such as \"SIGTERM\" or \"SIGHUP\"")),
        }
    };
    Ok(ExecBlock {
        command,
        restart,
        stop_signal: signal("restart_stop_signal")?.unwrap_or(libc::SIGTERM),
        reload_signal: signal("reload_signal")?,
        stdout: e.str("child_process_stdout")?.map(PathBuf::from),
        stderr: e.str("child_process_stderr")?.map(PathBuf::from),
        line: ctx.line(b.span()).unwrap_or(0),
        env_remove: Vec::new(),
    })
}

fn env_template(ctx: &Ctx<'_>, b: &Block) -> Result<TemplateBlock, ConfigError> {
    let name = label(b).filter(|n| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    let Some(name) = name else {
        return Err(ctx.err(b.span(), "env_template needs a variable name as its label, e.g. env_template \"DB_PASSWORD\" { ... }".into()));
    };
    let t = Body::read(
        ctx,
        &format!("env_template {name:?}"),
        &b.body,
        &[
            "source",
            "contents",
            "error_on_missing_key",
            "left_delimiter",
            "right_delimiter",
        ],
        &[],
    )?;
    let (source, contents) = (t.str("source")?, t.str("contents")?);
    if source.is_some() == contents.is_some() {
        return Err(ctx.err(
            b.span(),
            format!("env_template {name:?} needs exactly one of source and contents"),
        ));
    }
    Ok(TemplateBlock {
        source: source.map(PathBuf::from),
        contents,
        error_on_missing_key: t.bool("error_on_missing_key", false)?,
        left_delimiter: t.str("left_delimiter")?.unwrap_or_else(|| "{{".into()),
        right_delimiter: t.str("right_delimiter")?.unwrap_or_else(|| "}}".into()),
        line: ctx.line(b.span()).unwrap_or(0),
        env: Some(name),
        ..TemplateBlock::default()
    })
}

fn template(ctx: &Ctx<'_>, b: &Block) -> Result<TemplateBlock, ConfigError> {
    let t = Body::read(
        ctx,
        "template",
        &b.body,
        &[
            "source",
            "contents",
            "destination",
            "create_dest_dirs",
            "perms",
            "backup",
            "error_on_missing_key",
            "left_delimiter",
            "right_delimiter",
            "command",
            "command_timeout",
            "sandbox_path",
            "error_fatal",
        ],
        &["exec", "wait"],
    )?;
    let line = ctx.line(b.span()).unwrap_or(0);
    let destination = t
        .str("destination")?
        .ok_or_else(|| ctx.err(b.span(), "template needs a destination".into()))?;
    let (source, contents) = (t.str("source")?, t.str("contents")?);
    if source.is_some() == contents.is_some() {
        return Err(ctx.err(
            b.span(),
            "template needs exactly one of source and contents".into(),
        ));
    }
    let mut out = TemplateBlock {
        source: source.map(PathBuf::from),
        contents,
        destination: PathBuf::from(destination),
        create_dest_dirs: t.bool("create_dest_dirs", true)?,
        perms: t.mode("perms")?,
        backup: t.bool("backup", false)?,
        error_on_missing_key: t.bool("error_on_missing_key", false)?,
        left_delimiter: t.str("left_delimiter")?.unwrap_or_else(|| "{{".into()),
        right_delimiter: t.str("right_delimiter")?.unwrap_or_else(|| "}}".into()),
        command: t.command("command")?,
        command_timeout: t
            .duration("command_timeout")?
            .unwrap_or(Duration::from_secs(30)),
        wait_min: Duration::ZERO,
        line,
        env: None,
    };
    if let Some(e) = t.one_block("exec")? {
        if !out.command.is_empty() {
            return Err(ctx.err(
                e.span(),
                "template: use exec { command } or command, not both".into(),
            ));
        }
        let eb = Body::read(ctx, "template exec", &e.body, &["command", "timeout"], &[])?;
        out.command = eb.command("command")?;
        if let Some(d) = eb.duration("timeout")? {
            out.command_timeout = d;
        }
    }
    if let Some(w) = t.one_block("wait")? {
        let wb = Body::read(ctx, "template wait", &w.body, &["min", "max"], &[])?;
        out.wait_min = wb.duration("min")?.unwrap_or_default();
        // Changes are gathered for `min` once, so `max` bounds nothing more
        // as long as it is not below `min`.
        if let Some(max) = wb.duration("max")?
            && max < out.wait_min
        {
            return Err(wb.bad("max", "at least min"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_openbao_agent_file_loads() {
        let cfg = parse(
            "agent.hcl",
            r#"
pid_file = "./pidfile"
vault {
  address = "http://127.0.0.1:8200"
  retry { num_retries = 5 }
}
auto_auth {
  method "approle" {
    mount_path = "auth/approle"
    config = {
      role_id_file_path = "role"
      secret_id_file_path = "secret"
      remove_secret_id_file_after_reading = false
    }
  }
  sink "file" { config = { path = "/tmp/token" } }
}
template_config { static_secret_render_interval = "10s" }
template {
  contents    = "{{ with secret \"secret/data/app\" }}{{ .Data.data.pw }}{{ end }}"
  destination = "out.txt"
  perms       = "0640"
  exec { command = ["sh", "-c", "true"] }
}
"#,
        );
        // `config = { ... }` is an object, not a block: Vault's files use both.
        let cfg = cfg.expect("loads");
        let m = cfg.method.expect("method");
        assert_eq!(m.kind, "approle");
        assert_eq!(m.config["remove_secret_id_file_after_reading"], "false");
        assert_eq!(cfg.sinks[0].mode, 0o640);
        assert_eq!(cfg.vault.num_retries, 5);
        assert_eq!(cfg.static_secret_render_interval, Duration::from_secs(10));
        assert_eq!(cfg.templates[0].perms, Some(0o640));
        assert_eq!(cfg.templates[0].command, ["sh", "-c", "true"]);
    }

    #[test]
    fn heredoc_templates_are_text() {
        let cfg = parse(
            "h.hcl",
            "template {\n  contents = <<-EOT\n    a {{ .x }}\n      b\n  EOT\n  destination = \"o\"\n}\nexec { command = [\"true\"] }\n",
        )
        .expect("loads");
        assert_eq!(
            cfg.templates[0].contents.as_deref(),
            Some("a {{ .x }}\n  b\n")
        );
    }

    #[test]
    fn mistakes_name_their_line() {
        let e = parse("a.hcl", "vault {\n  adress = \"x\"\n}\n").expect_err("typo");
        assert!(
            e.to_string()
                .starts_with("a.hcl line 2: unknown key \"adress\""),
            "{e}"
        );
        let e = parse("a.hcl", "template {\n destination = \"x\"\n}\n").expect_err("no source");
        assert!(e.to_string().contains("line 1"), "{e}");
        let e = parse("a.hcl", "auto_auth {\n method \"aws\" {}\n}\n").expect_err("aws");
        assert!(
            e.to_string().contains("line 2") && e.to_string().contains("approle"),
            "{e}"
        );
        let e =
            parse("a.hcl", "env_template \"A\" {\n contents = \"x\"\n}\n").expect_err("no exec");
        assert!(
            e.to_string().contains("line 1") && e.to_string().contains("exec"),
            "{e}"
        );
        let e = parse(
            "a.hcl",
            "exec {\n command = [\"x\"]\n restart_stop_signal = \"SIGFOO\"\n}\n",
        )
        .expect_err("signal");
        assert!(e.to_string().contains("line 3"), "{e}");
        let e = parse(
            "a.hcl",
            "listener \"tcp\" {\n  address = \"127.0.0.1:8100\"\n}\n",
        )
        .expect_err("tls");
        assert!(
            e.to_string().contains("line 1") && e.to_string().contains("tls_disable"),
            "{e}"
        );
        let e = parse(
            "a.hcl",
            "listener \"tcp\" {\n tls_disable = true\n}\napi_proxy {\n use_auto_auth_token = true\n}\nenv_template \"A\" {\n contents = \"x\"\n}\nexec {\n command = [\"x\"]\n}\n",
        )
        .expect_err("api_proxy with env_template");
        assert!(e.to_string().contains("line 4"), "{e}");
        let e = parse("a.hcl", "cache {}\n").expect_err("cache");
        assert!(e.to_string().contains("listener"), "{e}");
        let e = parse("a.hcl", "telemetry {}\n").expect_err("telemetry");
        assert!(e.to_string().contains("\"telemetry\""), "{e}");
    }
}
