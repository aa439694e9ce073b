//! The unmodified `vaultrs` crate drives init, unseal, seal status, KV v1 and KV v2.

mod common;

use std::collections::HashMap;

use common::{Server, Setup};
use vaultrs::sys::ServerStatus;

use common::vaultrs_client as client;

#[tokio::test]
async fn vaultrs_initialises_unseals_and_uses_kv_v1() {
    let setup = Setup::embedded();
    let s = Server::with_config(&setup.config, &[]);
    let anon = client(&s.addr, "");

    assert!(matches!(
        vaultrs::sys::status(&anon).await.unwrap(),
        ServerStatus::UNINITIALIZED
    ));
    let init = vaultrs::sys::start_initialization(&anon, 3, 2, None)
        .await
        .unwrap();
    assert_eq!(init.keys.len(), 3);
    assert_eq!(init.keys_base64.len(), 3);
    assert!(init.root_token.starts_with("cvs."));
    assert!(matches!(
        vaultrs::sys::status(&anon).await.unwrap(),
        ServerStatus::SEALED
    ));

    let first = vaultrs::sys::unseal(&anon, Some(init.keys[0].clone()), None, None)
        .await
        .unwrap();
    assert!(first.sealed);
    assert_eq!((first.progress, first.threshold, first.n_shares), (1, 2, 3));
    let done = vaultrs::sys::unseal(&anon, Some(init.keys_base64[1].clone()), None, None)
        .await
        .unwrap();
    assert!(!done.sealed);
    assert!(matches!(
        vaultrs::sys::status(&anon).await.unwrap(),
        ServerStatus::OK
    ));
    let health = vaultrs::sys::health(&anon).await.unwrap();
    assert!(health.initialized && !health.sealed && !health.standby);

    let root = client(&s.addr, &init.root_token);
    vaultrs::sys::mount::enable(&root, "kv1", "kv", None)
        .await
        .unwrap();
    let mounts = vaultrs::sys::mount::list(&root).await.unwrap();
    assert_eq!(mounts["kv1/"].mount_type, "kv");

    let mut data = HashMap::new();
    data.insert("user", "app");
    data.insert("password", "s3cret");
    vaultrs::kv1::set(&root, "kv1", "apps/web", &data)
        .await
        .unwrap();
    let got: HashMap<String, String> = vaultrs::kv1::get(&root, "kv1", "apps/web").await.unwrap();
    assert_eq!(got["password"], "s3cret");
    let listed = vaultrs::kv1::list(&root, "kv1", "apps").await.unwrap();
    assert_eq!(listed.data.keys, vec!["web".to_string()]);
    vaultrs::kv1::delete(&root, "kv1", "apps/web")
        .await
        .unwrap();
    assert!(
        vaultrs::kv1::get::<HashMap<String, String>>(&root, "kv1", "apps/web")
            .await
            .is_err()
    );

    let random = vaultrs::sys::tools::random(&root, None).await;
    assert!(random.is_ok(), "{random:?}");

    vaultrs::sys::seal(&root).await.unwrap();
    assert!(matches!(
        vaultrs::sys::status(&anon).await.unwrap(),
        ServerStatus::SEALED
    ));
}

