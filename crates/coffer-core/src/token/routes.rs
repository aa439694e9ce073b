//! `auth/token/*`: create, look up, renew and revoke tokens; token roles.

use std::sync::Arc;

use super::entry::display_name;
use super::{Token, TokenEntry, TokenRole, random_base62};
use crate::clock::{after_secs, now_ms, secs_left};
use crate::core::{Active, Core};
use crate::fields::Fields;
use crate::logical::{LogicalError, Operation::*, Request, Response};
use crate::paths::{PathSpec, PathTable};
use crate::policy::normalize_policy_names;
use crate::secret::SecretString;

#[derive(Clone, Copy, Debug)]
pub(crate) enum TokenRoute {
    Create,
    CreateOrphan,
    CreateRole,
    Lookup,
    LookupSelf,
    LookupAccessor,
    Renew,
    RenewSelf,
    RenewAccessor,
    Revoke,
    RevokeSelf,
    RevokeAccessor,
    RevokeOrphan,
    Accessors,
    Roles,
    Role,
    Tidy,
}

static TOKEN_PATHS: &[PathSpec<TokenRoute>] = &[
    PathSpec {
        pattern: "create",
        operations: &[Update],
        route: TokenRoute::Create,
        help: "Create a child token.",
    },
    PathSpec {
        pattern: "create-orphan",
        operations: &[Update],
        route: TokenRoute::CreateOrphan,
        help: "Create a token with no parent.",
    },
    PathSpec {
        pattern: "create/{role}",
        operations: &[Update],
        route: TokenRoute::CreateRole,
        help: "Create a token from a role.",
    },
    PathSpec {
        pattern: "lookup",
        operations: &[Read, Update],
        route: TokenRoute::Lookup,
        help: "Look up a token.",
    },
    PathSpec {
        pattern: "lookup-self",
        operations: &[Read, Update],
        route: TokenRoute::LookupSelf,
        help: "Look up the calling token.",
    },
    PathSpec {
        pattern: "lookup-accessor",
        operations: &[Update],
        route: TokenRoute::LookupAccessor,
        help: "Look up a token by accessor.",
    },
    PathSpec {
        pattern: "renew",
        operations: &[Update],
        route: TokenRoute::Renew,
        help: "Renew a token.",
    },
    PathSpec {
        pattern: "renew-self",
        operations: &[Update],
        route: TokenRoute::RenewSelf,
        help: "Renew the calling token.",
    },
    PathSpec {
        pattern: "renew-accessor",
        operations: &[Update],
        route: TokenRoute::RenewAccessor,
        help: "Renew a token by accessor.",
    },
    PathSpec {
        pattern: "revoke",
        operations: &[Update],
        route: TokenRoute::Revoke,
        help: "Revoke a token and its children.",
    },
    PathSpec {
        pattern: "revoke-self",
        operations: &[Update],
        route: TokenRoute::RevokeSelf,
        help: "Revoke the calling token.",
    },
    PathSpec {
        pattern: "revoke-accessor",
        operations: &[Update],
        route: TokenRoute::RevokeAccessor,
        help: "Revoke a token by accessor.",
    },
    PathSpec {
        pattern: "revoke-orphan",
        operations: &[Update],
        route: TokenRoute::RevokeOrphan,
        help: "Revoke a token, orphaning its children (sudo).",
    },
    PathSpec {
        pattern: "accessors",
        operations: &[List],
        route: TokenRoute::Accessors,
        help: "List accessors (sudo).",
    },
    PathSpec {
        pattern: "accessors/",
        operations: &[List],
        route: TokenRoute::Accessors,
        help: "List accessors (sudo).",
    },
    PathSpec {
        pattern: "roles",
        operations: &[List],
        route: TokenRoute::Roles,
        help: "List token roles.",
    },
    PathSpec {
        pattern: "roles/",
        operations: &[List],
        route: TokenRoute::Roles,
        help: "List token roles.",
    },
    PathSpec {
        pattern: "roles/{name}",
        operations: &[Read, Update, Delete],
        route: TokenRoute::Role,
        help: "Manage a token role.",
    },
    PathSpec {
        pattern: "tidy",
        operations: &[Update],
        route: TokenRoute::Tidy,
        help: "Remove expired tokens and dangling index entries.",
    },
];

const ROLE_PREFIX: &str = "sys/token/role/";

