//! A per-mount HMAC key, so credentials are stored only as keyed hashes.

use coffer_core::LogicalError;
use coffer_core::backend::StorageView;
use coffer_core::secret::Key32;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::OnceCell;

/// The mount's salt, loaded or created once.
#[derive(Default)]
pub(crate) struct Salt(OnceCell<Key32>);

impl Salt {
    /// HMAC-SHA256 of `value` under the mount's salt, hex.
    pub(crate) async fn hmac(
        &self,
        storage: &StorageView,
        value: &str,
    ) -> Result<String, LogicalError> {
        let key = self
            .0
            .get_or_try_init(|| async {
                match storage.get("salt").await? {
                    Some(b) => Key32::from_slice(b.expose())
                        .ok_or_else(|| LogicalError::Internal("auth salt is corrupt".into())),
                    None => {
                        let k =
                            Key32::random().map_err(|e| LogicalError::Internal(e.to_string()))?;
                        storage.put("salt", k.expose()).await?;
                        Ok(k)
                    }
                }
            })
            .await?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose())
            .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
        mac.update(value.as_bytes());
        Ok(hex::encode(mac.finalize().into_bytes()))
    }
}
