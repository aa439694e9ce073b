//! Tokens and ACL policies through the HTTP API, including escalation attempts.

mod common;

use std::time::Duration;

use common::{Http, Server};
use serde_json::{Value, json};

async fn create(h: &Http, body: Value) -> Value {
    let r = h.post("auth/token/create", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

fn tok(v: &Value) -> String {
    v["auth"]["client_token"].as_str().unwrap().to_owned()
}

async fn policy(h: &Http, name: &str, text: &str) {
    let r = h
        .put(
            &format!("sys/policies/acl/{name}"),
            json!({ "policy": text }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

const READER: &str = r#"
path "secret/*" {
  capabilities = ["read", "list"]
}
"#;

#[tokio::test]
async fn token_create_and_lookup_have_vaults_shapes() {
    let s = Server::dev_kv_v1();
    let root = s.http(Some("root"));
    policy(&root, "reader", READER).await;
    let v = create(&root, json!({"policies": "Reader, reader", "display_name": "my app", "ttl": "1h", "meta": {"team": "a"}})).await;
    assert_eq!(v["data"], Value::Null);
    let auth = &v["auth"];
    assert!(auth["client_token"].as_str().unwrap().starts_with("cvs."));
    assert_eq!(auth["client_token"].as_str().unwrap().len(), 28);
    assert_eq!(auth["policies"], json!(["default", "reader"]));
    assert_eq!(auth["token_policies"], json!(["default", "reader"]));
    assert_eq!(auth["lease_duration"], 3600);
    assert_eq!(auth["renewable"], true);
    assert_eq!(auth["orphan"], false);
    assert_eq!(auth["token_type"], "service");
    assert_eq!(auth["entity_id"], "");
    assert_eq!(auth["metadata"], json!({"team": "a"}));

    let me = s.http(Some(&tok(&v)));
    let d = me.get("auth/token/lookup-self").await.json()["data"].clone();
    assert_eq!(d["display_name"], "token-my-app");
    assert!(d["ttl"].is_u64() && d["ttl"].as_u64().unwrap() > 3590);
    assert!(d["expire_time"].as_str().unwrap().contains('T'));
    assert_eq!(d["type"], "service");
    assert_eq!(d["path"], "auth/token/create");
    assert_eq!(d["meta"]["team"], "a");
    let r = root.get("auth/token/lookup-self").await.json();
    assert_eq!(r["data"]["expire_time"], Value::Null);
    assert_eq!(r["data"]["policies"], json!(["root"]));

    let by_acc = root
        .post(
            "auth/token/lookup-accessor",
            json!({"accessor": auth["accessor"]}),
        )
        .await
        .json();
    assert_eq!(by_acc["data"]["id"], "");
    let unknown = root
        .post("auth/token/lookup", json!({"token": "cvs.nope"}))
        .await;
    assert_eq!(
        (unknown.status, unknown.json()),
        (403, json!({"errors": ["bad token"]}))
    );
}

#[tokio::test]
async fn policies_are_stored_verbatim_and_guarded() {
    let s = Server::dev_kv_v1();
    let root = s.http(Some("root"));
    policy(&root, "reader", READER).await;
    let r = root.get("sys/policies/acl/reader").await.json();
    assert_eq!(r["data"]["policy"], READER);
    let legacy = root.get("sys/policy/reader").await.json();
    assert_eq!(
        legacy["rules"], READER,
        "legacy API copies data to the top level"
    );
    let json_text = r#"{"path": {"kv/*": {"capabilities": ["read"]}}}"#;
    assert_eq!(
        root.put("sys/policy/fromjson", json!({"policy": json_text}))
            .await
            .status,
        204
    );
    let list = root.get("sys/policy").await.json();
    assert_eq!(
        list["policies"],
        json!(["default", "fromjson", "reader", "root"])
    );
    assert_eq!(
        root.list("sys/policies/acl").await.json()["data"]["keys"],
        json!(["default", "fromjson", "reader", "root"])
    );
    for (name, body, needle) in [
        ("root", json!({"policy": READER}), "root"),
        ("Root", json!({"policy": READER}), "root"),
        (
            "bad",
            json!({"policy": "path \"x\" { capabilities = [\"fly\"] }"}),
            "unknown capability",
        ),
        ("empty", json!({}), "'policy' parameter"),
    ] {
        let r = root.put(&format!("sys/policies/acl/{name}"), body).await;
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        assert!(r.text.contains(needle), "{name}: {}", r.text);
    }
    assert_eq!(root.delete("sys/policies/acl/default").await.status, 400);
    assert_eq!(root.delete("sys/policies/acl/reader").await.status, 204);
    assert_eq!(
        root.delete("sys/policies/acl/reader").await.status,
        204,
        "idempotent"
    );
    assert_eq!(root.get("sys/policies/acl/reader").await.status, 404);
}

#[tokio::test]
async fn acl_decides_and_denial_reveals_nothing() {
    let s = Server::dev_kv_v1();
    let root = s.http(Some("root"));
    policy(&root, "reader", READER).await;
    policy(
        &root,
        "creator",
        "path \"secret/new-*\" { capabilities = [\"create\"] }",
    )
    .await;
    root.post("secret/app", json!({"k": "v"})).await;
    root.post("secret/new-existing", json!({"k": "v"})).await;
    let reader = s.http(Some(&tok(&create(
        &root,
        json!({"policies": ["reader", "creator"]}),
    )
    .await)));
    assert_eq!(reader.get("secret/app").await.status, 200);
    assert_eq!(reader.list("secret/").await.status, 200);
    let denied = reader.post("secret/app", json!({"k": "x"})).await;
    assert_eq!(
        (denied.status, denied.json()),
        (403, json!({"errors": ["permission denied"]}))
    );
    let missing = reader.post("secret/nothing-here", json!({"k": "x"})).await;
    assert_eq!(
        missing.text, denied.text,
        "same answer whether or not the path exists"
    );
    assert_eq!(reader.get("sys/mounts").await.status, 403);
    // create, not update: a new key may be written, an existing one may not.
    assert_eq!(
        reader
            .post("secret/new-one", json!({"k": "v"}))
            .await
            .status,
        204
    );
    assert_eq!(
        reader
            .post("secret/new-existing", json!({"k": "x"}))
            .await
            .status,
        403
    );
    // The default policy: look up, renew and revoke yourself.
    assert_eq!(reader.get("auth/token/lookup-self").await.status, 200);
    assert_eq!(
        reader.post("auth/token/renew-self", json!({})).await.status,
        200
    );
    let caps = reader
        .post(
            "sys/capabilities-self",
            json!({"paths": ["secret/app", "sys/mounts"]}),
        )
        .await
        .json();
    assert_eq!(caps["secret/app"], json!(["list", "read"]));
    assert_eq!(caps["sys/mounts"], json!(["deny"]));
    let one = reader
        .post("sys/capabilities-self", json!({"path": "secret/app"}))
        .await
        .json();
    assert_eq!(one["capabilities"], json!(["list", "read"]));
    assert_eq!(
        root.post("sys/capabilities-self", json!({"paths": ["x"]}))
            .await
            .json()["x"],
        json!(["root"])
    );
    assert_eq!(
        reader
            .post("auth/token/revoke-self", json!({}))
            .await
            .status,
        204
    );
    assert_eq!(reader.get("secret/app").await.status, 403);
}

#[tokio::test]
async fn escalation_attempts_fail() {
    let s = Server::dev_kv_v1();
    let root = s.http(Some("root"));
    policy(&root, "reader", READER).await;
    policy(
        &root,
        "admin",
        "path \"sys/*\" { capabilities = [\"create\", \"update\", \"read\"] }",
    )
    .await;
    policy(
        &root,
        "minter",
        "path \"auth/token/create\" { capabilities = [\"update\"] }",
    )
    .await;
    let minter = s.http(Some(&tok(&create(
        &root,
        json!({"policies": ["minter", "reader"]}),
    )
    .await)));

    // A child asking for policies its parent lacks.
    let r = minter
        .post("auth/token/create", json!({"policies": ["admin"]}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("subset of parent"));
    let r = minter
        .post("auth/token/create", json!({"policies": ["root"]}))
        .await;
    assert_eq!(r.status, 400);
    // Orphans, periodic tokens and chosen ids need sudo or root.
    for body in [
        json!({"no_parent": true}),
        json!({"period": "1h"}),
        json!({"id": "mine"}),
    ] {
        assert_eq!(
            minter.post("auth/token/create", body.clone()).await.status,
            400,
            "{body}"
        );
    }
    // A subset is fine and inherits nothing more.
    let child = create(&minter, json!({"policies": ["reader"]})).await;
    assert_eq!(child["auth"]["policies"], json!(["default", "reader"]));

    // Writing policies without the capability.
    let reader = s.http(Some(&tok(
        &create(&root, json!({"policies": ["reader"]})).await
    )));
    assert_eq!(
        reader
            .put("sys/policies/acl/mine", json!({"policy": READER}))
            .await
            .status,
        403
    );
    // Looking up another token without permission.
    assert_eq!(
        reader
            .post("auth/token/lookup", json!({"token": "root"}))
            .await
            .status,
        403
    );
    // sudo paths: update alone is not enough.
    let admin = s.http(Some(&tok(
        &create(&root, json!({"policies": ["admin"]})).await
    )));
    assert_eq!(admin.put("sys/rotate", json!({})).await.status, 403);
    assert_eq!(admin.put("sys/seal", json!({})).await.status, 403);
    policy(
        &root,
        "rotator",
        "path \"sys/rotate\" { capabilities = [\"update\", \"sudo\"] }",
    )
    .await;
    let rotator = s.http(Some(&tok(
        &create(&root, json!({"policies": ["rotator"]})).await
    )));
    assert_eq!(rotator.put("sys/rotate", json!({})).await.status, 204);
    // Listing accessors needs sudo.
    assert_eq!(admin.list("auth/token/accessors").await.status, 403);
    assert_eq!(root.list("auth/token/accessors").await.status, 200);
}

#[tokio::test]
async fn use_limits_and_expiry_end_tokens() {
    let s = Server::dev_kv_v1();
    let root = s.http(Some("root"));
    policy(&root, "reader", READER).await;
    root.post("secret/a", json!({"k": 1})).await;
    let limited = s.http(Some(&tok(&create(
        &root,
        json!({"policies": ["reader"], "num_uses": 2}),
    )
    .await)));
    assert_eq!(limited.get("secret/a").await.status, 200);
    assert_eq!(limited.get("secret/a").await.status, 200);
    assert_eq!(
        limited.get("secret/a").await.status,
        403,
        "used up after two uses"
    );
    let short = s.http(Some(&tok(&create(
        &root,
        json!({"policies": ["reader"], "ttl": "1s"}),
    )
    .await)));
    assert_eq!(short.get("secret/a").await.status, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(short.get("secret/a").await.status, 403, "expired");
    let capped = create(&root, json!({"ttl": "30m", "explicit_max_ttl": "5m"})).await;
    assert_eq!(capped["auth"]["lease_duration"], 300);
    let capped_h = s.http(Some(&tok(&capped)));
    let renewed = capped_h
        .post("auth/token/renew-self", json!({"increment": "1h"}))
        .await
        .json();
    assert!(renewed["auth"]["lease_duration"].as_u64().unwrap() <= 300);
    assert!(
        renewed["warnings"]
            .as_array()
            .is_some_and(|w| !w.is_empty())
    );
    let periodic = create(&root, json!({"period": "10m", "ttl": "1h"})).await;
    assert_eq!(periodic["auth"]["lease_duration"], 600);
    let p = s.http(Some(&tok(&periodic)));
    let lookup = p.get("auth/token/lookup-self").await.json();
    assert_eq!(lookup["data"]["period"], 600);
    let fixed = create(&root, json!({"ttl": "1h", "renewable": false})).await;
    let r = s
        .http(Some(&tok(&fixed)))
        .post("auth/token/renew-self", json!({}))
        .await;
    assert_eq!(r.status, 400);
    // Tidy removes what has expired.
    let t = root.post("auth/token/tidy", json!({})).await;
    assert_eq!(t.status, 200);
}

#[tokio::test]
async fn revocation_reaches_children_unless_orphaned() {
    let s = Server::dev_kv_v1();
    let root = s.http(Some("root"));
    let parent = create(&root, json!({})).await;
    let ph = s.http(Some(&tok(&parent)));
    let child = create(&ph, json!({})).await;
    let grandchild = create(&s.http(Some(&tok(&child))), json!({})).await;
    let orphan = create(&root, json!({"no_parent": true})).await;
    assert_eq!(orphan["auth"]["orphan"], true);
    assert_eq!(
        root.post("auth/token/revoke", json!({"token": tok(&parent)}))
            .await
            .status,
        204
    );
    for (name, t) in [
        ("parent", &parent),
        ("child", &child),
        ("grandchild", &grandchild),
    ] {
        assert_eq!(
            s.http(Some(&tok(t)))
                .get("auth/token/lookup-self")
                .await
                .status,
            403,
            "{name} still alive"
        );
    }
    assert_eq!(
        s.http(Some(&tok(&orphan)))
            .get("auth/token/lookup-self")
            .await
            .status,
        200
    );

    let p2 = create(&root, json!({})).await;
    let c2 = create(&s.http(Some(&tok(&p2))), json!({})).await;
    assert_eq!(
        root.post("auth/token/revoke-orphan", json!({"token": tok(&p2)}))
            .await
            .status,
        204
    );
    let c2h = s.http(Some(&tok(&c2)));
    let l = c2h.get("auth/token/lookup-self").await;
    assert_eq!(l.status, 200, "child survives revoke-orphan");
    assert_eq!(l.json()["data"]["orphan"], true);
    let acc = c2["auth"]["accessor"].as_str().unwrap();
    assert_eq!(
        root.post("auth/token/revoke-accessor", json!({"accessor": acc}))
            .await
            .status,
        204
    );
    assert_eq!(c2h.get("auth/token/lookup-self").await.status, 403);
}

#[tokio::test]
async fn token_roles_shape_tokens() {
    let s = Server::dev_kv_v1();
    let root = s.http(Some("root"));
    assert_eq!(
        root.list("auth/token/roles").await.status,
        404,
        "no roles yet"
    );
    let r = root
        .post("auth/token/roles/app", json!({"allowed_policies": "reader,writer", "disallowed_policies": ["admin"], "token_period": "1h", "orphan": true}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let role = root.get("auth/token/roles/app").await.json();
    assert_eq!(
        role["data"]["allowed_policies"],
        json!(["reader", "writer"])
    );
    assert_eq!(role["data"]["period"], 3600);
    assert_eq!(
        root.list("auth/token/roles").await.json()["data"]["keys"],
        json!(["app"])
    );
    let t = root.post("auth/token/create/app", json!({})).await.json();
    assert_eq!(
        t["auth"]["policies"],
        json!(["default", "reader", "writer"])
    );
    assert_eq!(t["auth"]["orphan"], true);
    assert_eq!(t["auth"]["lease_duration"], 3600);
    let narrowed = root
        .post("auth/token/create/app", json!({"policies": ["reader"]}))
        .await
        .json();
    assert_eq!(narrowed["auth"]["policies"], json!(["default", "reader"]));
    assert_eq!(
        root.post("auth/token/create/app", json!({"policies": ["admin"]}))
            .await
            .status,
        400
    );
    assert_eq!(
        root.post("auth/token/create/app", json!({"policies": ["other"]}))
            .await
            .status,
        400
    );
    assert_eq!(
        root.post("auth/token/create/nope", json!({})).await.status,
        400
    );
    assert_eq!(root.delete("auth/token/roles/app").await.status, 204);
}

#[tokio::test]
async fn bound_cidrs_apply_to_every_use() {
    let s = Server::dev_kv_v1();
    let root = s.http(Some("root"));
    root.post(
        "auth/token/roles/far",
        json!({"token_bound_cidrs": "10.0.0.0/8"}),
    )
    .await;
    root.post(
        "auth/token/roles/near",
        json!({"token_bound_cidrs": ["127.0.0.0/8"]}),
    )
    .await;
    let far = tok(&root.post("auth/token/create/far", json!({})).await.json());
    let near = tok(&root.post("auth/token/create/near", json!({})).await.json());
    assert_eq!(
        s.http(Some(&far))
            .get("auth/token/lookup-self")
            .await
            .status,
        403,
        "used from outside its CIDR"
    );
    assert_eq!(
        s.http(Some(&near))
            .get("auth/token/lookup-self")
            .await
            .status,
        200
    );
    let r = root
        .post(
            "auth/token/roles/bad",
            json!({"token_bound_cidrs": "not-a-cidr"}),
        )
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn token_mount_tuning_sets_default_and_max_ttl() {
    let s = Server::dev_kv_v1();
    let root = s.http(Some("root"));
    let r = root
        .post(
            "sys/auth/token/tune",
            json!({"default_lease_ttl": "1h", "max_lease_ttl": "2h"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let t = root.get("sys/auth/token/tune").await.json();
    assert_eq!(
        (
            t["data"]["default_lease_ttl"].clone(),
            t["data"]["max_lease_ttl"].clone()
        ),
        (json!(3600), json!(7200))
    );
    assert_eq!(
        root.get("sys/auth").await.json()["token/"]["config"]["default_lease_ttl"],
        3600
    );
    // Children of root without policies would inherit root, which never expires.
    assert_eq!(
        create(&root, json!({"policies": ["default"]})).await["auth"]["lease_duration"],
        3600,
        "mount default"
    );
    assert_eq!(
        create(&root, json!({"policies": ["default"], "ttl": "5h"})).await["auth"]["lease_duration"],
        7200,
        "mount max"
    );
    assert_eq!(
        root.post("sys/auth/token/tune", json!({"default_lease_ttl": "3h"}))
            .await
            .status,
        400,
        "default above max"
    );
}

fn unix_ms() -> i128 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000
}

fn parse_ms(v: &Value) -> i128 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp_nanos()
        / 1_000_000
}

/// Expiry is kept to the millisecond: a TTL is never cut by rounding to the
/// second (OpenBao Agent renews a 3 s token at 2 s and uses it at 4.5 s).
#[tokio::test]
async fn short_ttls_are_not_rounded_down() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    // Start late in a second, where truncation would take the most.
    while unix_ms() % 1000 < 600 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = unix_ms();
    let v = create(&root, json!({"ttl": "2s"})).await;
    let after = unix_ms();
    let me = s.http(Some(&tok(&v)));
    let d = me.get("auth/token/lookup-self").await.json()["data"].clone();
    let expire = parse_ms(&d["expire_time"]);
    assert!(
        (before + 2000..=after + 2000).contains(&expire),
        "expire_time {} is not 2 s after the request ({before}..{after})",
        d["expire_time"]
    );
    assert_eq!(d["ttl"], 2);

    // Truncated to the second it would be gone 1.4 s in; it lives to 2 s.
    let at = before + 1650;
    tokio::time::sleep(Duration::from_millis((at - unix_ms()).max(0) as u64)).await;
    let r = me.get("auth/token/lookup-self").await;
    assert_eq!(
        r.status,
        200,
        "a 2 s token died {} ms in",
        unix_ms() - before
    );

    // Renewal keeps the fraction too.
    let renew_at = unix_ms();
    let r = me
        .post("auth/token/renew-self", json!({"increment": "2s"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["auth"]["lease_duration"], 2);
    let d = me.get("auth/token/lookup-self").await.json()["data"].clone();
    let expire = parse_ms(&d["expire_time"]);
    assert!(
        expire >= renew_at + 2000,
        "renewed to {expire}, asked at {renew_at}"
    );

    tokio::time::sleep(Duration::from_millis(
        (expire - unix_ms() + 300).max(0) as u64
    ))
    .await;
    assert_eq!(me.get("auth/token/lookup-self").await.status, 403);
}
