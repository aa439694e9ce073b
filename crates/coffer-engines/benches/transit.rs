//! Transit encrypt and decrypt through the engine (request fields, base64,
//! key lookup, AEAD), for 64-byte and 4 KiB payloads on one thread, against
//! a bare AES-256-GCM seal/open of the same payload as the baseline.

use std::hint::black_box;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use coffer_core::Operation;
use coffer_core::aead;
use coffer_core::backend::{EngineRequest, StorageView};
use coffer_core::barrier::Barrier;
use coffer_core::keyring::Keyring;
use coffer_core::mounts::MountEntry;
use coffer_core::secret::Key32;
use coffer_storage::MemoryStorage;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value, json};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn transit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let barrier = Arc::new(Barrier::new(Arc::new(MemoryStorage::new())));
    rt.block_on(barrier.initialize(
        Key32::random().unwrap(),
        Keyring::new(Key32::random().unwrap()),
    ))
    .unwrap();
    let st = StorageView::new(barrier, "logical/bench/".into());
    let mount = MountEntry::new("transit/", "transit");
    let engine = coffer_engines::transit::factory(&mount).unwrap();
    let call = |op: Operation, path: &str, data: &Map<String, Value>| {
        rt.block_on(engine.handle(EngineRequest {
            operation: op,
            path,
            data,
            storage: &st,
            mount: &mount,
            default_lease_ttl: 0,
            remote_addr: None,
            display_name: "bench",
        }))
        .unwrap()
        .unwrap()
    };
    call(Operation::Update, "keys/bench", &Map::new());
    let raw_key = Key32::random().unwrap();

    for size in [64usize, 4096] {
        let plain = vec![7u8; size];
        let enc_req = obj(json!({"plaintext": STANDARD.encode(&plain)}));
        let ct = call(Operation::Update, "encrypt/bench", &enc_req)
            .data
            .unwrap()["ciphertext"]
            .clone();
        let dec_req = obj(json!({"ciphertext": ct}));
        let sealed = aead::seal(&raw_key, b"", &plain).unwrap();

        let mut g = c.benchmark_group(format!("{size}B"));
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function("aes_gcm_seal_baseline", |x| {
            x.iter(|| aead::seal(&raw_key, b"", black_box(&plain)).unwrap())
        });
        g.bench_function("aes_gcm_open_baseline", |x| {
            x.iter(|| aead::open(&raw_key, b"", black_box(&sealed)).unwrap())
        });
        g.bench_function("transit_encrypt", |x| {
            x.iter(|| call(Operation::Update, "encrypt/bench", black_box(&enc_req)))
        });
        g.bench_function("transit_decrypt", |x| {
            x.iter(|| call(Operation::Update, "decrypt/bench", black_box(&dec_req)))
        });
        g.finish();
    }
}

criterion_group!(benches, transit);
criterion_main!(benches);
