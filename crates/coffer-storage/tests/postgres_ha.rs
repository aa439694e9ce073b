//! Leadership and fencing on the real PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_storage::ha::{Advertise, Attempt, Fence, HaLock};
use coffer_storage::{
    PostgresConfig, PostgresFencing, PostgresHa, PostgresHaConfig, PostgresStorage, Storage,
    StorageError,
};

fn url() -> String {
    std::env::var("COFFER_TEST_PG_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

struct Node {
    ha: PostgresHa,
    store: PostgresStorage,
}

async fn node(prefix: &str, id: &str, ttl: Duration) -> Result<Node, StorageError> {
    let fence = Arc::new(Fence::default());
    let ha_table = format!("{prefix}_ha");
    let ha = PostgresHa::connect(
        PostgresHaConfig {
            connection_url: url(),
            table: ha_table.clone(),
            node_id: id.into(),
            lease_ttl: ttl,
        },
        fence.clone(),
    )
    .await?;
    let store = PostgresStorage::connect(&PostgresConfig {
        connection_url: url(),
        table: format!("{prefix}_kv"),
        max_parallel: 4,
        ha: Some(PostgresFencing {
            ha_table,
            fence,
            node_id: id.into(),
        }),
    })
    .await?;
    Ok(Node { ha, store })
}

async fn admin() -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    c
}

/// Two nodes, or `None` outside CI when PostgreSQL is away.
async fn pair(ttl: Duration) -> Option<(String, Node, Node)> {
    let prefix = format!("coffer_hat_{}_{}", std::process::id(), rand_suffix());
    // Node ids are unique per test: terminating "node-a" must not hit another test's.
    let a = match node(&prefix, &format!("{prefix}-a"), ttl).await {
        Ok(n) => n,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipping: PostgreSQL not reachable ({e}); CI=true makes this a failure");
            return None;
        }
        Err(e) => panic!("PostgreSQL must be reachable in CI: {e}"),
    };
    let b = node(&prefix, &format!("{prefix}-b"), ttl)
        .await
        .expect("second node");
    Some((prefix, a, b))
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now()) as u32
}

async fn drop_tables(prefix: &str) {
    admin()
        .await
        .batch_execute(&format!("DROP TABLE {prefix}_ha; DROP TABLE {prefix}_kv"))
        .await
        .expect("drop");
}

