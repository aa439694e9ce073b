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
}

impl Cluster {
    fn config(dir: &std::path::Path, i: usize, tables: &(String, String)) -> std::path::PathBuf {
        let (api, cluster) = (free_port(), free_port());
        let text = format!(
            "storage \"postgresql\" {{\n  connection_url = \"{url}\"\n  table = \"{kv}\"\n  \
             ha_enabled = \"true\"\n  ha_table = \"{ha}\"\n  ha_lease_ttl = \"2s\"\n}}\n\
             listener \"tcp\" {{\n  address = \"127.0.0.1:{api}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\n\
             api_addr = \"http://127.0.0.1:{api}\"\n\
             seal \"static\" {{\n  key_env = \"COFFER_TEST_SEAL_KEY\"\n}}\n",
            url = pg_url(),
            kv = tables.0,
            ha = tables.1,
        );
        let path = dir.join(format!("node{i}.hcl"));
        std::fs::write(&path, text).expect("config");
        path
    }

    fn start(tag: &str, n: usize) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = format!("coffer_ha_{tag}_{}", std::process::id());
        let tables = (format!("{base}_kv"), format!("{base}_ha"));
        let configs: Vec<_> = (0..n)
            .map(|i| Cluster::config(dir.path(), i, &tables))
            .collect();
        let nodes = configs.iter().map(|c| Some(Cluster::spawn(c))).collect();
        Cluster {
            dir,
            tables,
            nodes,
            configs,
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
        pg_drop(&self.tables.0).await;
        pg_drop(&self.tables.1).await;
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

    // Status endpoints.
    let leader = c.http(standbys[0], "").get("sys/leader").await.json();
    assert_eq!(leader["ha_enabled"], json!(true));
    assert_eq!(leader["is_self"], json!(false));
    assert_eq!(leader["leader_address"], json!(c.node(active).addr));
    let me = c.http(active, "").get("sys/leader").await.json();
    assert_eq!(me["is_self"], json!(true));
    let h = c.http(standbys[0], "").get("sys/health").await;
    assert_eq!(h.status, 429, "{}", h.text);
    assert_eq!(h.json()["standby"], json!(true));
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
    c.drop_tables().await;
}