/// The compiled `auth/token/` table.
pub(crate) struct TokenPaths {
    pub(crate) table: PathTable<TokenRoute>,
}

impl TokenPaths {
    pub(crate) fn new() -> Result<Self, String> {
        Ok(Self {
            table: PathTable::new(TOKEN_PATHS)?,
        })
    }

    pub(crate) fn help(&self) -> crate::paths::MountHelp {
        crate::paths::MountHelp {
            description: "The token store: every request but a login carries a token. Tokens are \
created here (from a parent, as orphans, or through a token role), looked up, renewed and \
revoked with their children and leases.",
            paths: self.table.docs(),
        }
    }
}

/// `auth/token/` paths that need `sudo` (relative to the mount).
pub(crate) fn is_root_protected_token_path(rel: &str) -> bool {
    matches!(rel, "accessors" | "accessors/" | "revoke-orphan")
}

/// The `token` parameter, which these endpoints need.
fn required_token(f: &Fields<'_>) -> Result<String, LogicalError> {
    f.str("token")?
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("missing token"))
}

fn bad(msg: impl Into<String>) -> LogicalError {
    LogicalError::BadRequest(msg.into())
}

fn auth_response(entry: &TokenEntry, client_token: &str, warnings: Vec<String>) -> Response {
    Response {
        auth: Some(entry.auth_block(client_token, now_ms())),
        warnings,
        ..Response::default()
    }
}

impl Core {
    pub(crate) async fn handle_token(
        &self,
        active: &Active,
        req: &Request,
        rest: &str,
        caller: Option<&Token>,
    ) -> Result<Option<Response>, LogicalError> {
        let m = active.token_paths.table.route(req.operation, rest)?;
        let caller = caller.ok_or(LogicalError::PermissionDenied)?;
        let f = Fields::new(&req.data);
        let tokens = &active.tokens;
        match m.route {
            TokenRoute::Create => self
                .create_token(active, req, caller, false, None)
                .await
                .map(Some),
            TokenRoute::CreateOrphan => self
                .create_token(active, req, caller, true, None)
                .await
                .map(Some),
            TokenRoute::CreateRole => {
                let role = self
                    .read_role(m.param("role"))
                    .await?
                    .ok_or_else(|| bad(format!("unknown role {}", m.param("role"))))?;
                self.create_token(active, req, caller, false, Some(role))
                    .await
                    .map(Some)
            }
            TokenRoute::Lookup => {
                let id = f.str("token")?.filter(|t| !t.is_empty());
                let (id, t) = match id {
                    Some(id) => {
                        let t = tokens
                            .lookup(&id)
                            .await?
                            .ok_or_else(|| LogicalError::Forbidden("bad token".into()))?;
                        (id, t)
                    }
                    None => (self.caller_id(req), caller.clone()),
                };
                Ok(Some(Response::data(t.entry.lookup_data(&id, now_ms()))))
            }
            TokenRoute::LookupSelf => Ok(Some(Response::data(
                caller.entry.lookup_data(&self.caller_id(req), now_ms()),
            ))),
            TokenRoute::LookupAccessor => {
                let t = self.by_accessor(active, &f).await?;
                Ok(Some(Response::data(t.entry.lookup_data("", now_ms()))))
            }
            TokenRoute::Renew => {
                let id = required_token(&f)?;
                let t = tokens
                    .lookup(&id)
                    .await?
                    .ok_or_else(|| bad("token not found"))?;
                let e = self
                    .renew_token(active, &t, f.duration("increment")?)
                    .await?;
                Ok(Some(auth_response(&e.0, &id, e.1)))
            }
            TokenRoute::RenewSelf => {
                let e = self
                    .renew_token(active, caller, f.duration("increment")?)
                    .await?;
                Ok(Some(auth_response(&e.0, &self.caller_id(req), e.1)))
            }
            TokenRoute::RenewAccessor => {
                let t = self.by_accessor(active, &f).await?;
                let e = self
                    .renew_token(active, &t, f.duration("increment")?)
                    .await?;
                Ok(Some(auth_response(&e.0, "", e.1)))
            }
            TokenRoute::Revoke => {
                let id = required_token(&f)?;
                if let Some(t) = tokens.lookup(&id).await? {
                    tokens.revoke_tree(&t.hash).await?;
                }
                Ok(None)
            }
            TokenRoute::RevokeSelf => {
                tokens.revoke_tree(&caller.hash).await?;
                Ok(None)
            }
            TokenRoute::RevokeAccessor => {
                let t = self.by_accessor(active, &f).await?;
                tokens.revoke_tree(&t.hash).await?;
                Ok(None)
            }
            TokenRoute::RevokeOrphan => {
                let id = required_token(&f)?;
                let t = tokens
                    .lookup(&id)
                    .await?
                    .ok_or_else(|| bad("token not found"))?;
                tokens.revoke_orphan(&t.hash).await?;
                Ok(None)
            }
            TokenRoute::Accessors => Ok(Some(Response::list(tokens.accessors().await?))),
            TokenRoute::Roles => {
                let mut names = self.barrier.list(ROLE_PREFIX).await?;
                names.sort();
                Ok(Some(Response::list(names)))
            }
            TokenRoute::Role => self.role_op(req, m.param("name")).await,
            TokenRoute::Tidy => {
                let n = self.tidy_tokens().await?;
                Ok(Some(Response {
                    warnings: vec![format!(
                        "Tidy operation finished: {n} expired or spent tokens removed"
                    )],
                    ..Response::default()
                }))
            }
        }
    }

