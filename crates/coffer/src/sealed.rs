//! Sealed Secrets' format (bitnami-labs/sealed-secrets), for `coffer seal`:
//! the hybrid encryption of each value (RSA-OAEP-SHA256 of a one-time
//! AES-256-GCM key, the OAEP label naming the secret's scope), the
//! `SealedSecret` resource kubeseal writes, and the way back with the
//! controller's private key for recovery.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Why sealing or unsealing failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The input is not what it should be (the message says what).
    #[error("{0}")]
    Invalid(String),
    /// No key opened a value.
    #[error("no key could decrypt {0}")]
    NoKey(String),
}

fn invalid(msg: impl Into<String>) -> SealError {
    SealError::Invalid(msg.into())
}

/// Who may unseal a value: the secret's namespace and name, its namespace,
/// or anyone in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scope {
    /// Only a SealedSecret of this name in this namespace (the default).
    Strict,
    /// Any name in this namespace.
    NamespaceWide,
    /// Any name in any namespace.
    ClusterWide,
}

const NAMESPACE_WIDE: &str = "sealedsecrets.bitnami.com/namespace-wide";
const CLUSTER_WIDE: &str = "sealedsecrets.bitnami.com/cluster-wide";

impl Scope {
    /// The OAEP label every value of the secret is sealed under.
    pub fn label(self, namespace: &str, name: &str) -> String {
        match self {
            Scope::Strict => format!("{namespace}/{name}"),
            Scope::NamespaceWide => namespace.to_owned(),
            Scope::ClusterWide => String::new(),
        }
    }

    /// The scope a resource's annotations select (cluster-wide wins, and
    /// only the exact string `"true"` counts, as in the controller).
    pub fn of(annotations: Option<&Map<String, Value>>) -> Scope {
        let set =
            |k: &str| annotations.and_then(|a| a.get(k)).and_then(Value::as_str) == Some("true");
        if set(CLUSTER_WIDE) {
            Scope::ClusterWide
        } else if set(NAMESPACE_WIDE) {
            Scope::NamespaceWide
        } else {
            Scope::Strict
        }
    }

    /// Sets the scope's annotation (and clears the other one).
    fn annotate(self, annotations: &mut Map<String, Value>) {
        annotations.remove(NAMESPACE_WIDE);
        annotations.remove(CLUSTER_WIDE);
        match self {
            Scope::Strict => {}
            Scope::NamespaceWide => {
                annotations.insert(NAMESPACE_WIDE.into(), "true".into());
            }
            Scope::ClusterWide => {
                annotations.insert(CLUSTER_WIDE.into(), "true".into());
            }
        }
    }
}

