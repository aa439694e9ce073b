//! The agent's ear on the server: a server-sent events stream of
//! `sys/events/subscribe/*`, turned into "these paths changed" for the
//! template runner. Reconnects with `Last-Event-ID`; a "missed" notice or a
//! stream that cannot resume means "re-read everything". A server without
//! events (Vault, OpenBao: 404) or a token without access (403) leaves the
//! agent polling at `static_secret_render_interval`, as Vault's does.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;

use crate::session::Credentials;

/// Changes waiting for the runner: paths and lease ids, or "everything".
#[derive(Default)]
pub struct Changes {
    keys: std::sync::Mutex<BTreeSet<String>>,
    all: AtomicBool,
    pub notify: Notify,
}

impl Changes {
    fn note(&self, keys: impl IntoIterator<Item = String>) {
        if let Ok(mut k) = self.keys.lock() {
            k.extend(keys);
        }
        self.notify.notify_one();
    }

    fn note_all(&self) {
        self.all.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Takes what changed: (everything?, paths and lease ids).
    pub fn take(&self) -> (bool, BTreeSet<String>) {
        let all = self.all.swap(false, Ordering::AcqRel);
        let keys = self
            .keys
            .lock()
            .map(|mut k| std::mem::take(&mut *k))
            .unwrap_or_default();
        (all, keys)
    }
}

/// What one event changed: its path, data path and lease id.
fn keys_of(event: &Value) -> Vec<String> {
    let md = &event["data"]["event"]["metadata"];
    ["path", "data_path", "lease_id"]
        .iter()
        .filter_map(|k| md[*k].as_str().map(str::to_owned))
        .collect()
}

/// Listens for as long as the agent runs.
pub async fn listen(creds: Arc<Credentials>, changes: Arc<Changes>) {
    let mut last_id: Option<String> = None;
    let mut backoff = Duration::from_millis(250);
    let mut warned = false;
    loop {
        match stream_once(&creds, &changes, &mut last_id).await {
            Ok(()) => backoff = Duration::from_millis(250),
            Err(Stop::Unsupported(why)) => {
                if !warned {
                    tracing::info!(
                        "change events unavailable ({why}); templates are re-read on their schedule"
                    );
                    warned = true;
                }
                backoff = Duration::from_secs(60);
            }
            Err(Stop::Broken(why)) => {
                tracing::debug!(error = %why, "event stream interrupted; reconnecting");
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

enum Stop {
    /// Not there, or not allowed: try again much later.
    Unsupported(String),
    /// Broken: reconnect soon.
    Broken(String),
}

async fn stream_once(
    creds: &Credentials,
    changes: &Changes,
    last_id: &mut Option<String>,
) -> Result<(), Stop> {
    let client = creds.client().await.map_err(Stop::Broken)?;
    let url = format!("{}/v1/sys/events/subscribe/*?json=true", client.address());
    let mut rb = client
        .http()
        .get(url)
        .header("Accept", "text/event-stream")
        // A stream: no overall deadline (the client's default is 60 s).
        .timeout(Duration::from_secs(365 * 24 * 3600));
    if let Some(t) = client.token() {
        rb = rb.header("X-Vault-Token", t);
    }
    if let Some(id) = last_id.as_deref() {
        rb = rb.header("Last-Event-ID", id);
    }
    let mut resp = rb
        .send()
        .await
        .map_err(|e| Stop::Broken(coffer_client::with_causes(&e)))?;
    match resp.status().as_u16() {
        200 => {}
        403 => {
            return Err(Stop::Unsupported(
                "the agent's token may not read sys/events/subscribe/*; grant it for instant updates".into(),
            ));
        }
        404 | 405 => return Err(Stop::Unsupported("the server has no sys/events".into())),
        s => return Err(Stop::Broken(format!("subscribe answered {s}"))),
    }
    let resumed = last_id.is_some();
    if !resumed {
        // Anything may have changed before the stream began.
        changes.note_all();
    }
    let mut buf = String::new();
    loop {
        // Keep-alives come every 15 s: silence means a dead connection.
        let chunk = tokio::time::timeout(Duration::from_secs(45), resp.chunk())
            .await
            .map_err(|_| Stop::Broken("no keep-alive in 45 s".into()))?
            .map_err(|e| Stop::Broken(coffer_client::with_causes(&e)))?;
        let Some(chunk) = chunk else {
            return Ok(());
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        // Events are small: a frame this big is not one (bounded memory).
        if buf.len() > 1 << 20 {
            return Err(Stop::Broken("an event frame over 1 MiB".into()));
        }
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let (mut event, mut data) = ("message", None);
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    *last_id = Some(v.to_owned());
                } else if line == "event: missed" {
                    event = "missed";
                } else if line == "event: end" {
                    event = "end";
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str::<Value>(v).ok();
                }
            }
            match (event, data) {
                ("missed", _) => changes.note_all(),
                // The token died: the session logs in again, then we resubscribe.
                ("end", _) => {
                    *last_id = None;
                    if let Err(e) = creds.refresh().await {
                        tracing::warn!(error = %e, "logging in again after the event stream ended");
                    }
                    return Err(Stop::Broken("the server ended the stream".into()));
                }
                (_, Some(ev)) => changes.note(keys_of(&ev)),
                _ => {}
            }
        }
    }
}
