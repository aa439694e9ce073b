//! The change log between HA nodes: the active node answers its standbys'
//! long polls on the cluster listener, and each standby follows the active
//! node's log to keep the copy it serves reads from coherent.

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
/// How long the active node holds a poll with nothing new (a heartbeat).
const HOLD: Duration = Duration::from_secs(1);
/// A poll that takes longer than this means the active node is gone.
const POLL_TIMEOUT: Duration = Duration::from_secs(4);

/// The active node's side: the keys written after `after` of term `epoch`.
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
    match st.core.changes_after(epoch, after, HOLD).await {
        Ok(batch) => match serde_json::to_value(&batch) {
            Ok(v) => encode::json(200, &v),
            Err(e) => encode::logical_error(&LogicalError::Internal(e.to_string())),
        },
        Err(e) => encode::logical_error(&e),
    }
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
        let polled = tokio::select! {
            r = poll(&core, &client, &leader.cluster_addr, epoch, after) => r,
            // A new leader (or this node leading) changes what to follow.
            _ = roles.changed() => continue,
        };
        let applied = match polled {
            Ok(batch) => {
                let next = (leader.node_id.clone(), batch.epoch, batch.head);
                core.follow_apply(batch).await.map(|()| next)
            }
            Err(e) => Err(e),
        };
        match applied {
            Ok(next) => at = Some(next),
            Err(e) => {
                if at.take().is_some() {
                    tracing::warn!(error = %e, "HA: cannot follow the active node; forwarding every request until it can");
                }
                core.follow_stop();
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

async fn poll(
    core: &Core,
    client: &reqwest::Client,
    cluster_addr: &str,
    epoch: i64,
    after: u64,
) -> Result<ChangeBatch, LogicalError> {
    let target = format!("{CHANGES_PATH}?epoch={epoch}&after={after}");
    let signature = core.sign_forwarded("GET", &target).await?;
    let url = format!("{}{target}", cluster_addr.trim_end_matches('/'));
    let unavailable = |e: String| LogicalError::Unavailable(e);
    let resp = client
        .get(&url)
        .header(forward::FORWARD_HEADER, signature)
        .timeout(POLL_TIMEOUT)
        .send()
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(unavailable(format!(
            "the active node answered {}",
            resp.status()
        )));
    }
    let body = resp.bytes().await.map_err(|e| unavailable(e.to_string()))?;
    serde_json::from_slice(&body).map_err(|e| unavailable(e.to_string()))
}
