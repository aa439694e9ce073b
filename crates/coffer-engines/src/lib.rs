//! Secret engines for coffer. Each engine only sees its own mount's storage view.

pub mod database;
pub mod kv;
pub mod transit;

use coffer_core::backend::EngineRegistry;

/// A registry holding every engine type this crate provides.
pub fn registry() -> EngineRegistry {
    let mut r = EngineRegistry::new();
    r.register("database", database::factory);
    r.register_catalog("database", database::PLUGIN_NAMES);
    r.register("kv", kv::factory);
    r.register("transit", transit::factory);
    r
}
