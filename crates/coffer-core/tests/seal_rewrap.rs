//! An auto seal whose KMS answers a rewrap with a ciphertext that does not
//! decrypt must never lock the server out: the old wrapping stays.

use async_trait::async_trait;
use coffer_core::backend::EngineRegistry;
use coffer_core::seal::{AutoSeal, SealError, SealMode, StaticSeal};
use coffer_core::secret::SecretBytes;
use coffer_core::{Core, CoreConfig, InitParams};
use coffer_storage::{DynStorage, MemoryStorage};
use std::sync::Arc;

const KEY: &str = "0101010101010101010101010101010101010101010101010101010101010101";

/// A static seal whose `refresh` answers with garbage, like a KMS that
/// returned a bad ciphertext for the key's new version.
struct BadRewrap(StaticSeal);

#[async_trait]
impl AutoSeal for BadRewrap {
    fn seal_type(&self) -> &'static str {
        "static"
    }
    async fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        self.0.wrap(plaintext, aad).await
    }
    async fn unwrap(&self, ciphertext: &[u8], aad: &[u8]) -> Result<SecretBytes, SealError> {
        self.0.unwrap(ciphertext, aad).await
    }
    async fn refresh(
        &self,
        _ciphertext: &[u8],
        _plaintext: &[u8],
        _aad: &[u8],
    ) -> Result<Option<Vec<u8>>, SealError> {
        Ok(Some(b"not a ciphertext this seal can open".to_vec()))
    }
}

fn core(storage: &DynStorage) -> Core {
    let seal = BadRewrap(StaticSeal::from_text(KEY).expect("key"));
    Core::new(
        storage.clone(),
        SealMode::Auto(Box::new(seal)),
        EngineRegistry::new(),
        EngineRegistry::new(),
        CoreConfig::default(),
    )
    .expect("core")
}

#[tokio::test]
async fn a_bad_rewrap_from_the_kms_keeps_the_old_wrapping() {
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    let first = core(&storage);
    first
        .initialize(InitParams {
            secret_shares: 0,
            secret_threshold: 0,
            recovery_shares: 1,
            recovery_threshold: 1,
        })
        .await
        .expect("init");
    first.seal().await;
    // An unseal asks the seal to rewrap; its answer does not decrypt.
    assert!(first.auto_unseal().await.expect("unseal"));
    first.seal().await;
    // A later start (a fresh process over the same storage) still unseals.
    let second = core(&storage);
    assert!(
        second.auto_unseal().await.expect("still unseals"),
        "the server is locked out"
    );
    assert!(!second.is_sealed());
}
