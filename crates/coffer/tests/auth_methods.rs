//! Auth methods: enabling them, userpass and AppRole logins over HTTP and
//! through the unmodified `vaultrs` client, and the ways a login must fail.

mod common;

use common::{Http, Server};
use serde_json::{Value, json};

const READER: &str = "path \"secret/*\" { capabilities = [\"read\", \"list\"] }";

async fn setup(root: &Http) {
    assert_eq!(
        root.put("sys/policies/acl/reader", json!({"policy": READER}))
            .await
            .status,
        204
    );
    for (path, kind) in [("userpass", "userpass"), ("approle", "approle")] {
        let r = root
            .post(&format!("sys/auth/{path}"), json!({"type": kind}))
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
    }
    root.post("secret/app", json!({"password": "s3cret"})).await;
}

use common::vaultrs_client as client;

#[tokio::test]
async fn auth_methods_mount_list_tune_and_disable() {
    let s = Server::dev_kv_v1();
    let root = s.http(Some("root"));
    setup(&root).await;
    let list = root.get("sys/auth").await.json();
    assert_eq!(list["token/"]["type"], "token");
    assert_eq!(list["userpass/"]["type"], "userpass");
    assert_eq!(
        list["data"]["approle/"]["config"]["token_type"],
        "default-service"
    );
    assert!(
        list["approle/"]["accessor"]
            .as_str()
            .unwrap()
            .starts_with("auth_approle_")
    );
    for (path, body, needle) in [
        (
            "other",
            json!({"type": "nosuch"}),
            "unknown auth method type",
        ),
        ("userpass", json!({"type": "userpass"}), "already in use"),
    ] {
        let r = root.post(&format!("sys/auth/{path}"), body).await;
        assert_eq!(r.status, 400);
        assert!(r.text.contains(needle), "{}", r.text);
    }
    assert_eq!(
        root.post("sys/auth/token", json!({"type": "userpass"}))
            .await
            .status,
        400
    );
    assert_eq!(root.delete("sys/auth/token").await.status, 400);
    assert_eq!(
        root.post(
            "sys/auth/userpass/tune",
            json!({"default_lease_ttl": "10m"})
        )
        .await
        .status,
        204
    );
    assert_eq!(
        root.get("sys/auth/userpass/tune").await.json()["data"]["default_lease_ttl"],
        600
    );
    // `bao auth tune` uses the sys/mounts/auth/<path>/tune spelling.
    assert_eq!(
        root.post(
            "sys/mounts/auth/userpass/tune",
            json!({"default_lease_ttl": "15m"})
        )
        .await
        .status,
        204
    );
    assert_eq!(
        root.get("sys/mounts/auth/userpass/tune").await.json()["data"]["default_lease_ttl"],
        900
    );
    assert_eq!(
        root.post(
            "sys/auth/userpass/tune",
            json!({"default_lease_ttl": "10m"})
        )
        .await
        .status,
        204
    );

    // A login token dies with its method.
    root.post(
        "auth/userpass/users/bob",
        json!({"password": "pw", "token_policies": "reader"}),
    )
    .await;
    let t = s
        .http(None)
        .post("auth/userpass/login/bob", json!({"password": "pw"}))
        .await
        .json();
    assert_eq!(
        t["auth"]["lease_duration"], 600,
        "mount default TTL applies"
    );
    let bob = s.http(Some(t["auth"]["client_token"].as_str().unwrap()));
    assert_eq!(bob.get("secret/app").await.status, 200);
    assert_eq!(root.delete("sys/auth/userpass").await.status, 204);
    assert_eq!(bob.get("secret/app").await.status, 403);
    assert!(root.get("sys/auth").await.json().get("userpass/").is_none());
}

