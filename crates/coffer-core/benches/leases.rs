//! Lease bookkeeping at scale, with an engine whose revocation does nothing:
//! issue N leases through the request pipeline, reload them after a seal and
//! unseal (time until serving, time until every lease is scheduled), and
//! expire them all. The baseline is the same number of KV v1-style writes of
//! a small record through the same pipeline, measured in the same run.
//!
//! `cargo bench -p coffer-core --bench leases` (N = 100000; set
//! `LEASES=1000000` for the full figure, `LEASE_STORAGE=file` for redb).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use coffer_core::backend::{Backend, EngineRegistry, EngineRequest, LeaseRequest};
use coffer_core::mounts::MountEntry;
use coffer_core::seal::SealMode;
use coffer_core::secret::SecretString;
use coffer_core::{
    Core, CoreConfig, InitParams, LeaseSpec, LogicalError, Operation, Request, Response,
};
use coffer_storage::{DynStorage, FileStorage, MemoryStorage};
use serde_json::{Map, Value, json};

struct Noop;

#[async_trait]
impl Backend for Noop {
    async fn handle(&self, req: EngineRequest<'_>) -> Result<Option<Response>, LogicalError> {
        if req.path.starts_with("plain/") {
            // The baseline: one small record written through the barrier.
            req.storage.put(req.path, b"{\"v\":1}").await?;
            return Ok(None);
        }
        let ttl = req.data.get("ttl").and_then(Value::as_u64).unwrap_or(3600);
        let mut internal = Map::new();
        internal.insert("username".into(), json!("v-bench"));
        Ok(Some(Response {
            data: Some(Map::new()),
            secret: Some(LeaseSpec {
                ttl,
                max_ttl: 0,
                renewable: true,
                internal,
            }),
            ..Response::default()
        }))
    }

    async fn revoke_lease(&self, _req: LeaseRequest<'_>) -> Result<(), LogicalError> {
        Ok(())
    }
}

fn noop(_: &MountEntry) -> Result<Arc<dyn Backend>, LogicalError> {
    Ok(Arc::new(Noop))
}

async fn call(core: &Core, token: &str, op: Operation, path: &str, data: Value) -> Response {
    let mut r = Request::new(op, path);
    r.token = Some(SecretString::new(token.to_owned()));
    r.data = data.as_object().cloned().unwrap_or_default();
    core.handle(r).await.expect("request")
}

/// Runs `n` requests with `parallel` in flight.
async fn many(
    core: &Arc<Core>,
    token: &str,
    n: usize,
    parallel: usize,
    path: impl Fn(usize) -> (Operation, String, Value) + Send + Sync + 'static,
) -> Duration {
    let start = Instant::now();
    let path = Arc::new(path);
    let mut set = tokio::task::JoinSet::new();
    for w in 0..parallel {
        let (core, token, path) = (core.clone(), token.to_owned(), path.clone());
        set.spawn(async move {
            let mut i = w;
            while i < n {
                let (op, p, d) = path(i);
                call(&core, &token, op, &p, d).await;
                i += parallel;
            }
        });
    }
    while set.join_next().await.is_some() {}
    start.elapsed()
}

async fn lease_count(core: &Core, token: &str) -> (u64, bool) {
    let d = call(
        core,
        token,
        Operation::Read,
        "sys/leases/count",
        json!({"type": "all"}),
    )
    .await
    .data
    .unwrap_or_default();
    (
        d["lease_count"].as_u64().unwrap_or(0),
        d["loaded"] == json!(true),
    )
}

fn main() {
    let n: usize = std::env::var("LEASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let file = std::env::var("LEASE_STORAGE").as_deref() == Ok("file");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let storage: DynStorage = if file {
            Arc::new(FileStorage::open(&dir.path().join("bench.redb")).unwrap())
        } else {
            Arc::new(MemoryStorage::new())
        };
        let mut engines = EngineRegistry::new();
        engines.register("noop", noop);
        let core = Arc::new(
            Core::new(
                storage,
                SealMode::Shamir,
                engines,
                EngineRegistry::new(),
                CoreConfig::default(),
            )
            .unwrap(),
        );
        let init = core
            .initialize(InitParams {
                secret_shares: 1,
                secret_threshold: 1,
                recovery_shares: 0,
                recovery_threshold: 0,
            })
            .await
            .unwrap();
        let key = hex::encode(init.keys[0].expose());
        core.unseal_share(Some(&key), false).await.unwrap();
        let root = init.root_token.expose().to_owned();
        call(
            &core,
            &root,
            Operation::Update,
            "sys/mounts/db",
            json!({"type": "noop"}),
        )
        .await;

        println!(
            "leases: {n}, storage: {}",
            if file {
                "file (redb, fsync per commit)"
            } else {
                "memory"
            }
        );
        let base = many(&core, &root, n, 32, |i| {
            (Operation::Update, format!("db/plain/{i}"), json!({}))
        })
        .await;
        let issue = many(&core, &root, n, 32, |i| {
            (Operation::Read, format!("db/creds/r{}", i % 16), json!({}))
        })
        .await;
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        println!("baseline writes:   {:>9.0}/s ({:.1?})", rate(base), base);
        println!(
            "issue with lease:  {:>9.0}/s ({:.1?})  {:.2}x the baseline's time",
            rate(issue),
            issue,
            issue.as_secs_f64() / base.as_secs_f64()
        );

        core.seal().await;
        let t = Instant::now();
        core.unseal_share(Some(&key), false).await.unwrap();
        let serving = t.elapsed();
        let _ = call(&core, &root, Operation::Read, "sys/mounts", json!({})).await;
        let first = t.elapsed();
        loop {
            if lease_count(&core, &root).await.1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let loaded = t.elapsed();
        println!("unseal to serving: {serving:.1?} (first request answered at {first:.1?})");
        println!("all leases loaded: {loaded:.1?} (in the background)");

        let t = Instant::now();
        call(
            &core,
            &root,
            Operation::Update,
            "sys/leases/revoke-prefix/db/creds",
            json!({}),
        )
        .await;
        let expire = t.elapsed();
        println!(
            "revoke all:        {:>9.0}/s ({:.1?})  {:.2}x the baseline's time",
            rate(expire),
            expire,
            expire.as_secs_f64() / base.as_secs_f64()
        );
        assert_eq!(lease_count(&core, &root).await.0, 0);
    });
}
