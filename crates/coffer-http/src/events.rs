//! `GET /v1/sys/events/subscribe/<type glob>`: the request is admitted by
//! core like any other (token, ACL, audit), then the events stream in one
//! of three forms: a WebSocket (what Vault Enterprise serves; one JSON
//! CloudEvent per text message), server-sent events (`Accept:
//! text/event-stream`, resumable with `Last-Event-ID`) or a long poll
//! (anything else: a JSON answer once events are there or `wait` passed,
//! with the cursor to pass as `after` next time).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, Request as HttpRequest, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use coffer_core::LogicalError;
use coffer_core::events::{Delivery, Subscription};
use serde_json::{Value, json};

use crate::{AppState, decode, encode};

/// The path prefix this module serves.
pub(crate) const PREFIX: &str = "sys/events/subscribe/";

/// How often an idle stream sends something, so proxies and the idle
/// timeout keep it open and a dead client is noticed.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// A long poll's default and longest wait.
const POLL_DEFAULT: Duration = Duration::from_secs(30);
const POLL_MAX: Duration = Duration::from_secs(300);

/// The most events one long-poll answer carries.
const POLL_BATCH: usize = 100;

pub(crate) async fn subscribe(st: AppState, req: HttpRequest<Body>, path: String) -> Response {
    let pattern = path[PREFIX.len()..].to_owned();
    if pattern.is_empty() {
        return encode::logical_error(&LogicalError::BadRequest(
            "missing event type: subscribe to sys/events/subscribe/<type>, such as kv-v2/data-write or kv*".into(),
        ));
    }
    let query = decode::query_map(req.uri().query()).unwrap_or_default();
    if query.contains_key("filter") {
        return encode::logical_error(&LogicalError::BadRequest(
            "the filter parameter is not supported: subscribe to a narrower event type and filter on data_path in the client".into(),
        ));
    }
    let wants_sse = accepts_event_stream(req.headers());
    let resume = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            query
                .get("after")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    let wait = match query.get("wait").and_then(Value::as_str) {
        None => POLL_DEFAULT,
        Some(w) => match coffer_core::fields::parse_duration(w) {
            Ok(secs) => Duration::from_secs(secs).min(POLL_MAX),
            Err(e) => {
                return encode::logical_error(&LogicalError::BadRequest(format!(
                    "wait must be a duration such as 30s: {e}"
                )));
            }
        },
    };
    let Some(token) = decode::token(req.headers()) else {
        return encode::logical_error(&LogicalError::PermissionDenied);
    };
    let remote = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let (mut parts, body) = req.into_parts();
    let upgrade = if is_websocket(&parts.headers) {
        match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(u) => Some(u),
            Err(rejection) => return rejection.into_response(),
        }
    } else {
        None
    };
    let req = HttpRequest::from_parts(parts, body);
    // Admission: the token must be able to read the subscription path.
    let lr = match decode::logical_request(req, path, remote, &st.opts).await {
        Ok(lr) => lr,
        Err(e) => return encode::logical_error(&e),
    };
    if let Err(e) = st.core.handle(lr).await {
        return encode::logical_error(&e);
    }
    let sub = st.core.subscribe(token, &pattern, resume.as_deref());
    match upgrade {
        Some(u) => u.on_upgrade(move |socket| websocket(socket, sub)),
        None if wants_sse => sse(sub),
        None => long_poll(sub, wait).await,
    }
}

fn is_websocket(h: &HeaderMap) -> bool {
    h.get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn accepts_event_stream(h: &HeaderMap) -> bool {
    h.get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// The notice a subscriber gets after falling behind: `missed` is how many
/// events it lost (0: unknown, its cursor came from an earlier server run).
fn missed_json(sub: &Subscription, n: u64) -> Value {
    json!({
        "specversion": "1.0",
        "id": uuid::Uuid::new_v4().to_string(),
        "source": "coffer",
        "type": "coffer/events-missed",
        "data": {"missed": n, "event_type": sub.pattern()},
        "datacontentype": "application/cloudevents",
    })
}

async fn websocket(mut socket: WebSocket, mut sub: Subscription) {
    loop {
        let next = tokio::select! {
            d = sub.next(KEEPALIVE) => d,
            incoming = socket.recv() => match incoming {
                // The client closed or the connection broke.
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            },
        };
        let msg = match next {
            None => Message::Ping(Bytes::new()),
            Some(Delivery::Event(ev)) => Message::Text(ev.to_json(sub.bus()).to_string().into()),
            Some(Delivery::Missed(n)) => Message::Text(missed_json(&sub, n).to_string().into()),
            Some(Delivery::End(why)) => {
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: 1008,
                        reason: why.into(),
                    })))
                    .await;
                return;
            }
        };
        if socket.send(msg).await.is_err() {
            return;
        }
    }
}

/// Server-sent events, written by a task into a small channel: when the
/// client reads slowly the task waits, the ring moves on, and the client
/// is told what it missed instead of slowing anyone down.
fn sse(mut sub: Subscription) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(16);
    tokio::spawn(async move {
        let hello = format!("retry: 1000\nid: {}\n\n", sub.cursor());
        if tx.send(Ok(Bytes::from(hello))).await.is_err() {
            return;
        }
        loop {
            let frame = match sub.next(KEEPALIVE).await {
                None => ": keep-alive\n\n".to_owned(),
                Some(Delivery::Event(ev)) => format!(
                    "id: {}\ndata: {}\n\n",
                    ev.cursor(sub.bus()),
                    ev.to_json(sub.bus())
                ),
                Some(Delivery::Missed(n)) => format!(
                    "id: {}\nevent: missed\ndata: {}\n\n",
                    sub.cursor(),
                    missed_json(&sub, n)
                ),
                Some(Delivery::End(why)) => {
                    let _ = tx
                        .send(Ok(Bytes::from(format!(
                            "event: end\ndata: {}\n\n",
                            json!({ "reason": why })
                        ))))
                        .await;
                    return;
                }
            };
            if tx.send(Ok(Bytes::from(frame))).await.is_err() {
                return;
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-accel-buffering", "no")
        .body(body)
        .unwrap_or_else(|_| encode::error(500, &["could not build the event stream".to_owned()]))
}

/// Waits for the first delivery (up to `wait`), then takes whatever else is
/// ready at once.
async fn long_poll(mut sub: Subscription, wait: Duration) -> Response {
    let mut events = Vec::new();
    let mut missed = None;
    let mut ended = None;
    let mut next = sub.next(wait).await;
    while let Some(d) = next {
        match d {
            Delivery::Event(ev) => events.push(ev.to_json(sub.bus())),
            Delivery::Missed(n) => missed = Some(n),
            Delivery::End(why) => {
                ended = Some(why);
                break;
            }
        }
        if events.len() >= POLL_BATCH {
            break;
        }
        next = sub.next(Duration::ZERO).await;
    }
    let mut body = json!({"events": events, "cursor": sub.cursor()});
    if let Some(n) = missed {
        body["missed"] = json!(n);
    }
    if let Some(why) = ended {
        body["ended"] = json!(why);
    }
    encode::json(200, &body)
}