/// `[u16 BE length][RSA-OAEP(session key)][AES-256-GCM(plaintext) || tag]`,
/// the GCM nonce all zeros (the key is used once).
pub fn hybrid_encrypt(
    key: &RsaPublicKey,
    plaintext: &[u8],
    label: &str,
) -> Result<Vec<u8>, SealError> {
    let mut session = Zeroizing::new([0u8; 32]);
    getrandom::fill(session.as_mut()).map_err(|e| invalid(format!("no randomness: {e}")))?;
    let padding = Oaep::new_with_label::<Sha256, _>(label);
    let mut rng = rand_core::OsRng;
    let wrapped = key
        .encrypt(&mut rng, padding, session.as_ref())
        .map_err(|e| invalid(format!("RSA-OAEP: {e}")))?;
    let len = u16::try_from(wrapped.len()).map_err(|_| invalid("the RSA key is too large"))?;
    let gcm = Aes256Gcm::new_from_slice(session.as_ref()).map_err(|e| invalid(e.to_string()))?;
    let sealed = gcm
        .encrypt(Nonce::from_slice(&[0u8; 12]), plaintext)
        .map_err(|e| invalid(format!("AES-GCM: {e}")))?;
    let mut out = Vec::with_capacity(2 + wrapped.len() + sealed.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&wrapped);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// The plaintext of a hybrid ciphertext, with whichever key opens it.
pub fn hybrid_decrypt(
    keys: &[RsaPrivateKey],
    data: &[u8],
    label: &str,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    if data.len() < 2 {
        return Err(invalid("SealedSecret data is too short"));
    }
    let len = usize::from(u16::from_be_bytes([data[0], data[1]]));
    if data.len() < len + 2 {
        return Err(invalid("SealedSecret data is too short"));
    }
    let (wrapped, sealed) = data[2..].split_at(len);
    for key in keys {
        let padding = Oaep::new_with_label::<Sha256, _>(label);
        let Ok(session) = key.decrypt(padding, wrapped).map(Zeroizing::new) else {
            continue;
        };
        let Ok(gcm) = Aes256Gcm::new_from_slice(&session) else {
            continue;
        };
        if let Ok(plain) = gcm.decrypt(Nonce::from_slice(&[0u8; 12]), sealed) {
            return Ok(Zeroizing::new(plain));
        }
    }
    Err(SealError::NoKey("the value".into()))
}

/// The controller's public key from its certificate (PEM; the first one
/// when there are several), refused when it has expired, as kubeseal does.
pub fn public_key_from_cert(pem: &str) -> Result<RsaPublicKey, SealError> {
    use rsa::pkcs8::DecodePublicKey;
    use x509_cert::der::{DecodePem, Encode};
    let block_end = pem
        .find("-----END CERTIFICATE-----")
        .ok_or_else(|| invalid("no PEM certificate found (-----BEGIN CERTIFICATE-----)"))?;
    let first = &pem[..block_end + "-----END CERTIFICATE-----".len()];
    let first = &first[first.find("-----BEGIN CERTIFICATE-----").unwrap_or(0)..];
    let cert = x509_cert::Certificate::from_pem(first.as_bytes())
        .map_err(|e| invalid(format!("not an X.509 certificate: {e}")))?;
    let not_after = cert.tbs_certificate.validity.not_after.to_unix_duration();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    if now > not_after {
        return Err(invalid("failed to encrypt using an expired certificate"));
    }
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| invalid(e.to_string()))?;
    RsaPublicKey::from_public_key_der(&spki)
        .map_err(|e| invalid(format!("the certificate's key is not RSA: {e}")))
}

/// Private keys from a file: PEM (PKCS#1 or PKCS#8, several blocks
/// allowed), or a dump of the controller's key Secret(s) (`tls.key`, a
/// `v1.List` of them too), in JSON or YAML.
pub fn private_keys(text: &str) -> Result<Vec<RsaPrivateKey>, SealError> {
    use base64::Engine as _;
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let mut keys = Vec::new();
    let mut pem_blocks = |pem: &str| -> Result<(), SealError> {
        let mut rest = pem;
        while let Some(start) = rest.find("-----BEGIN ") {
            let block = &rest[start..];
            let Some(end) = block.find("-----END ") else {
                break;
            };
            let Some(close) = block[end + 9..].find("-----") else {
                break;
            };
            let stop = end + 9 + close + 5;
            let one = &block[..stop];
            if one.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
                keys.push(
                    RsaPrivateKey::from_pkcs1_pem(one)
                        .map_err(|e| invalid(format!("an RSA PRIVATE KEY block: {e}")))?,
                );
            } else if one.starts_with("-----BEGIN PRIVATE KEY-----") {
                keys.push(
                    RsaPrivateKey::from_pkcs8_pem(one)
                        .map_err(|e| invalid(format!("a PRIVATE KEY block: {e}")))?,
                );
            }
            rest = &block[stop..];
        }
        Ok(())
    };
    // A key Secret's dump holds tls.key in base64: no PEM armour shows.
    if text.contains("-----BEGIN ") {
        pem_blocks(text)?;
    } else {
        for doc in documents(text)? {
            let items = match doc.get("items").and_then(Value::as_array) {
                Some(list) => list.clone(),
                None => vec![doc],
            };
            for item in items {
                if let Some(b64) = item.pointer("/data/tls.key").and_then(Value::as_str) {
                    let pem = Zeroizing::new(
                        base64::engine::general_purpose::STANDARD
                            .decode(b64.trim())
                            .map_err(|e| invalid(format!("tls.key is not base64: {e}")))?,
                    );
                    pem_blocks(&String::from_utf8_lossy(&pem))?;
                }
            }
        }
    }
    if keys.is_empty() {
        return Err(invalid(
            "no RSA private key found (PEM RSA PRIVATE KEY / PRIVATE KEY, or a Secret with tls.key)",
        ));
    }
    Ok(keys)
}

