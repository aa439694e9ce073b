//! JWT auth: tokens signed by a known key (static PEM keys, a JWKS URL, or
//! OIDC discovery) log in to roles bound to their issuer, audience, subject
//! and claims. This is how Kubernetes service-account tokens log in.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::TokenFields;
use crate::keys::{self, JwksCache, KeySource, VerifyError};
use crate::role_method::{PATHS, Roles, Route};
use async_trait::async_trait;
use coffer_core::backend::{Backend, EngineRequest, StorageView};
use coffer_core::fields::Fields;
use coffer_core::logical::Operation::*;
use coffer_core::mounts::MountEntry;
use coffer_core::paths::PathTable;
use coffer_core::token::now_unix;
use coffer_core::{LogicalError, Response};
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Asymmetric algorithms accepted unless the config narrows them; never HMAC or `none`.
const DEFAULT_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

#[derive(Serialize, Deserialize, Clone, Default)]
struct Config {
    jwt_validation_pubkeys: Vec<String>,
    jwks_url: String,
    jwks_ca_pem: String,
    oidc_discovery_url: String,
    oidc_discovery_ca_pem: String,
    bound_issuer: String,
    jwt_supported_algs: Vec<String>,
    default_role: String,
}

#[derive(Serialize, Deserialize, Clone)]
struct Role {
    role_type: String,
    bound_audiences: Vec<String>,
    bound_subject: String,
    bound_claims: BTreeMap<String, Value>,
    bound_claims_type: String,
    user_claim: String,
    claim_mappings: BTreeMap<String, String>,
    groups_claim: String,
    clock_skew_leeway: u64,
    expiration_leeway: u64,
    not_before_leeway: u64,
    #[serde(flatten)]
    token: TokenFields,
}

/// The JWT auth method.
pub struct Jwt {
    paths: PathTable<Route>,
    /// Fetched key set.
    jwks: JwksCache,
    roles: Roles,
}

/// Builds the method for a mount.
pub fn factory(_: &MountEntry) -> Result<Arc<dyn Backend>, LogicalError> {
    Ok(Arc::new(Jwt {
        paths: PathTable::new(PATHS).map_err(LogicalError::Internal)?,
        jwks: JwksCache::default(),
        roles: Roles::default(),
    }))
}

fn bad(m: impl Into<String>) -> LogicalError {
    LogicalError::BadRequest(m.into())
}

fn invalid(why: impl std::fmt::Display) -> LogicalError {
    bad(format!("error validating token: {why}"))
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// A claim by name, or by JSON pointer when it starts with `/` (`/kubernetes.io/namespace`).
fn claim<'a>(claims: &'a Value, name: &str) -> Option<&'a Value> {
    if name.starts_with('/') {
        claims.pointer(name)
    } else {
        claims.get(name)
    }
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    }
}

fn texts(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().filter_map(as_text).collect(),
        other => as_text(other).into_iter().collect(),
    }
}

fn parse_alg(s: &str) -> Result<Algorithm, LogicalError> {
    let a: Algorithm = s
        .parse()
        .map_err(|_| bad(format!("unsupported signing algorithm {s:?}")))?;
    if matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
        return Err(bad(format!(
            "{s} needs a shared secret; only public-key algorithms are supported"
        )));
    }
    Ok(a)
}

impl Jwt {
    async fn config(st: &StorageView) -> Result<Option<Config>, LogicalError> {
        st.get_json("config").await
    }

