//! Transit over HTTP: every key type's operations, versions and their
//! bounds, derived and convergent keys, batches, export and backup rules.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Http, Server};
use serde_json::{Value, json};

fn b64(s: &[u8]) -> String {
    B64.encode(s)
}

async fn ok(h: &Http, path: &str, body: Value) -> Value {
    let r = h.post(path, body).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    r.json()["data"].clone()
}

async fn fails(h: &Http, path: &str, body: Value, status: u16, msg: &str) {
    let r = h.post(path, body).await;
    assert_eq!(r.status, status, "{path}: {}", r.text);
    assert!(
        r.text.contains(msg),
        "{path}: expected {msg:?} in {}",
        r.text
    );
}

async fn mounted() -> (Server, Http) {
    let s = Server::dev();
    let root = s.http(Some("root"));
    let r = root
        .post("sys/mounts/transit", json!({"type": "transit"}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    (s, root)
}

fn flip_a_byte(ct: &str) -> String {
    let (prefix, body) = ct.rsplit_once(':').unwrap();
    let mut raw = B64.decode(body).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    format!("{prefix}:{}", B64.encode(raw))
}

#[tokio::test]
async fn symmetric_types_round_trip_rotate_rewrap_and_refuse_tampering() {
    let (_s, h) = mounted().await;
    for kt in [
        "aes128-gcm96",
        "aes256-gcm96",
        "chacha20-poly1305",
        "xchacha20-poly1305",
    ] {
        let name = kt.replace('-', "_");
        let info = ok(&h, &format!("transit/keys/{name}"), json!({"type": kt})).await;
        assert_eq!(info["type"], kt);
        assert_eq!(info["latest_version"], 1);
        assert!(info["keys"]["1"].is_i64(), "{info}");
        let pt = b64(b"the quick brown fox");
        let aad = b64(b"tenant-7");
        let enc = ok(
            &h,
            &format!("transit/encrypt/{name}"),
            json!({"plaintext": pt, "associated_data": aad}),
        )
        .await;
        let ct1 = enc["ciphertext"].as_str().unwrap().to_owned();
        assert!(ct1.starts_with("vault:v1:"), "{ct1}");
        assert_eq!(enc["key_version"], 1);
        let dec = ok(
            &h,
            &format!("transit/decrypt/{name}"),
            json!({"ciphertext": ct1, "associated_data": aad}),
        )
        .await;
        assert_eq!(dec["plaintext"], pt);
        // Wrong associated data, or one flipped byte: authentication fails.
        for body in [
            json!({"ciphertext": ct1, "associated_data": b64(b"tenant-8")}),
            json!({"ciphertext": flip_a_byte(&ct1), "associated_data": aad}),
        ] {
            fails(
                &h,
                &format!("transit/decrypt/{name}"),
                body,
                400,
                "message authentication failed",
            )
            .await;
        }

        let rotated = ok(&h, &format!("transit/keys/{name}/rotate"), json!({})).await;
        assert_eq!(rotated["latest_version"], 2);
        let old = ok(
            &h,
            &format!("transit/decrypt/{name}"),
            json!({"ciphertext": ct1, "associated_data": aad}),
        )
        .await;
        assert_eq!(
            old["plaintext"], pt,
            "old ciphertexts still decrypt after rotate"
        );
        let rw = ok(
            &h,
            &format!("transit/rewrap/{name}"),
            json!({"ciphertext": ct1, "associated_data": aad}),
        )
        .await;
        let ct2 = rw["ciphertext"].as_str().unwrap().to_owned();
        assert!(ct2.starts_with("vault:v2:"), "{ct2}");
        assert_eq!(rw["key_version"], 2);
        // An explicit older version for encryption, then bounds.
        let v1 = ok(
            &h,
            &format!("transit/encrypt/{name}"),
            json!({"plaintext": pt, "key_version": 1}),
        )
        .await;
        assert_eq!(v1["key_version"], 1);
        fails(
            &h,
            &format!("transit/encrypt/{name}"),
            json!({"plaintext": pt, "key_version": 3}),
            400,
            "higher than the latest",
        )
        .await;

        let cfg = ok(
            &h,
            &format!("transit/keys/{name}/config"),
            json!({"min_decryption_version": 2}),
        )
        .await;
        assert_eq!(cfg["min_decryption_version"], 2);
        assert!(
            cfg["keys"].get("1").is_none(),
            "versions below min_decryption_version are not listed: {cfg}"
        );
        fails(
            &h,
            &format!("transit/decrypt/{name}"),
            json!({"ciphertext": ct1, "associated_data": aad}),
            400,
            "disallowed by policy (too old)",
        )
        .await;
        let new = ok(
            &h,
            &format!("transit/decrypt/{name}"),
            json!({"ciphertext": ct2, "associated_data": aad}),
        )
        .await;
        assert_eq!(new["plaintext"], pt);
        let too_new = ct2.replace("vault:v2:", "vault:v9:");
        fails(
            &h,
            &format!("transit/decrypt/{name}"),
            json!({"ciphertext": too_new}),
            400,
            "version is too new",
        )
        .await;
    }
    fails(
        &h,
        "transit/decrypt/aes256_gcm96",
        json!({"ciphertext": "abc"}),
        400,
        "invalid ciphertext: no prefix",
    )
    .await;
    fails(
        &h,
        "transit/decrypt/missing",
        json!({"ciphertext": "vault:v1:AAAA"}),
        400,
        "encryption key not found",
    )
    .await;
}

#[tokio::test]
async fn derived_convergent_and_upserted_keys() {
    let (_s, h) = mounted().await;
    ok(&h, "transit/keys/d", json!({"derived": true})).await;
    let pt = b64(b"account 42");
    let (ctx_a, ctx_b) = (b64(b"user-a"), b64(b"user-b"));
    fails(
        &h,
        "transit/encrypt/d",
        json!({"plaintext": pt}),
        400,
        "missing 'context'",
    )
    .await;
    let ct = ok(
        &h,
        "transit/encrypt/d",
        json!({"plaintext": pt, "context": ctx_a}),
    )
    .await["ciphertext"]
        .clone();
    assert_eq!(
        ok(
            &h,
            "transit/decrypt/d",
            json!({"ciphertext": ct, "context": ctx_a})
        )
        .await["plaintext"],
        pt
    );
    fails(
        &h,
        "transit/decrypt/d",
        json!({"ciphertext": ct, "context": ctx_b}),
        400,
        "message authentication failed",
    )
    .await;
    let info = h.get("transit/keys/d").await.json()["data"].clone();
    assert_eq!(info["derived"], true);
    assert_eq!(info["kdf"], "hkdf_sha256");

    fails(
        &h,
        "transit/keys/c0",
        json!({"convergent_encryption": true}),
        400,
        "requires derivation",
    )
    .await;
    ok(
        &h,
        "transit/keys/c",
        json!({"derived": true, "convergent_encryption": true}),
    )
    .await;
    let a = ok(
        &h,
        "transit/encrypt/c",
        json!({"plaintext": pt, "context": ctx_a}),
    )
    .await["ciphertext"]
        .clone();
    let b = ok(
        &h,
        "transit/encrypt/c",
        json!({"plaintext": pt, "context": ctx_a}),
    )
    .await["ciphertext"]
        .clone();
    let c = ok(
        &h,
        "transit/encrypt/c",
        json!({"plaintext": pt, "context": ctx_b}),
    )
    .await["ciphertext"]
        .clone();
    assert_eq!(
        a, b,
        "convergent: same plaintext and context give the same ciphertext"
    );
    assert_ne!(a, c);
    assert_eq!(
        ok(
            &h,
            "transit/decrypt/c",
            json!({"ciphertext": a, "context": ctx_a})
        )
        .await["plaintext"],
        pt
    );
    let plain = ok(
        &h,
        "transit/encrypt/d",
        json!({"plaintext": pt, "context": ctx_a}),
    )
    .await["ciphertext"]
        .clone();
    let again = ok(
        &h,
        "transit/encrypt/d",
        json!({"plaintext": pt, "context": ctx_a}),
    )
    .await["ciphertext"]
        .clone();
    assert_ne!(
        plain, again,
        "without convergence every encryption is fresh"
    );

    // Encrypting with a key that does not exist creates it (with create capability).
    let up = ok(
        &h,
        "transit/encrypt/fresh",
        json!({"plaintext": pt, "context": ctx_a}),
    )
    .await;
    assert_eq!(up["key_version"], 1);
    let info = h.get("transit/keys/fresh").await.json()["data"].clone();
    assert_eq!(info["type"], "aes256-gcm96");
    assert_eq!(
        info["derived"], true,
        "an upsert with a context makes a derived key"
    );
    // ... unless the mount forbids it.
    assert_eq!(
        h.post("transit/config/keys", json!({"disable_upsert": true}))
            .await
            .status,
        204
    );
    assert_eq!(
        h.get("transit/config/keys").await.json()["data"]["disable_upsert"],
        true
    );
    fails(
        &h,
        "transit/encrypt/other",
        json!({"plaintext": pt}),
        400,
        "encryption key not found",
    )
    .await;

    // A token allowed to update encrypt/* may not create keys through it.
    let policy = r#"path "transit/encrypt/*" { capabilities = ["update"] }
path "transit/decrypt/*" { capabilities = ["update"] }"#;
    assert_eq!(
        h.put("sys/policies/acl/enc", json!({"policy": policy}))
            .await
            .status,
        204
    );
    assert_eq!(
        h.post("transit/config/keys", json!({"disable_upsert": false}))
            .await
            .status,
        204
    );
    let t = h
        .post("auth/token/create", json!({"policies": ["enc"]}))
        .await
        .json()["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let app = Http::new(&h.base, Some(&t));
    let r = app
        .post(
            "transit/encrypt/d",
            json!({"plaintext": pt, "context": ctx_a}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .post("transit/encrypt/brand-new", json!({"plaintext": pt}))
        .await;
    assert_eq!(r.status, 403, "creating a key needs create: {}", r.text);
}

#[tokio::test]
async fn batch_items_fail_alone_with_their_references() {
    let (_s, h) = mounted().await;
    ok(&h, "transit/keys/k", json!({})).await;
    let r = h
        .post(
            "transit/encrypt/k",
            json!({"batch_input": [
                {"plaintext": b64(b"one"), "reference": "a"},
                {"plaintext": "!!not base64", "reference": "b"},
                {"plaintext": b64(b"three")},
            ]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let body = r.json();
    assert!(
        body.get("errors").is_none(),
        "the normal body, not an error list: {body}"
    );
    let items = body["data"]["batch_results"].as_array().unwrap().clone();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["reference"], "a");
    assert!(
        items[0]["ciphertext"]
            .as_str()
            .unwrap()
            .starts_with("vault:v1:")
    );
    assert_eq!(items[1]["reference"], "b");
    assert!(
        items[1]["error"].as_str().unwrap().contains("base64"),
        "{}",
        items[1]
    );
    assert_eq!(items[2]["reference"], "");
    // The same with a partial-failure code, then a clean batch decrypt.
    let r = h
        .post(
            "transit/encrypt/k",
            json!({"partial_failure_response_code": 207, "batch_input": [{"plaintext": b64(b"x")}, {"plaintext": "!"}]}),
        )
        .await;
    assert_eq!(r.status, 207, "{}", r.text);
    let dec = ok(
        &h,
        "transit/decrypt/k",
        json!({"batch_input": [{"ciphertext": items[0]["ciphertext"], "reference": "a"}, {"ciphertext": items[2]["ciphertext"]}]}),
    )
    .await;
    assert_eq!(dec["batch_results"][0]["plaintext"], b64(b"one"));
    assert_eq!(dec["batch_results"][0]["reference"], "a");
    assert_eq!(dec["batch_results"][1]["plaintext"], b64(b"three"));
    let r = h
        .post(
            "transit/decrypt/k",
            json!({"batch_input": [{"ciphertext": "nope"}]}),
        )
        .await;
    assert_eq!(r.status, 400);
    let item = &r.json()["data"]["batch_results"][0];
    assert_eq!(item["plaintext"], "");
    assert_eq!(item["error"], "invalid ciphertext: no prefix");
    // Batch rewrap moves every item to the latest version.
    ok(&h, "transit/keys/k/rotate", json!({})).await;
    let rw = ok(
        &h,
        "transit/rewrap/k",
        json!({"batch_input": [{"ciphertext": items[0]["ciphertext"]}]}),
    )
    .await;
    assert!(
        rw["batch_results"][0]["ciphertext"]
            .as_str()
            .unwrap()
            .starts_with("vault:v2:")
    );
}

#[tokio::test]
async fn signatures_for_every_asymmetric_type() {
    let (_s, h) = mounted().await;
    let input = b64(b"release v1.2.3");
    let other = b64(b"release v1.2.4");
    let cases: Vec<(&str, Vec<Value>)> = vec![
        ("ed25519", vec![json!({})]),
        (
            "ecdsa-p256",
            vec![
                json!({}),
                json!({"marshaling_algorithm": "jws"}),
                json!({"hash_algorithm": "sha2-512"}),
            ],
        ),
        (
            "ecdsa-p384",
            vec![
                json!({"hash_algorithm": "sha2-384"}),
                json!({"marshaling_algorithm": "jws", "hash_algorithm": "sha3-384"}),
            ],
        ),
        (
            "rsa-2048",
            vec![
                json!({}),
                json!({"signature_algorithm": "pkcs1v15"}),
                json!({"signature_algorithm": "pss", "salt_length": "hash", "hash_algorithm": "sha2-512"}),
                json!({"signature_algorithm": "pss", "salt_length": "20"}),
            ],
        ),
    ];
    for (kt, variants) in cases {
        let name = kt.replace('-', "_");
        let info = ok(&h, &format!("transit/keys/{name}"), json!({"type": kt})).await;
        let public = info["keys"]["1"]["public_key"].as_str().unwrap();
        assert!(!public.is_empty(), "{kt}: {info}");
        assert!(info["supports_signing"].as_bool().unwrap());
        for opts in variants {
            let mut body = opts.clone();
            body["input"] = json!(input);
            let sig = ok(&h, &format!("transit/sign/{name}"), body.clone()).await;
            let signature = sig["signature"].as_str().unwrap().to_owned();
            assert!(
                signature.starts_with("vault:v1:"),
                "{kt} {opts}: {signature}"
            );
            assert_eq!(sig["key_version"], 1);
            let mut check = opts.clone();
            check["input"] = json!(input);
            check["signature"] = json!(signature);
            assert_eq!(
                ok(&h, &format!("transit/verify/{name}"), check.clone()).await["valid"],
                true,
                "{kt} {opts}"
            );
            check["input"] = json!(other);
            assert_eq!(
                ok(&h, &format!("transit/verify/{name}"), check).await["valid"],
                false,
                "{kt} {opts}"
            );
        }
        // Hash algorithm in the path, as Vault's sign/:name/:algorithm.
        if kt != "ed25519" {
            let s = ok(
                &h,
                &format!("transit/sign/{name}/sha2-384"),
                json!({"input": input}),
            )
            .await;
            let v = ok(
                &h,
                &format!("transit/verify/{name}/sha2-384"),
                json!({"input": input, "signature": s["signature"]}),
            )
            .await;
            assert_eq!(v["valid"], true, "{kt}");
        }
    }
    fails(
        &h,
        "transit/encrypt/ed25519",
        json!({"plaintext": input}),
        400,
        "not supported for key type ed25519",
    )
    .await;
    // RSA keys also encrypt (OAEP).
    let ct =
        ok(&h, "transit/encrypt/rsa_2048", json!({"plaintext": input})).await["ciphertext"].clone();
    assert_eq!(
        ok(&h, "transit/decrypt/rsa_2048", json!({"ciphertext": ct})).await["plaintext"],
        input
    );
    fails(
        &h,
        "transit/sign/aes",
        json!({"input": input}),
        400,
        "not found",
    )
    .await;
    ok(&h, "transit/keys/aes", json!({})).await;
    fails(
        &h,
        "transit/sign/aes",
        json!({"input": input}),
        400,
        "does not support signing",
    )
    .await;
    // A derived ed25519 key signs per context and reports the derived public key.
    ok(
        &h,
        "transit/keys/ed_derived",
        json!({"type": "ed25519", "derived": true}),
    )
    .await;
    let s = ok(
        &h,
        "transit/sign/ed_derived",
        json!({"input": input, "context": b64(b"ctx")}),
    )
    .await;
    assert!(!s["publickey"].as_str().unwrap().is_empty());
    let v = ok(
        &h,
        "transit/verify/ed_derived",
        json!({"input": input, "context": b64(b"ctx"), "signature": s["signature"]}),
    )
    .await;
    assert_eq!(v["valid"], true);
    let v = ok(
        &h,
        "transit/verify/ed_derived",
        json!({"input": input, "context": b64(b"other"), "signature": s["signature"]}),
    )
    .await;
    assert_eq!(v["valid"], false);
}

#[tokio::test]
async fn rfc8032_vector_through_restore() {
    // RFC 8032 section 7.1, test 1: the empty message under a known seed.
    let (_s, h) = mounted().await;
    let seed =
        hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap();
    let public =
        hex::decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a").unwrap();
    let want = hex::decode(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    )
    .unwrap();
    let backup = json!({
        "key": {
            "settings": {
                "name": "vector", "type": "ed25519", "derived": false, "convergent": false,
                "exportable": false, "allow_plaintext_backup": false, "deletion_allowed": false,
                "min_decryption_version": 1, "min_encryption_version": 0, "min_available_version": 0,
                "latest_version": 1, "auto_rotate_period": 0, "key_size": 0
            },
            "versions": {"1": {"created": "2026-01-01T00:00:00Z", "key": b64(&seed), "hmac_key": b64(&[7u8; 32])}}
        },
        "time": "2026-01-01T00:00:00Z"
    });
    let r = h
        .post(
            "transit/restore",
            json!({"backup": b64(backup.to_string().as_bytes())}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let info = h.get("transit/keys/vector").await.json()["data"].clone();
    assert_eq!(info["keys"]["1"]["public_key"], b64(&public));
    let sig = ok(&h, "transit/sign/vector", json!({"input": ""})).await;
    assert_eq!(sig["signature"], format!("vault:v1:{}", b64(&want)));
}

#[tokio::test]
async fn key_management_export_backup_and_tools() {
    let (_s, h) = mounted().await;
    ok(&h, "transit/keys/k", json!({})).await;
    let again = ok(&h, "transit/keys/k", json!({"type": "ed25519"})).await;
    assert_eq!(
        again["type"], "aes256-gcm96",
        "creating an existing key changes nothing"
    );
    fails(
        &h,
        "transit/keys/x",
        json!({"type": "nope"}),
        400,
        "unknown key type",
    )
    .await;
    fails(
        &h,
        "transit/keys/x",
        json!({"auto_rotate_period": "10m"}),
        400,
        "at least an hour",
    )
    .await;
    fails(
        &h,
        "transit/keys/x",
        json!({"type": "ecdsa-p256", "derived": true}),
        400,
        "derivation is not supported",
    )
    .await;
    fails(
        &h,
        "transit/keys/bad!name",
        json!({}),
        400,
        "invalid key name",
    )
    .await;
    fails(
        &h,
        "transit/keys/nope/config",
        json!({"deletion_allowed": true}),
        400,
        "no existing key named nope",
    )
    .await;

    let read = h.get("transit/keys/k").await;
    assert_eq!(read.status, 200);
    let info = read.json()["data"].clone();
    for field in [
        "name",
        "type",
        "derived",
        "deletion_allowed",
        "exportable",
        "allow_plaintext_backup",
        "min_decryption_version",
        "min_encryption_version",
        "min_available_version",
        "latest_version",
        "supports_encryption",
        "supports_decryption",
        "supports_signing",
        "supports_derivation",
        "auto_rotate_period",
        "keys",
    ] {
        assert!(info.get(field).is_some(), "{field} missing: {info}");
    }
    assert_eq!(h.get("transit/keys/absent").await.status, 404);
    let list = h.list("transit/keys").await.json();
    assert_eq!(list["data"]["keys"], json!(["k"]));

    // Deletion needs deletion_allowed.
    let r = h.delete("transit/keys/k").await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("deletion is not allowed"), "{}", r.text);
    // Export and backup need exportable (and allow_plaintext_backup).
    let r = h.get("transit/export/encryption-key/k").await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("not exportable"), "{}", r.text);
    let r = h.get("transit/backup/k").await;
    assert_eq!(r.status, 400);
    ok(&h, "transit/keys/k/config", json!({"exportable": true})).await;
    let r = h.get("transit/backup/k").await;
    assert_eq!(r.status, 400);
    assert!(
        r.text
            .contains("plaintext backup is disallowed on the policy"),
        "{}",
        r.text
    );
    let cfg = ok(
        &h,
        "transit/keys/k/config",
        json!({"allow_plaintext_backup": true, "exportable": false}),
    )
    .await;
    assert_eq!(cfg["exportable"], true, "exportable cannot be turned off");
    let exported = h.get("transit/export/encryption-key/k/latest").await.json()["data"].clone();
    assert_eq!(
        B64.decode(exported["keys"]["1"].as_str().unwrap())
            .unwrap()
            .len(),
        32
    );
    assert_eq!(exported["type"], "aes256-gcm96");
    let hk = h.get("transit/export/hmac-key/k").await.json()["data"].clone();
    assert!(hk["keys"]["1"].is_string());
    let r = h.get("transit/export/signing-key/k").await;
    assert_eq!(r.status, 400, "{}", r.text);

    let ct =
        ok(&h, "transit/encrypt/k", json!({"plaintext": b64(b"kept")})).await["ciphertext"].clone();
    let backup = h.get("transit/backup/k").await.json()["data"]["backup"].clone();
    assert!(h.get("transit/keys/k").await.json()["data"]["backup_info"]["version"] == 1);
    let r = h.post("transit/restore", json!({"backup": backup})).await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("already exists"), "{}", r.text);
    assert_eq!(
        h.post("transit/restore/copy", json!({"backup": backup}))
            .await
            .status,
        204
    );
    assert_eq!(
        ok(&h, "transit/decrypt/copy", json!({"ciphertext": ct})).await["plaintext"],
        b64(b"kept")
    );
    assert_eq!(
        h.post("transit/restore", json!({"backup": backup, "force": true}))
            .await
            .status,
        204
    );
    fails(
        &h,
        "transit/restore",
        json!({"backup": "!!"}),
        400,
        "not valid base64",
    )
    .await;

    // Trim needs min_encryption_version, and drops the versions below.
    ok(&h, "transit/keys/k/rotate", json!({})).await;
    ok(&h, "transit/keys/k/rotate", json!({})).await;
    fails(
        &h,
        "transit/keys/k/trim",
        json!({"min_available_version": 2}),
        400,
        "minimum encryption version is not set",
    )
    .await;
    fails(
        &h,
        "transit/keys/k/config",
        json!({"min_decryption_version": 3, "min_encryption_version": 2}),
        400,
        "must be greater than or equal",
    )
    .await;
    ok(
        &h,
        "transit/keys/k/config",
        json!({"min_decryption_version": 2, "min_encryption_version": 3}),
    )
    .await;
    let trimmed = ok(
        &h,
        "transit/keys/k/trim",
        json!({"min_available_version": 2}),
    )
    .await;
    assert_eq!(trimmed["min_available_version"], 2);
    let r = h.get("transit/export/encryption-key/k/1").await;
    assert_eq!(r.status, 400, "version 1 is gone: {}", r.text);

    // Deletion once allowed.
    ok(
        &h,
        "transit/keys/copy/config",
        json!({"deletion_allowed": true}),
    )
    .await;
    assert_eq!(h.delete("transit/keys/copy").await.status, 204);
    assert_eq!(h.get("transit/keys/copy").await.status, 404);

    // Data keys: the wrapped key decrypts to the plaintext key.
    let dk = ok(&h, "transit/datakey/plaintext/k", json!({"bits": 512})).await;
    assert_eq!(
        B64.decode(dk["plaintext"].as_str().unwrap()).unwrap().len(),
        64
    );
    let un = ok(
        &h,
        "transit/decrypt/k",
        json!({"ciphertext": dk["ciphertext"]}),
    )
    .await;
    assert_eq!(un["plaintext"], dk["plaintext"]);
    let wrapped = ok(&h, "transit/datakey/wrapped/k", json!({})).await;
    assert!(wrapped.get("plaintext").is_none(), "{wrapped}");
    fails(
        &h,
        "transit/datakey/plaintext/k",
        json!({"bits": 100}),
        400,
        "invalid bit length",
    )
    .await;
    fails(
        &h,
        "transit/datakey/raw/k",
        json!({}),
        400,
        "plaintext or wrapped",
    )
    .await;

    // HMAC keys and the per-version HMAC key of any key.
    ok(
        &h,
        "transit/keys/mac",
        json!({"type": "hmac", "key_size": 64}),
    )
    .await;
    fails(
        &h,
        "transit/keys/mac2",
        json!({"type": "hmac", "key_size": 8}),
        400,
        "between 32 and 512",
    )
    .await;
    for name in ["mac", "k"] {
        let m = ok(
            &h,
            &format!("transit/hmac/{name}/sha2-512"),
            json!({"input": b64(b"msg")}),
        )
        .await;
        let mac = m["hmac"].as_str().unwrap().to_owned();
        assert!(mac.starts_with("vault:v"), "{mac}");
        let v = ok(
            &h,
            &format!("transit/verify/{name}/sha2-512"),
            json!({"input": b64(b"msg"), "hmac": mac}),
        )
        .await;
        assert_eq!(v["valid"], true);
        let v = ok(
            &h,
            &format!("transit/verify/{name}"),
            json!({"input": b64(b"msg"), "hmac": mac}),
        )
        .await;
        assert_eq!(v["valid"], false, "a different algorithm does not verify");
    }
    fails(
        &h,
        "transit/verify/k",
        json!({"input": b64(b"msg")}),
        400,
        "neither a 'signature' nor an 'hmac'",
    )
    .await;

    // Hash and random.
    let sum = ok(&h, "transit/hash/sha2-256", json!({"input": b64(b"abc")})).await;
    assert_eq!(
        sum["sum"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let rnd = ok(&h, "transit/random/16", json!({"format": "hex"})).await;
    assert_eq!(rnd["random_bytes"].as_str().unwrap().len(), 32);

    // Reads never carry private or symmetric material.
    let all = h.get("transit/keys/k").await.text;
    let exported_key = h.get("transit/export/encryption-key/k/latest").await.json()["data"]["keys"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!all.contains(&exported_key));
}
