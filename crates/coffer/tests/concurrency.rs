//! Every read-modify-write over storage hammered with concurrent requests
//! (see the table in ARCHITECTURE.md): use counts, secret IDs, CAS, key
//! versions, users, policies and the keyring must come out exactly as if the
//! requests had run one at a time. Token revocation and wrapping are in
//! `security.rs`, leases in coffer-core's `leases.rs`, database static roles
//! in `database.rs`.

mod common;

use std::future::Future;

use common::{Http, Server};
use serde_json::{Value, json};

/// Runs `n` copies of `f(i)` at once and returns their results in order.
async fn all<F, Fut, T>(n: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(f(i))).collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

fn dev() -> (Server, Http) {
    let s = Server::dev();
    let root = s.http(Some("root"));
    (s, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_limited_use_token_serves_exactly_its_uses() {
    let (_s, root) = dev();
    for _ in 0..3 {
        let r = root
            .post("auth/token/create", json!({"num_uses": 5, "ttl": "1h"}))
            .await;
        let t = r.json()["auth"]["client_token"]
            .as_str()
            .expect("token")
            .to_owned();
        let user = root.with_token(&t);
        let statuses = all(30, |_| {
            let u = user.clone();
            async move { u.get("auth/token/lookup-self").await.status }
        })
        .await;
        let ok = statuses.iter().filter(|s| **s == 200).count();
        assert_eq!(ok, 5, "{statuses:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approle_secret_ids_are_used_exactly_and_destroyed_for_good() {
    let (s, root) = dev();
    common::enable(&root, "sys/auth/approle", "approle").await;
    assert_eq!(
        root.post(
            "auth/approle/role/r",
            json!({"secret_id_num_uses": 3, "token_ttl": "1h"})
        )
        .await
        .status,
        204
    );
    let role_id = root.get("auth/approle/role/r/role-id").await.json()["data"]["role_id"]
        .as_str()
        .expect("role id")
        .to_owned();
    let anon = Http::new(&s.addr, None);
    let secret = |root: Http| async move {
        root.post("auth/approle/role/r/secret-id", json!({}))
            .await
            .json()["data"]["secret_id"]
            .as_str()
            .expect("secret id")
            .to_owned()
    };
    // Three uses, thirty logins: exactly three tokens.
    let sid = secret(root.clone()).await;
    let statuses = all(30, |_| {
        let (anon, role_id, sid) = (anon.clone(), role_id.clone(), sid.clone());
        async move {
            anon.post(
                "auth/approle/login",
                json!({"role_id": role_id, "secret_id": sid}),
            )
            .await
            .status
        }
    })
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    // Destroyed while logins run: once destroy has answered, it stays gone.
    for _ in 0..5 {
        let sid = secret(root.clone()).await;
        let mut logins = Vec::new();
        for _ in 0..8 {
            let (anon, role_id, sid) = (anon.clone(), role_id.clone(), sid.clone());
            logins.push(tokio::spawn(async move {
                anon.post(
                    "auth/approle/login",
                    json!({"role_id": role_id, "secret_id": sid}),
                )
                .await
                .status
            }));
        }
        let r = root
            .post(
                "auth/approle/role/r/secret-id/destroy",
                json!({ "secret_id": sid }),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
        for l in logins {
            l.await.expect("login");
        }
        let r = root
            .post(
                "auth/approle/role/r/secret-id/lookup",
                json!({ "secret_id": sid }),
            )
            .await;
        assert_ne!(r.status, 200, "a destroyed secret ID came back: {}", r.text);
        let r = anon
            .post(
                "auth/approle/login",
                json!({"role_id": role_id, "secret_id": sid}),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kv_check_and_set_lets_exactly_one_writer_win_and_loses_no_version() {
    let (_s, root) = dev();
    // Keep every version (the default keeps ten).
    assert_eq!(
        root.post("secret/config", json!({"max_versions": 100}))
            .await
            .status,
        204
    );
    assert_eq!(
        root.put("secret/data/k", json!({"data": {"v": 0}}))
            .await
            .status,
        200
    );
    // Everyone saw version 1; one write with cas=1 wins.
    let statuses = all(20, |i| {
        let root = root.clone();
        async move {
            root.put(
                "secret/data/k",
                json!({"options": {"cas": 1}, "data": {"v": i}}),
            )
            .await
            .status
        }
    })
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    // Plain writes: every one gets its own version, none is lost.
    all(40, |i| {
        let root = root.clone();
        async move {
            let r = root
                .put("secret/data/k", json!({"data": {"writer": i}}))
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
    })
    .await;
    let meta = root.get("secret/metadata/k").await.json();
    assert_eq!(meta["data"]["current_version"], 42, "{meta}");
    let mut writers: Vec<i64> = Vec::new();
    for v in 3..=42 {
        let r = root.get(&format!("secret/data/k?version={v}")).await.json();
        writers.push(r["data"]["data"]["writer"].as_i64().expect("writer"));
    }
    writers.sort_unstable();
    assert_eq!(writers, (0..40).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transit_rotations_and_encryptions_race_safely() {
    let (_s, root) = dev();
    common::enable(&root, "sys/mounts/transit", "transit").await;
    assert!(root.post("transit/keys/k", json!({})).await.status < 300);
    let results = all(40, |i| {
        let root = root.clone();
        async move {
            if i % 2 == 0 {
                let r = root.post("transit/keys/k/rotate", json!({})).await;
                assert!(r.status < 300, "{}", r.text);
                None
            } else {
                let r = root
                    .post("transit/encrypt/k", json!({"plaintext": "aGVsbG8="}))
                    .await;
                assert_eq!(r.status, 200, "{}", r.text);
                Some(
                    r.json()["data"]["ciphertext"]
                        .as_str()
                        .expect("ct")
                        .to_owned(),
                )
            }
        }
    })
    .await;
    let key = root.get("transit/keys/k").await.json();
    assert_eq!(key["data"]["latest_version"], 21, "{key}");
    let versions = key["data"]["keys"].as_object().map_or(0, |k| k.len());
    assert_eq!(versions, 21, "{key}");
    for ct in results.into_iter().flatten() {
        let r = root
            .post("transit/decrypt/k", json!({ "ciphertext": ct }))
            .await;
        assert_eq!(r.json()["data"]["plaintext"], "aGVsbG8=", "{}", r.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_user_is_not_brought_back_by_a_password_change() {
    let (s, root) = dev();
    common::enable(&root, "sys/auth/userpass", "userpass").await;
    let anon = Http::new(&s.addr, None);
    for round in 0..4 {
        let user = format!("u{round}");
        let r = root
            .post(
                &format!("auth/userpass/users/{user}"),
                json!({"password": "first", "token_policies": "default"}),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
        let mut changes = Vec::new();
        for i in 0..4 {
            let (root, user) = (root.clone(), user.clone());
            changes.push(tokio::spawn(async move {
                root.post(
                    &format!("auth/userpass/users/{user}/password"),
                    json!({"password": format!("changed{i}")}),
                )
                .await
                .status
            }));
        }
        let r = root.delete(&format!("auth/userpass/users/{user}")).await;
        assert_eq!(r.status, 204);
        for c in changes {
            c.await.expect("change");
        }
        assert_eq!(
            root.get(&format!("auth/userpass/users/{user}"))
                .await
                .status,
            404,
            "a deleted user was written back"
        );
        for pw in ["first", "changed0", "changed1", "changed2", "changed3"] {
            let r = anon
                .post(
                    &format!("auth/userpass/login/{user}"),
                    json!({ "password": pw }),
                )
                .await;
            assert_eq!(r.status, 400, "{}", r.text);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_narrowed_policy_takes_effect_at_once_under_load() {
    let (_s, root) = dev();
    assert_eq!(
        root.put("secret/data/a", json!({"data": {"v": 1}}))
            .await
            .status,
        200
    );
    let open = json!({"policy": "path \"secret/data/*\" { capabilities = [\"read\"] }"});
    let shut = json!({"policy": "path \"secret/data/other\" { capabilities = [\"read\"] }"});
    for _ in 0..10 {
        assert_eq!(
            root.put("sys/policies/acl/p", open.clone()).await.status,
            204
        );
        let r = root
            .post("auth/token/create", json!({"policies": ["p"], "ttl": "1h"}))
            .await;
        let user = root.with_token(r.json()["auth"]["client_token"].as_str().expect("t"));
        // Readers fill the policy and ACL caches while the policy changes.
        let mut readers = Vec::new();
        for _ in 0..8 {
            let u = user.clone();
            readers.push(tokio::spawn(async move {
                for _ in 0..5 {
                    u.get("secret/data/a").await;
                }
            }));
        }
        assert_eq!(
            root.put("sys/policies/acl/p", shut.clone()).await.status,
            204
        );
        for r in readers {
            r.await.expect("reader");
        }
        assert_eq!(
            user.get("secret/data/a").await.status,
            403,
            "a removed grant lives on in the cache"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_keyring_rotations_keep_every_entry_readable() {
    let setup = common::Setup::embedded();
    let (s, keys, root_token) = common::ready(&setup).await;
    let root = s.http(Some(&root_token));
    all(20, |i| {
        let root = root.clone();
        async move {
            if i % 2 == 0 {
                assert_eq!(root.post("sys/rotate", json!({})).await.status, 204);
            } else {
                assert_eq!(
                    root.put(&format!("kv/e{i}"), json!({"v": i})).await.status,
                    204
                );
            }
        }
    })
    .await;
    let status = root.get("sys/key-status").await.json();
    assert_eq!(status["data"]["term"], 11, "{status}");
    // After a restart every entry still decrypts with the stored keyring.
    s.stop();
    let s = Server::with_config(&setup.config, &[]);
    common::unseal(&s.http(None), &keys).await;
    let root = s.http(Some(&root_token));
    for i in (1..20).step_by(2) {
        let r = root.get(&format!("kv/e{i}")).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json()["data"]["v"], Value::from(i));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partial_role_updates_are_never_lost() {
    let (_s, root) = dev();
    common::enable(&root, "sys/auth/approle", "approle").await;
    assert_eq!(
        root.post("auth/approle/role/r", json!({})).await.status,
        204
    );
    // Each writer sets a different field; all must stick.
    let fields = [
        ("token_ttl", json!(111)),
        ("token_max_ttl", json!(2222)),
        ("secret_id_ttl", json!(333)),
        ("secret_id_num_uses", json!(4)),
        ("token_num_uses", json!(5)),
        ("token_period", json!(66)),
    ];
    for _ in 0..5 {
        all(fields.len(), |i| {
            let root = root.clone();
            let (k, v) = fields[i].clone();
            async move {
                let r = root.post("auth/approle/role/r", json!({ k: v })).await;
                assert_eq!(r.status, 204, "{}", r.text);
            }
        })
        .await;
        let role = root.get("auth/approle/role/r").await.json();
        for (k, v) in &fields {
            assert_eq!(&role["data"][*k], v, "{k} lost: {role}");
        }
        for (k, _) in &fields {
            root.post("auth/approle/role/r", json!({ *k: 0 })).await;
        }
    }
}
