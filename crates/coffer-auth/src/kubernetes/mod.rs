//! Kubernetes auth: a pod logs in with its service-account token, which the
//! cluster's API server confirms (TokenReview) or, with `review = "local"`,
//! which coffer verifies itself. The API is Vault's, so ESO, the CSI
//! provider, the agent injector and VSO work unchanged.
//!
//! Every refused login keeps its reason: the client gets Vault's bare 403,
//! the audit entry and the server log get why.

mod apiserver;
mod claims;
mod config;
mod role;
mod selector;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use coffer_core::backend::{Backend, EngineRequest, StorageView};
use coffer_core::fields::Fields;
use coffer_core::logical::Operation::*;
use coffer_core::mounts::MountEntry;
use coffer_core::paths::PathTable;
use coffer_core::token::now_unix;
use coffer_core::{LogicalError, Response};
use jsonwebtoken::Algorithm;
use zeroize::Zeroizing;

use crate::keys::{self, JwksCache, KeySource};
use crate::role_method::{PATHS, Roles, Route};
use apiserver::{Clients, LocalAccount, Target};
use claims::ServiceAccount;
use config::{Config, Review};
use role::Role;
use selector::LabelSelector;

pub use apiserver::SA_DIR_ENV;

/// The algorithms Kubernetes signs service-account tokens with (ES512 is
/// not supported by the JWT library coffer uses).
const ALGS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Clock skew allowed on `exp` and `nbf`, seconds.
const LEEWAY: i64 = 60;

/// Annotations on a service account that become login metadata.
const ANNOTATION_PREFIX: &str = "vault.hashicorp.com/alias-metadata-";
const RESERVED_METADATA: &[&str] = &[
    "service_account_uid",
    "service_account_name",
    "service_account_namespace",
    "service_account_secret_name",
];

/// The Kubernetes auth method.
pub struct Kubernetes {
    paths: PathTable<Route>,
    local: LocalAccount,
    clients: Clients,
    jwks: JwksCache,
    roles: Roles,
}

/// Builds the method for a mount.
pub fn factory(_: &MountEntry) -> Result<Arc<dyn Backend>, LogicalError> {
    Ok(Arc::new(Kubernetes {
        paths: PathTable::new(PATHS).map_err(LogicalError::Internal)?,
        local: LocalAccount::from_env(),
        clients: Clients::default(),
        jwks: JwksCache::default(),
        roles: Roles::default(),
    }))
}

fn bad(m: impl Into<String>) -> LogicalError {
    LogicalError::BadRequest(m.into())
}

/// A login refused for `why`: a 403 whose reason the client does not see.
fn refused(why: impl Into<String>) -> LogicalError {
    LogicalError::Refused(why.into())
}

impl Kubernetes {
    async fn config(st: &StorageView) -> Result<Option<Config>, LogicalError> {
        st.get_json("config").await
    }

    /// The API server and the bearer to call it with: the configured
    /// reviewer token, else this pod's own (re-read as it rotates), else
    /// `client_jwt` when given.
    async fn target(&self, cfg: &Config, client_jwt: Option<&str>) -> Result<Target, String> {
        let use_local = !cfg.disable_local_ca_jwt;
        let (bearer, bearer_is) = if !cfg.token_reviewer_jwt.is_empty() {
            (
                Zeroizing::new(cfg.token_reviewer_jwt.expose().to_owned()),
                "token_reviewer_jwt",
            )
        } else if let Some(t) = if use_local {
            self.local.token().await
        } else {
            None
        } {
            (t, "coffer's own service-account token")
        } else if let Some(j) = client_jwt {
            (
                Zeroizing::new(j.to_owned()),
                "the client's own JWT (no token_reviewer_jwt is set)",
            )
        } else {
            return Err(
                "no token to call the API server with: set token_reviewer_jwt, or run coffer in a pod"
                    .into(),
            );
        };
        let (ca, system_roots) = if !cfg.kubernetes_ca_cert.is_empty() {
            (cfg.kubernetes_ca_cert.clone(), false)
        } else if let Some(ca) = if use_local {
            self.local.ca().await
        } else {
            None
        } {
            (ca, true)
        } else {
            (String::new(), true)
        };
        Ok(Target {
            base: apiserver::base_url(&cfg.kubernetes_host),
            ca,
            system_roots,
            bearer,
            bearer_is,
        })
    }