/// vaultrs' KV v2 API on dev mode's `secret/`, with a non-root token whose
/// policy names `secret/data/*` and `secret/metadata/*` the Vault way.
#[tokio::test]
async fn vaultrs_uses_kv_v2_with_a_policy_token() {
    use vaultrs::api::kv2::requests::SetSecretRequestOptions;
    use vaultrs::api::kv2::requests::{SetConfigurationRequest, SetSecretMetadataRequest};
    use vaultrs::error::ClientError;

    let s = Server::dev();
    let root = client(&s.addr, "root");
    vaultrs::sys::policy::set(
        &root,
        "apps",
        r#"
path "secret/data/apps/*" { capabilities = ["create", "read", "update", "patch", "delete"] }
path "secret/metadata/apps/*" { capabilities = ["create", "read", "list", "update", "delete"] }
path "secret/metadata/apps" { capabilities = ["list"] }
path "secret/delete/apps/*" { capabilities = ["update"] }
path "secret/undelete/apps/*" { capabilities = ["update"] }
path "secret/destroy/apps/*" { capabilities = ["update"] }
"#,
    )
    .await
    .unwrap();
    let auth = vaultrs::token::new(
        &root,
        Some(
            vaultrs::api::token::requests::CreateTokenRequest::builder()
                .policies(vec!["apps".to_string()]),
        ),
    )
    .await
    .unwrap();
    let app = client(&s.addr, &auth.client_token);

    vaultrs::kv2::config::set(
        &root,
        "secret",
        Some(SetConfigurationRequest::builder().max_versions(3u64)),
    )
    .await
    .unwrap();
    assert_eq!(
        vaultrs::kv2::config::read(&root, "secret")
            .await
            .unwrap()
            .max_versions,
        3
    );

    vaultrs::kv2::set_metadata(
        &app,
        "secret",
        "apps/web",
        Some(
            SetSecretMetadataRequest::builder().custom_metadata(HashMap::from([(
                "owner".to_string(),
                "web-team".to_string(),
            )])),
        ),
    )
    .await
    .unwrap();
    let v1 = vaultrs::kv2::set(
        &app,
        "secret",
        "apps/web",
        &HashMap::from([("password", "one")]),
    )
    .await
    .unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(
        v1.custom_metadata.as_ref().map(|m| m["owner"].as_str()),
        Some("web-team")
    );
    let stale = vaultrs::kv2::set_with_options(
        &app,
        "secret",
        "apps/web",
        &HashMap::from([("password", "x")]),
        SetSecretRequestOptions { cas: 0 },
    )
    .await;
    assert!(
        matches!(stale, Err(ClientError::APIError { code: 400, .. })),
        "{stale:?}"
    );
    for (cas, pw) in [(1, "two"), (2, "three"), (3, "four")] {
        vaultrs::kv2::set_with_options(
            &app,
            "secret",
            "apps/web",
            &HashMap::from([("password", pw)]),
            SetSecretRequestOptions { cas },
        )
        .await
        .unwrap();
    }
    let latest: HashMap<String, String> = vaultrs::kv2::read(&app, "secret", "apps/web")
        .await
        .unwrap();
    assert_eq!(latest["password"], "four");
    let v2: HashMap<String, String> = vaultrs::kv2::read_version(&app, "secret", "apps/web", 2)
        .await
        .unwrap();
    assert_eq!(v2["password"], "two");

    // max_versions=3 from the mount config trimmed version 1.
    let meta = vaultrs::kv2::read_metadata(&app, "secret", "apps/web")
        .await
        .unwrap();
    assert_eq!((meta.current_version, meta.oldest_version), (4, 2));
    let mut kept: Vec<&String> = meta.versions.keys().collect();
    kept.sort();
    assert_eq!(kept, ["2", "3", "4"]);

    vaultrs::kv2::delete_latest(&app, "secret", "apps/web")
        .await
        .unwrap();
    assert!(
        vaultrs::kv2::read::<HashMap<String, String>>(&app, "secret", "apps/web")
            .await
            .is_err()
    );
    vaultrs::kv2::undelete_versions(&app, "secret", "apps/web", vec![4])
        .await
        .unwrap();
    let back: HashMap<String, String> = vaultrs::kv2::read(&app, "secret", "apps/web")
        .await
        .unwrap();
    assert_eq!(back["password"], "four");
    vaultrs::kv2::destroy_versions(&app, "secret", "apps/web", vec![2])
        .await
        .unwrap();
    assert!(
        vaultrs::kv2::read_version::<HashMap<String, String>>(&app, "secret", "apps/web", 2)
            .await
            .is_err()
    );
    vaultrs::kv2::delete_versions(&app, "secret", "apps/web", vec![3])
        .await
        .unwrap();
    let meta = vaultrs::kv2::read_metadata(&app, "secret", "apps/web")
        .await
        .unwrap();
    assert!(meta.versions["2"].destroyed);
    assert!(!meta.versions["3"].deletion_time.is_empty());

    vaultrs::kv2::set(
        &app,
        "secret",
        "apps/db/primary",
        &HashMap::from([("dsn", "pg")]),
    )
    .await
    .unwrap();
    assert_eq!(
        vaultrs::kv2::list(&app, "secret", "apps").await.unwrap(),
        vec!["db/".to_string(), "web".to_string()]
    );

    // Outside its policy the token is refused.
    let denied = vaultrs::kv2::set(&app, "secret", "other", &HashMap::from([("a", "b")])).await;
    assert!(
        matches!(denied, Err(ClientError::APIError { code: 403, .. })),
        "{denied:?}"
    );

    vaultrs::kv2::delete_metadata(&app, "secret", "apps/web")
        .await
        .unwrap();
    assert!(
        vaultrs::kv2::read_metadata(&app, "secret", "apps/web")
            .await
            .is_err()
    );
}

