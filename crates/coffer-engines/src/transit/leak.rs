//! What transit tells the leak index: the material of exportable keys, in
//! the forms `export/` hands out (base64 key bytes, PEM private keys, HMAC
//! keys). Keys that cannot be exported never leave coffer and are not
//! indexed; public keys are not secret.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use coffer_core::LogicalError;
use coffer_core::backend::StorageView;
use coffer_core::leak::{LeakKind, LeakMatch, Print};
use serde_json::{Map, json};
use zeroize::Zeroizing;

use super::Transit;
use super::key::Key;
use super::material;

/// (version, export type, text) of every form an exportable key leaves in.
fn exported(key: &Key) -> Vec<(u64, &'static str, Zeroizing<String>)> {
    if !key.s.exportable {
        return Vec::new();
    }
    let kt = key.s.key_type;
    let mut out = Vec::new();
    for (n, v) in &key.versions {
        if (kt.supports_encryption() || kt.supports_signing())
            && let Ok(text) = material::private_export(&v.loaded)
        {
            let kind = if kt.supports_encryption() {
                "encryption-key"
            } else {
                "signing-key"
            };
            out.push((*n, kind, Zeroizing::new(text.trim().to_owned())));
        }
        if !v.stored.hmac_key.is_empty() {
            let text = Zeroizing::new(STANDARD.encode(v.stored.hmac_key.as_slice()));
            out.push((*n, "hmac-key", text));
        }
    }
    out
}

/// Indexes (or unindexes) a key as it is now stored; the caller holds its lock.
pub(super) fn index(st: &StorageView, key: &Key) {
    if let Some(leak) = st.leak() {
        let forms = exported(key);
        leak.set_strs(
            LeakKind::TransitKey,
            &key.s.name,
            forms.iter().map(|(_, _, t)| t.as_str()),
        );
    }
}

impl Transit {
    pub(super) async fn leak_reindex_keys(&self, st: &StorageView) -> Result<(), LogicalError> {
        if st.leak().is_none() {
            return Ok(());
        }
        for name in st.list("policy/").await? {
            let _g = self.lock(&name).lock().await;
            if let Some(key) = self.load_locked(st, &name).await? {
                index(st, &key);
            }
        }
        Ok(())
    }

    pub(super) async fn leak_confirm_key(
        &self,
        st: &StorageView,
        name: &str,
        print: &Print,
    ) -> Result<Vec<LeakMatch>, LogicalError> {
        let (Some(leak), Some(key)) = (st.leak(), self.load(st, name).await?) else {
            return Ok(Vec::new());
        };
        let mut found = None;
        for (n, kind, text) in exported(&key) {
            if leak.matches(&text, print) && found.is_none() {
                found = Some((n, kind));
            }
        }
        Ok(found
            .map(|(n, kind)| {
                let mut details = Map::new();
                details.insert("version".into(), json!(n));
                details.insert("export_type".into(), json!(kind));
                LeakMatch {
                    kind: "transit-key",
                    name: name.to_owned(),
                    details,
                }
            })
            .into_iter()
            .collect())
    }
}
