//! The ceiling for benchmarks: a bare axum endpoint answering the same JSON a
//! KV read returns, with no barrier, token or routing work at all.
//!
//! `cargo run --release -p coffer-http --example bare_axum -- 127.0.0.1:0`

use axum::Router;
use axum::http::header;
use axum::routing::get;

const BODY: &str = "{\"auth\":null,\"data\":{\"password\":\"bench-secret-value\",\"user\":\"bench\"},\"lease_duration\":2764800,\"lease_id\":\"\",\"renewable\":false,\"request_id\":\"00000000-0000-0000-0000-000000000000\",\"warnings\":null,\"wrap_info\":null}\n";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let app = Router::new().route(
        "/v1/secret/bench",
        get(|| async { ([(header::CONTENT_TYPE, "application/json")], BODY) }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("Listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
