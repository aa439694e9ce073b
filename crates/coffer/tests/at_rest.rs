//! What an attacker with a copy of the storage sees: ciphertext only, and
//! entries that cannot be moved between paths.

mod common;

use coffer_storage::{FileStorage, Storage};
use common::{Server, Setup, pg_drop, pg_table, postgres_available, ready, unseal};
use serde_json::json;

const MARKER: &str = "MARKER-d41d8cd98f00b204-plaintext";

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn embedded_file_holds_no_plaintext_key_or_token() {
    let setup = Setup::embedded();
    let (s, keys, root) = ready(&setup).await;
    let h = s.http(Some(&root));
    assert_eq!(
        h.post("kv/marker", json!({ "value": MARKER })).await.status,
        204
    );
    s.stop();

    let raw = std::fs::read(setup.data_file()).unwrap();
    assert!(
        !contains(&raw, MARKER.as_bytes()),
        "secret value found in the data file"
    );
    assert!(
        !contains(&raw, root.as_bytes()),
        "root token found in the data file"
    );
    let key_bytes = base64_decode(&keys[0]);
    assert!(
        !contains(&raw, &key_bytes),
        "unseal key found in the data file"
    );
    assert!(!contains(&raw, keys[0].as_bytes()));
}

#[tokio::test]
async fn postgres_table_holds_no_plaintext_key_or_token() {
    if !postgres_available().await {
        return;
    }
    let table = pg_table("rest");
    let setup = Setup::new(
        &format!(
            "storage \"postgresql\" {{\n connection_url = \"{}\"\n table = \"{table}\"\n}}",
            common::pg_url()
        ),
        "",
    );
    let (s, keys, root) = ready(&setup).await;
    let h = s.http(Some(&root));
    assert_eq!(
        h.post("kv/marker", json!({ "value": MARKER })).await.status,
        204
    );

    let (client, conn) = tokio_postgres::connect(&common::pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let rows = client
        .query(&format!("SELECT key, value FROM {table}"), &[])
        .await
        .unwrap();
    assert!(rows.len() > 3);
    let key_bytes = base64_decode(&keys[0]);
    for r in rows {
        let (k, v): (String, Vec<u8>) = (r.get(0), r.get(1));
        for (what, needle) in [
            ("secret", MARKER.as_bytes()),
            ("root token", root.as_bytes()),
            ("unseal key", &key_bytes[..]),
        ] {
            assert!(
                !contains(&v, needle) && !contains(k.as_bytes(), needle),
                "{what} found in row {k}"
            );
        }
    }
    drop(s);
    pg_drop(&table).await;
}

#[tokio::test]
async fn ciphertext_moved_to_another_path_fails_integrity() {
    let setup = Setup::embedded();
    let (s, keys, root) = ready(&setup).await;
    let h = s.http(Some(&root));
    h.post("kv/source", json!({"v": "from source"})).await;
    h.post("kv/target", json!({"v": "from target"})).await;
    s.stop();

    // Copy the raw entry of kv/source over kv/target, below the barrier.
    {
        let store = FileStorage::open(&setup.data_file()).unwrap();
        let mounts = store.list("logical/").await.unwrap();
        assert_eq!(mounts.len(), 1);
        let prefix = format!("logical/{}", mounts[0]);
        let src = store
            .get(&format!("{prefix}source"))
            .await
            .unwrap()
            .unwrap();
        store.put(&format!("{prefix}target"), src).await.unwrap();
    }

    let s = Server::with_config(&setup.config, &[]);
    unseal(&s.http(None), &keys).await;
    let h = s.http(Some(&root));
    let r = h.get("kv/target").await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert!(r.text.contains("integrity"), "{}", r.text);
    assert!(!r.text.contains("from source"));
    // The untouched entry still reads, and the server keeps serving.
    assert_eq!(h.get("kv/source").await.json()["data"]["v"], "from source");
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}
