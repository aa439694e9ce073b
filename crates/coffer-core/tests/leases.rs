//! The expiration manager through the core's request pipeline, with an
//! engine that hands out fake users and records what it was asked to revoke.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use coffer_core::backend::{Backend, EngineRegistry, EngineRequest, LeaseRequest};
use coffer_core::mounts::MountEntry;
use coffer_core::seal::SealMode;
use coffer_core::secret::SecretString;
use coffer_core::{
    Core, CoreConfig, InitParams, LeaseSpec, LogicalError, Operation, Request, Response,
};
use coffer_storage::{DynStorage, MemoryStorage};
use serde_json::{Map, Value, json};

/// Per mount path: users alive, users revoked, and whether revocation fails.
#[derive(Default)]
struct World {
    alive: Vec<String>,
    revoked: Vec<String>,
    renewed_to: HashMap<String, i64>,
    failing: bool,
}

fn worlds() -> &'static Mutex<HashMap<String, World>> {
    static W: OnceLock<Mutex<HashMap<String, World>>> = OnceLock::new();
    W.get_or_init(Default::default)
}

fn with_world<T>(mount: &str, f: impl FnOnce(&mut World) -> T) -> T {
    let mut w = worlds().lock().unwrap();
    f(w.entry(mount.to_owned()).or_default())
}

struct FakeUsers;

#[async_trait]
impl Backend for FakeUsers {
    async fn handle(&self, req: EngineRequest<'_>) -> Result<Option<Response>, LogicalError> {
        let Some(role) = req.path.strip_prefix("creds/") else {
            return Err(LogicalError::UnsupportedPath);
        };
        let ttl = req.data.get("ttl").and_then(Value::as_u64).unwrap_or(0);
        let max_ttl = req.data.get("max_ttl").and_then(Value::as_u64).unwrap_or(0);
        let user = format!("{role}-{}", uuid_ish());
        with_world(&req.mount.path, |w| w.alive.push(user.clone()));
        let mut data = Map::new();
        data.insert("username".into(), json!(user));
        let mut internal = Map::new();
        internal.insert("username".into(), json!(user));
        Ok(Some(Response {
            data: Some(data),
            secret: Some(LeaseSpec {
                ttl,
                max_ttl,
                renewable: true,
                internal,
            }),
            ..Response::default()
        }))
    }