    /// Removes expired or spent tokens, dangling indexes, and wrapped responses
    /// whose wrapping token is gone. Returns how many tokens were removed.
    pub async fn tidy_tokens(&self) -> Result<usize, LogicalError> {
        let active = self.active()?;
        let n = active.tokens.tidy().await?;
        for hash in self.barrier.list("sys/wrapping/resp/").await? {
            if !active.tokens.exists_hash(&hash).await? {
                self.barrier
                    .delete(&format!("sys/wrapping/resp/{hash}"))
                    .await?;
            }
        }
        self.tidy_spent_wrapping().await?;
        Ok(n)
    }

    fn caller_id(&self, req: &Request) -> String {
        req.token
            .as_ref()
            .map(|t| t.expose().to_owned())
            .unwrap_or_default()
    }

    async fn by_accessor(&self, active: &Active, f: &Fields<'_>) -> Result<Token, LogicalError> {
        let acc = f
            .str("accessor")?
            .filter(|a| !a.is_empty())
            .ok_or_else(|| bad("missing accessor"))?;
        active
            .tokens
            .lookup_accessor(&acc)
            .await?
            .ok_or_else(|| bad("invalid accessor"))
    }

    async fn read_role(&self, name: &str) -> Result<Option<TokenRole>, LogicalError> {
        match self
            .barrier
            .get(&format!("{ROLE_PREFIX}{}", name.to_lowercase()))
            .await?
        {
            None => Ok(None),
            Some(b) => serde_json::from_slice(b.expose()).map(Some).map_err(|e| {
                LogicalError::Internal(format!("token role {name:?} is corrupt: {e}"))
            }),
        }
    }

    async fn role_op(&self, req: &Request, name: &str) -> Result<Option<Response>, LogicalError> {
        let name = name.to_lowercase();
        match req.operation {
            Read => Ok(self
                .read_role(&name)
                .await?
                .map(|r| Response::data(r.to_api()))),
            Delete => {
                let _g = self
                    .record_locks
                    .lock(&format!("{ROLE_PREFIX}{name}"))
                    .await;
                self.barrier.delete(&format!("{ROLE_PREFIX}{name}")).await?;
                Ok(None)
            }
            _ => {
                // A partial update must not lose a concurrent one.
                let _g = self
                    .record_locks
                    .lock(&format!("{ROLE_PREFIX}{name}"))
                    .await;
                let role = TokenRole::apply(&name, self.read_role(&name).await?, &req.data)?;
                let bytes =
                    serde_json::to_vec(&role).map_err(|e| LogicalError::Internal(e.to_string()))?;
                self.barrier
                    .put(&format!("{ROLE_PREFIX}{name}"), &bytes)
                    .await?;
                Ok(None)
            }
        }
    }

    /// Whether the caller holds `sudo` (or root) on `path`.
    async fn has_sudo(
        &self,
        active: &Active,
        caller: &Token,
        path: &str,
    ) -> Result<bool, LogicalError> {
        if caller.entry.is_root() {
            return Ok(true);
        }
        let acl = active.policies.acl(&caller.entry.policies).await?;
        Ok(acl
            .capabilities(path)
            .iter()
            .any(|c| c == "sudo" || c == "root"))
    }