    async fn write_config(
        &self,
        st: &StorageView,
        data: &Map<String, Value>,
    ) -> Result<(), LogicalError> {
        let f = Fields::new(data);
        let mut c = Config {
            jwt_validation_pubkeys: f.str_list("jwt_validation_pubkeys")?.unwrap_or_default(),
            jwks_url: f.str("jwks_url")?.unwrap_or_default(),
            jwks_ca_pem: f.str("jwks_ca_pem")?.unwrap_or_default(),
            oidc_discovery_url: f.str("oidc_discovery_url")?.unwrap_or_default(),
            oidc_discovery_ca_pem: f.str("oidc_discovery_ca_pem")?.unwrap_or_default(),
            bound_issuer: f.str("bound_issuer")?.unwrap_or_default(),
            jwt_supported_algs: f.str_list("jwt_supported_algs")?.unwrap_or_default(),
            default_role: f.str("default_role")?.unwrap_or_default(),
        };
        let sources = [
            !c.jwt_validation_pubkeys.is_empty(),
            !c.jwks_url.is_empty(),
            !c.oidc_discovery_url.is_empty(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(bad(
                "exactly one of 'jwt_validation_pubkeys', 'jwks_url' or 'oidc_discovery_url' must be set",
            ));
        }
        keys::check_pems("jwt_validation_pubkeys", &c.jwt_validation_pubkeys)?;
        for a in &c.jwt_supported_algs {
            parse_alg(a)?;
        }
        c.jwks_url = c.jwks_url.trim().to_owned();
        st.put_json("config", &c).await?;
        // Keys may have changed: drop anything fetched before.
        self.jwks.clear().await;
        Ok(())
    }

    fn role_api(r: &Role) -> Map<String, Value> {
        let mut d = obj(json!({
            "role_type": r.role_type,
            "bound_audiences": r.bound_audiences,
            "bound_subject": r.bound_subject,
            "bound_claims": if r.bound_claims.is_empty() { Value::Null } else { json!(r.bound_claims) },
            "bound_claims_type": r.bound_claims_type,
            "user_claim": r.user_claim,
            "claim_mappings": if r.claim_mappings.is_empty() { Value::Null } else { json!(r.claim_mappings) },
            "groups_claim": r.groups_claim,
            "clock_skew_leeway": r.clock_skew_leeway,
            "expiration_leeway": r.expiration_leeway,
            "not_before_leeway": r.not_before_leeway,
        }));
        r.token.write_to(&mut d);
        d
    }

    fn apply_role(prev: Option<Role>, data: &Map<String, Value>) -> Result<Role, LogicalError> {
        let f = Fields::new(data);
        let mut r = prev.unwrap_or(Role {
            role_type: "jwt".into(),
            bound_audiences: vec![],
            bound_subject: String::new(),
            bound_claims: BTreeMap::new(),
            bound_claims_type: "string".into(),
            user_claim: String::new(),
            claim_mappings: BTreeMap::new(),
            groups_claim: String::new(),
            clock_skew_leeway: 60,
            expiration_leeway: 150,
            not_before_leeway: 150,
            token: TokenFields::default(),
        });
        if let Some(t) = f.str("role_type")? {
            if t != "jwt" {
                return Err(bad(format!(
                    "role_type {t:?} is not supported: use \"jwt\" (OIDC browser logins are not implemented)"
                )));
            }
            r.role_type = t;
        }
        if let Some(a) = f.str_list("bound_audiences")? {
            r.bound_audiences = a;
        }
        if let Some(s) = f.str("bound_subject")? {
            r.bound_subject = s;
        }
        if let Some(c) = f.object("bound_claims")? {
            r.bound_claims = c.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        }
        if let Some(t) = f.str("bound_claims_type")? {
            if t != "string" && t != "glob" {
                return Err(bad("bound_claims_type must be \"string\" or \"glob\""));
            }
            r.bound_claims_type = t;
        }
        if let Some(u) = f.str("user_claim")? {
            r.user_claim = u;
        }
        if let Some(m) = f.str_map("claim_mappings")? {
            r.claim_mappings = m;
        }
        if let Some(g) = f.str("groups_claim")? {
            r.groups_claim = g;
        }
        for (k, slot) in [
            ("clock_skew_leeway", &mut r.clock_skew_leeway),
            ("expiration_leeway", &mut r.expiration_leeway),
            ("not_before_leeway", &mut r.not_before_leeway),
        ] {
            if let Some(v) = f.duration(k)? {
                *slot = v;
            }
        }
        r.token.apply(data)?;
        if r.user_claim.is_empty() {
            return Err(bad("a user claim must be defined on the role"));
        }
        if r.bound_audiences.is_empty()
            && r.bound_subject.is_empty()
            && r.bound_claims.is_empty()
            && r.token.token_bound_cidrs.is_empty()
        {
            return Err(bad(
                "must have at least one bound constraint when creating/updating a role",
            ));
        }
        Ok(r)
    }

    /// Verifies the signature against the configured keys and returns the claims.
    async fn verify(&self, cfg: &Config, jwt: &str) -> Result<Value, LogicalError> {
        let names: &[String] = &cfg.jwt_supported_algs;
        let allowed: Vec<Algorithm> = if names.is_empty() {
            DEFAULT_ALGS.iter().map(|a| parse_alg(a)).collect()
        } else {
            names.iter().map(|a| parse_alg(a)).collect::<Result<_, _>>()
        }?;
        let (jwks_url, ca_pem) = if cfg.jwks_url.is_empty() {
            ("", cfg.oidc_discovery_ca_pem.as_str())
        } else {
            (cfg.jwks_url.as_str(), cfg.jwks_ca_pem.as_str())
        };
        let src = KeySource {
            jwks_url,
            discovery_url: &cfg.oidc_discovery_url,
            ca_pem,
            bearer: None,
        };
        keys::verify(jwt, &allowed, &cfg.jwt_validation_pubkeys, &self.jwks, &src)
            .await
            .map_err(|e| match e {
                VerifyError::Fetch(m) => LogicalError::Internal(m),
                other => invalid(other),
            })
    }

    fn check_claims(cfg: &Config, role: &Role, claims: &Value) -> Result<(), LogicalError> {
        let now = now_unix();
        let skew = role.clock_skew_leeway as i64;
        let num = |name: &str| claims.get(name).and_then(Value::as_i64);
        let exp = num("exp").ok_or_else(|| invalid("exp claim is missing"))?;
        if now > exp + role.expiration_leeway as i64 + skew {
            return Err(invalid("token is expired (exp)"));
        }
        if let Some(nbf) = num("nbf")
            && now + role.not_before_leeway as i64 + skew < nbf
        {
            return Err(invalid("token is not valid yet (nbf)"));
        }
        if let Some(iat) = num("iat")
            && iat > now + skew
        {
            return Err(invalid("token was issued in the future (iat)"));
        }
        if !cfg.bound_issuer.is_empty()
            && claims.get("iss").and_then(Value::as_str) != Some(cfg.bound_issuer.as_str())
        {
            return Err(invalid("iss claim does not match bound_issuer"));
        }
        let aud = claims.get("aud").map(texts).unwrap_or_default();
        if role.bound_audiences.is_empty() {
            if !aud.is_empty() {
                return Err(invalid(
                    "audience claim found in JWT but no audiences bound to the role",
                ));
            }
        } else if !aud.iter().any(|a| role.bound_audiences.contains(a)) {
            return Err(invalid("aud claim does not match any bound audience"));
        }
        if !role.bound_subject.is_empty()
            && claims.get("sub").and_then(Value::as_str) != Some(role.bound_subject.as_str())
        {
            return Err(invalid("sub claim does not match bound subject"));
        }
        for (name, expected) in &role.bound_claims {
            let want = texts(expected);
            let have = claim(claims, name).map(texts).unwrap_or_default();
            let hit = have.iter().any(|h| {
                want.iter().any(|w| {
                    if role.bound_claims_type == "glob" {
                        coffer_core::glob::matches(w, h)
                    } else {
                        w == h
                    }
                })
            });
            if !hit {
                return Err(invalid(format!(
                    "claim {name:?} does not match any associated bound claim values"
                )));
            }
        }
        Ok(())
    }

    async fn login(&self, req: &EngineRequest<'_>) -> Result<Option<Response>, LogicalError> {
        let st = req.storage;
        let f = Fields::new(req.data);
        let cfg = Self::config(st)
            .await?
            .ok_or_else(|| bad("could not load configuration"))?;
        let role_name = f
            .str("role")?
            .filter(|r| !r.is_empty())
            .or_else(|| (!cfg.default_role.is_empty()).then(|| cfg.default_role.clone()))
            .ok_or_else(|| bad("missing role"))?;
        let role: Role = Roles::get(st, &role_name)
            .await?
            .ok_or_else(|| bad(format!("role {role_name:?} could not be found")))?;
        let jwt = f
            .str("jwt")?
            .filter(|j| !j.is_empty())
            .ok_or_else(|| bad("missing token"))?;
        if !coffer_core::cidr::allows(&role.token.token_bound_cidrs, req.remote_addr)? {
            return Err(bad("source address is not allowed for this role"));
        }
        let claims = self.verify(&cfg, &jwt).await?;
        Self::check_claims(&cfg, &role, &claims)?;
        let user = claim(&claims, &role.user_claim)
            .and_then(as_text)
            .ok_or_else(|| invalid(format!("claim {:?} not found in token", role.user_claim)))?;
        let mut metadata = BTreeMap::from([("role".to_string(), role_name.to_lowercase())]);
        for (c, key) in &role.claim_mappings {
            if let Some(v) = claim(&claims, c).and_then(as_text) {
                metadata.insert(key.clone(), v);
            }
        }
        Ok(Some(Response {
            login: Some(role.token.login(&user, metadata)),
            ..Response::default()
        }))
    }
}

#[async_trait]
impl Backend for Jwt {
    fn help(&self) -> coffer_core::paths::MountHelp {
        coffer_core::paths::MountHelp {
            description: "The JWT auth method: a JWT signed by a configured key, JWKS URL or OIDC issuer logs in under a role whose bound claims it meets.",
            paths: self.paths.docs(),
        }
    }

