//! The Vault wire details real clients depend on, one test each.

mod common;

use common::Server;
use serde_json::json;

#[tokio::test]
async fn writes_answer_204_with_an_empty_body() {
    let s = Server::dev_kv_v1();
    let r = s
        .http(Some("root"))
        .post("secret/a", json!({"k": "v"}))
        .await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    // OpenBao Agent's cache ignores answers of any other content type,
    // revocations included.
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    let r = s.http(Some("root")).delete("secret/a").await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
}

#[tokio::test]
async fn a_null_or_empty_body_is_no_data() {
    // `bao write -f` sends `null` with no content type.
    let s = Server::dev();
    let h = s.http(Some("root"));
    common::enable(&h, "sys/mounts/transit", "transit").await;
    for body in [&b"null"[..], b"", b"  null \n"] {
        let r = h
            .send("POST", "transit/keys/k", Some(body.to_vec()), &[])
            .await;
        assert!(r.status < 300, "{body:?}: {}", r.text);
    }
    let r = h
        .send("POST", "transit/keys/k", Some(b"[1]".to_vec()), &[])
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[tokio::test]
async fn envelope_has_all_fields_and_exact_content_type() {
    let s = Server::dev_kv_v1();
    let h = s.http(Some("root"));
    h.post("secret/a", json!({"k": "v"})).await;
    let r = h.get("secret/a").await;
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert!(r.text.ends_with('\n'));
    let v = r.json();
    for k in [
        "request_id",
        "lease_id",
        "renewable",
        "lease_duration",
        "data",
        "wrap_info",
        "warnings",
        "auth",
    ] {
        assert!(v.get(k).is_some(), "envelope lacks {k}");
    }
    assert_eq!(v["lease_duration"], 2_764_800, "mount default TTL, 768h");
    let err = h.get("secret/missing").await;
    assert_eq!(err.status, 404);
    assert_eq!(err.content_type.as_deref(), Some("application/json"));
    assert_eq!(err.json(), json!({"errors": []}));
}

#[tokio::test]
async fn kv_v1_ttl_hint_sets_lease_duration() {
    let s = Server::dev_kv_v1();
    let h = s.http(Some("root"));
    for (ttl, secs) in [(json!("1h"), 3600), (json!(90), 90), (json!("30m0s"), 1800)] {
        h.post("secret/t", json!({"ttl": ttl, "x": 1})).await;
        assert_eq!(h.get("secret/t").await.json()["lease_duration"], secs);
    }
    let r = h.post("secret/t", json!({"ttl": "soon"})).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        h.post("secret/empty", json!({})).await.status,
        400,
        "missing data fields"
    );
}

#[tokio::test]
async fn sys_routes_copy_data_to_the_top_level() {
    let s = Server::dev_kv_v1();
    let h = s.http(Some("root"));
    let v = h.get("sys/mounts").await.json();
    assert!(v.get("secret/").is_some() && v["data"].get("secret/").is_some());
    assert_eq!(v["secret/"]["type"], "kv");
    let v = h.get("sys/key-status").await.json();
    assert_eq!(v["term"], 1);
    assert_eq!(v["data"]["term"], 1);
    // Not for ordinary reads.
    h.post("secret/a", json!({"k": "v"})).await;
    assert!(h.get("secret/a").await.json().get("k").is_none());
}

#[tokio::test]
async fn put_equals_post() {
    let s = Server::dev_kv_v1();
    let h = s.http(Some("root"));
    assert_eq!(h.put("secret/p", json!({"k": "v"})).await.status, 204);
    assert_eq!(h.get("secret/p").await.json()["data"]["k"], "v");
}

#[tokio::test]
async fn list_takes_any_go_bool_and_the_list_verb() {
    let s = Server::dev_kv_v1();
    let h = s.http(Some("root"));
    h.post("secret/dir/a", json!({"k": 1})).await;
    h.post("secret/dir/sub/b", json!({"k": 1})).await;
    for q in ["true", "1", "t", "TRUE", "True"] {
        let r = h.get(&format!("secret/dir?list={q}")).await;
        assert_eq!(r.status, 200, "list={q}: {}", r.text);
        assert_eq!(r.json()["data"]["keys"], json!(["a", "sub/"]));
    }
    assert_eq!(
        h.list("secret/dir/").await.json()["data"]["keys"],
        json!(["a", "sub/"])
    );
    assert_eq!(
        h.get("secret/dir/a?list=false").await.status,
        200,
        "list=false reads"
    );
    assert_eq!(h.get("secret/dir?list=maybe").await.status, 400);
    assert_eq!(
        h.list("secret/nothing/").await.status,
        404,
        "empty list is 404"
    );
}

