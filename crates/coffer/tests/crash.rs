//! Every write acknowledged before a SIGKILL reads back after restart.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Server, Setup, ready, unseal};
use serde_json::json;

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let setup = Setup::embedded();
    let (s, keys, root) = ready(&setup).await;
    let h = s.http(Some(&root));

    // Four writers run until the server dies under them.
    let acked = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..4 {
        let h = h.clone();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..100_000 {
                let path = format!("kv/w{w}/k{i}");
                let ok = tokio::time::timeout(
                    Duration::from_secs(5),
                    h.client
                        .post(format!("{}/v1/{path}", h.base))
                        .header("X-Vault-Token", h.token.clone().unwrap())
                        .json(&json!({ "i": i }))
                        .send(),
                )
                .await;
                match ok {
                    Ok(Ok(r)) if r.status().as_u16() == 204 => {
                        mine.push((path, i));
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => break,
                }
            }
            mine
        }));
    }
    while acked.load(Ordering::Relaxed) < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.kill9();
    let mut written = Vec::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    assert!(written.len() >= 200);

    let s = Server::with_config(&setup.config, &[]);
    unseal(&s.http(None), &keys).await;
    let h = s.http(Some(&root));
    for (path, i) in &written {
        let r = h.get(path).await;
        assert_eq!(r.status, 200, "acknowledged write {path} lost: {}", r.text);
        assert_eq!(r.json()["data"]["i"], *i);
    }
    eprintln!("{} acknowledged writes survived SIGKILL", written.len());
}