#[tokio::test]
async fn userpass_login_and_failures() {
    let s = Server::dev_kv_v1();
    let root = s.http(Some("root"));
    setup(&root).await;
    let r = root
        .post(
            "auth/userpass/users/Alice",
            json!({"password": "correct horse", "token_policies": ["reader"], "token_ttl": "1h"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let u = root.get("auth/userpass/users/alice").await.json();
    assert_eq!(u["data"]["token_policies"], json!(["reader"]));
    assert_eq!(u["data"]["token_ttl"], 3600);
    assert!(u["data"].get("password").is_none() && u["data"].get("password_hash").is_none());
    assert_eq!(
        root.list("auth/userpass/users").await.json()["data"]["keys"],
        json!(["alice"])
    );

    let anon = s.http(None);
    let login = anon
        .post(
            "auth/userpass/login/alice",
            json!({"password": "correct horse"}),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.text);
    let v = login.json();
    let auth = &v["auth"];
    assert_eq!(auth["policies"], json!(["default", "reader"]));
    assert_eq!(auth["metadata"], json!({"username": "alice"}));
    assert_eq!(auth["orphan"], true);
    assert_eq!(auth["lease_duration"], 3600);
    let alice = s.http(Some(auth["client_token"].as_str().unwrap()));
    assert_eq!(
        alice.get("secret/app").await.json()["data"]["password"],
        "s3cret"
    );
    assert_eq!(
        alice.get("auth/token/lookup-self").await.json()["data"]["display_name"],
        "userpass-alice"
    );

    for (user, body) in [
        ("alice", json!({"password": "wrong"})),
        ("nobody", json!({"password": "x"})),
    ] {
        let r = anon
            .post(&format!("auth/userpass/login/{user}"), body)
            .await;
        assert_eq!(
            (r.status, r.json()),
            (400, json!({"errors": ["invalid username or password"]})),
            "{user}"
        );
    }
    assert_eq!(
        root.post(
            "auth/userpass/users/alice/password",
            json!({"password": "new pw"})
        )
        .await
        .status,
        204
    );
    assert_eq!(
        anon.post(
            "auth/userpass/login/alice",
            json!({"password": "correct horse"})
        )
        .await
        .status,
        400
    );
    assert_eq!(
        anon.post("auth/userpass/login/alice", json!({"password": "new pw"}))
            .await
            .status,
        200
    );
    assert_eq!(
        root.post("auth/userpass/users/carl", json!({}))
            .await
            .status,
        400,
        "missing password"
    );
    // The management endpoints are not open.
    assert_eq!(anon.get("auth/userpass/users/alice").await.status, 403);
    assert_eq!(
        alice
            .post(
                "auth/userpass/users/alice",
                json!({"token_policies": "root"})
            )
            .await
            .status,
        403
    );
}

#[tokio::test]
async fn approle_secret_ids_limits_and_failures() {
    let s = Server::dev_kv_v1();
    let root = s.http(Some("root"));
    setup(&root).await;
    assert_eq!(
        root.post("auth/approle/role/web", json!({})).await.status,
        204,
        "empty body allowed"
    );
    let r = root
        .post(
            "auth/approle/role/web",
            json!({"token_policies": "reader", "secret_id_num_uses": 2, "token_ttl": "20m"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let role = root.get("auth/approle/role/web").await.json();
    assert_eq!(role["data"]["secret_id_num_uses"], 2);
    assert_eq!(role["data"]["token_ttl"], 1200);
    let role_id = root.get("auth/approle/role/web/role-id").await.json()["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sid = root
        .post(
            "auth/approle/role/web/secret-id",
            json!({"metadata": "{\"team\":\"blue\"}"}),
        )
        .await
        .json();
    let secret_id = sid["data"]["secret_id"].as_str().unwrap().to_owned();
    assert_eq!(sid["data"]["secret_id_num_uses"], 2);
    let accessor = sid["data"]["secret_id_accessor"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        root.list("auth/approle/role/web/secret-id").await.json()["data"]["keys"],
        json!([accessor])
    );
    let look = root
        .post(
            "auth/approle/role/web/secret-id/lookup",
            json!({"secret_id": secret_id}),
        )
        .await
        .json();
    assert_eq!(look["data"]["metadata"], json!({"team": "blue"}));

    let anon = s.http(None);
    let login = |sid: String| {
        let anon = anon.clone();
        let role_id = role_id.clone();
        async move {
            anon.post(
                "auth/approle/login",
                json!({"role_id": role_id, "secret_id": sid}),
            )
            .await
        }
    };
    let first = login(secret_id.clone()).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let v: Value = first.json();
    assert_eq!(
        v["auth"]["metadata"],
        json!({"role_name": "web", "team": "blue"})
    );
    assert_eq!(v["auth"]["lease_duration"], 1200);
    let tok = s.http(Some(v["auth"]["client_token"].as_str().unwrap()));
    assert_eq!(tok.get("secret/app").await.status, 200);
    assert_eq!(
        tok.get("auth/token/lookup-self").await.json()["data"]["display_name"],
        "approle"
    );
    assert_eq!(
        login(secret_id.clone()).await.status,
        200,
        "second of two uses"
    );
    let third = login(secret_id.clone()).await;
    assert_eq!(
        (third.status, third.json()),
        (400, json!({"errors": ["invalid role or secret ID"]})),
        "uses exhausted"
    );

    for body in [
        json!({"secret_id": "x"}),
        json!({"role_id": role_id}),
        json!({"role_id": "wrong", "secret_id": "x"}),
        json!({"role_id": role_id, "secret_id": "wrong"}),
    ] {
        assert_eq!(
            anon.post("auth/approle/login", body.clone()).await.status,
            400,
            "{body}"
        );
    }
    // Bound to other addresses: refused from loopback.
    let bound = root
        .post(
            "auth/approle/role/web/secret-id",
            json!({"cidr_list": "10.0.0.0/8"}),
        )
        .await
        .json();
    assert_eq!(
        login(bound["data"]["secret_id"].as_str().unwrap().to_owned())
            .await
            .status,
        400
    );
    // Destroy by accessor.
    let d = root
        .post("auth/approle/role/web/secret-id", json!({}))
        .await
        .json();
    let acc = d["data"]["secret_id_accessor"].as_str().unwrap();
    assert_eq!(
        root.post(
            "auth/approle/role/web/secret-id-accessor/destroy",
            json!({"secret_id_accessor": acc})
        )
        .await
        .status,
        204
    );
    assert_eq!(
        login(d["data"]["secret_id"].as_str().unwrap().to_owned())
            .await
            .status,
        400
    );
    // A field endpoint.
    assert_eq!(
        root.post(
            "auth/approle/role/web/policies",
            json!({"token_policies": "reader,other"})
        )
        .await
        .status,
        204
    );
    assert_eq!(
        root.get("auth/approle/role/web/policies").await.json()["data"]["token_policies"],
        json!(["other", "reader"])
    );
    assert_eq!(root.delete("auth/approle/role/web").await.status, 204);
    assert_eq!(root.list("auth/approle/role").await.status, 404);
}

#[tokio::test]
async fn vaultrs_logs_in_with_approle_and_userpass() {
    let s = Server::dev_kv_v1();
    let root_h = s.http(Some("root"));
    setup(&root_h).await;
    let root = client(&s.addr, "root");
    vaultrs::auth::userpass::user::set(
        &root,
        "userpass",
        "dana",
        "pw-dana",
        Some(
            vaultrs::api::auth::userpass::requests::CreateUserRequest::builder()
                .token_policies(vec!["reader".into()]),
        ),
    )
    .await
    .unwrap();
    let info = vaultrs::auth::userpass::login(&client(&s.addr, ""), "userpass", "dana", "pw-dana")
        .await
        .unwrap();
    assert!(info.policies.contains(&"reader".to_string()));
    let secret: std::collections::HashMap<String, String> =
        vaultrs::kv1::get(&client(&s.addr, &info.client_token), "secret", "app")
            .await
            .unwrap();
    assert_eq!(secret["password"], "s3cret");

    vaultrs::auth::approle::role::set(
        &root,
        "approle",
        "svc",
        Some(
            vaultrs::api::auth::approle::requests::SetAppRoleRequest::builder()
                .token_policies(vec!["reader".into()]),
        ),
    )
    .await
    .unwrap();
    let read = vaultrs::auth::approle::role::read(&root, "approle", "svc")
        .await
        .unwrap();
    assert_eq!(read.token_policies, vec!["reader".to_string()]);
    let role_id = vaultrs::auth::approle::role::read_id(&root, "approle", "svc")
        .await
        .unwrap()
        .role_id;
    let secret_id = vaultrs::auth::approle::role::secret::generate(&root, "approle", "svc", None)
        .await
        .unwrap()
        .secret_id;
    let info = vaultrs::auth::approle::login(&client(&s.addr, ""), "approle", &role_id, &secret_id)
        .await
        .unwrap();
    let secret: std::collections::HashMap<String, String> =
        vaultrs::kv1::get(&client(&s.addr, &info.client_token), "secret", "app")
            .await
            .unwrap();
    assert_eq!(secret["password"], "s3cret");
}

/// As in Vault: a login token is renewed only while its role or user is
/// still there (and, for userpass, has the same policies); until its TTL
/// runs out it keeps working.
#[tokio::test]
async fn tokens_of_deleted_roles_and_users_are_not_renewed() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    setup(&root).await;
    let renew = |token: String| {
        let h = s.http(Some(&token));
        async move { h.put("auth/token/renew-self", json!({})).await }
    };
    // userpass: a policy change, then the user's deletion.
    root.post(
        "auth/userpass/users/ana",
        json!({"password": "ana-pass-1", "token_policies": "reader", "token_ttl": "1h"}),
    )
    .await;
    let login = s
        .http(None)
        .post("auth/userpass/login/ana", json!({"password": "ana-pass-1"}))
        .await
        .json();
    let token = login["auth"]["client_token"].as_str().unwrap().to_owned();
    assert_eq!(renew(token.clone()).await.status, 200);
    root.post(
        "auth/userpass/users/ana/policies",
        json!({"token_policies": "reader,other"}),
    )
    .await;
    let r = renew(token.clone()).await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("policies have changed"), "{}", r.text);
    assert_eq!(root.delete("auth/userpass/users/ana").await.status, 204);
    let r = renew(token.clone()).await;
    assert!(r.text.contains("no longer exists"), "{}", r.text);
    assert_eq!(
        s.http(Some(&token))
            .get("auth/token/lookup-self")
            .await
            .status,
        200
    );

    // AppRole: the role's deletion; a periodic token stops there too.
    root.post(
        "auth/approle/role/r",
        json!({"token_policies": "reader", "token_period": "10m"}),
    )
    .await;
    let role_id = root.get("auth/approle/role/r/role-id").await.json()["data"]["role_id"].clone();
    let secret_id = root
        .post("auth/approle/role/r/secret-id", json!({}))
        .await
        .json()["data"]["secret_id"]
        .clone();
    let login = s
        .http(None)
        .post(
            "auth/approle/login",
            json!({"role_id": role_id, "secret_id": secret_id}),
        )
        .await
        .json();
    let token = login["auth"]["client_token"].as_str().unwrap().to_owned();
    assert_eq!(renew(token.clone()).await.status, 200);
    assert_eq!(root.delete("auth/approle/role/r").await.status, 204);
    let r = renew(token.clone()).await;
    assert_eq!(r.status, 400);
    assert!(
        r.text.contains(r#"role \"r\" no longer exists"#),
        "{}",
        r.text
    );
    // Root's own renew of the token (renew-accessor) is refused the same way.
    let accessor = s
        .http(Some(&token))
        .get("auth/token/lookup-self")
        .await
        .json()["data"]["accessor"]
        .clone();
    let r = root
        .post("auth/token/renew-accessor", json!({"accessor": accessor}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}