/// Every YAML or JSON document in `text` (`---`-separated).
pub fn documents(text: &str) -> Result<Vec<Value>, SealError> {
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let v: Value = serde::Deserialize::deserialize(doc)
            .map_err(|e| invalid(format!("not YAML or JSON: {e}")))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

/// What a sealed Secret needs besides the key.
pub struct SealOptions<'a> {
    /// The scope (from the flag, else the Secret's annotations).
    pub scope: Option<Scope>,
    /// `--namespace` (must agree with the Secret's own).
    pub namespace: Option<&'a str>,
    /// Refuse a Secret with no data unless set.
    pub allow_empty: bool,
}

/// A `SealedSecret` in kubeseal's field order (Go's struct order; map
/// keys sorted).
#[derive(Serialize)]
pub struct SealedSecret {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: ObjectMeta,
    spec: Spec,
}

#[derive(Serialize)]
struct Spec {
    template: Template,
    #[serde(rename = "encryptedData")]
    encrypted_data: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Template {
    metadata: ObjectMeta,
    #[serde(rename = "type")]
    kind: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    immutable: Option<Value>,
}

/// Kubernetes object metadata, written in the order of Go's `ObjectMeta`
/// fields (unknown keys after them).
struct ObjectMeta(Map<String, Value>);

impl Serialize for ObjectMeta {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        const ORDER: [&str; 15] = [
            "name",
            "generateName",
            "namespace",
            "selfLink",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "labels",
            "annotations",
            "ownerReferences",
            "finalizers",
            "managedFields",
        ];
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for k in ORDER {
            if let Some(v) = self.0.get(k) {
                map.serialize_entry(k, v)?;
            }
        }
        for (k, v) in &self.0 {
            if !ORDER.contains(&k.as_str()) {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

/// A Secret's values by key.
type Items = Vec<(String, Zeroizing<Vec<u8>>)>;

/// The values of a Secret, decoded: `data` (base64) then `stringData`
/// (overriding the same key), as kubeseal reads them.
fn secret_items(secret: &Value) -> Result<Items, SealError> {
    use base64::Engine as _;
    let mut items: std::collections::BTreeMap<String, Zeroizing<Vec<u8>>> = Default::default();
    if let Some(data) = secret.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let text = v
                .as_str()
                .ok_or_else(|| invalid(format!("data.{k} is not a string")))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|e| {
                    invalid(format!(
                        "data.{k} is not base64 ({e}); put plain text under stringData"
                    ))
                })?;
            items.insert(k.clone(), Zeroizing::new(bytes));
        }
    }
    if let Some(data) = secret.get("stringData").and_then(Value::as_object) {
        for (k, v) in data {
            let text = v
                .as_str()
                .ok_or_else(|| invalid(format!("stringData.{k} is not a string")))?;
            items.insert(k.clone(), Zeroizing::new(text.as_bytes().to_vec()));
        }
    }
    Ok(items.into_iter().collect())
}

/// Seals one Secret (a parsed YAML/JSON document).
pub fn seal(
    secret: &Value,
    key: &RsaPublicKey,
    opts: &SealOptions<'_>,
) -> Result<SealedSecret, SealError> {
    use base64::Engine as _;
    if secret
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "Secret")
    {
        return Err(invalid(format!(
            "the input is a {}, not a Secret",
            secret["kind"].as_str().unwrap_or("?")
        )));
    }
    let meta = secret
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("the Secret has no metadata.name"))?
        .to_owned();
    let own_ns = meta.get("namespace").and_then(Value::as_str);
    let namespace = match (own_ns, opts.namespace) {
        (Some(a), Some(b)) if a != b => {
            return Err(invalid(format!(
                "the Secret's namespace {a:?} is not --namespace {b:?}"
            )));
        }
        (Some(a), _) => a.to_owned(),
        (None, Some(b)) => b.to_owned(),
        (None, None) => String::new(),
    };
    let scope = opts
        .scope
        .unwrap_or_else(|| Scope::of(meta.get("annotations").and_then(Value::as_object)));
    if namespace.is_empty() && scope != Scope::ClusterWide {
        return Err(invalid(
            "secret must declare a namespace (metadata.namespace or --namespace), unless it is cluster-wide",
        ));
    }
    let items = secret_items(secret)?;
    if items.is_empty() && !opts.allow_empty {
        return Err(invalid(
            "the Secret has no data or stringData (--allow-empty-data seals it anyway)",
        ));
    }
    let label = scope.label(&namespace, &name);
    let mut encrypted = std::collections::BTreeMap::new();
    for (k, v) in &items {
        let sealed = hybrid_encrypt(key, v, &label)?;
        encrypted.insert(
            k.clone(),
            base64::engine::general_purpose::STANDARD.encode(sealed),
        );
    }
    // The template keeps the Secret's metadata, minus what would leak the
    // values or tie it to one object.
    let mut template_meta = meta.clone();
    for k in [
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "ownerReferences",
        "managedFields",
    ] {
        template_meta.remove(k);
    }
    template_meta.insert("name".into(), name.clone().into());
    if !namespace.is_empty() {
        template_meta.insert("namespace".into(), namespace.clone().into());
    }
    let mut annotations = template_meta
        .get("annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    annotations.remove("kubecfg.ksonnet.io/last-applied-configuration");
    scope.annotate(&mut annotations);
    if annotations.is_empty() {
        template_meta.remove("annotations");
    } else {
        template_meta.insert("annotations".into(), Value::Object(annotations));
    }
    let template = Template {
        metadata: ObjectMeta(template_meta),
        kind: secret
            .get("type")
            .cloned()
            .unwrap_or_else(|| "Opaque".into()),
        immutable: secret
            .get("immutable")
            .filter(|v| v.as_bool() == Some(true))
            .cloned(),
    };
    let mut metadata = Map::new();
    metadata.insert("name".into(), name.into());
    if !namespace.is_empty() {
        metadata.insert("namespace".into(), namespace.into());
    }
    let mut top = Map::new();
    scope.annotate(&mut top);
    if !top.is_empty() {
        metadata.insert("annotations".into(), Value::Object(top));
    }
    Ok(SealedSecret {
        kind: "SealedSecret",
        api_version: "bitnami.com/v1alpha1",
        metadata: ObjectMeta(metadata),
        spec: Spec {
            template,
            encrypted_data: encrypted,
        },
    })
}

