//! What the JWT and Kubernetes methods share: the paths (`config`,
//! `role/<name>` with LIST, `login`) and role reads and writes, each role's
//! read-modify-write under its own lock.

use coffer_core::backend::StorageView;
use coffer_core::logical::Operation::{self, *};
use coffer_core::paths::PathSpec;
use coffer_core::stripes::Stripes;
use coffer_core::{LogicalError, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

#[derive(Clone, Copy)]
pub(crate) enum Route {
    Config,
    Roles,
    Role,
    Login,
}

pub(crate) static PATHS: &[PathSpec<Route>] = &[
    PathSpec {
        pattern: "config",
        operations: &[Read, Update],
        route: Route::Config,
        help: "The method's configuration: where keys come from and how tokens are checked.",
    },
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
        help: "Manage a role: what a token must show, and the coffer token it gets.",
    },
    PathSpec {
        pattern: "login",
        operations: &[Update],
        route: Route::Login,
        help: "Log in with a signed JWT.",
    },
];

/// A mount's roles, stored under `role/<lowercased name>`.
#[derive(Default)]
pub(crate) struct Roles {
    locks: Stripes,
}

fn key(name: &str) -> String {
    format!("role/{}", name.to_lowercase())
}

impl Roles {
    /// Refuses to renew a token whose role (named by `meta[key]`) was deleted.
    pub async fn check_renewal(
        st: &StorageView,
        meta: &std::collections::BTreeMap<String, String>,
        key: &str,
    ) -> Result<(), LogicalError> {
        let Some(name) = meta.get(key) else {
            return Ok(());
        };
        if st.get_json::<Value>(&self::key(name)).await?.is_none() {
            return Err(LogicalError::BadRequest(format!(
                "role {name:?} no longer exists; the token is not renewed"
            )));
        }
        Ok(())
    }

    /// The role a login names, if it exists.
    pub async fn get<R: DeserializeOwned>(
        st: &StorageView,
        name: &str,
    ) -> Result<Option<R>, LogicalError> {
        st.get_json(&key(name)).await
    }

    /// LIST, read, delete or write `role/<name>`. A write hands the stored
    /// role (if any) and the request data to `apply`, which returns the new
    /// role and any warnings.
    pub async fn handle<R, A>(
        &self,
        st: &StorageView,
        op: Operation,
        name: Option<&str>,
        data: &Map<String, Value>,
        to_api: fn(&R) -> Map<String, Value>,
        apply: A,
    ) -> Result<Option<Response>, LogicalError>
    where
        R: Serialize + DeserializeOwned,
        A: FnOnce(Option<R>, &Map<String, Value>) -> Result<(R, Vec<String>), LogicalError>,
    {
        let Some(name) = name else {
            let mut names = st.list("role/").await?;
            names.sort();
            return Ok(Some(Response::list(names)));
        };
        let name = name.to_lowercase();
        let key = key(&name);
        match op {
            Read => Ok(st
                .get_json::<R>(&key)
                .await?
                .map(|r| Response::data(to_api(&r)))),
            Delete => {
                let _g = self.locks.lock(&name).await;
                st.delete(&key).await?;
                Ok(None)
            }
            _ => {
                // A partial update must not lose a concurrent one.
                let _g = self.locks.lock(&name).await;
                let (role, warnings) = apply(st.get_json(&key).await?, data)?;
                st.put_json(&key, &role).await?;
                Ok((!warnings.is_empty()).then(|| Response {
                    warnings,
                    ..Response::default()
                }))
            }
        }
    }
}
