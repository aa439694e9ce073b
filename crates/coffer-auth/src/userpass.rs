//! userpass: users with argon2id-hashed passwords.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use async_trait::async_trait;
use coffer_core::backend::{Backend, EngineRequest, StorageView};
use coffer_core::fields::Fields;
use coffer_core::logical::Operation::*;
use coffer_core::mounts::MountEntry;
use coffer_core::paths::{PathSpec, PathTable};
use coffer_core::{LogicalError, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::TokenFields;

#[derive(Clone, Copy)]
enum Route {
    Users,
    User,
    Password,
    Policies,
    Login,
}

static PATHS: &[PathSpec<Route>] = &[
    PathSpec {
        pattern: "users",
        operations: &[List],
        route: Route::Users,
        help: "List users.",
    },
    PathSpec {
        pattern: "users/",
        operations: &[List],
        route: Route::Users,
        help: "List users.",
    },
    PathSpec {
        pattern: "users/{username}",
        operations: &[Read, Update, Delete],
        route: Route::User,
        help: "Manage a user.",
    },
    PathSpec {
        pattern: "users/{username}/password",
        operations: &[Update],
        route: Route::Password,
        help: "Change a user's password.",
    },
    PathSpec {
        pattern: "users/{username}/policies",
        operations: &[Update],
        route: Route::Policies,
        help: "Change a user's policies.",
    },
    PathSpec {
        pattern: "login/{username}",
        operations: &[Update],
        route: Route::Login,
        help: "Log in with a password.",
    },
];

#[derive(Serialize, Deserialize, Clone)]
struct User {
    /// PHC string of the argon2id hash.
    password_hash: String,
    #[serde(flatten)]
    token: TokenFields,
}

/// A hash to verify against when the user does not exist, so timing does not reveal that.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("coffer-no-such-user").unwrap_or_default());

fn hash_password(password: &str) -> Result<String, LogicalError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| LogicalError::Internal(format!("hashing password: {e}")))
}

fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// Argon2 is deliberately slow and memory-hungry: run it in core's bounded
/// pool, so a flood of logins queues instead of exhausting memory.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, LogicalError> {
    coffer_core::heavy::run("password hashing", f).await
}

/// The userpass auth method.
pub struct Userpass {
    paths: PathTable<Route>,
    /// Serialise each user's read-modify-writes, so a password change or a
    /// deletion is never undone by an update that read the user before it.
    locks: coffer_core::stripes::Stripes,
}

/// Builds the method for a mount.
pub fn factory(_: &MountEntry) -> Result<Arc<dyn Backend>, LogicalError> {
    Ok(Arc::new(Userpass {
        paths: PathTable::new(PATHS).map_err(LogicalError::Internal)?,
        locks: coffer_core::stripes::Stripes::default(),
    }))
}

fn key(username: &str) -> String {
    format!("user/{}", username.to_lowercase())
}

async fn load(storage: &StorageView, username: &str) -> Result<Option<User>, LogicalError> {
    storage.get_json(&key(username)).await
}

fn password_param(data: &Map<String, Value>) -> Result<Option<Zeroizing<String>>, LogicalError> {
    if data.get("password_hash").is_some_and(|v| !v.is_null()) {
        return Err(LogicalError::BadRequest(
            "password_hash is not supported: send password and coffer stores an argon2id hash"
                .into(),
        ));
    }
    Ok(Fields::new(data)
        .str("password")?
        .filter(|p| !p.is_empty())
        .map(Zeroizing::new))
}

#[async_trait]
impl Backend for Userpass {
    fn help(&self) -> coffer_core::paths::MountHelp {
        coffer_core::paths::MountHelp {
            description: "The userpass auth method: users with a password (argon2id-hashed) and token settings; login/<username> gives a token.",
            paths: self.paths.docs(),
        }
    }

    fn is_unauthenticated(&self, path: &str) -> bool {
        path.starts_with("login/")
    }

