//! Barrier encrypt/decrypt of a 1 KiB entry, against raw AES-GCM as the baseline.

use std::hint::black_box;
use std::sync::Arc;

use coffer_core::aead;
use coffer_core::barrier::Barrier;
use coffer_core::keyring::Keyring;
use coffer_core::secret::Key32;
use coffer_storage::MemoryStorage;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn barrier(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let b = Barrier::new(Arc::new(MemoryStorage::new()));
    rt.block_on(b.initialize(
        Key32::random().unwrap(),
        Keyring::new(Key32::random().unwrap()),
    ))
    .unwrap();
    let plain = vec![7u8; 1024];
    let path = "logical/0000/secret/app";
    let sealed = b.encrypt(path, &plain).unwrap();
    let key = Key32::random().unwrap();

    let mut g = c.benchmark_group("1KiB");
    g.throughput(Throughput::Bytes(1024));
    g.bench_function("aes_gcm_seal_baseline", |x| {
        x.iter(|| aead::seal(&key, black_box(path.as_bytes()), black_box(&plain)).unwrap())
    });
    g.bench_function("barrier_encrypt", |x| {
        x.iter(|| b.encrypt(black_box(path), black_box(&plain)).unwrap())
    });
    g.bench_function("barrier_decrypt", |x| {
        x.iter(|| b.decrypt(black_box(path), black_box(&sealed)).unwrap())
    });
    g.bench_function("barrier_put_get_memory", |x| {
        x.iter(|| {
            rt.block_on(async {
                b.put(path, &plain).await.unwrap();
                b.get(path).await.unwrap()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, barrier);
criterion_main!(benches);
