//! The ceiling for benchmarks: bare axum endpoints answering the same JSON a
//! KV v1 read (`/v1/secret/bench`) and a KV v2 read (`/v1/secret/data/bench`)
//! return, and a transit encrypt answer (`POST /v1/transit/encrypt/bench`,
//! which reads the request body and ignores it), with no barrier, token,
//! routing or cryptographic work at all.
//!
//! `cargo run --release -p coffer-http --example bare_axum -- 127.0.0.1:0`

use axum::Router;
use axum::http::header;
use axum::routing::{get, post};

const BODY: &str = "{\"auth\":null,\"data\":{\"password\":\"bench-secret-value\",\"user\":\"bench\"},\"lease_duration\":2764800,\"lease_id\":\"\",\"renewable\":false,\"request_id\":\"00000000-0000-0000-0000-000000000000\",\"warnings\":null,\"wrap_info\":null}\n";

const BODY_V2: &str = "{\"auth\":null,\"data\":{\"data\":{\"password\":\"bench-secret-value\",\"url\":\"postgres://db:5432/app\",\"user\":\"web\"},\"metadata\":{\"created_time\":\"2026-11-28T03:00:00.123456789Z\",\"custom_metadata\":null,\"deletion_time\":\"\",\"destroyed\":false,\"version\":1}},\"lease_duration\":0,\"lease_id\":\"\",\"renewable\":false,\"request_id\":\"00000000-0000-0000-0000-000000000000\",\"warnings\":null,\"wrap_info\":null}\n";

const BODY_ENCRYPT: &str = "{\"auth\":null,\"data\":{\"ciphertext\":\"vault:v1:Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFy\",\"key_version\":1},\"lease_duration\":0,\"lease_id\":\"\",\"renewable\":false,\"request_id\":\"00000000-0000-0000-0000-000000000000\",\"warnings\":null,\"wrap_info\":null}\n";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let app = Router::new()
        .route(
            "/v1/secret/bench",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], BODY) }),
        )
        .route(
            "/v1/secret/data/bench",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], BODY_V2) }),
        )
        .route(
            "/v1/transit/encrypt/bench",
            post(|_body: axum::body::Bytes| async {
                ([(header::CONTENT_TYPE, "application/json")], BODY_ENCRYPT)
            }),
        );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("Listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
