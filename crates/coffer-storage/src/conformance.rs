//! The behaviour every backend must show; the backends' tests run all of it.

use crate::{Op, Storage};

/// Runs every conformance check against an empty store, panicking on the first failure.
pub async fn run_all(s: &dyn Storage) {
    get_put_delete(s).await;
    list_levels(s).await;
    batch_is_applied_whole(s).await;
    binary_values_round_trip(s).await;
}

async fn get_put_delete(s: &dyn Storage) {
    assert_eq!(
        s.get("a/b").await.unwrap(),
        None,
        "absent key reads as None"
    );
    s.put("a/b", b"one".to_vec()).await.unwrap();
    assert_eq!(s.get("a/b").await.unwrap().as_deref(), Some(&b"one"[..]));
    s.put("a/b", b"two".to_vec()).await.unwrap();
    assert_eq!(
        s.get("a/b").await.unwrap().as_deref(),
        Some(&b"two"[..]),
        "put overwrites"
    );
    s.delete("a/b").await.unwrap();
    assert_eq!(s.get("a/b").await.unwrap(), None, "delete removes");
    s.delete("a/b").await.unwrap();
}

async fn list_levels(s: &dyn Storage) {
    for k in [
        "l/x", "l/y/1", "l/y/2", "l/y/z/3", "l/z", "l/", "lz", "l/y0", "l/\u{e9}",
    ] {
        s.put(k, vec![1]).await.unwrap();
    }
    assert_eq!(
        s.list("l/").await.unwrap(),
        vec!["x", "y/", "y0", "z", "\u{e9}"],
        "one level, folders once with a slash, sorted by bytes"
    );
    assert_eq!(s.list("l/y/").await.unwrap(), vec!["1", "2", "z/"]);
    assert!(s.list("nothing/").await.unwrap().is_empty());
    let top = s.list("").await.unwrap();
    assert!(top.contains(&"l/".to_string()) && top.contains(&"lz".to_string()));
}

async fn batch_is_applied_whole(s: &dyn Storage) {
    s.put("b/old", vec![9]).await.unwrap();
    s.batch(vec![
        Op::Put("b/new1".into(), vec![1]),
        Op::Put("b/new2".into(), vec![2]),
        Op::Delete("b/old".into()),
    ])
    .await
    .unwrap();
    assert_eq!(s.list("b/").await.unwrap(), vec!["new1", "new2"]);
}

async fn binary_values_round_trip(s: &dyn Storage) {
    let v: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    s.put("bin/v", v.clone()).await.unwrap();
    assert_eq!(s.get("bin/v").await.unwrap(), Some(v));
}
