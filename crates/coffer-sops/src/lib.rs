//! SOPS-compatible file encryption: values become
//! `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` under one data key per file,
//! authenticated with their key path, and a MAC over every value detects a
//! changed, removed or added value.
//!
//! This crate holds the format; key sources and the CLI build on it.

pub mod age_keys;
pub mod binary;
pub mod cipher;
pub mod config;
pub mod document;
pub mod dotenv;
pub mod flat;
pub mod guard;
pub mod ini;
pub mod json;
pub mod mac;
pub mod metadata;
pub mod path;
pub mod stream;
pub mod tree;
pub mod value;
pub mod yaml;

pub use age;
pub use cipher::DataKey;
pub use value::Scalar;

/// Why a file or value could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    /// The file or a value is not in the expected form (the message says
    /// what and where).
    #[error("{0}")]
    Malformed(String),
    /// Authentication failed: wrong key, wrong path, or a changed value.
    #[error(
        "value at {path:?} does not decrypt: wrong data key, or the value or its key path was changed"
    )]
    Decrypt {
        /// The value's key path (its AAD).
        path: String,
    },
    /// A value that should be encrypted is not a readable `ENC[...]`.
    #[error("value at {path:?} cannot be decrypted: {reason}")]
    Unreadable {
        /// The value's key path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A decrypted value does not parse as its declared type.
    #[error("value at {path:?} is not a valid {kind}")]
    BadType {
        /// The value's key path.
        path: String,
        /// The declared type.
        kind: &'static str,
    },
    /// The file's MAC does not match its values.
    #[error(
        "MAC mismatch: the file's values were changed, added or removed after it was encrypted (stored {stored}, computed {computed})"
    )]
    MacMismatch {
        /// The MAC in the file.
        stored: String,
        /// The MAC of the values as they are.
        computed: String,
    },
    /// The stored MAC does not decrypt under the data key and
    /// `lastmodified`.
    #[error(
        "the file's MAC does not decrypt: its sops.mac or sops.lastmodified was changed, or the data key is not this file's"
    )]
    MacUnreadable,
    /// The plaintext already has SOPS metadata.
    #[error("{0}")]
    AlreadyEncrypted(String),
    /// The file has no MAC.
    #[error("the file has no MAC (sops.mac is empty)")]
    NoMac,
    /// Randomness was not available.
    #[error("no randomness available: {0}")]
    Random(String),
}