    /// The token's claims: verified when keys are configured, read as they
    /// are otherwise (the TokenReview is then the check, as in Vault).
    async fn claims(&self, cfg: &Config, jwt: &str) -> Result<serde_json::Value, LogicalError> {
        let verify = cfg.review == Review::Local || !cfg.pem_keys.is_empty();
        if !verify {
            keys::header(jwt, ALGS).map_err(|e| LogicalError::Forbidden(e.to_string()))?;
            return jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(jwt)
                .ok()
                .map(|t| t.claims)
                .filter(serde_json::Value::is_object)
                .ok_or_else(|| {
                    LogicalError::Forbidden(
                        "malformed token: the payload is not a JSON object".into(),
                    )
                });
        }
        // The API server's own key endpoints are called as the reviewer,
        // trusting the cluster CA; other issuers as configured.
        let url = if cfg.jwks_url.is_empty() {
            &cfg.oidc_discovery_url
        } else {
            &cfg.jwks_url
        };
        let target = if same_origin(url, &apiserver::base_url(&cfg.kubernetes_host)) {
            self.target(cfg, None).await.ok()
        } else {
            None
        };
        let src = KeySource {
            jwks_url: &cfg.jwks_url,
            discovery_url: &cfg.oidc_discovery_url,
            ca_pem: match &target {
                Some(t) if cfg.jwks_ca_pem.is_empty() => &t.ca,
                _ => &cfg.jwks_ca_pem,
            },
            bearer: target.as_ref().map(|t| t.bearer.as_str()),
        };
        keys::verify(jwt, ALGS, &cfg.pem_keys, &self.jwks, &src)
            .await
            .map_err(|e| refused(format!("the token's signature was not accepted: {e}")))
    }

    async fn login(&self, req: &EngineRequest<'_>) -> Result<Option<Response>, LogicalError> {
        let f = Fields::new(req.data);
        let role_name = f
            .str("role")?
            .filter(|r| !r.is_empty())
            .ok_or_else(|| bad("missing role"))?;
        let jwt = Zeroizing::new(
            f.str("jwt")?
                .filter(|j| !j.is_empty())
                .ok_or_else(|| bad("missing jwt"))?,
        );
        let role: Role = Roles::get(req.storage, &role_name)
            .await?
            .ok_or_else(|| bad(format!("invalid role name {role_name:?}")))?;
        let result = self.login_as(req, &role_name, &role, &jwt).await;
        if let Err(e) = &result
            && matches!(e, LogicalError::Refused(_) | LogicalError::Forbidden(_))
        {
            tracing::info!(
                mount = %req.mount.path,
                role = %role_name,
                remote = ?req.remote_addr.map(|a| a.ip()),
                reason = %e.audit_text(),
                "kubernetes login refused"
            );
        }
        result
    }

    async fn login_as(
        &self,
        req: &EngineRequest<'_>,
        role_name: &str,
        role: &Role,
        jwt: &str,
    ) -> Result<Option<Response>, LogicalError> {
        if !coffer_core::cidr::allows(&role.token.token_bound_cidrs, req.remote_addr)? {
            return Err(refused(format!(
                "the client address {} is outside the role's token_bound_cidrs",
                req.remote_addr
                    .map(|a| a.ip().to_string())
                    .unwrap_or_else(|| "(unknown)".into())
            )));
        }
        let cfg = Self::config(req.storage)
            .await?
            .ok_or_else(|| LogicalError::Internal("could not load backend configuration".into()))?;
        let claims = self.claims(&cfg, jwt).await?;
        let sa = ServiceAccount::from_claims(&claims);
        // As in Vault, `iss` is checked only against an issuer that is set:
        // clients such as vaultrs always send disable_iss_validation=false.
        let issuer =
            (!cfg.disable_iss_validation && !cfg.issuer.is_empty()).then_some(cfg.issuer.as_str());
        sa.check_claims(now_unix(), LEEWAY, issuer, &role.audience)
            .map_err(LogicalError::Forbidden)?;
        sa.check_names().map_err(refused)?;
        if !role.binds_name(&sa.name) {
            return Err(LogicalError::Forbidden(
                "service account name not authorized".into(),
            ));
        }
        self.check_namespace(&cfg, role, &sa).await?;
        if sa.uid.is_empty() {
            return Err(refused("could not parse UID from claims"));
        }
        match cfg.review {
            Review::Local => {
                if sa.exp.is_none() {
                    return Err(refused(
                        "review \"local\" accepts only tokens that expire; this one has no exp claim (a legacy secret-based token?)",
                    ));
                }
            }
            Review::Tokenreview => self.review(&cfg, role, &sa, jwt).await?,
        }
        let mut metadata = BTreeMap::new();
        if cfg.use_annotations_as_alias_metadata {
            metadata = self.annotation_metadata(&cfg, &sa, jwt).await?;
        }
        metadata.extend([
            ("service_account_uid".to_string(), sa.uid.clone()),
            ("service_account_name".to_string(), sa.name.clone()),
            (
                "service_account_namespace".to_string(),
                sa.namespace.clone(),
            ),
            (
                "service_account_secret_name".to_string(),
                sa.secret_name.clone(),
            ),
            ("role".to_string(), role_name.to_string()),
        ]);
        Ok(Some(Response {
            login: Some(
                role.token
                    .login(&format!("{}-{}", sa.namespace, sa.name), metadata),
            ),
            ..Response::default()
        }))
    }

