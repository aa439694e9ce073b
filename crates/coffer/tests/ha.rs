//! Three coffer nodes on the real PostgreSQL: one active, standbys that
//! forward, failover after kill -9, a paused active node fenced, step-down
//! and graceful shutdown handing over.

mod common;

use std::time::{Duration, Instant};

use common::{Http, Server, pg_drop, pg_url, postgres_available};
use serde_json::json;

const SEAL_KEY: &str = "5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e5a1e";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

struct Cluster {
    dir: tempfile::TempDir,
    tables: (String, String),
    nodes: Vec<Option<Server>>,
    configs: Vec<std::path::PathBuf>,
    url: String,
}

impl Cluster {
    fn config(
        dir: &std::path::Path,
        i: usize,
        tables: &(String, String),
        url: &str,
    ) -> std::path::PathBuf {
        let (api, cluster) = (free_port(), free_port());
        let text = format!(
            "storage \"postgresql\" {{\n  connection_url = \"{url}\"\n  table = \"{kv}\"\n  \
             ha_enabled = \"true\"\n  ha_table = \"{ha}\"\n  ha_lease_ttl = \"2s\"\n}}\n\
             listener \"tcp\" {{\n  address = \"127.0.0.1:{api}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\n\
             api_addr = \"http://127.0.0.1:{api}\"\nui = true\n\
             seal \"static\" {{\n  key_env = \"COFFER_TEST_SEAL_KEY\"\n}}\n",
            kv = tables.0,
            ha = tables.1,
        );
        let path = dir.join(format!("node{i}.hcl"));
        std::fs::write(&path, text).expect("config");
        path
    }

    fn start(tag: &str, n: usize) -> Cluster {
        Cluster::start_on(tag, n, &pg_url())
    }