    async fn create_token(
        &self,
        active: &Active,
        req: &Request,
        caller: &Token,
        orphan_endpoint: bool,
        role: Option<TokenRole>,
    ) -> Result<Response, LogicalError> {
        let f = Fields::new(&req.data);
        let now = now_ms();
        if caller.entry.num_uses != 0 {
            // Otherwise a token limited to n uses could mint unlimited ones.
            return Err(bad("restricted use token cannot generate child tokens"));
        }
        let sudo = self.has_sudo(active, caller, &req.path).await?;
        match f.str("type")?.as_deref() {
            None | Some("") | Some("service") => {}
            Some("batch") => return Err(bad("batch tokens are not supported; use type=service")),
            Some(t) => return Err(bad(format!("invalid token type {t:?}"))),
        }
        let id = f.str("id")?.filter(|s| !s.is_empty());
        if let Some(id) = &id {
            if !caller.entry.is_root() {
                return Err(bad("root or sudo privileges required to specify token id"));
            }
            if id.contains('.') {
                return Err(bad("token IDs can not contain a period"));
            }
        }
        let no_parent = f.bool("no_parent")?.unwrap_or(false);
        if no_parent && !sudo {
            return Err(bad(
                "root or sudo privileges required to create orphan token",
            ));
        }
        let period_param = f.duration("period")?;
        if period_param.is_some_and(|p| p > 0) && !sudo {
            return Err(bad(
                "root or sudo privileges required to create periodic token",
            ));
        }
        let num_uses = f.int("num_uses")?.unwrap_or(0);
        if num_uses < 0 {
            return Err(bad("number of uses cannot be negative"));
        }
        let orphan = orphan_endpoint || no_parent || role.as_ref().is_some_and(|r| r.orphan);

        // Policies: requested, or the role's allow list, or the parent's.
        let requested = f.str_list("policies")?.map(|p| normalize_policy_names(&p));
        let mut policies = match (&requested, &role) {
            (Some(p), _) => p.clone(),
            (None, Some(r)) if !r.allowed_policies.is_empty() => r
                .allowed_policies
                .iter()
                .filter(|p| !r.disallowed_policies.contains(p))
                .cloned()
                .collect(),
            _ => caller.entry.policies.clone(),
        };
        let role_decides = match &role {
            Some(r) => r.check_policies(&policies)?,
            None => false,
        };
        if !role_decides && !sudo {
            let parent = &caller.entry.policies;
            if let Some(extra) = policies
                .iter()
                .find(|p| !parent.contains(p) && *p != "default")
            {
                return Err(bad(format!(
                    "child policies must be subset of parent (parent lacks {extra:?})"
                )));
            }
        }
        let no_default = f.bool("no_default_policy")?.unwrap_or(false)
            || role.as_ref().is_some_and(|r| r.token_no_default_policy);
        if policies.iter().any(|p| p == "root") {
            if !caller.entry.is_root() {
                return Err(bad("root tokens may only be created by a root token"));
            }
            policies = vec!["root".into()];
        } else {
            if no_default {
                policies.retain(|p| p != "default");
            } else if !policies.iter().any(|p| p == "default") {
                policies.push("default".into());
            }
            policies = normalize_policy_names(&policies);
        }

        // Lifetimes.
        // The auth/token mount's tuned values, else the system's.
        let (mount_default, mount_max) = active
            .token_mount
            .read()
            .map(|c| (c.default_lease_ttl, c.max_lease_ttl))
            .unwrap_or((0, 0));
        let sys_max = if mount_max > 0 {
            mount_max
        } else {
            self.config.max_lease_ttl
        };
        let sys_default = if mount_default > 0 {
            mount_default
        } else {
            self.config.default_lease_ttl
        };
        let explicit_max = f
            .duration("explicit_max_ttl")?
            .or(role.as_ref().map(|r| r.token_explicit_max_ttl))
            .unwrap_or(0);
        let period = period_param
            .or(role.as_ref().map(|r| r.token_period))
            .unwrap_or(0);
        let ttl_param = f.duration("ttl")?.or(f.duration("lease")?);
        let is_root_token = policies == ["root"];
        let mut ttl = if period > 0 {
            period
        } else {
            match ttl_param {
                Some(t) if t > 0 => t,
                _ if is_root_token => 0,
                _ => sys_default,
            }
        };
        if explicit_max > 0 && (ttl == 0 || ttl > explicit_max) {
            ttl = explicit_max;
        }
        if period == 0 && ttl > sys_max && !(is_root_token && ttl_param.is_none()) {
            ttl = sys_max;
        }
        let mut warnings = Vec::new();
        for p in policies.iter().filter(|p| *p != "root" && *p != "default") {
            if active.policies.get(p).await?.is_none() {
                warnings.push(format!("Policy {p:?} does not exist"));
            }
        }
        // A token bound to addresses makes only tokens bound as narrowly
        // (orphans too: they would otherwise be an escape).
        let role_cidrs = role
            .as_ref()
            .map(|r| r.token_bound_cidrs.clone())
            .unwrap_or_default();
        let bound_cidrs = crate::cidr::intersect(&caller.entry.bound_cidrs, &role_cidrs)?
            .ok_or_else(|| {
                bad("the role's token_bound_cidrs do not overlap the calling token's bound CIDRs")
            })?;
        let path = match &role {
            Some(r) if !r.path_suffix.is_empty() => format!("{}/{}", req.path, r.path_suffix),
            _ => req.path.clone(),
        };
        let entry = TokenEntry {
            accessor: random_base62(24)?,
            policies,
            path,
            display_name: display_name(f.str("display_name")?.as_deref()),
            creation_time: now,
            creation_ttl: ttl,
            expire_time: if ttl == 0 { 0 } else { after_secs(now, ttl) },
            explicit_max_ttl: explicit_max,
            max_expire_time: match (explicit_max, period, ttl) {
                (m, _, _) if m > 0 => after_secs(now, m),
                (_, p, _) if p > 0 => 0,
                (_, _, 0) => 0,
                _ => after_secs(now, sys_max),
            },
            period,
            num_uses: if num_uses > 0 {
                num_uses
            } else {
                role.as_ref().map_or(0, |r| r.token_num_uses)
            },
            meta: f.str_map("meta")?.filter(|m| !m.is_empty()),
            orphan,
            parent: if orphan {
                None
            } else {
                Some(caller.hash.clone())
            },
            renewable: f.bool("renewable")?.unwrap_or(true)
                && role.as_ref().is_none_or(|r| r.renewable),
            role: role.as_ref().map(|r| r.name.clone()),
            last_renewal_time: 0,
            bound_cidrs,
            legacy_secs: false,
        };
        let client_token = match id {
            Some(id) => {
                let id = SecretString::new(id);
                active.tokens.create_with_id(&id, &entry).await?;
                id
            }
            None => active.tokens.create(&entry).await?.0,
        };
        Ok(auth_response(&entry, client_token.expose(), warnings))
    }

