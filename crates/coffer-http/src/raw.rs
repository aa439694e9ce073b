//! The endpoints that answer bare JSON instead of the envelope:
//! init, seal-status, unseal, health and leader.

use axum::http::{HeaderMap, Method};
use axum::response::Response;
use base64::Engine;
use coffer_core::fields::Fields;
use coffer_core::{BUILD_DATE, Core, InitParams, LogicalError, SealStatus, VERSION};
use serde_json::{Value, json};

use crate::decode::{parse_body, query_map};
use crate::encode::{error, json, logical_error, no_content, strip_body};

/// A raw endpoint that still needs its body read.
pub(crate) enum BodyKind {
    Init(HeaderMap),
    Unseal(HeaderMap),
}

/// What the raw dispatcher decided.
pub(crate) enum Raw {
    Ready(Response),
    WithBody(BodyKind),
}

const RAW_PATHS: &[&str] = &[
    "sys/init",
    "sys/unseal",
    "sys/seal-status",
    "sys/health",
    "sys/leader",
];

/// Whether `path` is answered here rather than through the core pipeline.
pub(crate) fn is_raw(path: &str) -> bool {
    RAW_PATHS.contains(&path)
}

/// Handles raw endpoints; `None` means "not a raw endpoint".
pub(crate) async fn handle(
    core: &Core,
    path: &str,
    m: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Option<Raw> {
    let write = *m == Method::PUT || *m == Method::POST;
    let ready = |r| Some(Raw::Ready(r));
    match path {
        "sys/init" if *m == Method::GET => ready(match core.is_initialized().await {
            Ok(i) => json(200, &json!({ "initialized": i })),
            Err(e) => logical_error(&e),
        }),
        "sys/init" if write => Some(Raw::WithBody(BodyKind::Init(headers.clone()))),
        "sys/unseal" if write => Some(Raw::WithBody(BodyKind::Unseal(headers.clone()))),
        "sys/seal-status" if *m == Method::GET => ready(status_response(core.seal_status().await)),
        "sys/health" if *m == Method::GET || *m == Method::HEAD => {
            let r = health(core, query).await;
            ready(if *m == Method::HEAD { strip_body(r) } else { r })
        }
        // A single node has no HA; OpenBao answers exactly this then.
        // Answered sealed or not, as OpenBao without HA does (`bao status`
        // reads "HA Enabled" from it).
        "sys/leader" if *m == Method::GET => ready(json(200, &leader(core))),
        p if is_raw(p) => ready(error(405, &[])),
        _ => None,
    }
}

/// Finishes a raw endpoint whose body has been read.
pub(crate) async fn with_body(core: &Core, kind: BodyKind, body: bytes::Bytes) -> Response {
    let result = match kind {
        BodyKind::Init(h) => match parse_body(&h, &body) {
            Ok(data) => init(core, &data).await,
            Err(e) => Err(e),
        },
        BodyKind::Unseal(h) => match parse_body(&h, &body) {
            Ok(data) => unseal(core, &data).await,
            Err(e) => Err(e),
        },
    };
    result.unwrap_or_else(|e| logical_error(&e))
}

async fn init(
    core: &Core,
    data: &serde_json::Map<String, Value>,
) -> Result<Response, LogicalError> {
    let f = Fields::new(data);
    for unsupported in ["pgp_keys", "root_token_pgp_key"] {
        if f.raw(unsupported)
            .is_some_and(|v| v != &json!([]) && v != &json!(""))
        {
            return Err(LogicalError::BadRequest(format!(
                "{unsupported} is not supported: shares and the root token are returned in clear over TLS"
            )));
        }
    }
    let auto = core.seal_status().await?.recovery_seal;
    let small = |k: &str, dflt: i64| -> Result<u8, LogicalError> {
        let v = f.int(k)?.unwrap_or(dflt);
        u8::try_from(v).map_err(|_| {
            LogicalError::BadRequest(format!("{k} must be between 1 and 255, got {v}"))
        })
    };
    let params = if auto {
        if f.raw("recovery_pgp_keys")
            .is_some_and(|v| v != &json!([]) && v != &json!(""))
        {
            return Err(LogicalError::BadRequest(
                "recovery_pgp_keys is not supported: recovery shares are returned in clear over TLS"
                    .into(),
            ));
        }
        // `operator init`'s defaults; recovery_shares = 0 asks for none (as OpenBao allows).
        let recovery_shares = small("recovery_shares", 5)?;
        InitParams {
            secret_shares: 0,
            secret_threshold: 0,
            recovery_shares,
            recovery_threshold: small(
                "recovery_threshold",
                if recovery_shares == 0 { 0 } else { 3 },
            )?,
        }
    } else {
        let recovery: Vec<&str> = ["recovery_shares", "recovery_threshold", "recovery_pgp_keys"]
            .into_iter()
            .filter(|k| f.raw(k).is_some_and(|v| v != &json!(0) && v != &json!([])))
            .collect();
        if !recovery.is_empty() {
            return Err(LogicalError::BadRequest(format!(
                "parameters {} not applicable to seal type shamir",
                recovery.join(",")
            )));
        }
        InitParams {
            secret_shares: small("secret_shares", 0)?,
            secret_threshold: small("secret_threshold", 0)?,
            recovery_shares: 0,
            recovery_threshold: 0,
        }
    };
    let result = core.initialize(params).await?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let keys: Vec<String> = result
        .keys
        .iter()
        .map(|k| hex::encode(k.expose()))
        .collect();
    let keys_b64: Vec<String> = result.keys.iter().map(|k| b64.encode(k.expose())).collect();
    let mut body = json!({
        "keys": keys,
        "keys_base64": keys_b64,
        "root_token": result.root_token.expose(),
    });
    if auto {
        tracing::info!(
            recovery_shares = params.recovery_shares,
            recovery_threshold = params.recovery_threshold,
            "initialized"
        );
        let rk = &result.recovery_keys;
        body["recovery_keys"] = json!(
            rk.iter()
                .map(|k| hex::encode(k.expose()))
                .collect::<Vec<_>>()
        );
        body["recovery_keys_base64"] = json!(
            rk.iter()
                .map(|k| b64.encode(k.expose()))
                .collect::<Vec<_>>()
        );
    } else {
        tracing::info!(
            shares = params.secret_shares,
            threshold = params.secret_threshold,
            "initialized"
        );
    }
    Ok(json(200, &body))
}

async fn unseal(
    core: &Core,
    data: &serde_json::Map<String, Value>,
) -> Result<Response, LogicalError> {
    let f = Fields::new(data);
    let reset = f.bool("reset")?.unwrap_or(false);
    let key = f.str("key")?;
    let status = core.unseal_share(key.as_deref(), reset).await?;
    Ok(status_response(Ok(status)))
}

fn status_json(s: &SealStatus) -> Value {
    let mut v = json!({
        "type": s.seal_type,
        "initialized": s.initialized,
        "sealed": s.sealed,
        "t": s.t,
        "n": s.n,
        "progress": s.progress,
        "nonce": s.nonce,
        "version": VERSION,
        "build_date": BUILD_DATE,
        "migration": false,
        "recovery_seal": s.recovery_seal,
        "storage_type": s.storage_type,
    });
    if let (Some(id), Some(name)) = (&s.cluster_id, &s.cluster_name) {
        v["cluster_id"] = json!(id);
        v["cluster_name"] = json!(name);
    }
    // Not in Vault's answer: why an auto seal has not unsealed yet.
    if let Some(e) = &s.auto_unseal_error {
        v["auto_unseal_error"] = json!(e);
    }
    v
}

fn status_response(s: Result<SealStatus, LogicalError>) -> Response {
    match s {
        Ok(s) => json(200, &status_json(&s)),
        Err(e) => logical_error(&e),
    }
}

/// `sys/leader`: which node is active, as the node asked knows it.
fn leader(core: &Core) -> Value {
    let Some((is_self, leader, since)) = core.leader_view() else {
        return json!({ "ha_enabled": false });
    };
    // Go's zero time when no node is active, as Vault answers.
    let active_time = since
        .map(coffer_core::clock::rfc3339_ms)
        .filter(|t| !t.is_null())
        .unwrap_or_else(|| json!("0001-01-01T00:00:00Z"));
    json!({
        "ha_enabled": true,
        "is_self": is_self,
        "active_time": active_time,
        "leader_address": leader.as_ref().map(|l| l.api_addr.clone()).unwrap_or_default(),
        "leader_cluster_address": leader.as_ref().map(|l| l.cluster_addr.clone()).unwrap_or_default(),
        // A standby that follows the active node's writes serves reads.
        "performance_standby": !is_self && core.standby_position().is_some(),
        "performance_standby_last_remote_wal": if is_self { 0 } else { core.standby_position().unwrap_or(0) },
    })
}

/// `sys/health`, with Vault's query parameters choosing the status codes.
async fn health(core: &Core, query: Option<&str>) -> Response {
    let q = match query_map(query) {
        Ok(q) => q,
        Err(e) => return logical_error(&e),
    };
    let code = |k: &str, dflt: u16| -> Result<u16, LogicalError> {
        match q.get(k).and_then(Value::as_str) {
            None => Ok(dflt),
            Some(s) => s
                .parse::<u16>()
                .ok()
                .filter(|c| (100..600).contains(c) || *c == 0)
                .ok_or_else(|| LogicalError::BadRequest(format!("bad code for {k}: {s:?}"))),
        }
    };
    let status = match core.seal_status().await {
        Ok(s) => s,
        Err(e) => return logical_error(&e),
    };
    let standby = matches!(
        core.ha_role(),
        Some(coffer_core::ha::HaRole::Standby(_) | coffer_core::ha::HaRole::Sealed)
    ) && !status.sealed;
    let standby_ok = q
        .get("standbyok")
        .and_then(Value::as_str)
        .is_some_and(|v| coffer_core::fields::parse_bool(v).unwrap_or(false));
    let result = (|| {
        Ok::<u16, LogicalError>(if !status.initialized {
            code("uninitcode", 501)?
        } else if status.sealed {
            code("sealedcode", 503)?
        } else if standby && !standby_ok {
            code("standbycode", 429)?
        } else {
            code("activecode", 200)?
        })
    })();
    let mut status_code = match result {
        Ok(c) => c,
        Err(e) => return logical_error(&e),
    };
    if status_code == 0 {
        status_code = 200;
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let body = json!({
        "initialized": status.initialized,
        "sealed": status.sealed,
        "standby": standby,
        "performance_standby": standby && core.standby_position().is_some(),
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": now,
        "version": VERSION,
        "cluster_name": status.cluster_name,
        "cluster_id": status.cluster_id,
        "enterprise": false,
        "echo_duration_ms": 0,
        "clock_skew_ms": 0,
        "replication_primary_canary_age_ms": 0,
        "removed_from_cluster": false,
    });
    // coffer's own: whether every rotation is on time (status codes unchanged).
    let mut body = body;
    if let Some(h) = core.rotation_health() {
        body["rotation"] = json!({
            "degraded": h.degraded(),
            "failing": h.failing,
            "overdue": h.overdue,
        });
    }
    if status_code == 204 {
        return no_content();
    }
    json(status_code, &body)
}