#[tokio::test]
async fn loose_input_typing_is_accepted() {
    let s = Server::dev_kv_v1();
    let h = s.http(Some("root"));
    let r = h
        .post(
            "sys/mounts/loose",
            json!({"type": "kv", "config": {"default_lease_ttl": "3600", "max_lease_ttl": "2h"}, "options": {"version": 1}, "local": "true"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let m = h.get("sys/mounts/loose").await.json();
    assert_eq!(m["data"]["config"]["default_lease_ttl"], 3600);
    assert_eq!(m["data"]["config"]["max_lease_ttl"], 7200);
    assert_eq!(
        m["data"]["options"]["version"], "1",
        "int option stored as a string"
    );
    assert_eq!(m["data"]["local"], true);
    for ttl in [json!(60), json!("60"), json!("1m")] {
        assert_eq!(
            h.post("sys/mounts/loose/tune", json!({"default_lease_ttl": ttl}))
                .await
                .status,
            204
        );
        assert_eq!(
            h.get("sys/mounts/loose/tune").await.json()["data"]["default_lease_ttl"],
            60
        );
    }
    assert_eq!(
        h.post("sys/mounts/loose/tune", json!({"default_lease_ttl": "-1"}))
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn tune_reports_effective_ttls_and_checks_bounds() {
    let s = Server::dev_kv_v1();
    let h = s.http(Some("root"));
    let t = h.get("sys/mounts/secret/tune").await.json();
    assert_eq!(t["data"]["default_lease_ttl"], 2_764_800);
    assert_eq!(t["data"]["max_lease_ttl"], 2_764_800);
    assert_eq!(
        h.post(
            "sys/mounts/secret/tune",
            json!({"max_lease_ttl": 12_345_678})
        )
        .await
        .status,
        204
    );
    assert_eq!(
        h.get("sys/mounts/secret/tune").await.json()["data"]["max_lease_ttl"],
        12_345_678
    );
    let r = h
        .post(
            "sys/mounts/secret/tune",
            json!({"default_lease_ttl": 99_999_999}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[tokio::test]
async fn generic_is_an_alias_of_kv_and_mount_errors_are_clear() {
    let s = Server::dev_kv_v1();
    let h = s.http(Some("root"));
    assert_eq!(
        h.post("sys/mounts/old", json!({"type": "generic"}))
            .await
            .status,
        204
    );
    assert_eq!(h.get("sys/mounts").await.json()["old/"]["type"], "kv");
    let cases = [
        (
            "sys/mounts/x",
            json!({"type": "nosuch"}),
            "unknown backend type",
        ),
        (
            "sys/mounts/old",
            json!({"type": "kv"}),
            "path is already in use at old/",
        ),
        (
            "sys/mounts/old/inner",
            json!({"type": "kv"}),
            "path is already in use",
        ),
        ("sys/mounts/sys/x", json!({"type": "kv"}), "reserved"),
        ("sys/mounts/y", json!({}), "\\\"type\\\" is required"),
    ];
    for (path, body, needle) in cases {
        let r = h.post(path, body).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text);
        assert!(r.text.contains(needle), "{path}: {} lacks {needle}", r.text);
    }
    assert_eq!(h.delete("sys/mounts/old").await.status, 204);
    assert_eq!(h.delete("sys/mounts/never-mounted").await.status, 204);
    assert!(h.get("sys/mounts").await.json().get("old/").is_none());
}

#[tokio::test]
async fn unmount_removes_the_engines_data() {
    let s = Server::dev_kv_v1();
    let h = s.http(Some("root"));
    h.post("sys/mounts/tmp", json!({"type": "kv"})).await;
    h.post("tmp/a/b", json!({"k": 1})).await;
    h.delete("sys/mounts/tmp").await;
    h.post("sys/mounts/tmp", json!({"type": "kv"})).await;
    assert_eq!(h.get("tmp/a/b").await.status, 404);
}

#[tokio::test]
async fn internal_ui_mounts_reports_version_as_string() {
    let s = Server::dev_kv_v1();
    let h = s.http(Some("root"));
    h.post(
        "sys/mounts/v1",
        json!({"type": "kv", "options": {"version": 1}}),
    )
    .await;
    let v = h.get("sys/internal/ui/mounts/v1/some/secret").await.json();
    assert_eq!(v["data"]["path"], "v1/");
    assert_eq!(v["data"]["type"], "kv");
    assert_eq!(v["data"]["options"]["version"], "1");
    let r = s.http(None).get("sys/internal/ui/mounts/v1/x").await;
    assert_eq!(r.status, 403);
    assert!(r.text.contains("preflight capability check"));
    assert_eq!(
        h.get("sys/internal/ui/mounts/nothing/here").await.status,
        403
    );
}

#[tokio::test]
async fn tokens_from_either_header_and_refusals() {
    let s = Server::dev_kv_v1();
    let anon = s.http(None);
    assert_eq!(anon.get("secret/a").await.status, 403);
    let r = anon
        .send(
            "GET",
            "sys/mounts",
            None,
            &[("Authorization", "Bearer root")],
        )
        .await;
    assert_eq!(r.status, 200);
    let r = s.http(Some("wrong")).get("sys/mounts").await;
    assert_eq!(
        (r.status, r.json()),
        (403, json!({"errors": ["permission denied"]}))
    );
}

#[tokio::test]
async fn tools_random_and_hash() {
    let s = Server::dev_kv_v1();
    let h = s.http(Some("root"));
    let r = h.post("sys/tools/random", json!({})).await.json();
    assert_eq!(b64len(r["data"]["random_bytes"].as_str().unwrap()), 32);
    let r = h
        .post("sys/tools/random/64", json!({"format": "hex"}))
        .await
        .json();
    assert_eq!(r["data"]["random_bytes"].as_str().unwrap().len(), 128);
    let r = h
        .post("sys/tools/random/platform/16", json!({}))
        .await
        .json();
    assert_eq!(b64len(r["data"]["random_bytes"].as_str().unwrap()), 16);
    assert_eq!(h.post("sys/tools/random/0", json!({})).await.status, 400);
    // sha2-256("hello") in hex.
    let r = h
        .post("sys/tools/hash", json!({"input": "aGVsbG8="}))
        .await
        .json();
    assert_eq!(
        r["data"]["sum"],
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    let r = h
        .post(
            "sys/tools/hash/sha2-512",
            json!({"input": "aGVsbG8=", "format": "base64"}),
        )
        .await
        .json();
    assert_eq!(b64len(r["data"]["sum"].as_str().unwrap()), 64);
    assert_eq!(
        h.post("sys/tools/hash", json!({"input": "@@"}))
            .await
            .status,
        400
    );
    assert_eq!(
        h.post("sys/tools/hash/md5", json!({"input": "aGVsbG8="}))
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn rotate_adds_a_term_and_old_data_still_reads() {
    let s = Server::dev_kv_v1();
    let h = s.http(Some("root"));
    h.post("secret/before", json!({"k": "old"})).await;
    assert_eq!(h.put("sys/rotate", json!({})).await.status, 204);
    let ks = h.get("sys/key-status").await.json();
    assert_eq!(ks["term"], 2);
    assert!(ks["install_time"].as_str().unwrap().contains('T'));
    h.post("secret/after", json!({"k": "new"})).await;
    assert_eq!(h.get("secret/before").await.json()["data"]["k"], "old");
    assert_eq!(h.get("secret/after").await.json()["data"]["k"], "new");
}

fn b64len(s: &str) -> usize {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap()
        .len()
}

/// `bao path-help` (`GET ?help=1`): any valid token, Vault's three keys,
/// help from the path table that routes the request.
#[tokio::test]
async fn path_help_answers_in_vaults_shape() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    let r = root
        .post("auth/token/create", json!({"policies": ["default"]}))
        .await;
    let plain = r.json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for (path, route) in [
        ("secret/data/app?help=1", "data/{*path}"),
        ("sys/mounts?help=1", "mounts"),
        ("auth/token/create?help=1", "create"),
    ] {
        let r = s.http(Some(&plain)).get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let v = r.json();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["help", "openapi", "see_also"], "{path}");
        let help = v["help"].as_str().unwrap();
        assert!(
            help.contains(&format!("Matching Route: {route}\n")),
            "{path}: {help}"
        );
        assert_eq!(v["openapi"]["openapi"], "3.0.2");
    }
    let v = root.get("secret/?help=1").await.json();
    let help = v["help"].as_str().unwrap();
    assert!(
        help.starts_with("## DESCRIPTION") && help.contains("metadata/{*path}"),
        "{help}"
    );
    assert_eq!(root.get("nomount/x?help=1").await.status, 404);
    assert_eq!(s.http(None).get("secret/data/app?help=1").await.status, 403);
    assert_eq!(
        s.http(Some("bogus")).get("sys/mounts?help=1").await.status,
        403
    );
    // `help=` with no value is an ordinary read.
    assert_eq!(root.get("secret/data/app?help=").await.status, 404);
}

/// `bao plugin list|info` and `bao version-history`.
#[tokio::test]
async fn plugin_catalog_and_version_history() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    let all = root.get("sys/plugins/catalog").await.json();
    assert_eq!(all["data"]["secret"], json!(["database", "kv", "transit"]));
    assert!(
        all["data"]["auth"]
            .as_array()
            .unwrap()
            .contains(&json!("userpass"))
    );
    assert!(
        all["data"]["database"]
            .as_array()
            .unwrap()
            .contains(&json!("postgresql-database-plugin"))
    );
    let d = &all["data"]["detailed"][0];
    assert_eq!(
        (d["type"].as_str(), d["builtin"].as_bool()),
        (Some("auth"), Some(true))
    );
    let list = root.list("sys/plugins/catalog/database").await.json();
    assert!(
        list["data"]["keys"]
            .as_array()
            .unwrap()
            .contains(&json!("mysql-database-plugin"))
    );
    let kv = root.get("sys/plugins/catalog/secret/kv").await.json();
    assert_eq!(kv["data"]["name"], "kv");
    assert_eq!(kv["data"]["builtin"], true);
    assert_eq!(root.get("sys/plugins/catalog/secret/pki").await.status, 404);
    assert_eq!(root.list("sys/plugins/catalog/widget").await.status, 400);
    let h = root.list("sys/version-history").await.json();
    let v = h["data"]["keys"][0].as_str().unwrap().to_owned();
    assert_eq!(
        h["data"]["key_info"][&v]["previous_version"],
        serde_json::Value::Null
    );
    assert!(
        h["data"]["key_info"][&v]["timestamp_installed"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}
