//! KV version 2 over HTTP: versions, check-and-set, soft delete, destroy,
//! metadata, and the shapes clients rely on.

mod common;

use std::time::Duration;

use common::{Http, Server};
use serde_json::{Value, json};

async fn mount(root: &Http, path: &str) {
    let r = root
        .post(
            &format!("sys/mounts/{path}"),
            json!({"type": "kv", "options": {"version": "2"}}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

async fn put(h: &Http, path: &str, body: Value) -> Value {
    let r = h.post(path, body).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    r.json()
}

#[tokio::test]
async fn versions_cas_and_reads() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    mount(&root, "kv").await;
    let v1 = put(
        &root,
        "kv/data/app",
        json!({"data": {"user": "a", "pw": "1"}}),
    )
    .await;
    assert_eq!(v1["data"]["version"], 1);
    assert_eq!(v1["data"]["destroyed"], false);
    assert_eq!(v1["data"]["deletion_time"], "");
    assert!(v1["data"]["created_time"].as_str().unwrap().ends_with('Z'));
    put(
        &root,
        "kv/data/app",
        json!({"data": {"user": "a", "pw": "2"}, "options": {"cas": 1}}),
    )
    .await;
    let conflict = root
        .post(
            "kv/data/app",
            json!({"data": {"pw": "x"}, "options": {"cas": 1}}),
        )
        .await;
    assert_eq!(conflict.status, 400);
    assert!(
        conflict
            .text
            .contains("check-and-set parameter did not match the current version")
    );
    let only_new = root
        .post(
            "kv/data/app",
            json!({"data": {"pw": "x"}, "options": {"cas": 0}}),
        )
        .await;
    assert_eq!(only_new.status, 400, "cas 0 only creates");

    let latest = root.get("kv/data/app").await.json();
    assert_eq!(latest["data"]["data"], json!({"user": "a", "pw": "2"}));
    assert_eq!(latest["data"]["metadata"]["version"], 2);
    assert!(latest["data"]["metadata"].is_object());
    assert_eq!(
        root.get("kv/data/app?version=1").await.json()["data"]["data"]["pw"],
        "1"
    );
    assert_eq!(root.get("kv/data/app?version=9").await.status, 404);
    assert_eq!(root.get("kv/data/nope").await.json(), json!({"errors": []}));
    assert_eq!(
        root.post("kv/data/app", json!({"nodata": 1})).await.status,
        400
    );

    // Soft delete: 404 with the envelope and metadata; undelete restores.
    assert_eq!(root.delete("kv/data/app").await.status, 204);
    let gone = root.get("kv/data/app").await;
    assert_eq!(gone.status, 404);
    let g = gone.json();
    assert_eq!(g["data"]["data"], Value::Null);
    assert!(
        g["data"]["metadata"]["deletion_time"]
            .as_str()
            .unwrap()
            .contains('T')
    );
    assert!(g.get("errors").is_none() && g.get("request_id").is_some());
    assert_eq!(
        root.post("kv/undelete/app", json!({"versions": [2]}))
            .await
            .status,
        204
    );
    assert_eq!(
        root.get("kv/data/app").await.json()["data"]["data"]["pw"],
        "2"
    );
    // Destroy: no data ever again, even after undelete.
    assert_eq!(
        root.put("kv/destroy/app", json!({"versions": [1]}))
            .await
            .status,
        204
    );
    let d = root.get("kv/data/app?version=1").await;
    assert_eq!(
        (d.status, d.json()["data"]["metadata"]["destroyed"].clone()),
        (404, json!(true))
    );
    root.post("kv/undelete/app", json!({"versions": "1"})).await;
    assert_eq!(root.get("kv/data/app?version=1").await.status, 404);
    assert_eq!(
        root.post("kv/delete/app", json!({})).await.status,
        400,
        "versions required"
    );

    let meta = root.get("kv/metadata/app").await.json()["data"].clone();
    assert_eq!(meta["current_version"], 2);
    assert_eq!(meta["oldest_version"], 1);
    assert_eq!(meta["versions"]["1"]["destroyed"], true);
    assert_eq!(meta["max_versions"], 0);
    assert_eq!(meta["delete_version_after"], "0s");
}

#[tokio::test]
async fn metadata_first_patch_trim_expiry_and_lists() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    mount(&root, "secret2").await;
    // External Secrets Operator writes metadata before the first data write.
    let m = root
        .post(
            "secret2/metadata/eso/db",
            json!({"custom_metadata": {"managed-by": "external-secrets"}}),
        )
        .await;
    assert_eq!(m.status, 204, "{}", m.text);
    let w = put(
        &root,
        "secret2/data/eso/db",
        json!({"data": {"pw": "p"}, "options": {"cas": 0}}),
    )
    .await;
    assert_eq!(
        w["data"]["custom_metadata"]["managed-by"],
        "external-secrets"
    );
    assert_eq!(
        root.get("secret2/data/eso/db").await.json()["data"]["metadata"]["custom_metadata"]["managed-by"],
        "external-secrets"
    );

    // PATCH is a JSON merge patch and needs the merge-patch content type.
    let p = root
        .send(
            "PATCH",
            "secret2/data/eso/db",
            Some(
                json!({"data": {"pw": null, "user": "u"}})
                    .to_string()
                    .into_bytes(),
            ),
            &[("Content-Type", "application/merge-patch+json")],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(
        root.get("secret2/data/eso/db").await.json()["data"]["data"],
        json!({"user": "u"})
    );
    let missing = root
        .send(
            "PATCH",
            "secret2/data/none",
            Some(b"{\"data\":{}}".to_vec()),
            &[("Content-Type", "application/merge-patch+json")],
        )
        .await;
    assert_eq!(missing.status, 404);

    // max_versions trims the oldest.
    root.post("secret2/metadata/trim", json!({"max_versions": 3}))
        .await;
    for i in 0..5 {
        put(&root, "secret2/data/trim", json!({"data": {"i": i}})).await;
    }
    let meta = root.get("secret2/metadata/trim").await.json()["data"].clone();
    assert_eq!(
        (
            meta["current_version"].clone(),
            meta["oldest_version"].clone()
        ),
        (json!(5), json!(3))
    );
    assert_eq!(meta["versions"].as_object().unwrap().len(), 3);
    assert_eq!(root.get("secret2/data/trim?version=2").await.status, 404);

    // delete_version_after expires versions.
    root.post(
        "secret2/metadata/short",
        json!({"delete_version_after": "1s"}),
    )
    .await;
    put(&root, "secret2/data/short", json!({"data": {"k": 1}})).await;
    assert_eq!(
        root.get("secret2/metadata/short").await.json()["data"]["delete_version_after"],
        "1s"
    );
    assert_eq!(root.get("secret2/data/short").await.status, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(root.get("secret2/data/short").await.status, 404);

    // Lists and subkeys.
    put(
        &root,
        "secret2/data/eso/other",
        json!({"data": {"a": {"b": 1}, "c": 2}}),
    )
    .await;
    assert_eq!(
        root.list("secret2/metadata/").await.json()["data"]["keys"],
        json!(["eso/", "short", "trim"])
    );
    assert_eq!(
        root.list("secret2/metadata/eso").await.json()["data"]["keys"],
        json!(["db", "other"])
    );
    let sk = root.get("secret2/subkeys/eso/other").await.json();
    assert_eq!(sk["data"]["subkeys"], json!({"a": {"b": null}, "c": null}));
    // Metadata delete removes every version.
    assert_eq!(root.delete("secret2/metadata/eso/other").await.status, 204);
    assert_eq!(root.get("secret2/data/eso/other").await.status, 404);
    assert_eq!(root.get("secret2/metadata/eso/other").await.status, 404);
    // A v1-style path on a v2 mount: 404 with a warning.
    let wrong = root.get("secret2/eso/db").await;
    assert_eq!(wrong.status, 404);
    assert!(
        wrong
            .text
            .contains("Invalid path for a versioned K/V secrets engine")
    );
}

#[tokio::test]
async fn config_ui_mounts_acl_and_kv_v2_alias() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    assert_eq!(
        root.post("sys/mounts/v2alias", json!({"type": "kv-v2"}))
            .await
            .status,
        204
    );
    let ui = root
        .get("sys/internal/ui/mounts/v2alias/some/key")
        .await
        .json();
    assert_eq!(
        (
            ui["data"]["type"].clone(),
            ui["data"]["options"]["version"].clone()
        ),
        (json!("kv"), json!("2"))
    );
    assert_eq!(
        root.post(
            "v2alias/config",
            json!({"max_versions": 2, "cas_required": true, "delete_version_after": "1h"})
        )
        .await
        .status,
        204
    );
    let c = root.get("v2alias/config").await.json();
    assert_eq!(
        c["data"],
        json!({"cas_required": true, "delete_version_after": "1h0m0s", "max_versions": 2})
    );
    let no_cas = root.post("v2alias/data/x", json!({"data": {"a": 1}})).await;
    assert!(
        no_cas.text.contains("check-and-set parameter required"),
        "{}",
        no_cas.text
    );

    mount(&root, "kv").await;
    root.post("kv/data/team/app", json!({"data": {"pw": "p"}}))
        .await;
    root.put(
        "sys/policies/acl/kvreader",
        json!({"policy": "path \"kv/data/team/*\" { capabilities = [\"read\"] }\npath \"kv/metadata/team/*\" { capabilities = [\"list\"] }"}),
    )
    .await;
    let t = root
        .post("auth/token/create", json!({"policies": ["kvreader"]}))
        .await
        .json();
    let h = s.http(Some(t["auth"]["client_token"].as_str().unwrap()));
    assert_eq!(
        h.get("kv/data/team/app").await.json()["data"]["data"]["pw"],
        "p"
    );
    assert_eq!(h.list("kv/metadata/team/").await.status, 200);
    assert_eq!(
        h.post("kv/data/team/app", json!({"data": {"pw": "x"}}))
            .await
            .status,
        403
    );
    assert_eq!(h.get("kv/metadata/team/app").await.status, 403);
    // The kv CLI's preflight sees the mount: the token may do something in it,
    // though not on the exact path asked about.
    let ui = h.get("sys/internal/ui/mounts/kv/team/app").await;
    assert_eq!(ui.status, 200, "{}", ui.text);
    assert_eq!(ui.json()["data"]["options"]["version"], "2");
    assert_eq!(h.get("sys/internal/ui/mounts/v2alias/x").await.status, 403);
}

#[tokio::test]
async fn eight_cas_writers_leave_dense_versions() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    mount(&root, "kv").await;
    put(&root, "kv/data/counter", json!({"data": {"n": 0}})).await;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let h = root.clone();
        tasks.push(tokio::spawn(async move {
            let mut wins = 0;
            while wins < 10 {
                let cur = h.get("kv/data/counter").await.json();
                let v = cur["data"]["metadata"]["version"].as_u64().unwrap();
                let n = cur["data"]["data"]["n"].as_u64().unwrap();
                let r = h
                    .post(
                        "kv/data/counter",
                        json!({"data": {"n": n + 1, "w": w}, "options": {"cas": v}}),
                    )
                    .await;
                match r.status {
                    200 => wins += 1,
                    400 => assert!(r.text.contains("did not match")),
                    other => panic!("unexpected {other}: {}", r.text),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let cur = root.get("kv/data/counter").await.json();
    assert_eq!(cur["data"]["data"]["n"], 80, "no update lost");
    assert_eq!(
        cur["data"]["metadata"]["version"], 81,
        "versions dense: one per successful write"
    );
}

#[tokio::test]
async fn dev_mode_secret_is_kv_v2() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    let ui = root.get("sys/internal/ui/mounts/secret").await.json();
    assert_eq!(ui["data"]["options"]["version"], "2");
    put(&root, "secret/data/app", json!({"data": {"k": "v"}})).await;
    assert_eq!(
        root.get("secret/data/app").await.json()["data"]["data"]["k"],
        "v"
    );
    let v1 = Server::dev_kv_v1();
    let ui = v1
        .http(Some("root"))
        .get("sys/internal/ui/mounts/secret")
        .await
        .json();
    assert_eq!(ui["data"]["options"]["version"], "1");
}

/// Tuning `options.version=2` on a v1 mount keeps every value as version 1,
/// even keys named like the v2 layout, survives a restart, and leaves no
/// copy of the old layout in storage.
#[tokio::test]
async fn upgrade_from_v1_keeps_data_and_clears_the_old_view() {
    use coffer_storage::{FileStorage, Storage};
    let setup = common::Setup::embedded();
    let (s, keys, root_token) = common::ready(&setup).await;
    let root = s.http(Some(&root_token));
    let values = [
        ("plain", json!({"a": "1"})),
        ("config", json!({"max_versions": "not a config"})),
        ("metadata/plain", json!({"shadow": true})),
        ("versions/x/1", json!({"deep": "v"})),
        ("dir/sub/leaf", json!({"n": 3})),
    ];
    for (k, v) in &values {
        assert_eq!(root.post(&format!("kv/{k}"), v.clone()).await.status, 204);
    }
    let old_uuid = root.get("sys/mounts/kv").await.json()["uuid"].clone();

    let tuned = root
        .post("sys/mounts/kv/tune", json!({"options": {"version": "2"}}))
        .await;
    assert_eq!(tuned.status, 200, "{}", tuned.text);
    let warning = tuned.json()["warnings"][0].as_str().unwrap().to_owned();
    assert!(warning.contains("(5 secrets"), "{warning}");

    let check = |h: Http| {
        let values = values.clone();
        async move {
            for (k, v) in &values {
                let r = h.get(&format!("kv/data/{k}")).await;
                assert_eq!(r.status, 200, "{k}: {}", r.text);
                let body = r.json();
                assert_eq!(&body["data"]["data"], v, "{k}");
                assert_eq!(body["data"]["metadata"]["version"], 1, "{k}");
            }
            let top = h.list("kv/metadata/").await.json();
            assert_eq!(
                top["data"]["keys"],
                json!(["config", "dir/", "metadata/", "plain", "versions/"])
            );
            // The v1 key named `config` did not become the engine's config.
            assert_eq!(h.get("kv/config").await.json()["data"]["max_versions"], 0);
        }
    };
    check(root.clone()).await;
    let put = root
        .post(
            "kv/data/plain",
            json!({"data": {"a": "2"}, "options": {"cas": 1}}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let downgrade = root
        .post("sys/mounts/kv/tune", json!({"options": {"version": "1"}}))
        .await;
    assert_eq!(downgrade.status, 400);
    assert!(downgrade.text.contains("cannot downgrade"));
    let new_uuid = root.get("sys/mounts/kv").await.json()["uuid"].clone();
    assert_ne!(old_uuid, new_uuid);

    s.stop();
    {
        let store = FileStorage::open(&setup.data_file()).unwrap();
        let views = store.list("logical/").await.unwrap();
        let old = format!("{}/", old_uuid.as_str().unwrap());
        assert!(!views.contains(&old), "old view left behind: {views:?}");
        assert!(views.contains(&format!("{}/", new_uuid.as_str().unwrap())));
    }
    let s = Server::with_config(&setup.config, &[]);
    common::unseal(&s.http(None), &keys).await;
    let root = s.http(Some(&root_token));
    assert_eq!(
        root.get("kv/data/plain").await.json()["data"]["data"]["a"],
        "2"
    );
    assert_eq!(
        root.get("kv/data/dir/sub/leaf?version=1").await.json()["data"]["data"]["n"],
        3
    );
}

/// `{"data": null}` stores a version whose data is null, as in Vault; no
/// `data` key at all is still refused.
#[tokio::test]
async fn a_null_data_map_is_a_version() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    let r = root.post("secret/data/n", json!({"data": null})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["data"]["version"], 1);
    let v = root.get("secret/data/n").await.json();
    assert_eq!(v["data"]["data"], Value::Null);
    assert_eq!(v["data"]["metadata"]["version"], 1);
    assert_eq!(
        root.get("secret/subkeys/n").await.json()["data"]["subkeys"],
        Value::Null
    );
    let r = root.post("secret/data/n", json!({})).await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("no data provided"), "{}", r.text);
}