/// vaultrs 0.8's transit API, unmodified, with a token whose policy names
/// only the transit paths it uses.
#[tokio::test]
async fn vaultrs_drives_transit() {
    use base64::Engine;
    use vaultrs::api::transit::KeyType;
    use vaultrs::api::transit::requests::{CreateKeyRequest, DataKeyType, VerifySignedDataRequest};
    use vaultrs::api::transit::responses::ReadKeyData;

    let s = Server::dev();
    let root = client(&s.addr, "root");
    vaultrs::sys::mount::enable(&root, "transit", "transit", None)
        .await
        .unwrap();
    let policy = r#"
path "transit/keys/*"     { capabilities = ["create", "read", "update", "list"] }
path "transit/keys"       { capabilities = ["list"] }
path "transit/encrypt/*"  { capabilities = ["update"] }
path "transit/decrypt/*"  { capabilities = ["update"] }
path "transit/rewrap/*"   { capabilities = ["update"] }
path "transit/datakey/*"  { capabilities = ["update"] }
path "transit/sign/*"     { capabilities = ["update"] }
path "transit/verify/*"   { capabilities = ["update"] }
"#;
    vaultrs::sys::policy::set(&root, "transit-app", policy)
        .await
        .unwrap();
    let token = vaultrs::token::new(
        &root,
        Some(
            vaultrs::api::token::requests::CreateTokenRequest::builder()
                .policies(vec!["transit-app".into()]),
        ),
    )
    .await
    .unwrap()
    .client_token;
    let c = client(&s.addr, &token);

    vaultrs::transit::key::create(&c, "transit", "orders", None)
        .await
        .unwrap();
    let key = vaultrs::transit::key::read(&c, "transit", "orders")
        .await
        .unwrap();
    assert!(matches!(key.key_type, KeyType::Aes256Gcm96));
    assert!(matches!(key.keys, ReadKeyData::Symmetric(ref m) if m.contains_key("1")));
    let pt = base64::engine::general_purpose::STANDARD.encode(b"order 17");
    let ct = vaultrs::transit::data::encrypt(&c, "transit", "orders", &pt, None)
        .await
        .unwrap()
        .ciphertext;
    assert!(ct.starts_with("vault:v1:"), "{ct}");
    let back = vaultrs::transit::data::decrypt(&c, "transit", "orders", &ct, None)
        .await
        .unwrap();
    assert_eq!(back.plaintext, pt);
    vaultrs::transit::key::rotate(&c, "transit", "orders")
        .await
        .unwrap();
    let rewrapped = vaultrs::transit::data::rewrap(&c, "transit", "orders", &ct, None)
        .await
        .unwrap()
        .ciphertext;
    assert!(rewrapped.starts_with("vault:v2:"), "{rewrapped}");
    let dk =
        vaultrs::transit::generate::data_key(&c, "transit", "orders", DataKeyType::Plaintext, None)
            .await
            .unwrap();
    let unwrapped = vaultrs::transit::data::decrypt(&c, "transit", "orders", &dk.ciphertext, None)
        .await
        .unwrap();
    assert_eq!(Some(unwrapped.plaintext), dk.plaintext);
    let keys = vaultrs::transit::key::list(&c, "transit").await.unwrap();
    assert_eq!(keys.keys, vec!["orders".to_string()]);

    vaultrs::transit::key::create(
        &c,
        "transit",
        "signer",
        Some(CreateKeyRequest::builder().key_type(KeyType::Ed25519)),
    )
    .await
    .unwrap();
    let signer = vaultrs::transit::key::read(&c, "transit", "signer")
        .await
        .unwrap();
    assert!(matches!(signer.keys, ReadKeyData::Asymmetric(ref m) if !m["1"].public_key.is_empty()));
    let sig = vaultrs::transit::data::sign(&c, "transit", "signer", &pt, None)
        .await
        .unwrap()
        .signature;
    let ok = vaultrs::transit::data::verify(
        &c,
        "transit",
        "signer",
        &pt,
        Some(VerifySignedDataRequest::builder().signature(sig.clone())),
    )
    .await
    .unwrap();
    assert!(ok.valid);
    // Outside the policy: deleting keys is not granted.
    let denied = vaultrs::transit::key::delete(&c, "transit", "orders").await;
    assert!(denied.is_err());
}
