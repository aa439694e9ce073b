//! Defects a secrets store must not have (issue 18), each proved against a
//! real server: revocation that holds under concurrency, single-use wrapping,
//! tokens that cannot escape their limits, bounded unauthenticated work,
//! connection deadlines, and what unauthenticated or low-privilege callers
//! may see.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{Http, Server, Setup};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A second loopback address: Linux routes all of 127/8 to `lo`, so a
/// client bound to it reaches the server from an address a CIDR can exclude.
fn elsewhere() -> IpAddr {
    "127.0.0.3".parse().expect("ip")
}

async fn token(root: &Http, body: Value) -> (String, String) {
    let r = root.post("auth/token/create", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let a = &r.json()["auth"];
    (
        a["client_token"].as_str().expect("token").to_owned(),
        a["accessor"].as_str().expect("accessor").to_owned(),
    )
}

async fn dev() -> (Server, Http) {
    let s = Server::dev();
    let root = s.http(Some("root"));
    (s, root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_token_never_comes_back_under_concurrent_renewals() {
    // File storage behind the read cache, as the report's server ran.
    let setup = Setup::embedded();
    let (s, keys, root_token) = common::ready(&setup).await;
    let root = s.http(Some(&root_token));
    assert_eq!(
        root.put("kv/app", json!({"v": "x"})).await.status,
        204,
        "seed a secret"
    );
    let policy = "path \"kv/*\" { capabilities = [\"read\"] }";
    common::put_policy(&root, "reader", policy).await;
    const TRIALS: usize = 24;
    let mut revoked = Vec::new();
    for _ in 0..TRIALS {
        let (t, accessor) = token(
            &root,
            json!({"policies": ["reader"], "ttl": "1h", "renewable": true}),
        )
        .await;
        let user = root.with_token(&t);
        let mut renewers = Vec::new();
        for _ in 0..4 {
            let u = user.clone();
            renewers.push(tokio::spawn(async move {
                for _ in 0..6 {
                    u.post("auth/token/renew-self", json!({"increment": "2h"}))
                        .await;
                }
            }));
        }
        let r = root
            .post(
                "auth/token/revoke-accessor",
                json!({ "accessor": accessor }),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
        for r in renewers {
            r.await.expect("renewer");
        }
        revoked.push((t, accessor));
    }
    let still = |h: Http| async move { h.get("kv/app").await.status == 200 };
    let mut alive = 0;
    for (t, _) in &revoked {
        alive += usize::from(still(root.with_token(t)).await);
    }
    assert_eq!(alive, 0, "revoked tokens that still read secrets");
    let listed = root.list("auth/token/accessors").await.json();
    for (_, a) in &revoked {
        assert!(
            !listed["data"]["keys"]
                .as_array()
                .is_some_and(|k| k.iter().any(|x| x == a)),
            "a revoked accessor is still listed"
        );
    }
    // Nor after tidy and a restart.
    assert_eq!(root.post("auth/token/tidy", json!({})).await.status, 200);
    s.stop();
    let s = Server::with_config(&setup.config, &[]);
    common::unseal(&s.http(None), &keys).await;
    let root = s.http(Some(&root_token));
    for (t, _) in &revoked {
        assert_eq!(
            root.with_token(t).get("kv/app").await.status,
            403,
            "a revoked token works again after a restart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrapping_token_unwraps_exactly_once_under_concurrency() {
    // No read cache, and a response too big for it anyway: the slow path.
    let setup = Setup::embedded_with("disable_cache = true\n");
    let (s, _, root_token) = common::ready(&setup).await;
    let root = s.http(Some(&root_token));
    let big = "x".repeat(100 * 1024);
    assert_eq!(root.put("kv/big", json!({ "v": big })).await.status, 204);
    for trial in 0..4 {
        let r = root
            .send("GET", "kv/big", None, &[("X-Vault-Wrap-TTL", "5m")])
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let wrapping = r.json()["wrap_info"]["token"]
            .as_str()
            .expect("wrapping token")
            .to_owned();
        let mut tasks = Vec::new();
        for _ in 0..30 {
            let root = root.clone();
            let w = wrapping.clone();
            tasks.push(tokio::spawn(async move {
                // As a parameter (another token calls), or as the caller.
                if trial % 2 == 0 {
                    root.post("sys/wrapping/unwrap", json!({ "token": w }))
                        .await
                        .status
                } else {
                    root.with_token(&w)
                        .post("sys/wrapping/unwrap", json!({}))
                        .await
                        .status
                }
            }));
        }
        let mut ok = 0;
        for t in tasks {
            let status = t.await.expect("task");
            assert!(status == 200 || status == 400, "{status}");
            ok += usize::from(status == 200);
        }
        assert_eq!(ok, 1, "a single-use wrapping token unwrapped {ok} times");
        // Afterwards every way of presenting the token says when it was
        // spent (the recipient's sign of a leaked link), with Vault's words first.
        for r in [
            root.post("sys/wrapping/unwrap", json!({ "token": wrapping }))
                .await,
            root.with_token(&wrapping)
                .post("sys/wrapping/unwrap", json!({}))
                .await,
            Http::new(&root.base, None)
                .post("sys/wrapping/lookup", json!({ "token": wrapping }))
                .await,
        ] {
            assert_eq!(r.status, 400, "{}", r.text);
            let msg = r.json()["errors"][0]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            assert!(
                msg.starts_with(
                    "wrapping token is not valid or does not exist: it was already unwrapped at 20"
                ),
                "{msg}"
            );
        }
    }
    // A token that never existed gets Vault's message alone.
    let r = root
        .post("sys/wrapping/lookup", json!({ "token": "cvs.nope" }))
        .await;
    assert_eq!(
        r.json()["errors"][0],
        "wrapping token is not valid or does not exist"
    );
}

#[tokio::test]
async fn a_failed_or_lookup_request_never_consumes_a_wrapping_token() {
    let (_s, root) = dev().await;
    assert_eq!(
        root.put("secret/data/a", json!({"data": {"k": "v"}}))
            .await
            .status,
        200
    );
    let r = root
        .send("GET", "secret/data/a", None, &[("X-Vault-Wrap-TTL", "5m")])
        .await;
    let wrapping = r.json()["wrap_info"]["token"]
        .as_str()
        .expect("wrapping token")
        .to_owned();
    let holder = Http::new(&root.base, Some(&wrapping));
    // OpenBao Agent's lookup: GET with the token in the header.
    let r = holder.get("sys/wrapping/lookup").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["data"]["creation_path"], "secret/data/a");
    // PUT with the token only in the header, too.
    let r = holder.put("sys/wrapping/lookup", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A request nothing serves costs nothing.
    let r = holder.get("sys/wrapping/unwrap").await;
    assert!(r.status == 403 || r.status == 405, "{}", r.text);
    let r = holder.get("sys/wrapping/nope").await;
    assert!([403, 404, 405].contains(&r.status), "{}", r.text);
    // The rightful holder still unwraps, once.
    let r = holder.post("sys/wrapping/unwrap", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["data"]["data"]["k"], "v");
    let r = holder.post("sys/wrapping/unwrap", json!({})).await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[tokio::test]
async fn a_limited_use_token_cannot_mint_children() {
    let (_s, root) = dev().await;
    let (t, _) = token(&root, json!({"num_uses": 2, "ttl": "1h"})).await;
    let r = root
        .with_token(&t)
        .post("auth/token/create", json!({"ttl": "1h"}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.text
            .contains("restricted use token cannot generate child tokens"),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn children_inherit_their_parents_address_bounds() {
    let (_s, root) = dev().await;
    let minter = "path \"auth/token/create\" { capabilities = [\"update\"] }";
    common::put_policy(&root, "minter", minter).await;
    // Token bound CIDRs come from a role, as in Vault.
    let r = root
        .post(
            "auth/token/roles/bound",
            json!({"token_bound_cidrs": ["127.0.0.1/32"], "allowed_policies": ["minter"]}),
        )
        .await;
    assert!(r.status < 300, "{}", r.text);
    let r = root
        .post("auth/token/create/bound", json!({"ttl": "1h"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let bound = r.json()["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let from_here = root.with_token(&bound);
    assert_eq!(from_here.get("auth/token/lookup-self").await.status, 200);
    assert_eq!(
        from_here
            .via_source(elsewhere())
            .get("auth/token/lookup-self")
            .await
            .status,
        403,
        "the parent itself is bound"
    );
    let r = from_here
        .post("auth/token/create", json!({"ttl": "1h"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let child = r.json()["auth"]["client_token"]
        .as_str()
        .expect("child")
        .to_owned();
    let child_http = root.with_token(&child);
    let look = child_http.get("auth/token/lookup-self").await;
    assert_eq!(look.status, 200, "{}", look.text);
    assert_eq!(look.json()["data"]["bound_cidrs"], json!(["127.0.0.1/32"]));
    assert_eq!(
        child_http
            .via_source(elsewhere())
            .get("auth/token/lookup-self")
            .await
            .status,
        403,
        "a child of a bound token is usable from anywhere"
    );
}

#[tokio::test]
async fn approle_secret_id_token_bounds_apply_to_the_token() {
    let (_s, root) = dev().await;
    common::enable(&root, "sys/auth/approle", "approle").await;
    let r = root
        .post(
            "auth/approle/role/app",
            json!({"token_policies": ["default"], "token_ttl": "1h"}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let role_id = root.get("auth/approle/role/app/role-id").await.json()["data"]["role_id"]
        .as_str()
        .expect("role id")
        .to_owned();
    let r = root
        .post(
            "auth/approle/role/app/secret-id",
            json!({"token_bound_cidrs": ["127.0.0.1/32"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let secret_id = r.json()["data"]["secret_id"]
        .as_str()
        .expect("secret id")
        .to_owned();
    let r = Http::new(&root.base, None)
        .post(
            "auth/approle/login",
            json!({"role_id": role_id, "secret_id": secret_id}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let t = r.json()["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let h = root.with_token(&t);
    assert_eq!(h.get("auth/token/lookup-self").await.status, 200);
    assert_eq!(
        h.via_source(elsewhere())
            .get("auth/token/lookup-self")
            .await
            .status,
        403,
        "the secret ID's token_bound_cidrs were not applied"
    );
    // A secret ID cannot widen its role's bounds.
    let r = root
        .post(
            "auth/approle/role/narrow",
            json!({"token_bound_cidrs": ["127.0.0.1/32"]}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = root
        .post(
            "auth/approle/role/narrow/secret-id",
            json!({"token_bound_cidrs": ["0.0.0.0/0"]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[tokio::test]
async fn children_die_with_an_expired_parent_within_seconds() {
    let (_s, root) = dev().await;
    let minter = "path \"auth/token/create\" { capabilities = [\"update\"] }";
    common::put_policy(&root, "minter", minter).await;
    let (parent, _) = token(&root, json!({"ttl": "2s", "policies": ["minter"]})).await;
    let r = root
        .with_token(&parent)
        .post("auth/token/create", json!({"ttl": "1h"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let child_accessor = r.json()["auth"]["accessor"]
        .as_str()
        .expect("accessor")
        .to_owned();
    let child = r.json()["auth"]["client_token"]
        .as_str()
        .expect("child")
        .to_owned();
    // Without anyone using either token, the parent's expiry revokes the child.
    let start = Instant::now();
    loop {
        let r = root
            .post(
                "auth/token/lookup-accessor",
                json!({ "accessor": child_accessor }),
            )
            .await;
        if r.status != 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the child outlived its parent by more than 3 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        root.with_token(&child)
            .get("auth/token/lookup-self")
            .await
            .status,
        403
    );
}

/// Peak resident memory of a process, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_keeps_memory_flat() {
    let (s, root) = dev().await;
    common::enable(&root, "sys/auth/userpass", "userpass").await;
    let before = peak_rss_mib(s.pid());
    let anon = Http::new(&s.addr, None);
    let mut tasks = Vec::new();
    for i in 0..300 {
        let anon = anon.clone();
        tasks.push(tokio::spawn(async move {
            anon.post(
                &format!("auth/userpass/login/nobody{i}"),
                json!({"password": "guess"}),
            )
            .await
            .status
        }));
    }
    for t in tasks {
        let status = t.await.expect("task");
        // Unknown users are refused (400); past the bounded queue, 429.
        assert!(status == 400 || status == 429, "{status}");
    }
    let grew = peak_rss_mib(s.pid()).saturating_sub(before);
    // argon2id takes 19 MiB per verification: one per core may run.
    assert!(
        grew < 300,
        "peak memory grew by {grew} MiB under 300 concurrent logins"
    );
    assert_eq!(Http::new(&s.addr, None).get("sys/health").await.status, 200);
}

/// A server with short connection deadlines and few connections.
fn strict_server() -> (Setup, Server) {
    let setup = Setup::new("storage \"inmem\" {}", "");
    let text = std::fs::read_to_string(&setup.config).expect("config");
    let text = text.replace(
        "tls_disable = true",
        "tls_disable = true\n  http_read_header_timeout = \"1s\"\n  http_read_timeout = \"1s\"\n  http_idle_timeout = \"2s\"\n  max_connections = 8",
    );
    std::fs::write(&setup.config, text).expect("config");
    let s = Server::with_config(&setup.config, &[]);
    (setup, s)
}

/// Whether the server closed `stream` within `limit` (EOF or reset).
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_connections_are_bounded() {
    let (_setup, s) = strict_server();
    let host = s.addr.trim_start_matches("http://").to_owned();
    // Slowloris: headers that never end.
    let mut slow = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connect");
    slow.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nX-A: ")
        .await
        .expect("write");
    assert!(
        closed_within(&mut slow, Duration::from_secs(6)).await,
        "a connection with partial headers stayed open"
    );
    // A body that never arrives: 408, then the connection goes.
    let mut trickle = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connect");
    trickle
        .write_all(
            b"POST /v1/sys/wrapping/lookup HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"to",
        )
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(8), trickle.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    // An idle keep-alive connection is closed after the idle timeout.
    let mut idle = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connect");
    idle.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert!(closed_within(&mut idle, Duration::from_secs(8)).await);
    // Past max_connections new connections are closed at once; health
    // answers again once the hogs are gone.
    let mut hogs = Vec::new();
    for _ in 0..8 {
        let mut c = tokio::net::TcpStream::connect(&host)
            .await
            .expect("connect");
        c.write_all(b"GET").await.expect("write");
        hogs.push(c);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connect");
    let _ = extra
        .write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert!(
        closed_within(&mut extra, Duration::from_millis(800)).await,
        "a connection past max_connections was served"
    );
    drop(hogs);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        Http::new(&s.addr, None).get("sys/seal-status").await.status,
        200
    );
}

#[tokio::test]
async fn database_config_reads_mask_a_password_in_the_url() {
    let (_s, root) = dev().await;
    common::enable(&root, "sys/mounts/database", "database").await;
    let r = root
        .post(
            "database/config/pg",
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": "postgresql://postgres:s3cret-pw@127.0.0.1:1/postgres",
                "verify_connection": false,
                "allowed_roles": "*",
            }),
        )
        .await;
    assert!(r.status < 300, "{}", r.text);
    let r = root.get("database/config/pg").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!r.text.contains("s3cret-pw"), "{}", r.text);
    assert_eq!(
        r.json()["data"]["connection_details"]["connection_url"],
        "postgresql://postgres:xxxxx@127.0.0.1:1/postgres"
    );
}

#[tokio::test]
async fn ui_mounts_lists_only_what_a_token_can_reach() {
    let (_s, root) = dev().await;
    for m in ["team-a", "team-b"] {
        common::enable(&root, &format!("sys/mounts/{m}"), "kv").await;
    }
    let policy = "path \"team-a/*\" { capabilities = [\"read\"] }";
    common::put_policy(&root, "a", policy).await;
    let (t, _) = token(&root, json!({"policies": ["a"], "ttl": "1h"})).await;
    let listed = root
        .with_token(&t)
        .get("sys/internal/ui/mounts")
        .await
        .json();
    let secret = listed["data"]["secret"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(secret.contains_key("team-a/"), "{listed}");
    assert!(!secret.contains_key("team-b/"), "{listed}");
    assert!(!secret.contains_key("secret/"), "{listed}");
    let all = root.get("sys/internal/ui/mounts").await.json();
    assert!(all["data"]["secret"]["team-b/"].is_object(), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlikely_password_policy_generates_in_bounded_time() {
    let (s, root) = dev().await;
    // 4,000 'x' among 4,096 characters drawn from 94: uniform draws never
    // meet it; generation must still end, off the async workers.
    let printable: String = ('!'..='~').filter(|c| *c != '"' && *c != '\\').collect();
    let policy = format!(
        "length = 4096\nrule \"charset\" {{\n charset = \"{printable}\"\n}}\nrule \"charset\" {{\n charset = \"x\"\n min-chars = 4000\n}}\n"
    );
    let r = root
        .put("sys/policies/password/hard", json!({ "policy": policy }))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let root = root.clone();
        tasks.push(tokio::spawn(async move {
            root.get("sys/policies/password/hard/generate").await
        }));
    }
    assert_eq!(Http::new(&s.addr, None).get("sys/health").await.status, 200);
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!(r.status, 200, "{}", r.text);
        let pw = r.json()["data"]["password"]
            .as_str()
            .expect("password")
            .to_owned();
        assert_eq!(pw.chars().count(), 4096);
        assert!(pw.chars().filter(|c| *c == 'x').count() >= 4000);
    }
    // Minimums that cannot fit the length are refused when written.
    let r = root
        .put(
            "sys/policies/password/impossible",
            json!({"policy": "length = 8\nrule \"charset\" {\n charset = \"ab\"\n min-chars = 9\n}\n"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
}
