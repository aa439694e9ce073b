//! Bad input gets a clear error and the right status, and the server keeps serving.

mod common;

use common::{Server, raw_http};
use serde_json::json;

/// Method, path, body, expected status, text the error must contain.
type Case = (
    &'static str,
    &'static str,
    Option<&'static [u8]>,
    u16,
    &'static str,
);

#[tokio::test]
async fn malformed_and_hostile_requests_are_refused_cleanly() {
    let s = Server::dev_kv_v1();
    let h = s.http(Some("root"));
    let cases: [Case; 7] = [
        (
            "POST",
            "secret/a",
            Some(b"{not json"),
            400,
            "failed to parse JSON",
        ),
        ("POST", "secret/a", Some(b"[1,2]"), 400, "JSON object"),
        ("PATCH", "secret/a", Some(b"{}"), 400, "merge-patch"),
        ("OPTIONS", "secret/a", None, 405, ""),
        ("GET", "nomount/a", None, 404, "unsupported path"),
        (
            "POST",
            "sys/key-status",
            Some(b"{}"),
            405,
            "unsupported operation",
        ),
        (
            "PUT",
            "sys/init",
            Some(br#"{"secret_shares": "many"}"#),
            400,
            "secret_shares",
        ),
    ];
    for (method, path, body, status, needle) in cases {
        let r = h.send(method, path, body.map(<[u8]>::to_vec), &[]).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text);
        assert!(
            r.text.contains(needle),
            "{method} {path}: {} lacks {needle}",
            r.text
        );
        if status != 405 {
            assert_eq!(
                r.content_type.as_deref(),
                Some("application/json"),
                "{method} {path}"
            );
        }
    }
    let wrong_type = h
        .send(
            "PATCH",
            "secret/a",
            Some(b"{}".to_vec()),
            &[("Content-Type", "application/json")],
        )
        .await;
    assert_eq!(wrong_type.status, 415, "{}", wrong_type.text);
    // Still serving.
    assert_eq!(h.post("secret/ok", json!({"k": "v"})).await.status, 204);
    assert_eq!(h.get("secret/ok").await.status, 200);
}

#[tokio::test]
async fn traversal_is_refused_even_when_encoded() {
    let s = Server::dev_kv_v1();
    for path in [
        "/v1/secret/../sys/seal",
        "/v1/secret/%2e%2e/sys/seal",
        "/v1/secret/./a",
        "/v1/secret/%2E/a",
    ] {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nX-Vault-Token: root\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
        );
        let (status, body) = raw_http(&s.addr, req.into_bytes()).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("invalid path"), "{path}: {body}");
    }
    // Not sealed by any of them.
    assert_eq!(s.http(None).get("sys/health").await.status, 200);
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let s = Server::dev_kv_v1();
    let h = s.http(Some("root"));
    // Declared too large: refused before the body is read.
    let req = format!(
        "POST /v1/secret/big HTTP/1.1\r\nHost: x\r\nX-Vault-Token: root\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{\"v\":\"",
        33 * 1024 * 1024
    );
    let (status, body) = raw_http(&s.addr, req.into_bytes()).await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("larger than the limit"), "{body}");
    // Chunked, without a length: refused once the limit is crossed.
    let mut req = b"POST /v1/secret/big HTTP/1.1\r\nHost: x\r\nX-Vault-Token: root\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    let chunk = vec![b'x'; 1024 * 1024];
    for _ in 0..33 {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(&chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let (status, body) = raw_http(&s.addr, req).await;
    assert_eq!(status, 413, "{body}");
    // A body just under the limit is fine.
    let ok = format!("{{\"v\":\"{}\"}}", "x".repeat(1024 * 1024));
    assert_eq!(
        h.send("POST", "secret/ok", Some(ok.into_bytes()), &[])
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn keys_with_colons_and_slashes_work() {
    let s = Server::dev_kv_v1();
    let h = s.http(Some("root"));
    // hvac's own tests store `secret/http://test.com`; Vault cleans `//` to `/`.
    assert_eq!(
        h.post("secret/http://test.com", json!({"k": 1}))
            .await
            .status,
        204
    );
    assert_eq!(h.get("secret/http://test.com").await.json()["data"]["k"], 1);
    assert_eq!(
        h.list("secret/http:/").await.json()["data"]["keys"],
        json!(["test.com"])
    );
    // Percent-encoded names decode to the same key.
    assert_eq!(h.get("secret/http:%2F%2Ftest.com").await.status, 200);
}
