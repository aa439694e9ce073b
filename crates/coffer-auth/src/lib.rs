//! Auth methods for coffer (userpass, AppRole, JWT, Kubernetes). Each is a backend mounted under `auth/`; a
//! successful login answers with token settings and core issues the token.

pub mod approle;
pub mod jwt;
mod keys;
pub mod kubernetes;
mod role_method;
mod salt;
mod token_fields;
pub mod userpass;

use coffer_core::backend::EngineRegistry;

pub use token_fields::TokenFields;

/// A registry holding every auth method type this crate provides.
pub fn registry() -> EngineRegistry {
    let mut r = EngineRegistry::new();
    r.register("userpass", userpass::factory);
    r.register("approle", approle::factory);
    r.register("jwt", jwt::factory);
    r.register("oidc", jwt::factory);
    r.register("kubernetes", kubernetes::factory);
    r
}