    /// A cluster whose storage is the PostgreSQL at `url`.
    fn start_on(tag: &str, n: usize, url: &str) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = format!("coffer_ha_{tag}_{}", std::process::id());
        let tables = (format!("{base}_kv"), format!("{base}_ha"));
        let configs: Vec<_> = (0..n)
            .map(|i| Cluster::config(dir.path(), i, &tables, url))
            .collect();
        let nodes = configs.iter().map(|c| Some(Cluster::spawn(c))).collect();
        Cluster {
            dir,
            tables,
            nodes,
            configs,
            url: url.to_owned(),
        }
    }

    fn spawn(config: &std::path::Path) -> Server {
        Server::with_config(config, &[("COFFER_TEST_SEAL_KEY", SEAL_KEY)])
    }

    fn http(&self, i: usize, token: &str) -> Http {
        Http::new(&self.node(i).addr, Some(token))
    }

    fn node(&self, i: usize) -> &Server {
        self.nodes[i].as_ref().expect("node running")
    }

    fn running(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|i| self.nodes[*i].is_some())
    }

    /// The index of the active node, waiting up to `within` for one.
    async fn active(&self, within: Duration) -> usize {
        let start = Instant::now();
        loop {
            for i in self.running() {
                let r = self.http(i, "").get("sys/health").await;
                if r.status == 200 {
                    return i;
                }
            }
            assert!(start.elapsed() < within, "no active node within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn drop_tables(&self) {
        if self.url != pg_url() {
            return; // a private server goes away with its test
        }
        pg_drop(&self.tables.0).await;
        pg_drop(&self.tables.1).await;
    }

    fn addrs(&self) -> Vec<String> {
        self.running().map(|i| self.node(i).addr.clone()).collect()
    }
}

/// Initialises through node 0 and waits for an active node; the root token.
async fn init(c: &Cluster) -> String {
    let r = c
        .http(0, "")
        .put(
            "sys/init",
            json!({"recovery_shares": 1, "recovery_threshold": 1}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.json()["root_token"]
        .as_str()
        .expect("root token")
        .to_owned();
    c.active(Duration::from_secs(20)).await;
    // Every node unseals itself through the seal.
    let start = Instant::now();
    for i in c.running() {
        loop {
            let s = c.http(i, "").get("sys/seal-status").await.json();
            if s["sealed"] == json!(false) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "node {i} stays sealed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    token
}

/// Writes `kv/<key>` through node `i`, retrying once as the Vault client does.
async fn write(c: &Cluster, i: usize, token: &str, key: &str) -> bool {
    for _ in 0..2 {
        let r = c
            .http(i, token)
            .put(&format!("kv/{key}"), json!({"v": key}))
            .await;
        if r.status == 204 || r.status == 200 {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standbys_forward_and_a_killed_active_is_replaced() {
    if !postgres_available().await {
        return;
    }
    let mut c = Cluster::start("kill", 3);
    let token = init(&c).await;
    let active = c.active(Duration::from_secs(10)).await;
    let standbys: Vec<usize> = c.running().filter(|i| *i != active).collect();
    // A standby learns the leader on its next look (every 200 ms).
    let start = Instant::now();
    for i in &standbys {
        while c.http(*i, "").get("sys/leader").await.json()["leader_address"] == json!("") {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "node {i} knows no leader"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Status endpoints.
    let leader = c.http(standbys[0], "").get("sys/leader").await.json();
    assert_eq!(leader["ha_enabled"], json!(true));
    assert_eq!(leader["is_self"], json!(false));
    assert_eq!(leader["leader_address"], json!(c.node(active).addr));
    let me = c.http(active, "").get("sys/leader").await.json();
    assert_eq!(me["is_self"], json!(true));
    // A standby serves the web UI itself (its API calls are then forwarded).
    let page = reqwest::get(format!("{}/ui/", c.node(standbys[0]).addr))
        .await
        .expect("ui");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("body").contains("/ui/js/main.js"));
    let h = c.http(standbys[0], "").get("sys/health").await;
    assert_eq!(h.status, 429, "{}", h.text);
    assert_eq!(h.json()["standby"], json!(true));
    let active_health = c.http(active, "").get("sys/health").await.json();
    assert_eq!(h.json()["cluster_id"], active_health["cluster_id"]);
    assert!(
        h.json()["cluster_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );
    assert_eq!(
        c.http(standbys[0], "")
            .get("sys/health?standbyok=true")
            .await
            .status,
        200
    );
    assert_eq!(
        c.http(standbys[0], "")
            .get("sys/health?standbycode=299")
            .await
            .status,
        299
    );

    // `coffer status` and OpenBao's `bao status` read the same endpoints.
    let status = |bin: &str, addr: &str| {
        let out = std::process::Command::new(bin)
            .arg("status")
            .env("VAULT_ADDR", addr)
            .env("BAO_ADDR", addr)
            .output()
            .expect("status");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mine = status(&common::server_binary(), &c.node(standbys[0]).addr);
    assert!(
        mine.contains("HA Mode") && mine.contains("standby"),
        "{mine}"
    );
    assert!(mine.contains(&c.node(active).addr), "{mine}");
    let mine = status(&common::server_binary(), &c.node(active).addr);
    assert!(
        mine.contains("active") && mine.contains("Active Since"),
        "{mine}"
    );
    if common::bao_available() {
        let theirs = status(common::bao_binary(), &c.node(standbys[0]).addr);
        assert!(
            theirs.contains("HA Enabled") && theirs.contains("standby"),
            "{theirs}"
        );
    }

    // Writes through a standby are forwarded; reads work through every node.
    let r = c
        .http(standbys[0], &token)
        .post("sys/mounts/kv", json!({"type": "kv"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(write(&c, standbys[1], &token, "hello").await);
    for i in c.running() {
        let r = c.http(i, &token).get("kv/hello").await;
        assert_eq!(r.status, 200, "node {i}: {}", r.text);
        assert_eq!(r.json()["data"]["v"], json!("hello"));
    }
    // The client may ask for a redirect instead.
    let no_follow = Http {
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        ..c.http(standbys[0], &token)
    };
    let r = no_follow
        .send(
            "GET",
            "kv/hello",
            None,
            &[("X-Vault-No-Request-Forwarding", "1")],
        )
        .await;
    assert_eq!(r.status, 307);
    // The cluster listener refuses anything not signed by a node.
    let ha = c.http(active, &token).get("sys/ha-status").await;
    assert_eq!(ha.status, 200, "{}", ha.text);
    let nodes = ha.json()["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(nodes.len(), 3, "{}", ha.text);
    assert_eq!(
        nodes
            .iter()
            .filter(|n| n["active_node"] == json!(true))
            .count(),
        1
    );
    let cluster = nodes
        .iter()
        .find(|n| n["active_node"] == json!(true))
        .and_then(|n| n["cluster_address"].as_str())
        .expect("cluster address")
        .to_owned();
    let r = Http::new(&cluster, Some(&token)).get("kv/hello").await;
    assert_eq!(r.status, 403, "{}", r.text);

    // A steady write load through the standbys; then the active node dies.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for (w, node) in standbys.iter().copied().enumerate() {
        let (h, stop, acked) = (c.http(node, &token), stop.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("load-{w}-{n}");
                let r = h.put(&format!("kv/{key}"), json!({"v": key})).await;
                if r.status == 204 {
                    acked.lock().unwrap().push(key);
                }
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Instant::now();
    c.nodes[active].take().expect("active").kill9();
    // The first write that succeeds through a standby ends the failover.
    let mut probe = 0;
    let failover = loop {
        let key = format!("probe-{probe}");
        probe += 1;
        let r = c
            .http(standbys[0], &token)
            .put(&format!("kv/{key}"), json!({"v": key}))
            .await;
        if r.status == 204 {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "no failover: {}",
            r.text
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("failover after kill -9: {} ms", failover.as_millis());
    assert!(
        failover < Duration::from_secs(5),
        "failover took {failover:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    // No acknowledged write was lost.
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 10, "the load did not run");
    let h = c.http(standbys[0], &token);
    for key in &acked {
        let r = h.get(&format!("kv/{key}")).await;
        assert_eq!(r.status, 200, "{key} was acknowledged and lost: {}", r.text);
    }
    drop(c.nodes.drain(..));
    c.drop_tables().await;
    let _ = &c.dir;
    let _ = &c.configs;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_active_node_is_fenced_and_rejoins_as_standby() {
    if !postgres_available().await {
        return;
    }
    let c = Cluster::start("pause", 2);
    let token = init(&c).await;
    let active = c.active(Duration::from_secs(10)).await;
    let other = 1 - active;
    let r = c
        .http(active, &token)
        .post("sys/mounts/kv", json!({"type": "kv"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(write(&c, active, &token, "a").await);
    let pid = c.node(active).pid().to_string();
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
    };
    signal("-STOP");
    // The other node takes over once the paused one's lease ran out.
    let start = Instant::now();
    loop {
        if c.http(other, "").get("sys/health").await.status == 200 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "no takeover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "takeover from a paused node: {} ms",
        start.elapsed().as_millis()
    );
    assert!(write(&c, other, &token, "b").await);
    let r = c.http(other, &token).put("kv/a", json!({"v": "new"})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    signal("-CONT");
    // The resumed node notices, becomes a standby and serves current data.
    let start = Instant::now();
    loop {
        if c.http(active, "").get("sys/health").await.status == 429 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "old active did not stand down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = c.http(active, &token).get("kv/a").await;
    assert_eq!(r.json()["data"]["v"], json!("new"), "{}", r.text);
    // Whatever the resumed node had in flight was fenced: "a" is still "new".
    let r = c.http(other, &token).get("kv/a").await;
    assert_eq!(r.json()["data"]["v"], json!("new"));
    c.drop_tables().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn step_down_and_shutdown_hand_over_without_errors() {
    if !postgres_available().await {
        return;
    }
    let mut c = Cluster::start("handover", 3);
    let token = init(&c).await;
    let first = c.active(Duration::from_secs(10)).await;
    let r = c
        .http(first, &token)
        .post("sys/mounts/kv", json!({"type": "kv"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = c
        .http(first, &token)
        .put("kv/leaked", json!({"v": "handover-leak-value-1"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Clients keep writing through the nodes a load balancer lists, retrying once.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let live: Vec<Http> = c.running().map(|i| c.http(i, &token)).collect();
    let listed = std::sync::Arc::new(std::sync::Mutex::new(c.running().collect::<Vec<usize>>()));
    let live = std::sync::Arc::new(live);
    let mut clients = Vec::new();
    for w in 0..3usize {
        let (live, listed, stop, failures) =
            (live.clone(), listed.clone(), stop.clone(), failures.clone());
        clients.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let node = {
                    let l = listed.lock().unwrap();
                    l[(w + n) % l.len()]
                };
                let mut ok = false;
                for _ in 0..2 {
                    let r = live[node]
                        .put(&format!("kv/s-{w}-{n}"), json!({"v": n}))
                        .await;
                    if r.status == 204 {
                        ok = true;
                        break;
                    }
                }
                if !ok {
                    failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = c.http(first, &token).post("sys/step-down", json!({})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let start = Instant::now();
    let second = loop {
        let a = c.active(Duration::from_secs(10)).await;
        if a != first {
            break a;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no hand-over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("step-down hand-over: {} ms", start.elapsed().as_millis());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Graceful shutdown of the new active node hands over too (the load
    // balancer stopped sending to it first).
    listed.lock().unwrap().retain(|i| *i != second);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    c.nodes[second].take().expect("second").stop();
    let third = c.active(Duration::from_secs(10)).await;
    eprintln!("shutdown hand-over: {} ms", start.elapsed().as_millis());
    assert_ne!(third, second);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for cl in clients {
        cl.await.expect("client");
    }
    assert_eq!(
        failures.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "clients that retry once saw errors"
    );
    // The leak index moved with leadership: the third active node built it
    // from storage (asked through a standby, which forwards the check).
    let via = c.running().find(|i| *i != third).expect("a standby");
    let start = Instant::now();
    loop {
        let r = c
            .http(via, &token)
            .post(
                "sys/leak/check",
                json!({"candidates": ["handover-leak-value-1"]}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let d = r.json()["data"].clone();
        if d["complete"] == json!(true) {
            assert_eq!(d["results"][0]["live"], json!(true), "{d}");
            assert_eq!(
                d["results"][0]["matches"][0]["name"],
                json!("leaked"),
                "{d}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "index never complete: {d}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.drop_tables().await;
}

/// The venv python with hvac, if it can be made.
fn hvac_python() -> Option<std::path::PathBuf> {
    common::pip_venv("hvac-venv", "hvac==2.4.0").map(|v| v.join("bin/python"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hvac_and_vaultrs_work_through_every_node() {
    if !postgres_available().await {
        return;
    }
    let (c, logs) = start_audited("clients", 3);
    let token = init(&c).await;
    let active = c.active(Duration::from_secs(10)).await;
    // Let every standby learn the leader and follow it.
    let start = Instant::now();
    for i in c.running().filter(|i| *i != active) {
        while c.http(i, "").get("sys/health").await.json()["performance_standby"] != json!(true) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "node {i} does not follow"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if let Some(python) = hvac_python() {
        let script = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/hvac/ha_nodes.py");
        let mut args = vec![token.clone()];
        args.extend(c.addrs());
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(python)
                .arg(script)
                .args(args)
                .output()
                .expect("python")
        })
        .await
        .expect("join");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "hvac:\n{stdout}\n{stderr}");
        assert!(stdout.contains("all checks passed"), "{stdout}");
        // hvac's reads through a standby were served there; its writes
        // went to the active node.
        for i in c.running() {
            let reads: usize = (0..3)
                .map(|k| audited(&logs[i], "read", &format!("hvac-kv/data/from-{k}")))
                .sum();
            assert_eq!(reads, 3, "node {i} served hvac's reads itself");
            let writes: usize = (0..3)
                .map(|k| {
                    audited(&logs[i], "create", &format!("hvac-kv/data/from-{k}"))
                        + audited(&logs[i], "update", &format!("hvac-kv/data/from-{k}"))
                })
                .sum();
            assert_eq!(writes, if i == active { 3 } else { 0 }, "node {i}");
        }
    }
    // vaultrs: KV v2 written through each node, read back through each.
    let r = c
        .http(0, &token)
        .post(
            "sys/mounts/rs",
            json!({"type": "kv", "options": {"version": "2"}}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let clients: Vec<_> = c
        .addrs()
        .iter()
        .map(|a| common::vaultrs_client(a, &token))
        .collect();
    for (i, client) in clients.iter().enumerate() {
        let data = std::collections::HashMap::from([("n", i.to_string())]);
        vaultrs::kv2::set(client, "rs", &format!("k{i}"), &data)
            .await
            .expect("vaultrs write");
    }
    for i in 0..clients.len() {
        for client in &clients {
            let got: std::collections::HashMap<String, String> =
                vaultrs::kv2::read(client, "rs", &format!("k{i}"))
                    .await
                    .expect("vaultrs read");
            assert_eq!(got["n"], i.to_string());
        }
    }
    c.drop_tables().await;
}

fn kill(sig: &str, pid: u32) {
    std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_due_while_the_active_is_paused_are_revoked_by_the_new_one_only() {
    let Some(pg) = common::PrivatePostgres::start() else {
        return;
    };
    let c = Cluster::start_on("leases", 2, &pg.dsn("postgres", &pg.password));
    let token = init(&c).await;
    let a = c.active(Duration::from_secs(10)).await;
    let b = 1 - a;
    let h = c.http(a, &token);
    common::configure_pg(&h, &pg, "4s", "10m").await;
    let mut creds = Vec::new();
    for _ in 0..4 {
        let v = h.get("database/creds/app").await.json();
        let lease = v["lease_id"].as_str().expect("lease").to_owned();
        let user = v["data"]["username"].as_str().expect("user").to_owned();
        let pw = v["data"]["password"].as_str().expect("pw").to_owned();
        assert!(common::pg_login(&pg, &user, &pw).await.is_ok());
        creds.push((lease, user, pw));
    }
    let issued = Instant::now();
    // The active node freezes; the other takes over and renews one lease.
    kill("-STOP", c.node(a).pid());
    let start = Instant::now();
    while c.http(b, "").get("sys/health").await.status != 200 {
        assert!(start.elapsed() < Duration::from_secs(15), "no takeover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = c
        .http(b, &token)
        .put(
            "sys/leases/renew",
            json!({"lease_id": creds[0].0, "increment": 600}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The others come due and the new active node revokes them.
    for (lease, user, pw) in &creds[1..] {
        let start = Instant::now();
        while common::pg_login(&pg, user, pw).await.is_ok() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{lease} not revoked by the new active node"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Resumed past the renewed lease's old expiry, the frozen node must not
    // act on what it remembers: the renewed user keeps working.
    while issued.elapsed() < Duration::from_secs(6) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kill("-CONT", c.node(a).pid());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(c.http(a, "").get("sys/health").await.status, 429);
    assert!(
        common::pg_login(&pg, &creds[0].1, &creds[0].2)
            .await
            .is_ok(),
        "the resumed node revoked a lease the new active node had renewed"
    );
    for (lease, ..) in &creds[1..] {
        let r = c
            .http(b, &token)
            .put("sys/leases/lookup", json!({"lease_id": lease}))
            .await;
        assert_eq!(r.status, 400, "{lease} still stored: {}", r.text);
    }
    let r = c
        .http(a, &token)
        .put("sys/leases/lookup", json!({"lease_id": creds[0].0}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgresql_restart_under_load_heals_without_split_brain() {
    let Some(pg) = common::PrivatePostgres::start() else {
        return;
    };
    let c = Cluster::start_on("restart", 3, &pg.dsn("postgres", &pg.password));
    let token = init(&c).await;
    let a = c.active(Duration::from_secs(10)).await;
    let r = c
        .http(a, &token)
        .post("sys/mounts/kv", json!({"type": "kv"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut writers = Vec::new();
    for i in c.running() {
        let (h, stop, acked) = (c.http(i, &token), stop.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("r-{i}-{n}");
                let r = h.put(&format!("kv/{key}"), json!({"v": n})).await;
                if r.status == 204 {
                    acked.lock().unwrap().push(key);
                } else {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    pg.pause();
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.resume();
    // Healed: a write through every node succeeds again.
    let start = Instant::now();
    for i in c.running() {
        while !write(&c, i, &token, &format!("after-{i}")).await {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "node {i} does not serve writes after the restart"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    eprintln!(
        "healed {} ms after PostgreSQL came back",
        start.elapsed().as_millis()
    );
    // Never two active nodes.
    for _ in 0..40 {
        let mut active = 0;
        for i in c.running() {
            let l = c.http(i, "").get("sys/leader").await.json();
            if l["is_self"] == json!(true) {
                active += 1;
            }
        }
        assert!(active <= 1, "{active} nodes think they are active");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }
    let acked = acked.lock().unwrap().clone();
    let h = c.http(c.active(Duration::from_secs(5)).await, &token);
    for key in &acked {
        assert_eq!(h.get(&format!("kv/{key}")).await.status, 200, "{key} lost");
    }
}

/// A TCP proxy whose forwarding can be cut without closing its sockets: a
/// network partition as the node sees it.
struct Partition {
    port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Partition {
    async fn to(upstream: &str) -> Partition {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (up, flag) = (upstream.to_owned(), cut.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&up).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(Partition::pump(cr, sw, flag.clone()));
                tokio::spawn(Partition::pump(sr, cw, flag.clone()));
            }
        });
        Partition { port, cut }
    }

    async fn pump(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = vec![0u8; 16384];
        loop {
            if cut.load(std::sync::atomic::Ordering::Relaxed) {
                // Silence: nothing passes, nothing is closed.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            match tokio::time::timeout(Duration::from_millis(50), from.read(&mut buf)).await {
                Err(_) => continue,
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => {
                    if cut.load(std::sync::atomic::Ordering::Relaxed) {
                        continue;
                    }
                    if to.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_active_node_cut_off_from_postgresql_stops_serving_before_another_takes_over() {
    if !postgres_available().await {
        return;
    }
    let partition = Partition::to("127.0.0.1:5432").await;
    let via_proxy = format!(
        "host=127.0.0.1 port={} user=postgres dbname=test",
        partition.port
    );
    // The node behind the proxy starts alone, so it is the active one.
    let mut c = Cluster::start_on("cut", 1, &via_proxy);
    let token = init(&c).await;
    assert_eq!(c.active(Duration::from_secs(10)).await, 0);
    let cfg = Cluster::config(c.dir.path(), 1, &c.tables, &pg_url());
    c.nodes.push(Some(Cluster::spawn(&cfg)));
    c.configs.push(cfg);
    let start = Instant::now();
    while c.http(1, "").get("sys/seal-status").await.json()["sealed"] != json!(false) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "node 1 stays sealed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = c
        .http(1, &token)
        .post("sys/mounts/kv", json!({"type": "kv"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);

    partition
        .cut
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let cut = Instant::now();
    let is_self =
        async |i: usize| c.http(i, "").get("sys/leader").await.json()["is_self"] == json!(true);
    let (mut stopped, mut taken) = (None, None);
    while stopped.is_none() || taken.is_none() {
        if stopped.is_none() && !is_self(0).await {
            stopped = Some(cut.elapsed());
        }
        if taken.is_none() && is_self(1).await {
            taken = Some(cut.elapsed());
        }
        assert!(
            cut.elapsed() < Duration::from_secs(15),
            "no hand-over after the cut"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (stopped, taken) = (stopped.unwrap_or_default(), taken.unwrap_or_default());
    eprintln!(
        "cut off: old active stopped at {} ms, new active at {} ms",
        stopped.as_millis(),
        taken.as_millis()
    );
    assert!(
        stopped < taken,
        "the cut-off node served until after the takeover"
    );
    assert!(write(&c, 1, &token, "after-cut").await);
    c.drop_tables().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_node_keeps_an_unbroken_audit_chain_across_hand_overs() {
    if !postgres_available().await {
        return;
    }
    let (c, logs) = start_audited("audit", 2);
    let token = init(&c).await;
    let first = c.active(Duration::from_secs(10)).await;
    let r = c
        .http(first, &token)
        .post("sys/mounts/kv", json!({"type": "kv"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Leadership goes back and forth; each node's file only grows while it leads.
    for round in 0..3 {
        for i in 0..2 {
            assert!(write(&c, i, &token, &format!("round-{round}-{i}")).await);
        }
        let active = c.active(Duration::from_secs(10)).await;
        let r = c
            .http(active, &token)
            .post("sys/step-down", json!({}))
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
        let start = Instant::now();
        while c.active(Duration::from_secs(15)).await == active {
            assert!(start.elapsed() < Duration::from_secs(15), "no hand-over");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for (i, log) in logs.iter().enumerate() {
        let out = std::process::Command::new(common::server_binary())
            .args(["audit", "verify", log.to_str().expect("utf-8")])
            .output()
            .expect("coffer audit verify");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "node {i}'s audit file: {text}");
        assert!(text.contains("chain intact"), "node {i}: {text}");
    }
    c.drop_tables().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shamir_nodes_are_unsealed_one_by_one_and_a_sealed_node_answers_503() {
    if !postgres_available().await {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let base = format!("coffer_ha_shamir_{}", std::process::id());
    let tables = (format!("{base}_kv"), format!("{base}_ha"));
    let mut configs = Vec::new();
    for i in 0..2 {
        let cfg = Cluster::config(dir.path(), i, &tables, &pg_url());
        // No seal block: Shamir keys, entered by operators on every node.
        let text = std::fs::read_to_string(&cfg).expect("config");
        let cut = text.find("seal \"static\"").expect("seal block");
        std::fs::write(&cfg, &text[..cut]).expect("config");
        configs.push(cfg);
    }
    let nodes = configs.iter().map(|c| Some(Cluster::spawn(c))).collect();
    let c = Cluster {
        dir,
        tables,
        nodes,
        configs,
        url: pg_url(),
    };
    let (keys, token) = common::init(&c.http(0, ""), 3, 2).await;
    for i in 0..2 {
        assert_eq!(c.http(i, "").get("sys/health").await.status, 503);
    }
    common::unseal(&c.http(0, ""), &keys).await;
    assert_eq!(c.active(Duration::from_secs(10)).await, 0);
    // The sealed node refuses everything with 503, as a sealed server does.
    assert_eq!(c.http(1, "").get("sys/health").await.status, 503);
    assert_eq!(c.http(1, &token).get("sys/mounts").await.status, 503);
    // Unsealed, it is a standby that forwards.
    let s = common::unseal(&c.http(1, ""), &keys[1..]).await;
    assert_eq!(s["sealed"], json!(false), "{s}");
    let start = Instant::now();
    while c.http(1, "").get("sys/health").await.status != 429 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "node 1 not a standby"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = c
        .http(1, &token)
        .post("sys/mounts/kv", json!({"type": "kv"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(write(&c, 1, &token, "shamir").await);
    // Sealing the active node hands leadership over at once.
    let sealed = Instant::now();
    let r = c.http(0, &token).post("sys/seal", json!({})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(c.active(Duration::from_secs(10)).await, 1);
    eprintln!("seal hand-over: {} ms", sealed.elapsed().as_millis());
    assert_eq!(c.http(0, "").get("sys/health").await.status, 503);
    let r = c.http(1, &token).get("kv/shamir").await;
    assert_eq!(r.status, 200, "{}", r.text);
    c.drop_tables().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_started_before_postgresql_waits_for_it() {
    let Some(pg) = common::PrivatePostgres::start() else {
        return;
    };
    pg.pause();
    let dir = tempfile::tempdir().expect("tempdir");
    let tables = ("coffer_wait_kv".to_owned(), "coffer_wait_ha".to_owned());
    let cfg = Cluster::config(dir.path(), 0, &tables, &pg.dsn("postgres", &pg.password));
    // Listening on ports picked now, not earlier: this node binds only after
    // PostgreSQL answers, seconds later, when a port found free beforehand
    // may have become another connection's.
    let text = std::fs::read_to_string(&cfg)
        .expect("config")
        .replace("ha_enabled", "max_connect_retries = 30\n  ha_enabled")
        .lines()
        .map(|l| match l.trim_start() {
            a if a.starts_with("address =") => "  address = \"127.0.0.1:0\"".to_owned(),
            a if a.starts_with("cluster_address =") => {
                "  cluster_address = \"127.0.0.1:0\"".to_owned()
            }
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&cfg, text).expect("config");
    let resume = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        pg.resume();
        pg
    });
    let started = Instant::now();
    let node = Cluster::spawn(&cfg);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it did not wait"
    );
    let _pg = resume.join().expect("resume");
    let r = Http::new(&node.addr, None).get("sys/health").await;
    assert_eq!(r.status, 501, "{}", r.text);
}

/// A cluster whose nodes each write a file audit log; the cluster and the logs.
fn start_audited(tag: &str, n: usize) -> (Cluster, Vec<std::path::PathBuf>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = format!("coffer_ha_{tag}_{}", std::process::id());
    let tables = (format!("{base}_kv"), format!("{base}_ha"));
    let mut configs = Vec::new();
    let mut logs = Vec::new();
    for i in 0..n {
        let cfg = Cluster::config(dir.path(), i, &tables, &pg_url());
        let log = dir.path().join(format!("audit-{i}.log"));
        let mut text = std::fs::read_to_string(&cfg).expect("config");
        text.push_str(&format!(
            "audit \"file\" \"file\" {{\n  file_path = \"{}\"\n}}\n",
            log.display()
        ));
        std::fs::write(&cfg, text).expect("config");
        configs.push(cfg);
        logs.push(log);
    }
    let nodes = configs.iter().map(|c| Some(Cluster::spawn(c))).collect();
    let c = Cluster {
        dir,
        tables,
        nodes,
        configs,
        url: pg_url(),
    };
    (c, logs)
}

/// How many responses in an audit log answer `operation` on `path`.
fn audited(log: &std::path::Path, operation: &str, path: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| {
            e["type"] == json!("response")
                && e["request"]["operation"] == json!(operation)
                && e["request"]["path"] == json!(path)
        })
        .count()
}

/// A read through node `i` that must see what `index` names.
async fn read_after(c: &Cluster, i: usize, token: &str, path: &str, index: &str) -> common::Reply {
    c.http(i, token)
        .send("GET", path, None, &[("X-Vault-Index", index)])
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standbys_serve_reads_from_a_copy_kept_coherent_by_the_active_node() {
    if !postgres_available().await {
        return;
    }
    let (c, logs) = start_audited("reads", 3);
    let token = init(&c).await;
    let active = c.active(Duration::from_secs(10)).await;
    let standbys: Vec<usize> = c.running().filter(|i| *i != active).collect();
    let (s, other) = (standbys[0], standbys[1]);
    let h = c.http(active, &token);
    for (path, body) in [
        (
            "sys/mounts/kv2",
            json!({"type": "kv", "options": {"version": "2"}}),
        ),
        ("sys/mounts/transit", json!({"type": "transit"})),
    ] {
        let r = h.post(path, body).await;
        assert_eq!(r.status, 204, "{}", r.text);
    }
    let r = h.put("kv2/data/a", json!({"data": {"v": "1"}})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let index = r
        .index
        .clone()
        .expect("the active node sends X-Vault-Index");
    // Standbys report when they follow the active node (and so serve reads).
    let start = Instant::now();
    for i in [s, other] {
        while c.http(i, "").get("sys/health").await.json()["performance_standby"] != json!(true) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "node {i} does not follow"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let leader = c.http(s, "").get("sys/leader").await.json();
    assert_eq!(leader["performance_standby"], json!(true), "{leader}");

    // Served by the standby itself: its own audit log has the read, the
    // active node's has none.
    let r = read_after(&c, s, &token, "kv2/data/a", &index).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["data"]["data"]["v"], json!("1"));
    assert!(r.index.is_some(), "a standby's answer carries its position");
    assert_eq!(audited(&logs[s], "read", "kv2/data/a"), 1);
    assert_eq!(audited(&logs[active], "read", "kv2/data/a"), 0);
    // Writes through a standby still go to the active node.
    let r = c
        .http(s, &token)
        .put("kv2/data/b", json!({"data": {"v": "b"}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(audited(&logs[active], "create", "kv2/data/b"), 1);
    assert_eq!(audited(&logs[s], "create", "kv2/data/b"), 0);
    // Leak checks are answered by the active node, which holds the index.
    let r = c
        .http(s, &token)
        .post(
            "sys/leak/check",
            json!({"candidates": ["not-a-stored-value"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(audited(&logs[active], "update", "sys/leak/check"), 1);
    assert_eq!(audited(&logs[s], "update", "sys/leak/check"), 0);

    // Read-your-writes under load: a writer through the other standby, and
    // after every acknowledged write a read of it through `s` with the
    // write's index sees exactly it. Readers without an index never go
    // back in time.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for node in [s, active] {
        let (hr, stop) = (c.http(node, &token), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut last = 0u64;
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = hr.get("kv2/data/counter").await;
                if r.status == 404 {
                    continue;
                }
                assert_eq!(r.status, 200, "{}", r.text);
                let n: u64 = r.json()["data"]["data"]["n"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .expect("n");
                assert!(n >= last, "node {node} went back from {last} to {n}");
                last = n;
                reads += 1;
            }
            reads
        }));
    }
    let hw = c.http(other, &token);
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(3) {
        n += 1;
        let w = hw
            .put("kv2/data/counter", json!({"data": {"n": n.to_string()}}))
            .await;
        assert_eq!(w.status, 200, "{}", w.text);
        let idx = w
            .index
            .expect("forwarded answers carry the active node's index");
        let r = read_after(&c, s, &token, "kv2/data/counter", &idx).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.json()["data"]["data"]["n"],
            json!(n.to_string()),
            "write {n} acknowledged, the standby read something else"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.await.expect("reader") > 10, "the readers did not run");
    }
    assert!(n > 20, "only {n} writes");
    let local = audited(&logs[s], "read", "kv2/data/counter");
    // Most of them at least: a standby starved of CPU may stop following
    // for a moment (and forward meanwhile).
    assert!(
        local >= n as usize / 4,
        "the standby served only {local} reads itself"
    );

    // A policy change reaches the standby: the same token is refused there.
    common::put_policy(
        &h,
        "reader",
        r#"path "kv2/data/*" { capabilities = ["read"] }"#,
    )
    .await;
    let r = h
        .post("auth/token/create", json!({"policies": ["reader"]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let reader = r.json()["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let r = read_after(
        &c,
        s,
        &reader,
        "kv2/data/a",
        &r.index.clone().expect("index"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let w = h
        .put(
            "sys/policies/acl/reader",
            json!({"policy": r#"path "kv2/data/b" { capabilities = ["read"] }"#}),
        )
        .await;
    assert_eq!(w.status, 204, "{}", w.text);
    let idx = w.index.expect("index");
    assert_eq!(
        read_after(&c, s, &reader, "kv2/data/a", &idx).await.status,
        403
    );
    assert_eq!(
        read_after(&c, s, &reader, "kv2/data/b", &idx).await.status,
        200
    );
    // A revoked token is refused by the standby at once.
    let w = h.post("auth/token/revoke", json!({"token": reader})).await;
    assert_eq!(w.status, 204, "{}", w.text);
    let idx = w.index.expect("index");
    assert_eq!(
        read_after(&c, s, &reader, "kv2/data/b", &idx).await.status,
        403
    );
    let r = c
        .http(s, &reader)
        .send(
            "GET",
            "auth/token/lookup-self",
            None,
            &[("X-Vault-Index", &idx)],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);

    // Transit: the standby encrypts with the key's newest version once a
    // rotation reached it, and still decrypts the older ciphertext.
    let w = h.post("transit/keys/k", json!({})).await;
    assert!(w.status == 200 || w.status == 204, "{}", w.text);
    let plain = json!({"plaintext": "aGVsbG8="});
    let r = c
        .http(s, &token)
        .send(
            "POST",
            "transit/encrypt/k",
            Some(plain.to_string().into_bytes()),
            &[("X-Vault-Index", &w.index.expect("index"))],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v1 = r.json()["data"]["ciphertext"]
        .as_str()
        .expect("ct")
        .to_owned();
    assert!(v1.starts_with("vault:v1:"), "{v1}");
    let w = h.post("transit/keys/k/rotate", json!({})).await;
    assert!(w.status == 200 || w.status == 204, "{}", w.text);
    let idx = w.index.expect("index");
    let r = c
        .http(s, &token)
        .send(
            "POST",
            "transit/encrypt/k",
            Some(plain.to_string().into_bytes()),
            &[("X-Vault-Index", &idx)],
        )
        .await;
    assert!(
        r.json()["data"]["ciphertext"]
            .as_str()
            .expect("ct")
            .starts_with("vault:v2:")
    );
    let r = c
        .http(s, &token)
        .post("transit/decrypt/k", json!({"ciphertext": v1}))
        .await;
    assert_eq!(r.json()["data"]["plaintext"], json!("aGVsbG8="));
    assert!(audited(&logs[s], "update", "transit/encrypt/k") >= 2);

    // A new mount is there on the standby as soon as its index is.
    let w = h
        .post(
            "sys/mounts/kv3",
            json!({"type": "kv", "options": {"version": "2"}}),
        )
        .await;
    assert_eq!(w.status, 204, "{}", w.text);
    let w = h.put("kv3/data/x", json!({"data": {"v": "x"}})).await;
    let r = read_after(&c, s, &token, "kv3/data/x", &w.index.expect("index")).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // A token with limited uses is spent on the active node even when its
    // request reached a standby: two uses, then refused.
    let r = h.post("auth/token/create", json!({"num_uses": 2})).await;
    let limited = r.json()["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let idx = r.index.expect("index");
    for _ in 0..2 {
        assert_eq!(
            read_after(&c, s, &limited, "kv2/data/a", &idx).await.status,
            200
        );
    }
    assert_eq!(
        read_after(&c, s, &limited, "kv2/data/a", &idx).await.status,
        403
    );

    // A made-up index is ignored (served), and `X-Vault-Forward: active-node`
    // sends the read to the active node.
    let forged = base64_encode("v1:x:999999999999:0:00");
    let r = read_after(&c, s, &token, "kv2/data/a", &forged).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let before = audited(&logs[active], "read", "kv2/data/a");
    let r = c
        .http(s, &token)
        .send(
            "GET",
            "kv2/data/a",
            None,
            &[("X-Vault-Forward", "active-node")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(audited(&logs[active], "read", "kv2/data/a"), before + 1);
    c.drop_tables().await;
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
