//! The unmodified `vaultrs` crate drives init, unseal, seal status and KV v1.

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