    async fn renew_token(
        &self,
        active: &Active,
        t: &Token,
        increment: Option<u64>,
    ) -> Result<(Arc<TokenEntry>, Vec<String>), LogicalError> {
        // Tokens without a TTL (root) have no lease to renew, as in Vault.
        if t.entry.expire_time == 0 || !t.entry.renewable {
            return Err(bad("lease is not renewable"));
        }
        // A login token asks its auth method first (is its role still there?).
        if t.entry.path.starts_with("auth/")
            && !t.entry.path.starts_with("auth/token/")
            && let Some(found) = self.locate(active, &t.entry.path)?
        {
            let m = found.mount();
            let meta = t.entry.meta.clone().unwrap_or_default();
            m.backend
                .check_renewal(&m.view, &meta, &t.entry.policies)
                .await?;
        }
        let now = now_ms();
        let wanted = if t.entry.period > 0 {
            t.entry.period
        } else {
            increment.filter(|i| *i > 0).unwrap_or(t.entry.creation_ttl)
        };
        let mut expire = after_secs(now, wanted);
        let mut warnings = vec![];
        if t.entry.max_expire_time > 0 && expire > t.entry.max_expire_time {
            expire = t.entry.max_expire_time;
            warnings.push(format!(
                "TTL of \"{wanted}s\" exceeded the effective max_ttl of \"{}s\"; TTL value is capped accordingly",
                secs_left(expire, now)
            ));
        }
        let e = active
            .tokens
            .update_entry(t, |e| {
                e.expire_time = expire;
                e.last_renewal_time = now;
            })
            .await?;
        Ok((e, warnings))
    }
}
