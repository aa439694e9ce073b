//! The change log between HA nodes: each standby holds one stream open to
//! the active node's cluster listener, on which the active node sends what
//! it wrote (newline-delimited JSON batches, an empty one each second as a
//! heartbeat); the standby applies each batch to keep the copy it serves
//! reads from coherent.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request as HttpRequest;
use axum::response::Response;
use coffer_core::ha::HaRole;
use coffer_core::{ChangeBatch, Core, LogicalError};

use crate::{AppState, HttpOptions, encode, forward};

/// The cluster listener's path for following the log.
pub(crate) const CHANGES_PATH: &str = "/cluster/v1/changes";
/// How long the active node waits with nothing new before a heartbeat.
const HOLD: Duration = Duration::from_secs(1);
/// No batch for this long means the active node is gone (or cut off).
const SILENCE: Duration = Duration::from_secs(2);
/// The longest batch line accepted (4096 writes of long keys fit well).
const MAX_LINE: usize = 64 << 20;

/// The active node's side: the keys written after `after` of term `epoch`,
/// then batch after batch while this node stays active.
pub(crate) async fn changes(st: &AppState, req: HttpRequest<Body>) -> Response {
    let query = req.uri().query().unwrap_or_default().to_owned();
    if let Err(r) = crate::cluster_admit(st, &req).await {
        return r;
    }
    let mut epoch = 0i64;
    let mut after = 0u64;
    for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        match k {
            "epoch" => epoch = v.parse().unwrap_or(0),
            "after" => after = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    // The first batch decides the answer's status: not active, an error.
    let first = match st.core.changes_after(epoch, after, Duration::ZERO).await {
        Ok(b) => b,
        Err(e) => return encode::logical_error(&e),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let core = st.core.clone();
    tokio::spawn(async move {
        let mut batch = first;
        loop {
            let (epoch, head) = (batch.epoch, batch.head);
            let Ok(mut line) = serde_json::to_vec(&batch) else {
                return;
            };
            line.push(b'\n');
            if tx.send(Ok(line.into())).await.is_err() {
                return; // the standby went away
            }
            batch = match core.changes_after(epoch, head, HOLD).await {
                Ok(b) => b,
                // No longer active: the stream ends, the standby moves on.
                Err(_) => return,
            };
        }
    });
    axum::http::Response::builder()
        .status(200)
        .header(axum::http::header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .unwrap_or_else(|_| encode::error(500, &["cannot build the change stream".into()]))
}

/// A standby's side: follows the active node's log while this node is a
/// standby that knows its leader. Runs until the process ends.
pub async fn follow(core: Arc<Core>, opts: HttpOptions) {
    let Some(mut roles) = core.ha_role_changes() else {
        return;
    };
    let client = match forward::client(&opts.cluster_roots) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "HA: cannot build the client for following the active node; standbys forward every request");
            return;
        }
    };
    // (leader's node id, term, index) applied.
    let mut at: Option<(String, i64, u64)> = None;
    loop {
        let role = roles.borrow_and_update().clone();
        let HaRole::Standby(Some(leader)) = role else {
            if at.take().is_some() && !matches!(role, HaRole::Active { .. }) {
                core.follow_stop();
            }
            if roles.changed().await.is_err() {
                return;
            }
            continue;
        };
        let (epoch, after) = match &at {
            Some((id, e, i)) if *id == leader.node_id => (*e, *i),
            Some(_) => {
                core.follow_stop();
                (0, 0)
            }
            None => (0, 0),
        };
        let followed = tokio::select! {
            r = stream(&core, &client, &leader.node_id, &leader.cluster_addr, (epoch, after), &mut at) => r,
            // A new leader (or this node leading) changes what to follow.
            _ = roles.changed() => continue,
        };
        let e = match followed {
            Ok(()) => LogicalError::Unavailable("the active node ended the stream".into()),
            Err(e) => e,
        };
        if at.take().is_some() {
            tracing::warn!(error = %e, "HA: stopped following the active node; forwarding every request until it follows again");
        }
        core.follow_stop();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Follows one stream from `from` until it ends or fails; `at` moves with
/// every batch applied.
async fn stream(
    core: &Core,
    client: &reqwest::Client,
    node_id: &str,
    cluster_addr: &str,
    from: (i64, u64),
    at: &mut Option<(String, i64, u64)>,
) -> Result<(), LogicalError> {
    use tokio_stream::StreamExt as _;
    let target = format!("{CHANGES_PATH}?epoch={}&after={}", from.0, from.1);
    let signature = core.sign_forwarded("GET", &target).await?;
    let url = format!("{}{target}", cluster_addr.trim_end_matches('/'));
    let unavailable = |e: String| LogicalError::Unavailable(e);
    let resp = tokio::time::timeout(
        SILENCE,
        client
            .get(&url)
            .header(forward::FORWARD_HEADER, signature)
            .send(),
    )
    .await
    .map_err(|_| unavailable("the active node did not answer".into()))?
    .map_err(|e| unavailable(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(unavailable(format!(
            "the active node answered {}",
            resp.status()
        )));
    }
    let mut chunks = resp.bytes_stream();
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let chunk = match tokio::time::timeout(SILENCE, chunks.next()).await {
            Err(_) => return Err(unavailable("the active node went silent".into())),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(unavailable(e.to_string())),
            Ok(Some(Ok(c))) => c,
        };
        pending.extend_from_slice(&chunk);
        if pending.len() > MAX_LINE && !pending.contains(&b'\n') {
            return Err(unavailable(
                "the active node sent an oversized batch".into(),
            ));
        }
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let batch: ChangeBatch =
                serde_json::from_slice(&line).map_err(|e| unavailable(e.to_string()))?;
            let next = (node_id.to_owned(), batch.epoch, batch.head);
            core.follow_apply(batch).await?;
            *at = Some(next);
        }
    }
}
