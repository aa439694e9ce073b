//! coffer's transport-free server core.
//!
//! Invariant: this crate never touches HTTP or the filesystem; it sees storage
//! only through `coffer_storage::Storage`, and only through the barrier for
//! everything but the seal's own records.

pub mod aead;
pub mod audit;
pub mod backend;
pub mod barrier;
pub mod cidr;
pub mod clock;
mod core;
pub mod events;
mod expiration;
pub mod fields;
pub mod file_stamp;
pub mod glob;
pub mod ha;
pub mod hcl1;
pub mod heavy;
mod help;
pub mod keyring;
pub mod leak;
pub mod logical;
pub mod metrics;
pub mod mounts;
pub mod password_policy;
pub mod paths;
pub mod policy;
mod replica;
pub mod seal;
pub mod secret;
pub mod stripes;
mod sys;
pub mod token;
pub mod tools;

pub use crate::core::{
    AutoUnsealError, BUILD_DATE, Core, CoreConfig, InitParams, InitResult, SealStatus, VERSION,
    is_empty_response,
};
pub use expiration::{IRREVOCABLE_AFTER, LeaseEntry, LeaseStats};
pub use logical::{LeaseSpec, LogicalError, Operation, Request, Response};
pub use replica::ChangeBatch;
pub use sys::RotationHealth;