fn me(addr: &str) -> Advertise {
    Advertise {
        api_addr: addr.into(),
        cluster_addr: addr.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn only_the_holder_writes_and_a_paused_holder_is_fenced() {
    let ttl = Duration::from_millis(900);
    let Some((prefix, a, b)) = pair(ttl).await else {
        return;
    };
    // Standbys never write.
    assert!(matches!(
        a.store.put("k", b"0".to_vec()).await,
        Err(StorageError::Fenced)
    ));
    let Attempt::Acquired(e1) = a.ha.try_acquire(&me("http://a")).await.unwrap() else {
        panic!("a should lead");
    };
    match b.ha.try_acquire(&me("http://b")).await.unwrap() {
        Attempt::Held(Some(l)) => {
            assert_eq!(l.node_id, format!("{prefix}-a"));
            assert_eq!(l.api_addr, "http://a");
            assert_eq!(l.epoch, e1);
        }
        other => panic!("b must see a as leader: {other:?}"),
    }
    a.store.put("k", b"1".to_vec()).await.unwrap();
    assert!(matches!(
        b.store.put("k", b"x".to_vec()).await,
        Err(StorageError::Fenced)
    ));
    assert!(a.ha.renew().await.unwrap());

    // `a` stops renewing (paused): b takes over only once the lease ran out.
    let start = Instant::now();
    let e2 = loop {
        if let Attempt::Acquired(e) = b.ha.try_acquire(&me("http://b")).await.unwrap() {
            break e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(start.elapsed() >= ttl / 2, "took over too early");
    assert!(e2 > e1);
    // `a` still believes it leads; none of its writes may land.
    for _ in 0..3 {
        let r = a.store.put("k", b"stale".to_vec()).await;
        assert!(r.is_err(), "a fenced node wrote");
        let r = a.store.delete("k").await;
        assert!(r.is_err(), "a fenced node deleted");
        let r = a
            .store
            .batch(vec![coffer_storage::Op::Put(
                "k2".into(),
                b"stale".to_vec(),
            )])
            .await;
        assert!(r.is_err(), "a fenced node committed a batch");
    }
    assert_eq!(b.store.get("k").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(b.store.get("k2").await.unwrap(), None);
    b.store.put("k", b"2".to_vec()).await.unwrap();
    // Its renewal tells it so (the first attempt may only find its connection ended).
    let mut lost = false;
    for _ in 0..3 {
        if let Ok(still) = a.ha.renew().await {
            lost = !still;
            break;
        }
    }
    assert!(lost, "a must learn it lost leadership");
    drop_tables(&prefix).await;
}

#[tokio::test]
async fn a_dead_holder_is_replaced_without_waiting_for_its_lease() {
    // A long lease: only the session's death can explain a quick takeover.
    let ttl = Duration::from_secs(30);
    let Some((prefix, a, b)) = pair(ttl).await else {
        return;
    };
    let mut losses = a.ha.connection_losses();
    assert!(matches!(
        a.ha.try_acquire(&me("http://a")).await.unwrap(),
        Attempt::Acquired(_)
    ));
    a.store.put("k", b"1".to_vec()).await.unwrap();
    // The process dies: PostgreSQL ends its sessions.
    admin()
        .await
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&format!("coffer-ha:{prefix}-a")],
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), losses.changed())
        .await
        .expect("the lost connection is noticed")
        .unwrap();
    let start = Instant::now();
    loop {
        if let Attempt::Acquired(_) = b.ha.try_acquire(&me("http://b")).await.unwrap() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "no takeover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.store.put("k", b"2".to_vec()).await.unwrap();
    assert!(a.store.put("k", b"stale".to_vec()).await.is_err());
    assert_eq!(b.store.get("k").await.unwrap().as_deref(), Some(&b"2"[..]));
    // Released leadership is taken at once, and reported nodes are listed.
    b.ha.echo(&me("http://b")).await.unwrap();
    let nodes = b.ha.nodes(Duration::from_secs(60)).await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].node_id, format!("{prefix}-b"));
    b.ha.release().await.unwrap();
    assert!(matches!(
        b.store.put("k", b"x".to_vec()).await,
        Err(StorageError::Fenced)
    ));
    assert!(matches!(
        a.ha.try_acquire(&me("http://a")).await.unwrap(),
        Attempt::Acquired(_)
    ));
    drop_tables(&prefix).await;
}

#[tokio::test]
async fn concurrent_writers_never_commit_after_a_takeover() {
    let ttl = Duration::from_millis(800);
    let Some((prefix, a, b)) = pair(ttl).await else {
        return;
    };
    let a = Arc::new(a);
    assert!(matches!(
        a.ha.try_acquire(&me("http://a")).await.unwrap(),
        Attempt::Acquired(_)
    ));
    // a writes from 16 tasks, recording every acknowledged write.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (a, stop) = (a.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut i = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("w/{t}/{i}");
                if a.store.put(&key, b"v".to_vec()).await.is_ok() {
                    acked.push((key, Instant::now()));
                }
                i += 1;
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let taken = loop {
        if let Attempt::Acquired(_) = b.ha.try_acquire(&me("http://b")).await.unwrap() {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(acked.len() > 16, "the load did not run");
    for (key, at) in &acked {
        assert!(*at <= taken, "{key} was acknowledged after the takeover");
        assert!(
            b.store.get(key).await.unwrap().is_some(),
            "{key} acknowledged but lost"
        );
    }
    drop_tables(&prefix).await;
}
