//! AppRole: a role ID plus secret IDs with use counts, TTLs and CIDR bounds.
//! Role IDs and secret IDs are stored only as HMACs under the mount's salt.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use coffer_core::backend::{Backend, EngineRequest, StorageView};
use coffer_core::fields::Fields;
use coffer_core::logical::Operation::{self, *};
use coffer_core::mounts::MountEntry;
use coffer_core::paths::{PathSpec, PathTable};
use coffer_core::stripes::Stripes;
use coffer_core::token::{now_unix, rfc3339};
use coffer_core::{LogicalError, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::TokenFields;
use crate::salt::Salt;

#[derive(Clone, Copy)]
enum Route {
    Roles,
    Role,
    RoleId,
    SecretId,
    SecretIdLookup,
    SecretIdDestroy,
    AccessorLookup,
    AccessorDestroy,
    CustomSecretId,
    Field,
    Tidy,
    Login,
}

static PATHS: &[PathSpec<Route>] = &[
    PathSpec {
        pattern: "role",
        operations: &[List],
        route: Route::Roles,
        help: "List roles.",
    },
    PathSpec {
        pattern: "role/",
        operations: &[List],
        route: Route::Roles,
        help: "List roles.",
    },
    PathSpec {
        pattern: "role/{name}",
        operations: &[Read, Update, Delete],
        route: Route::Role,
        help: "Manage a role.",
    },
    PathSpec {
        pattern: "role/{name}/role-id",
        operations: &[Read, Update],
        route: Route::RoleId,
        help: "Read or set the role ID.",
    },
    PathSpec {
        pattern: "role/{name}/secret-id",
        operations: &[Update, List],
        route: Route::SecretId,
        help: "Generate a secret ID, or list their accessors.",
    },
    PathSpec {
        pattern: "role/{name}/secret-id/",
        operations: &[List],
        route: Route::SecretId,
        help: "List secret ID accessors.",
    },
    PathSpec {
        pattern: "role/{name}/secret-id/lookup",
        operations: &[Update],
        route: Route::SecretIdLookup,
        help: "Look up a secret ID.",
    },
    PathSpec {
        pattern: "role/{name}/secret-id/destroy",
        operations: &[Update, Delete],
        route: Route::SecretIdDestroy,
        help: "Destroy a secret ID.",
    },
    PathSpec {
        pattern: "role/{name}/secret-id-accessor/lookup",
        operations: &[Update],
        route: Route::AccessorLookup,
        help: "Look up a secret ID by accessor.",
    },
    PathSpec {
        pattern: "role/{name}/secret-id-accessor/destroy",
        operations: &[Update, Delete],
        route: Route::AccessorDestroy,
        help: "Destroy a secret ID by accessor.",
    },
    PathSpec {
        pattern: "role/{name}/custom-secret-id",
        operations: &[Update],
        route: Route::CustomSecretId,
        help: "Register a caller-chosen secret ID.",
    },
    PathSpec {
        pattern: "role/{name}/{field}",
        operations: &[Read, Update, Delete],
        route: Route::Field,
        help: "Read or change one role setting.",
    },
    PathSpec {
        pattern: "tidy/secret-id",
        operations: &[Update],
        route: Route::Tidy,
        help: "Remove expired secret IDs.",
    },
    PathSpec {
        pattern: "login",
        operations: &[Update],
        route: Route::Login,
        help: "Log in with a role ID and secret ID.",
    },
];

/// Role settings reachable as `role/:name/<field>`, with the stored key each maps to.
const FIELDS: &[(&str, &str)] = &[
    ("policies", "token_policies"),
    ("token-policies", "token_policies"),
    ("secret-id-num-uses", "secret_id_num_uses"),
    ("secret-id-ttl", "secret_id_ttl"),
    ("token-ttl", "token_ttl"),
    ("token-max-ttl", "token_max_ttl"),
    ("token-num-uses", "token_num_uses"),
    ("bind-secret-id", "bind_secret_id"),
    ("secret-id-bound-cidrs", "secret_id_bound_cidrs"),
    ("token-bound-cidrs", "token_bound_cidrs"),
    ("period", "token_period"),
    ("token-period", "token_period"),
];

#[derive(Serialize, Deserialize, Clone)]
struct Role {
    name: String,
    role_id: String,
    bind_secret_id: bool,
    secret_id_bound_cidrs: Vec<String>,
    secret_id_num_uses: i64,
    secret_id_ttl: u64,
    local_secret_ids: bool,
    #[serde(flatten)]
    token: TokenFields,
}

#[derive(Serialize, Deserialize, Clone)]
struct SecretIdEntry {
    accessor: String,
    creation_time: i64,
    expiration_time: i64,
    last_updated_time: i64,
    num_uses: i64,
    ttl: u64,
    metadata: BTreeMap<String, String>,
    cidr_list: Vec<String>,
    token_bound_cidrs: Vec<String>,
}

/// The AppRole auth method.
pub struct AppRole {
    paths: PathTable<Route>,
    salt: Salt,
    /// Serialise each role's read-modify-writes (updates, role ID changes,
    /// deletion). Taken before `secret_locks` when both are held.
    role_locks: Stripes,
    /// Serialise each secret ID's use counting, creation and destruction, so
    /// a destroyed secret ID is never written back by a login in flight.
    secret_locks: Stripes,
}

/// Builds the method for a mount.
pub fn factory(_: &MountEntry) -> Result<Arc<dyn Backend>, LogicalError> {
    Ok(Arc::new(AppRole {
        paths: PathTable::new(PATHS).map_err(LogicalError::Internal)?,
        salt: Salt::default(),
        role_locks: Stripes::default(),
        secret_locks: Stripes::default(),
    }))
}

fn bad(m: impl Into<String>) -> LogicalError {
    LogicalError::BadRequest(m.into())
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Role {
    /// A role with Vault's defaults: secret IDs required, no limits.
    fn new(name: String, role_id: String) -> Self {
        Self {
            name,
            role_id,
            bind_secret_id: true,
            secret_id_bound_cidrs: vec![],
            secret_id_num_uses: 0,
            secret_id_ttl: 0,
            local_secret_ids: false,
            token: TokenFields::default(),
        }
    }

    fn to_api(&self) -> Map<String, Value> {
        let mut d = Map::new();
        self.token.write_to(&mut d);
        d.insert("bind_secret_id".into(), json!(self.bind_secret_id));
        d.insert(
            "secret_id_bound_cidrs".into(),
            json!(self.secret_id_bound_cidrs),
        );
        d.insert("secret_id_num_uses".into(), json!(self.secret_id_num_uses));
        d.insert("secret_id_ttl".into(), json!(self.secret_id_ttl));
        d.insert("local_secret_ids".into(), json!(self.local_secret_ids));
        d
    }

    fn apply(&mut self, data: &Map<String, Value>) -> Result<(), LogicalError> {
        let f = Fields::new(data);
        if let Some(b) = f.bool("bind_secret_id")? {
            self.bind_secret_id = b;
        }
        if let Some(c) = f.str_list("secret_id_bound_cidrs")? {
            coffer_core::cidr::parse_all(&c)?;
            self.secret_id_bound_cidrs = c;
        }
        if let Some(n) = f.int("secret_id_num_uses")? {
            if n < 0 {
                return Err(bad("secret_id_num_uses cannot be negative"));
            }
            self.secret_id_num_uses = n;
        }
        if let Some(t) = f.duration("secret_id_ttl")? {
            self.secret_id_ttl = t;
        }
        if let Some(b) = f.bool("local_secret_ids")? {
            self.local_secret_ids = b;
        }
        self.token.apply(data)?;
        if !self.bind_secret_id
            && self.secret_id_bound_cidrs.is_empty()
            && self.token.token_bound_cidrs.is_empty()
        {
            return Err(bad("at least one constraint should be enabled on the role"));
        }
        Ok(())
    }
}

impl AppRole {
    async fn role(&self, st: &StorageView, name: &str) -> Result<Option<Role>, LogicalError> {
        st.get_json(&format!("role/{}", name.to_lowercase())).await
    }

    async fn must_role(&self, st: &StorageView, name: &str) -> Result<Role, LogicalError> {
        self.role(st, name)
            .await?
            .ok_or_else(|| bad(format!("role {name:?} does not exist")))
    }

    async fn save_role(
        &self,
        st: &StorageView,
        role: &Role,
        old_role_id: Option<&str>,
    ) -> Result<(), LogicalError> {
        if let Some(old) = old_role_id.filter(|o| *o != role.role_id) {
            st.delete(&format!("role_id/{}", self.salt.hmac(st, old).await?))
                .await?;
        }
        let index = format!("role_id/{}", self.salt.hmac(st, &role.role_id).await?);
        if let Some(owner) = st.get_json::<String>(&index).await?
            && owner != role.name
        {
            return Err(bad("role_id already in use"));
        }
        st.put_json(&index, &role.name).await?;
        st.put_json(&format!("role/{}", role.name), role).await
    }

    async fn secret_key(
        &self,
        st: &StorageView,
        role: &str,
        secret_id: &str,
    ) -> Result<String, LogicalError> {
        Ok(format!(
            "secret_id/{role}/{}",
            self.salt.hmac(st, secret_id).await?
        ))
    }

    async fn issue_secret_id(
        &self,
        st: &StorageView,
        role: &Role,
        secret_id: String,
        data: &Map<String, Value>,
    ) -> Result<Response, LogicalError> {
        let f = Fields::new(data);
        let metadata: BTreeMap<String, String> = match f.raw("metadata") {
            None => BTreeMap::new(),
            Some(Value::String(s)) if s.trim().is_empty() => BTreeMap::new(),
            Some(Value::String(s)) => serde_json::from_str(s)
                .map_err(|e| bad(format!("failed to parse metadata: {e}")))?,
            Some(Value::Object(_)) => f.str_map("metadata")?.unwrap_or_default(),
            Some(_) => return Err(bad("metadata must be a JSON object encoded as a string")),
        };
        let cidr_list = f.str_list("cidr_list")?.unwrap_or_default();
        coffer_core::cidr::parse_all(&cidr_list)?;
        let token_bound_cidrs = f.str_list("token_bound_cidrs")?.unwrap_or_default();
        coffer_core::cidr::parse_all(&token_bound_cidrs)?;
        // A secret ID may narrow its role's bounds, never widen them.
        if !cidr_list.is_empty()
            && !coffer_core::cidr::subset(&cidr_list, &role.secret_id_bound_cidrs)?
        {
            return Err(bad(
                "failed to verify the CIDR restrictions set on the secret ID: cidr_list must lie within the role's secret_id_bound_cidrs",
            ));
        }
        if !token_bound_cidrs.is_empty()
            && !coffer_core::cidr::subset(&token_bound_cidrs, &role.token.token_bound_cidrs)?
        {
            return Err(bad(
                "failed to verify the token bound CIDR restrictions set on the secret ID: token_bound_cidrs must lie within the role's token_bound_cidrs",
            ));
        }
        let ttl = f.duration("ttl")?.unwrap_or(role.secret_id_ttl);
        let num_uses = f.int("num_uses")?.unwrap_or(role.secret_id_num_uses);
        if num_uses < 0 {
            return Err(bad("num_uses cannot be negative"));
        }
        let now = now_unix();
        let entry = SecretIdEntry {
            accessor: new_id(),
            creation_time: now,
            expiration_time: if ttl > 0 { now + ttl as i64 } else { 0 },
            last_updated_time: now,
            num_uses,
            ttl,
            metadata,
            cidr_list,
            token_bound_cidrs,
        };
        let key = self.secret_key(st, &role.name, &secret_id).await?;
        let _g = self.secret_locks.lock(&key).await;
        if st.get(&key).await?.is_some() {
            return Err(bad("secret_id already exists"));
        }
        st.put_json(&key, &entry).await?;
        st.put_json(&format!("accessor/{}/{}", role.name, entry.accessor), &key)
            .await?;
        Ok(Response::data(
            json!({
                "secret_id": secret_id,
                "secret_id_accessor": entry.accessor,
                "secret_id_ttl": ttl,
                "secret_id_num_uses": num_uses,
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ))
    }

    fn secret_id_api(e: &SecretIdEntry) -> Map<String, Value> {
        json!({
            "cidr_list": e.cidr_list,
            "creation_time": rfc3339(e.creation_time),
            "expiration_time": if e.expiration_time > 0 { rfc3339(e.expiration_time) } else { json!("0001-01-01T00:00:00Z") },
            "last_updated_time": rfc3339(e.last_updated_time),
            "metadata": e.metadata,
            "secret_id_accessor": e.accessor,
            "secret_id_num_uses": e.num_uses,
            "secret_id_ttl": e.ttl,
            "token_bound_cidrs": e.token_bound_cidrs,
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    async fn destroy(&self, st: &StorageView, role: &str, key: &str) -> Result<(), LogicalError> {
        let _g = self.secret_locks.lock(key).await;
        self.destroy_locked(st, role, key).await
    }

    /// Removes a secret ID and its accessor; the caller holds its lock.
    async fn destroy_locked(
        &self,
        st: &StorageView,
        role: &str,
        key: &str,
    ) -> Result<(), LogicalError> {
        if let Some(e) = st.get_json::<SecretIdEntry>(key).await? {
            st.delete(&format!("accessor/{role}/{}", e.accessor))
                .await?;
        }
        st.delete(key).await?;
        Ok(())
    }

    async fn by_accessor(
        &self,
        st: &StorageView,
        role: &str,
        data: &Map<String, Value>,
    ) -> Result<Option<String>, LogicalError> {
        let acc = Fields::new(data)
            .str("secret_id_accessor")?
            .filter(|a| !a.is_empty())
            .ok_or_else(|| bad("missing secret_id_accessor"))?;
        if acc.contains('/') {
            return Err(bad("invalid secret_id_accessor"));
        }
        st.get_json::<String>(&format!("accessor/{role}/{acc}"))
            .await
    }

    async fn field(
        &self,
        st: &StorageView,
        name: &str,
        field: &str,
        op: Operation,
        data: &Map<String, Value>,
    ) -> Result<Option<Response>, LogicalError> {
        let (_, stored) = FIELDS
            .iter()
            .find(|(f, _)| *f == field)
            .ok_or(LogicalError::UnsupportedPath)?;
        let mut role = self.must_role(st, name).await?;
        let api = role.to_api();
        match op {
            Read => Ok(Some(Response::data(
                [(
                    (*stored).to_string(),
                    api.get(*stored).cloned().unwrap_or(Value::Null),
                )]
                .into_iter()
                .collect(),
            ))),
            Delete => {
                let mut defaults = Role::new(role.name.clone(), role.role_id.clone()).to_api();
                let value = defaults.remove(*stored).unwrap_or(Value::Null);
                role.apply(&[((*stored).to_string(), value)].into_iter().collect())?;
                self.save_role(st, &role, None).await?;
                Ok(None)
            }
            _ => {
                let value = data
                    .get(*stored)
                    .or_else(|| data.get(&field.replace('-', "_")))
                    .cloned()
                    .ok_or_else(|| bad(format!("missing {stored}")))?;
                role.apply(&[((*stored).to_string(), value)].into_iter().collect())?;
                self.save_role(st, &role, None).await?;
                Ok(None)
            }
        }
    }

    async fn login(&self, req: &EngineRequest<'_>) -> Result<Option<Response>, LogicalError> {
        let st = req.storage;
        let f = Fields::new(req.data);
        let invalid = || bad("invalid role or secret ID");
        let role_id = f
            .str("role_id")?
            .filter(|r| !r.is_empty())
            .ok_or_else(|| bad("missing role_id"))?;
        let name: String = st
            .get_json(&format!("role_id/{}", self.salt.hmac(st, &role_id).await?))
            .await?
            .ok_or_else(invalid)?;
        let role = self.role(st, &name).await?.ok_or_else(invalid)?;
        if !coffer_core::cidr::allows(&role.secret_id_bound_cidrs, req.remote_addr)?
            || !coffer_core::cidr::allows(&role.token.token_bound_cidrs, req.remote_addr)?
        {
            return Err(invalid());
        }
        let mut metadata = BTreeMap::from([("role_name".to_string(), name.clone())]);
        let mut token_cidrs = None;
        if role.bind_secret_id {
            let secret_id = f
                .str("secret_id")?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| bad("missing secret_id"))?;
            let key = self.secret_key(st, &name, &secret_id).await?;
            let _g = self.secret_locks.lock(&key).await;
            let mut entry: SecretIdEntry = st.get_json(&key).await?.ok_or_else(invalid)?;
            let now = now_unix();
            if entry.expiration_time > 0 && entry.expiration_time <= now {
                self.destroy_locked(st, &name, &key).await?;
                return Err(invalid());
            }
            if !coffer_core::cidr::allows(&entry.cidr_list, req.remote_addr)? {
                return Err(invalid());
            }
            match entry.num_uses {
                0 => {}
                1 => self.destroy_locked(st, &name, &key).await?,
                n => {
                    entry.num_uses = n - 1;
                    entry.last_updated_time = now;
                    st.put_json(&key, &entry).await?;
                }
            }
            metadata.extend(entry.metadata);
            token_cidrs = Some(entry.token_bound_cidrs).filter(|c| !c.is_empty());
        }
        let mut login = role.token.login("", metadata);
        if let Some(c) = token_cidrs {
            // The secret ID's bounds, already checked to lie within the role's.
            login.bound_cidrs = c;
        }
        Ok(Some(Response {
            login: Some(login),
            ..Response::default()
        }))
    }
}

#[async_trait]
impl Backend for AppRole {
    fn help(&self) -> coffer_core::paths::MountHelp {
        coffer_core::paths::MountHelp {
            description: "The AppRole auth method: roles with a role ID and secret IDs for machines; login with both gives a token shaped by the role.",
            paths: self.paths.docs(),
        }
    }

    fn is_unauthenticated(&self, path: &str) -> bool {
        path == "login"
    }

    /// Secret IDs are stored only as HMACs under this mount's salt: a
    /// candidate is looked up under every role that has secret IDs.
    async fn leak_lookup(
        &self,
        st: &StorageView,
        candidate: &str,
    ) -> Result<Vec<coffer_core::leak::LeakMatch>, LogicalError> {
        let roles = st.list("secret_id/").await?;
        if roles.is_empty() {
            return Ok(Vec::new());
        }
        let h = self.salt.hmac(st, candidate).await?;
        let now = now_unix();
        let mut out = Vec::new();
        for role in roles {
            let role = role.trim_end_matches('/');
            let Some(e) = st
                .get_json::<SecretIdEntry>(&format!("secret_id/{role}/{h}"))
                .await?
            else {
                continue;
            };
            if e.expiration_time > 0 && e.expiration_time <= now {
                continue;
            }
            let mut details = Map::new();
            details.insert("role_name".into(), json!(role));
            details.insert("secret_id_accessor".into(), json!(e.accessor));
            out.push(coffer_core::leak::LeakMatch {
                kind: "approle-secret-id",
                name: role.to_owned(),
                details,
            });
        }
        Ok(out)
    }

    async fn check_renewal(
        &self,
        storage: &StorageView,
        meta: &BTreeMap<String, String>,
        _policies: &[String],
    ) -> Result<(), LogicalError> {
        crate::role_method::Roles::check_renewal(storage, meta, "role_name").await
    }

    async fn handle(&self, req: EngineRequest<'_>) -> Result<Option<Response>, LogicalError> {
        let m = self.paths.route(req.operation, req.path)?;
        let st = req.storage;
        let name = m.param("name").to_lowercase();
        let changes_role = req.operation != Read
            && req.operation != List
            && matches!(m.route, Route::Role | Route::RoleId | Route::Field);
        let _role_guard = match changes_role {
            true => Some(self.role_locks.lock(&name).await),
            false => None,
        };
        match m.route {
            Route::Login => self.login(&req).await,
            Route::Roles => {
                let mut names = st.list("role/").await?;
                names.sort();
                Ok(Some(Response::list(names)))
            }
            Route::Role => match req.operation {
                Read => Ok(self
                    .role(st, &name)
                    .await?
                    .map(|r| Response::data(r.to_api()))),
                Delete => {
                    if let Some(r) = self.role(st, &name).await? {
                        for k in st.list(&format!("secret_id/{name}/")).await? {
                            self.destroy(st, &name, &format!("secret_id/{name}/{k}"))
                                .await?;
                        }
                        st.delete(&format!(
                            "role_id/{}",
                            self.salt.hmac(st, &r.role_id).await?
                        ))
                        .await?;
                        st.delete(&format!("role/{name}")).await?;
                    }
                    Ok(None)
                }
                _ => {
                    if name.is_empty() || name.contains('/') {
                        return Err(bad("invalid role name"));
                    }
                    let prev = self.role(st, &name).await?;
                    let old_id = prev.as_ref().map(|r| r.role_id.clone());
                    let mut role = prev.unwrap_or(Role::new(name.clone(), new_id()));
                    if let Some(id) = Fields::new(req.data)
                        .str("role_id")?
                        .filter(|s| !s.is_empty())
                    {
                        role.role_id = id;
                    }
                    role.apply(req.data)?;
                    self.save_role(st, &role, old_id.as_deref()).await?;
                    Ok(None)
                }
            },
            Route::RoleId => {
                let mut role = self.must_role(st, &name).await?;
                if req.operation == Read {
                    return Ok(Some(Response::data(
                        json!({"role_id": role.role_id})
                            .as_object()
                            .cloned()
                            .unwrap_or_default(),
                    )));
                }
                let old = role.role_id.clone();
                role.role_id = Fields::new(req.data)
                    .str("role_id")?
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| bad("missing role_id"))?;
                self.save_role(st, &role, Some(&old)).await?;
                Ok(None)
            }
            Route::SecretId if req.operation == List => {
                self.must_role(st, &name).await?;
                let mut acc = st.list(&format!("accessor/{name}/")).await?;
                acc.sort();
                Ok(Some(Response::list(acc)))
            }
            Route::SecretId => {
                let role = self.must_role(st, &name).await?;
                self.issue_secret_id(st, &role, new_id(), req.data)
                    .await
                    .map(Some)
            }
            Route::CustomSecretId => {
                let role = self.must_role(st, &name).await?;
                let id = Fields::new(req.data)
                    .str("secret_id")?
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| bad("missing secret_id"))?;
                self.issue_secret_id(st, &role, id, req.data)
                    .await
                    .map(Some)
            }
            Route::SecretIdLookup
            | Route::SecretIdDestroy
            | Route::AccessorLookup
            | Route::AccessorDestroy => {
                self.must_role(st, &name).await?;
                // Found by the secret ID itself, or by its accessor.
                let key = if matches!(m.route, Route::SecretIdLookup | Route::SecretIdDestroy) {
                    let id = Fields::new(req.data)
                        .str("secret_id")?
                        .filter(|s| !s.is_empty())
                        .ok_or_else(|| bad("missing secret_id"))?;
                    self.secret_key(st, &name, &id).await?
                } else {
                    self.by_accessor(st, &name, req.data)
                        .await?
                        .ok_or_else(|| {
                            bad("failed to find accessor entry for secret_id_accessor")
                        })?
                };
                if matches!(m.route, Route::SecretIdDestroy | Route::AccessorDestroy) {
                    self.destroy(st, &name, &key).await?;
                    return Ok(None);
                }
                Ok(st
                    .get_json::<SecretIdEntry>(&key)
                    .await?
                    .map(|e| Response::data(Self::secret_id_api(&e))))
            }
            Route::Field => {
                self.field(st, &name, m.param("field"), req.operation, req.data)
                    .await
            }
            Route::Tidy => {
                let now = now_unix();
                let mut removed = 0;
                for role in st.list("secret_id/").await? {
                    let role = role.trim_end_matches('/');
                    for k in st.list(&format!("secret_id/{role}/")).await? {
                        let key = format!("secret_id/{role}/{k}");
                        if let Some(e) = st.get_json::<SecretIdEntry>(&key).await?
                            && e.expiration_time > 0
                            && e.expiration_time <= now
                        {
                            self.destroy(st, role, &key).await?;
                            removed += 1;
                        }
                    }
                }
                Ok(Some(Response {
                    warnings: vec![format!(
                        "Tidy operation finished: {removed} expired secret IDs removed"
                    )],
                    ..Response::default()
                }))
            }
        }
    }
}
