//! The modules behind the `coffer` binary (server wiring, configuration,
//! audit destinations, the command-line client), as a library so that fuzz
//! targets reach the same parsers the binary runs. `main.rs` only parses
//! arguments and dispatches.

pub mod agent;
pub mod audit;
pub mod cli;
pub mod config;
pub mod config_json;
pub mod fd_limit;
pub mod kms;
pub mod sealed;
pub mod server;
pub mod session;
pub mod transit_seal;
