//! Change events: `sys/events/subscribe/<type>` over WebSocket (Vault
//! Enterprise's form), server-sent events and long poll. Events name paths
//! and versions, never values; a subscriber sees only what its token may
//! read, checked event by event; revoking the token ends the stream; a
//! subscriber that fell behind is told it missed events.

mod common;

use std::time::Duration;

use common::{Http, Server};
use serde_json::{Value, json};

/// A token with `policy` (written under `name`).
async fn token_with(h: &Http, name: &str, policy: &str) -> String {
    let r = h
        .put(
            &format!("sys/policies/acl/{name}"),
            json!({ "policy": policy }),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = h
        .post(
            "auth/token/create",
            json!({"policies": [name], "ttl": "1h"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned()
}

const APP_READER: &str = r#"
path "sys/events/subscribe/*" { capabilities = ["read"] }
path "secret/data/app/*" { capabilities = ["read"] }
"#;

/// Reads server-sent events from a streaming response.
struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

impl SseReader {
    async fn open(base: &str, token: &str, event_type: &str, last_id: Option<&str>) -> SseReader {
        let mut rb = reqwest::Client::new()
            .get(format!(
                "{base}/v1/sys/events/subscribe/{event_type}?json=true"
            ))
            .header("X-Vault-Token", token)
            .header("Accept", "text/event-stream");
        if let Some(id) = last_id {
            rb = rb.header("Last-Event-ID", id);
        }
        let resp = rb.send().await.expect("subscribe");
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"].to_str().ok(),
            Some("text/event-stream")
        );
        SseReader {
            resp,
            buf: String::new(),
        }
    }

    /// The next frame with data (comments skipped): (event name, id, data).
    async fn next(&mut self) -> Option<(String, String, Value)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = ("message".to_owned(), String::new(), None);
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        id = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(v).expect("json data"));
                    }
                }
                if let Some(d) = data {
                    return Some((event, id, d));
                }
                continue;
            }
            if self.buf.len() > 1 << 20 {
                panic!("no complete frame in 1 MiB");
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .expect("an event within 20 s")
                .expect("stream");
            self.buf
                .push_str(std::str::from_utf8(&chunk?).expect("utf-8"));
        }
    }
}