    fn is_unauthenticated(&self, path: &str) -> bool {
        path == "login"
    }

    async fn check_renewal(
        &self,
        storage: &StorageView,
        meta: &BTreeMap<String, String>,
        _policies: &[String],
    ) -> Result<(), LogicalError> {
        Roles::check_renewal(storage, meta, "role").await
    }

    async fn handle(&self, req: EngineRequest<'_>) -> Result<Option<Response>, LogicalError> {
        let m = self.paths.route(req.operation, req.path)?;
        let st = req.storage;
        match m.route {
            Route::Login => self.login(&req).await,
            Route::Config if req.operation == Read => Ok(Self::config(st).await?.map(|c| {
                Response::data(obj(json!({
                    "jwt_validation_pubkeys": c.jwt_validation_pubkeys,
                    "jwks_url": c.jwks_url,
                    "jwks_ca_pem": c.jwks_ca_pem,
                    "oidc_discovery_url": c.oidc_discovery_url,
                    "oidc_discovery_ca_pem": c.oidc_discovery_ca_pem,
                    "bound_issuer": c.bound_issuer,
                    "jwt_supported_algs": c.jwt_supported_algs,
                    "default_role": c.default_role,
                })))
            })),
            Route::Config => self.write_config(st, req.data).await.map(|_| None),
            Route::Roles | Route::Role => {
                let name = matches!(m.route, Route::Role).then(|| m.param("name"));
                let apply =
                    |prev, data: &Map<String, Value>| Ok((Self::apply_role(prev, data)?, vec![]));
                self.roles
                    .handle(st, req.operation, name, req.data, Self::role_api, apply)
                    .await
            }
        }
    }
}