/// The label a SealedSecret's values were sealed under: its own top-level
/// namespace, name and scope annotations, as the controller reads them.
pub fn label_of(sealed: &Value) -> Result<String, SealError> {
    let meta = sealed
        .get("metadata")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("the SealedSecret has no metadata"))?;
    let s = |k: &str| meta.get(k).and_then(Value::as_str).unwrap_or("");
    Ok(
        Scope::of(meta.get("annotations").and_then(Value::as_object))
            .label(s("namespace"), s("name")),
    )
}

/// The Secret a SealedSecret stands for, opened with the controller's
/// private keys (for recovery when the controller is gone).
pub fn unseal(sealed: &Value, keys: &[RsaPrivateKey]) -> Result<Value, SealError> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    if sealed.get("kind").and_then(Value::as_str) != Some("SealedSecret") {
        return Err(invalid("the input is not a SealedSecret"));
    }
    let label = label_of(sealed)?;
    let meta = &sealed["metadata"];
    let mut data = Map::new();
    let encrypted = sealed
        .pointer("/spec/encryptedData")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("the SealedSecret has no spec.encryptedData"))?;
    for (k, v) in encrypted {
        let raw = b64
            .decode(v.as_str().unwrap_or_default().trim())
            .map_err(|e| invalid(format!("encryptedData.{k} is not base64: {e}")))?;
        let plain = hybrid_decrypt(keys, &raw, &label).map_err(|e| match e {
            SealError::NoKey(_) => SealError::NoKey(format!("encryptedData.{k}")),
            other => other,
        })?;
        data.insert(k.clone(), b64.encode(&*plain).into());
    }
    let template = sealed.pointer("/spec/template");
    let mut metadata = template
        .and_then(|t| t.get("metadata"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for k in ["name", "namespace"] {
        if let Some(v) = meta.get(k) {
            metadata.insert(k.into(), v.clone());
        }
    }
    let mut secret = Map::new();
    secret.insert("apiVersion".into(), "v1".into());
    secret.insert("kind".into(), "Secret".into());
    secret.insert("metadata".into(), Value::Object(metadata));
    secret.insert(
        "type".into(),
        template
            .and_then(|t| t.get("type"))
            .cloned()
            .unwrap_or_else(|| "Opaque".into()),
    );
    secret.insert("data".into(), Value::Object(data));
    Ok(Value::Object(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_under_its_label_and_key() {
        let mut rng = rand_core::OsRng;
        let key = RsaPrivateKey::new(&mut rng, 2048).expect("key");
        let other = RsaPrivateKey::new(&mut rng, 2048).expect("key");
        let public = RsaPublicKey::from(&key);
        let label = Scope::Strict.label("prod", "db");
        assert_eq!(label, "prod/db");
        let sealed = hybrid_encrypt(&public, b"s3cret", &label).expect("seal");
        // 2048-bit key: a 256-byte RSA block, announced as 0x0100.
        assert_eq!(&sealed[..2], &[1, 0]);
        assert_eq!(sealed.len(), 2 + 256 + 6 + 16);
        let keys = [other.clone(), key.clone()];
        assert_eq!(
            hybrid_decrypt(&keys, &sealed, &label)
                .expect("open")
                .as_slice(),
            b"s3cret"
        );
        assert!(hybrid_decrypt(&keys, &sealed, "prod/other").is_err());
        assert!(hybrid_decrypt(&[other], &sealed, &label).is_err());
        assert!(hybrid_decrypt(&keys, &sealed[..100], &label).is_err());
        assert!(hybrid_decrypt(&keys, &[1], &label).is_err());
    }

    #[test]
    fn scopes_come_from_annotations_cluster_wide_first() {
        let a: Map<String, Value> = serde_json::from_str(
            r#"{"sealedsecrets.bitnami.com/namespace-wide": "true", "sealedsecrets.bitnami.com/cluster-wide": "true"}"#,
        )
        .expect("json");
        assert_eq!(Scope::of(Some(&a)), Scope::ClusterWide);
        let b: Map<String, Value> =
            serde_json::from_str(r#"{"sealedsecrets.bitnami.com/namespace-wide": "yes"}"#)
                .expect("json");
        assert_eq!(Scope::of(Some(&b)), Scope::Strict);
        assert_eq!(Scope::NamespaceWide.label("ns", "x"), "ns");
        assert!(Scope::ClusterWide.label("ns", "x").is_empty());
    }
}