#[tokio::test]
async fn subscribers_see_only_what_their_token_may_read_and_never_values() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    let app = token_with(&root, "app-reader", APP_READER).await;
    let mut sse = SseReader::open(&s.addr, &app, "kv*", None).await;

    // Not readable by the subscriber: never delivered.
    let r = root
        .post(
            "secret/data/other/db",
            json!({"data": {"password": "hidden-other-1"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = root
        .post(
            "secret/data/app/db",
            json!({"data": {"password": "s3cret-value-1"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (event, _, ev) = sse.next().await.expect("event");
    assert_eq!(event, "message");
    assert_eq!(ev["type"], "kv-v2/data-write");
    assert_eq!(ev["specversion"], "1.0");
    let md = &ev["data"]["event"]["metadata"];
    assert_eq!(md["path"], "secret/data/app/db");
    assert_eq!(md["data_path"], "secret/data/app/db");
    assert_eq!(md["current_version"], "1");
    assert_eq!(md["operation"], "data-write");
    assert_eq!(ev["data"]["plugin_info"]["mount_path"], "secret/");
    assert_eq!(ev["data"]["plugin_info"]["plugin"], "kv");
    assert!(!ev.to_string().contains("s3cret"), "{ev}");

    // Metadata and deletes of a readable key arrive, in order, with versions.
    root.post(
        "secret/data/app/db",
        json!({"data": {"password": "s3cret-value-2"}}),
    )
    .await;
    root.post("secret/metadata/app/db", json!({"max_versions": 5}))
        .await;
    root.delete("secret/data/app/db").await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (_, _, ev) = sse.next().await.expect("event");
        seen.push((
            ev["type"].as_str().unwrap_or("").to_owned(),
            ev["data"]["event"]["metadata"]["current_version"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        ));
    }
    let want: Vec<(String, String)> = [
        ("kv-v2/data-write", "2"),
        ("kv-v2/metadata-write", "2"),
        ("kv-v2/data-delete", "2"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
    .collect();
    assert_eq!(seen, want);

    // The policy narrows: the next event about app/ is no longer delivered,
    // the subscription itself stays (it may still subscribe).
    let r = root
        .put(
            "sys/policies/acl/app-reader",
            json!({"policy": "path \"sys/events/subscribe/*\" { capabilities = [\"read\"] }\npath \"secret/data/app/public\" { capabilities = [\"read\"] }"}),
        )
        .await;
    assert_eq!(r.status, 204);
    root.post("secret/data/app/db", json!({"data": {"password": "x"}}))
        .await;
    root.post("secret/data/app/public", json!({"data": {"motd": "hi"}}))
        .await;
    let (_, _, ev) = sse.next().await.expect("event");
    assert_eq!(
        ev["data"]["event"]["metadata"]["path"],
        "secret/data/app/public"
    );

    // Revoking the token ends the stream with a reason.
    let r = root
        .post("auth/token/revoke", json!({ "token": app }))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let (event, _, data) = sse.next().await.expect("end frame");
    assert_eq!(event, "end");
    assert!(
        data["reason"].as_str().unwrap_or("").contains("revoked"),
        "{data}"
    );
    assert!(
        sse.next().await.is_none(),
        "the stream closes after its end"
    );
}

#[tokio::test]
async fn subscribing_needs_read_on_the_subscription_path_and_is_audited_like_any_request() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    let no_sub = token_with(
        &root,
        "kv-only",
        r#"path "secret/*" { capabilities = ["read"] }"#,
    )
    .await;
    let r = s.http(Some(&no_sub)).get("sys/events/subscribe/kv*").await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = s.http(None).get("sys/events/subscribe/kv*").await;
    assert_eq!(r.status, 403, "{}", r.text);
    // A filter expression is refused with a reason, not ignored.
    let r = root
        .get("sys/events/subscribe/kv*?filter=data_path%3D%3Dx")
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("filter"), "{}", r.text);
}

#[tokio::test]
async fn a_long_poll_resumes_from_its_cursor_and_reports_a_lost_one() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    // Nothing yet: the poll waits, then answers with an empty list and a cursor.
    let r = root.get("sys/events/subscribe/kv-v2/*?wait=1s").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let first = r.json();
    assert_eq!(first["events"], json!([]));
    let cursor = first["cursor"].as_str().expect("cursor").to_owned();

    for i in 0..3 {
        root.post("secret/data/poll", json!({"data": {"n": i}}))
            .await;
    }
    let r = root
        .get(&format!("sys/events/subscribe/kv-v2/*?after={cursor}"))
        .await;
    let got = r.json();
    let versions: Vec<&str> = got["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["data"]["event"]["metadata"]["current_version"].as_str())
        .collect();
    assert_eq!(versions, ["1", "2", "3"]);
    assert!(got.get("missed").is_none());
    // Resuming from the newest cursor finds nothing new.
    let again = got["cursor"].as_str().expect("cursor");
    let r = root
        .get(&format!(
            "sys/events/subscribe/kv-v2/*?after={again}&wait=0s"
        ))
        .await;
    assert_eq!(r.json()["events"], json!([]));
    // A cursor from another run of the server: told events may be missed.
    let r = root
        .get("sys/events/subscribe/kv-v2/*?after=0badf00d-12&wait=0s")
        .await;
    assert_eq!(r.json()["missed"], json!(0), "{}", r.text);
}

#[tokio::test]
async fn server_sent_events_resume_after_last_event_id() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    let mut sse = SseReader::open(&s.addr, "root", "kv-v2/data-write", None).await;
    root.post("secret/data/r", json!({"data": {"n": 1}})).await;
    let (_, id, _) = sse.next().await.expect("first");
    drop(sse);
    // Written while disconnected: delivered after reconnecting.
    root.post("secret/data/r", json!({"data": {"n": 2}})).await;
    root.post("secret/data/r", json!({"data": {"n": 3}})).await;
    let mut sse = SseReader::open(&s.addr, "root", "kv-v2/data-write", Some(&id)).await;
    for want in ["2", "3"] {
        let (_, _, ev) = sse.next().await.expect("event");
        assert_eq!(ev["data"]["event"]["metadata"]["current_version"], want);
    }
}

#[tokio::test]
async fn websocket_subscribers_get_vaults_json_events() {
    use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};
    let s = Server::dev();
    let root = s.http(Some("root"));
    let ws_url = format!(
        "{}/v1/sys/events/subscribe/kv*?json=true",
        s.addr.replacen("http", "ws", 1)
    );
    let mut req = ws_url.into_client_request().expect("request");
    req.headers_mut()
        .insert("X-Vault-Token", "root".parse().expect("header"));
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket handshake");
    assert_eq!(resp.status(), 101);
    root.post("kv1-events/x", json!({})).await; // no such mount: nothing
    let r = root.post("sys/mounts/kv1", json!({"type": "kv"})).await;
    assert_eq!(r.status, 204, "{}", r.text);
    root.post("kv1/app", json!({"token": "abc"})).await;
    root.delete("kv1/app").await;
    let mut types = Vec::new();
    while types.len() < 2 {
        let msg = tokio::time::timeout(Duration::from_secs(20), futures_next(&mut ws))
            .await
            .expect("message in time")
            .expect("message");
        if let Message::Text(t) = msg {
            let ev: Value = serde_json::from_str(&t).expect("json");
            assert_eq!(ev["data"]["event"]["metadata"]["path"], "kv1/app");
            types.push(ev["type"].as_str().unwrap_or("").to_owned());
        }
    }
    assert_eq!(types, ["kv-v1/write", "kv-v1/delete"]);
}

async fn futures_next<S>(ws: &mut S) -> Option<tokio_tungstenite::tungstenite::Message>
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;
    ws.next().await.and_then(Result::ok)
}

#[tokio::test]
async fn transit_rotations_are_events() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    assert_eq!(
        root.post("sys/mounts/transit", json!({"type": "transit"}))
            .await
            .status,
        204
    );
    let r = root.post("transit/keys/k", json!({})).await;
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    let r = root.get("sys/events/subscribe/transit/*?wait=0s").await;
    let cursor = r.json()["cursor"].as_str().expect("cursor").to_owned();
    let r = root.post("transit/keys/k/rotate", json!({})).await;
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    let r = root
        .get(&format!("sys/events/subscribe/transit/*?after={cursor}"))
        .await;
    let ev = &r.json()["events"][0];
    assert_eq!(ev["type"], "transit/rotate");
    assert_eq!(
        ev["data"]["event"]["metadata"]["data_path"],
        "transit/keys/k"
    );
    assert_eq!(ev["data"]["event"]["metadata"]["name"], "k");
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_never_slows_writers_and_is_told_what_it_missed() {
    let s = Server::dev();
    let root = s.http(Some("root"));
    assert_eq!(
        root.post("sys/mounts/flood", json!({"type": "kv"}))
            .await
            .status,
        204
    );
    // One subscriber holds a stream it never reads; another only remembers
    // where it was.
    let _stalled = SseReader::open(&s.addr, "root", "kv-v1/*", None).await;
    let r = root.get("sys/events/subscribe/kv-v1/*?wait=0s").await;
    let cursor = r.json()["cursor"].as_str().expect("cursor").to_owned();
    let total = coffer_core::events::RING_CAPACITY + 500;
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..8 {
        let h = root.clone();
        tasks.spawn(async move {
            for i in (w..total).step_by(8) {
                let r = h.post(&format!("flood/k{}", i % 50), json!({"n": i})).await;
                assert_eq!(r.status, 204, "{}", r.text);
            }
        });
    }
    let all = async {
        while let Some(r) = tasks.join_next().await {
            r.expect("writer");
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("writers finish although a subscriber reads nothing");
    // The ring kept the newest events: the rest are reported as missed,
    // then delivery goes on from the oldest event still kept.
    let r = root
        .get(&format!("sys/events/subscribe/kv-v1/*?after={cursor}"))
        .await;
    let got = r.json();
    assert_eq!(
        got["missed"],
        json!(500),
        "{}",
        &r.text[..200.min(r.text.len())]
    );
    assert_eq!(got["events"].as_array().map(Vec::len), Some(100));
}