    async fn revoke_lease(&self, req: LeaseRequest<'_>) -> Result<(), LogicalError> {
        let user = req.internal["username"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        with_world(&req.mount.path, |w| {
            if w.failing {
                return Err(LogicalError::Internal("database unreachable".into()));
            }
            w.alive.retain(|u| *u != user);
            w.revoked.push(user);
            Ok(())
        })
    }

    async fn renew_lease(&self, req: LeaseRequest<'_>) -> Result<(), LogicalError> {
        let user = req.internal["username"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        with_world(&req.mount.path, |w| {
            w.renewed_to.insert(user, req.expire_time);
        });
        Ok(())
    }
}

fn uuid_ish() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

fn fake(_: &MountEntry) -> Result<Arc<dyn Backend>, LogicalError> {
    Ok(Arc::new(FakeUsers))
}

struct Harness {
    core: Core,
    root: String,
    key: String,
}

async fn harness(storage: DynStorage) -> Harness {
    let mut engines = EngineRegistry::new();
    engines.register("fake", fake);
    let core = Core::new(
        storage,
        SealMode::Shamir,
        engines,
        EngineRegistry::new(),
        CoreConfig::default(),
    )
    .unwrap();
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
    Harness {
        core,
        root: init.root_token.expose().to_owned(),
        key,
    }
}

impl Harness {
    async fn call(
        &self,
        op: Operation,
        path: &str,
        data: Value,
        token: &str,
    ) -> Result<Response, LogicalError> {
        let mut r = Request::new(op, path);
        r.token = Some(SecretString::new(token.to_owned()));
        r.data = data.as_object().cloned().unwrap_or_default();
        self.core.handle(r).await
    }

    async fn root(&self, op: Operation, path: &str, data: Value) -> Result<Response, LogicalError> {
        self.call(op, path, data, &self.root).await
    }

    async fn mount(&self, path: &str) {
        self.root(
            Operation::Update,
            &format!("sys/mounts/{path}"),
            json!({"type": "fake"}),
        )
        .await
        .unwrap();
    }

    async fn creds(&self, path: &str, data: Value, token: &str) -> (String, String) {
        let r = self.call(Operation::Read, path, data, token).await.unwrap();
        let user = r.data.unwrap()["username"].as_str().unwrap().to_owned();
        (r.lease_id, user)
    }
}

async fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_renew_revoke_and_follow_their_token() {
    let h = harness(Arc::new(MemoryStorage::new())).await;
    h.mount("db").await;

    // Issued: a lease id under the request path, the TTL asked for.
    let r = h
        .root(
            Operation::Read,
            "db/creds/app",
            json!({"ttl": 2, "max_ttl": 60}),
        )
        .await
        .unwrap();
    assert!(r.lease_id.starts_with("db/creds/app/"), "{}", r.lease_id);
    assert_eq!((r.lease_duration, r.renewable), (2, true));
    let user = r.data.unwrap()["username"].as_str().unwrap().to_owned();
    let look = h
        .root(
            Operation::Update,
            "sys/leases/lookup",
            json!({"lease_id": r.lease_id}),
        )
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(look["id"], json!(r.lease_id));
    assert!(look["ttl"].as_i64().unwrap() <= 2);

    // Expiry revokes through the engine.
    eventually("expiry", Duration::from_secs(6), || {
        with_world("db/", |w| w.revoked.contains(&user))
    })
    .await;
    let gone = h
        .root(
            Operation::Update,
            "sys/leases/lookup",
            json!({"lease_id": r.lease_id}),
        )
        .await;
    assert!(matches!(gone, Err(LogicalError::BadRequest(_))));

    // Renew: up to max_ttl and no further, and the engine hears the new end.
    let (lease, user) = h
        .creds(
            "db/creds/app",
            json!({"ttl": 5, "max_ttl": 20}),
            &h.root.clone(),
        )
        .await;
    let r = h
        .root(
            Operation::Update,
            "sys/leases/renew",
            json!({"lease_id": lease, "increment": 10}),
        )
        .await
        .unwrap();
    assert_eq!(
        (r.lease_id.as_str(), r.lease_duration),
        (lease.as_str(), 10)
    );
    let r = h
        .root(
            Operation::Update,
            "sys/leases/renew",
            json!({"lease_id": lease, "increment": 3600}),
        )
        .await
        .unwrap();
    assert!(
        r.lease_duration <= 20 && r.lease_duration >= 18,
        "{}",
        r.lease_duration
    );
    assert!(
        r.warnings.iter().any(|w| w.contains("max_ttl")),
        "{:?}",
        r.warnings
    );
    assert!(with_world("db/", |w| w.renewed_to.contains_key(&user)));

    // Revoke now; revoke-prefix takes a role's leases.
    h.root(
        Operation::Update,
        "sys/leases/revoke",
        json!({"lease_id": lease}),
    )
    .await
    .unwrap();
    assert!(with_world("db/", |w| w.revoked.contains(&user)));
    let a = h
        .creds("db/creds/batch", json!({"ttl": 600}), &h.root.clone())
        .await;
    let b = h
        .creds("db/creds/batch", json!({"ttl": 600}), &h.root.clone())
        .await;
    let other = h
        .creds("db/creds/keep", json!({"ttl": 600}), &h.root.clone())
        .await;
    let listed = h
        .root(
            Operation::List,
            "sys/leases/lookup/db/creds/batch/",
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(listed.data.unwrap()["keys"].as_array().unwrap().len(), 2);
    h.root(
        Operation::Update,
        "sys/leases/revoke-prefix/db/creds/batch",
        json!({}),
    )
    .await
    .unwrap();
    assert!(with_world("db/", |w| w.revoked.contains(&a.1)
        && w.revoked.contains(&b.1)
        && w.alive.contains(&other.1)));

    // A token's revocation takes its leases with it.
    let t = h
        .root(
            Operation::Update,
            "auth/token/create",
            json!({"policies": ["root"]}),
        )
        .await
        .unwrap();
    let child = t.auth.unwrap()["client_token"].as_str().unwrap().to_owned();
    let (_, theirs) = h.creds("db/creds/app", json!({"ttl": 600}), &child).await;
    h.root(
        Operation::Update,
        "auth/token/revoke",
        json!({"token": child}),
    )
    .await
    .unwrap();
    assert!(with_world("db/", |w| w.revoked.contains(&theirs)));

    // A token that simply expires takes its leases with it.
    let t = h
        .root(
            Operation::Update,
            "auth/token/create",
            json!({"policies": ["root"], "ttl": "2s"}),
        )
        .await
        .unwrap();
    let short = t.auth.unwrap()["client_token"].as_str().unwrap().to_owned();
    let (_, outlived) = h.creds("db/creds/app", json!({"ttl": 600}), &short).await;
    eventually(
        "token expiry revokes its leases",
        Duration::from_secs(8),
        || with_world("db/", |w| w.revoked.contains(&outlived)),
    )
    .await;

    // Unmounting revokes what is left.
    h.root(Operation::Delete, "sys/mounts/db", json!({}))
        .await
        .unwrap();
    assert!(
        with_world("db/", |w| w.alive.is_empty()),
        "{:?}",
        with_world("db/", |w| w.alive.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_revocations_are_kept_retried_and_survive_a_restart() {
    let storage: DynStorage = Arc::new(MemoryStorage::new());
    let h = harness(storage.clone()).await;
    h.mount("flaky").await;
    with_world("flaky/", |w| w.failing = true);
    let (lease, user) = h
        .creds("flaky/creds/app", json!({"ttl": 1}), &h.root.clone())
        .await;

    // An explicit revoke fails loudly and keeps the lease.
    let err = h
        .root(
            Operation::Update,
            "sys/leases/revoke",
            json!({"lease_id": lease}),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("database unreachable"), "{err}");
    let look = h
        .root(
            Operation::Update,
            "sys/leases/lookup",
            json!({"lease_id": lease}),
        )
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(look["revoke_attempts"], json!(1));
    let count = h
        .root(Operation::Read, "sys/leases/count", json!({"type": "all"}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(count["failing_count"], json!(1));

    // Sealed (as if stopped) while the database is down; then it comes back.
    h.core.seal().await;
    with_world("flaky/", |w| w.failing = false);
    h.core.unseal_share(Some(&h.key), false).await.unwrap();
    eventually("retry after restart", Duration::from_secs(8), || {
        with_world("flaky/", |w| w.revoked.contains(&user))
    })
    .await;
    let count = h
        .root(Operation::Read, "sys/leases/count", json!({"type": "all"}))
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(
        (count["lease_count"].clone(), count["failing_count"].clone()),
        (json!(0), json!(0))
    );

    // revoke-force drops a record the engine cannot revoke.
    with_world("flaky/", |w| w.failing = true);
    let (lease, user) = h
        .creds("flaky/creds/app", json!({"ttl": 600}), &h.root.clone())
        .await;
    h.root(
        Operation::Update,
        "sys/leases/revoke-force/flaky/creds/app",
        json!({}),
    )
    .await
    .unwrap();
    assert!(
        h.root(
            Operation::Update,
            "sys/leases/lookup",
            json!({"lease_id": lease})
        )
        .await
        .is_err()
    );
    assert!(
        with_world("flaky/", |w| w.alive.contains(&user)),
        "the engine never revoked it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lease_renewed_while_revoked_stays_revoked() {
    let h = Arc::new(harness(Arc::new(MemoryStorage::new())).await);
    h.mount("race").await;
    for _ in 0..10 {
        let (lease, user) = h
            .creds(
                "race/creds/app",
                json!({"ttl": 60, "max_ttl": 600}),
                &h.root,
            )
            .await;
        let mut renewals = Vec::new();
        for _ in 0..6 {
            let (h, lease) = (h.clone(), lease.clone());
            renewals.push(tokio::spawn(async move {
                let _ = h
                    .root(
                        Operation::Update,
                        "sys/leases/renew",
                        json!({"lease_id": lease, "increment": 120}),
                    )
                    .await;
            }));
        }
        h.root(
            Operation::Update,
            "sys/leases/revoke",
            json!({ "lease_id": lease }),
        )
        .await
        .unwrap();
        for r in renewals {
            r.await.unwrap();
        }
        assert!(
            h.root(
                Operation::Update,
                "sys/leases/lookup",
                json!({ "lease_id": lease })
            )
            .await
            .is_err(),
            "a revoked lease is still stored"
        );
        assert!(
            h.root(
                Operation::Update,
                "sys/leases/renew",
                json!({ "lease_id": lease })
            )
            .await
            .is_err()
        );
        with_world("race/", |w| {
            assert!(!w.alive.contains(&user));
            assert_eq!(w.revoked.iter().filter(|u| **u == user).count(), 1);
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_made_while_their_token_is_revoked_go_with_it() {
    let h = Arc::new(harness(Arc::new(MemoryStorage::new())).await);
    h.mount("tok").await;
    for _ in 0..10 {
        let r = h
            .root(Operation::Update, "auth/token/create", json!({"ttl": "1h"}))
            .await
            .unwrap();
        let token = r.auth.unwrap()["client_token"].as_str().unwrap().to_owned();
        let mut reads = Vec::new();
        for _ in 0..8 {
            let (h, token) = (h.clone(), token.clone());
            reads.push(tokio::spawn(async move {
                let mut r = Request::new(Operation::Read, "tok/creds/app");
                r.token = Some(SecretString::new(token));
                r.data = json!({"ttl": 600}).as_object().cloned().unwrap_or_default();
                let _ = h.core.handle(r).await;
            }));
        }
        h.root(
            Operation::Update,
            "auth/token/revoke",
            json!({ "token": token }),
        )
        .await
        .unwrap();
        for r in reads {
            r.await.unwrap();
        }
    }
    // Every user handed out to a revoked token was revoked with it.
    with_world("tok/", |w| {
        assert!(
            w.alive.is_empty(),
            "users outlived their token: {:?}",
            w.alive
        );
    });
}

/// A moved mount (`sys/remount`) takes its leases along: new ids under the
/// new path, and expiry, renewal and revocation still reach its engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_mount_takes_its_leases() {
    let h = harness(Arc::new(MemoryStorage::new())).await;
    h.mount("mvdb").await;
    let mut old = Vec::new();
    for ttl in [2, 600, 600] {
        old.push(
            h.creds(
                "mvdb/creds/app",
                json!({"ttl": ttl, "max_ttl": 600}),
                &h.root.clone(),
            )
            .await,
        );
    }
    let r = h
        .root(
            Operation::Update,
            "sys/remount",
            json!({"from": "mvdb", "to": "mvdb2/"}),
        )
        .await
        .unwrap();
    let id = r.data.unwrap()["migration_id"].as_str().unwrap().to_owned();
    let status = h
        .root(
            Operation::Read,
            &format!("sys/remount/status/{id}"),
            json!({}),
        )
        .await
        .unwrap()
        .data
        .unwrap();
    assert_eq!(
        status["migration_info"],
        json!({"source_mount": "mvdb/", "target_mount": "mvdb2/", "status": "success"})
    );

    // Old ids are gone; the same leases live under the new path.
    for (lease, _) in &old {
        let gone = h
            .root(
                Operation::Update,
                "sys/leases/lookup",
                json!({"lease_id": lease}),
            )
            .await;
        assert!(gone.is_err(), "{lease} still there");
        let moved = lease.replacen("mvdb/", "mvdb2/", 1);
        h.root(
            Operation::Update,
            "sys/leases/lookup",
            json!({"lease_id": moved}),
        )
        .await
        .unwrap();
    }
    // Expiry still reaches the engine (now mounted at mvdb2/).
    let short = old[0].1.clone();
    eventually("expiry after the move", Duration::from_secs(6), || {
        with_world("mvdb2/", |w| w.revoked.contains(&short))
    })
    .await;
    // Renewal and prefix revocation under the new path.
    let second = old[1].0.replacen("mvdb/", "mvdb2/", 1);
    h.root(
        Operation::Update,
        "sys/leases/renew",
        json!({"lease_id": second, "increment": 60}),
    )
    .await
    .unwrap();
    h.root(
        Operation::Update,
        "sys/leases/revoke-prefix/mvdb2",
        json!({}),
    )
    .await
    .unwrap();
    with_world("mvdb2/", |w| {
        for (_, user) in &old {
            assert!(w.revoked.contains(user), "{user} not revoked");
        }
    });
    // A fresh lease is issued under the new path.
    let (lease, _) = h.creds("mvdb2/creds/app", json!({}), &h.root.clone()).await;
    assert!(lease.starts_with("mvdb2/creds/app/"));
}

/// A move while leases are issued and renewed: no lease is lost, every
/// user issued is revoked in the end, whichever path its lease ended under.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_under_load_loses_no_lease() {
    let h = Arc::new(harness(Arc::new(MemoryStorage::new())).await);
    h.mount("hm").await;
    let mut leases = Vec::new();
    for _ in 0..30 {
        let root = h.root.clone();
        leases.push(h.creds("hm/creds/app", json!({"ttl": 600}), &root).await.0);
    }
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (renewed, gone) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in leases.chunks(10).map(<[String]>::to_vec) {
        let (h, renewed, gone) = (h.clone(), renewed.clone(), gone.clone());
        tasks.spawn(async move {
            for id in chunk.iter().cycle().take(300) {
                renewed.fetch_add(1, Ordering::Relaxed);
                // After the move the old id is gone: "lease not found" is
                // the only acceptable failure.
                if let Err(e) = h
                    .root(
                        Operation::Update,
                        "sys/leases/renew",
                        json!({"lease_id": id}),
                    )
                    .await
                {
                    assert!(e.to_string().contains("not found"), "{e}");
                    gone.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    for _ in 0..2 {
        let h = h.clone();
        tasks.spawn(async move {
            for _ in 0..60 {
                // Issued at the old path until the move, then refused there.
                let _ = h
                    .root(Operation::Read, "hm/creds/app", json!({"ttl": 600}))
                    .await;
            }
        });
    }
    let (mover, seen) = (h.clone(), renewed.clone());
    tasks.spawn(async move {
        // Move while renewals and issues are under way.
        while seen.load(Ordering::Relaxed) < 100 {
            tokio::task::yield_now().await;
        }
        mover
            .root(
                Operation::Update,
                "sys/remount",
                json!({"from": "hm", "to": "hm2"}),
            )
            .await
            .unwrap();
    });
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    for prefix in ["hm/", "hm2/"] {
        h.root(
            Operation::Update,
            &format!("sys/leases/revoke-prefix/{prefix}"),
            json!({}),
        )
        .await
        .unwrap();
    }
    let (issued, revoked): (Vec<String>, Vec<String>) = ["hm/", "hm2/"]
        .iter()
        .map(|m| with_world(m, |w| (w.alive.clone(), w.revoked.clone())))
        .fold((Vec::new(), Vec::new()), |(mut a, mut r), (wa, wr)| {
            a.extend(wa);
            r.extend(wr);
            (a, r)
        });
    // Revocation under hm2/ does not update hm/'s list of live users.
    let still_alive: Vec<&String> = issued.iter().filter(|u| !revoked.contains(u)).collect();
    assert!(
        still_alive.is_empty(),
        "users whose lease was lost: {still_alive:?}"
    );
    assert!(revoked.len() >= 30, "only {} users revoked", revoked.len());
    assert!(
        gone.load(Ordering::Relaxed) > 0,
        "no renewal ran after the move"
    );
}