    /// The namespace must match the role's globs or, failing them, its
    /// label selector (read from the API server as the reviewer).
    async fn check_namespace(
        &self,
        cfg: &Config,
        role: &Role,
        sa: &ServiceAccount,
    ) -> Result<(), LogicalError> {
        if role.binds_namespace(&sa.namespace) {
            return Ok(());
        }
        let denied = |why: Option<String>| {
            LogicalError::Forbidden(match why {
                Some(w) => format!("namespace not authorized err={w}"),
                None => "namespace not authorized".into(),
            })
        };
        if role.bound_service_account_namespace_selector.is_empty() {
            return Err(denied(None));
        }
        let selector = LabelSelector::parse(&role.bound_service_account_namespace_selector)
            .map_err(|e| denied(Some(e)))?;
        let target = self.target(cfg, None).await.map_err(|_| {
            denied(Some(
                "a namespace selector needs a token_reviewer_jwt (or coffer running in a pod) to read namespace labels"
                    .into(),
            ))
        })?;
        let labels = self
            .clients
            .namespace_labels(&target, &sa.namespace)
            .await
            .map_err(|e| denied(Some(e)))?;
        if selector.matches(&labels) {
            Ok(())
        } else {
            Err(denied(None))
        }
    }

    /// The TokenReview, and its answer compared with the token's claims.
    async fn review(
        &self,
        cfg: &Config,
        role: &Role,
        sa: &ServiceAccount,
        jwt: &str,
    ) -> Result<(), LogicalError> {
        let audiences = if role.audience.is_empty() {
            sa.audiences.clone()
        } else {
            vec![role.audience.clone()]
        };
        let target = self.target(cfg, Some(jwt)).await.map_err(refused)?;
        let r = self
            .clients
            .review(&target, jwt, &audiences)
            .await
            .map_err(refused)?;
        if r.name != sa.name {
            return Err(refused("JWT names did not match"));
        }
        if r.uid != sa.uid {
            return Err(refused("JWT UIDs did not match"));
        }
        if r.namespace != sa.namespace {
            return Err(refused("JWT namespaces did not match"));
        }
        Ok(())
    }

    /// `vault.hashicorp.com/alias-metadata-<key>` annotations on the
    /// service account, as metadata.
    async fn annotation_metadata(
        &self,
        cfg: &Config,
        sa: &ServiceAccount,
        jwt: &str,
    ) -> Result<BTreeMap<String, String>, LogicalError> {
        let target = self
            .target(cfg, Some(jwt))
            .await
            .map_err(LogicalError::Internal)?;
        let annotations = self
            .clients
            .service_account_annotations(&target, &sa.namespace, &sa.name)
            .await
            .map_err(LogicalError::Internal)?;
        let found: BTreeMap<String, String> = annotations
            .into_iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(ANNOTATION_PREFIX)?.to_owned(), v)))
            .collect();
        let reserved: Vec<&str> = found
            .keys()
            .map(String::as_str)
            .filter(|k| RESERVED_METADATA.contains(k))
            .collect();
        if !reserved.is_empty() {
            return Err(bad(format!(
                "service account annotations use reserved metadata keys: {reserved:?}"
            )));
        }
        Ok(found)
    }

    async fn write_config(
        &self,
        st: &StorageView,
        data: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), LogicalError> {
        let c = Config::from_request(data)?;
        st.put_json("config", &c).await?;
        // Another CA or key source: drop clients and keys built for the old.
        self.clients.forget().await;
        self.jwks.clear().await;
        Ok(())
    }
}

/// Whether two URLs have the same scheme, host and port: the reviewer
/// token goes to the API server and nowhere else.
fn same_origin(a: &str, b: &str) -> bool {
    match (reqwest::Url::parse(a), reqwest::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

#[async_trait]
impl Backend for Kubernetes {
    fn help(&self) -> coffer_core::paths::MountHelp {
        coffer_core::paths::MountHelp {
            description: "The Kubernetes auth method: a pod's service-account token, confirmed by the API server's TokenReview (or verified here with review=\"local\"), logs in under a role that binds its name and namespace.",
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
            Route::Config if req.operation == Read => {
                Ok(Self::config(st).await?.map(|c| Response::data(c.to_api())))
            }
            Route::Config => self.write_config(st, req.data).await.map(|_| None),
            Route::Roles | Route::Role => {
                let name = matches!(m.route, Route::Role).then(|| m.param("name"));
                self.roles
                    .handle(st, req.operation, name, req.data, Role::to_api, Role::apply)
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_origin;

    #[test]
    fn the_reviewer_token_only_goes_to_the_api_server() {
        let host = "https://10.0.0.1:6443";
        assert!(same_origin("https://10.0.0.1:6443/openid/v1/jwks", host));
        assert!(!same_origin("https://10.0.0.1:64430/jwks", host));
        assert!(!same_origin(
            "https://10.0.0.1:6443.evil.example/jwks",
            host
        ));
        assert!(!same_origin("http://10.0.0.1:6443/jwks", host));
        assert!(same_origin(
            "https://k8s.example/keys",
            "https://k8s.example:443"
        ));
        assert!(!same_origin(
            "https://k8s.example.evil/keys",
            "https://k8s.example"
        ));
        assert!(!same_origin("not a url", host));
    }
}