    /// As Vault: a deleted user's token, or one whose user now has other
    /// policies, is not renewed (a new login picks up the change).
    async fn check_renewal(
        &self,
        storage: &StorageView,
        meta: &BTreeMap<String, String>,
        policies: &[String],
    ) -> Result<(), LogicalError> {
        let Some(name) = meta.get("username") else {
            return Ok(());
        };
        let user = load(storage, name).await?.ok_or_else(|| {
            LogicalError::BadRequest(format!(
                "user {name:?} no longer exists; the token is not renewed"
            ))
        })?;
        let set = |p: &[String]| -> std::collections::BTreeSet<String> {
            coffer_core::policy::normalize_policy_names(p)
                .into_iter()
                .filter(|p| p != "default")
                .collect()
        };
        if set(&user.token.token_policies) != set(policies) {
            return Err(LogicalError::BadRequest(
                "policies have changed, not renewing".into(),
            ));
        }
        Ok(())
    }

    async fn handle(&self, req: EngineRequest<'_>) -> Result<Option<Response>, LogicalError> {
        let m = self.paths.route(req.operation, req.path)?;
        let name = m.param("username").to_lowercase();
        let st = req.storage;
        let changes_user = matches!(m.route, Route::User | Route::Password | Route::Policies)
            && req.operation != Read;
        // A new password is hashed before the user's lock is taken: the hash
        // does not depend on what is stored, and the lock is not held while
        // the hashing pool is busy.
        let new_hash = match (m.route, req.operation) {
            (Route::User | Route::Password, op) if op != Read && op != Delete => {
                match password_param(req.data)? {
                    Some(p) => Some(blocking(move || hash_password(&p)).await??),
                    None => None,
                }
            }
            _ => None,
        };
        let _user_guard = match changes_user {
            true => Some(self.locks.lock(&name).await),
            false => None,
        };
        match m.route {
            Route::Users => {
                let mut names = st.list("user/").await?;
                names.sort();
                Ok(Some(Response::list(names)))
            }
            Route::User => match req.operation {
                Read => Ok(load(st, &name).await?.map(|u| {
                    let mut d = Map::new();
                    u.token.write_to(&mut d);
                    Response::data(d)
                })),
                Delete => {
                    st.delete(&key(&name)).await?;
                    Ok(None)
                }
                _ => {
                    let prev = load(st, &name).await?;
                    let password_hash = match (new_hash, &prev) {
                        (Some(h), _) => h,
                        (None, Some(u)) => u.password_hash.clone(),
                        (None, None) => {
                            return Err(LogicalError::BadRequest("missing password".into()));
                        }
                    };
                    let mut token = prev.map(|u| u.token).unwrap_or_default();
                    token.apply(req.data)?;
                    st.put_json(
                        &key(&name),
                        &User {
                            password_hash,
                            token,
                        },
                    )
                    .await?;
                    Ok(None)
                }
            },
            Route::Password => {
                let mut u = load(st, &name)
                    .await?
                    .ok_or_else(|| LogicalError::BadRequest("username does not exist".into()))?;
                u.password_hash =
                    new_hash.ok_or_else(|| LogicalError::BadRequest("missing password".into()))?;
                st.put_json(&key(&name), &u).await?;
                Ok(None)
            }
            Route::Policies => {
                let mut u = load(st, &name)
                    .await?
                    .ok_or_else(|| LogicalError::BadRequest("username does not exist".into()))?;
                let f = Fields::new(req.data);
                let p = f
                    .str_list("token_policies")?
                    .or(f.str_list("policies")?)
                    .ok_or_else(|| LogicalError::BadRequest("missing token_policies".into()))?;
                u.token.token_policies = coffer_core::policy::normalize_policy_names(&p);
                st.put_json(&key(&name), &u).await?;
                Ok(None)
            }
            Route::Login => {
                let invalid = || LogicalError::BadRequest("invalid username or password".into());
                let password = password_param(req.data)?
                    .ok_or_else(|| LogicalError::BadRequest("missing password".into()))?;
                let user = load(st, &name).await?;
                let phc = user
                    .as_ref()
                    .map_or_else(|| DUMMY_HASH.clone(), |u| u.password_hash.clone());
                let ok = blocking(move || verify(&password, &phc)).await?;
                let user = match user {
                    Some(u) if ok => u,
                    _ => return Err(invalid()),
                };
                if !coffer_core::cidr::allows(&user.token.token_bound_cidrs, req.remote_addr)? {
                    return Err(invalid());
                }
                let meta = BTreeMap::from([("username".to_string(), name.clone())]);
                Ok(Some(Response {
                    login: Some(user.token.login(&name, meta)),
                    ..Response::default()
                }))
            }
        }
    }
}
