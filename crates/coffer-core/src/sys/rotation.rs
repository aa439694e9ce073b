//! `sys/rotation/status` (coffer's own) and `sys/metrics`: one place that
//! lists everything rotating on a schedule, and the counters behind alerts.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::obj;
use crate::backend::RotationStatus;
use crate::core::{Active, Core};
use crate::fields::Fields;
use crate::logical::{LogicalError, Request, Response};
use crate::mounts::MountKind;
use crate::token::{now_unix, rfc3339};

/// A scheduled rotation this late (seconds) counts as overdue: the
/// scheduler looks every few seconds, so anything later is stuck.
const OVERDUE_AFTER: i64 = 60;

/// Failing and overdue counts, as `sys/health` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RotationHealth {
    /// Rotations whose last attempt failed.
    pub failing: usize,
    /// Scheduled rotations past due.
    pub overdue: usize,
}

impl RotationHealth {
    /// Whether anything needs attention.
    pub fn degraded(&self) -> bool {
        self.failing > 0 || self.overdue > 0
    }
}

fn state(r: &RotationStatus, now: i64) -> &'static str {
    if r.consecutive_failures > 0 {
        "failing"
    } else if r.next_due.is_some_and(|d| d + OVERDUE_AFTER < now) {
        "overdue"
    } else {
        "ok"
    }
}

impl Core {
    /// Every mount's rotations, with the mount path.
    pub(crate) async fn rotations(
        &self,
        active: &Active,
    ) -> Result<Vec<(String, RotationStatus)>, LogicalError> {
        let mut out = Vec::new();
        for m in self.mounts(active, MountKind::Secret)?.iter() {
            match m.backend.rotation_status(&m.view).await {
                Ok(items) => out.extend(items.into_iter().map(|r| (m.entry.path.clone(), r))),
                Err(e) => {
                    tracing::warn!(mount = %m.entry.path, error = %e, "rotation status of a mount failed")
                }
            }
        }
        Ok(out)
    }

    /// Counts failing and overdue rotations.
    pub(crate) fn rotation_health_of(items: &[(String, RotationStatus)]) -> RotationHealth {
        let now = now_unix();
        let mut h = RotationHealth::default();
        for (_, r) in items {
            match state(r, now) {
                "failing" => h.failing += 1,
                "overdue" => h.overdue += 1,
                _ => {}
            }
        }
        h
    }

    pub(crate) async fn rotation_status_response(
        &self,
        active: &Active,
    ) -> Result<Response, LogicalError> {
        let now = now_unix();
        let items = self.rotations(active).await?;
        let health = Self::rotation_health_of(&items);
        let list: Vec<Value> = items
            .iter()
            .map(|(mount, r)| {
                json!({
                    "path": format!("{mount}{}", r.name),
                    "kind": r.kind,
                    "rotation_period": r.period,
                    "last_success": r.last_success.map_or(Value::Null, rfc3339),
                    "next_due": r.next_due.map_or(Value::Null, rfc3339),
                    "consecutive_failures": r.consecutive_failures,
                    "last_error": r.last_error,
                    "state": state(r, now),
                })
            })
            .collect();
        Ok(Response::data(obj(json!({
            "rotations": list,
            "failing": health.failing,
            "overdue": health.overdue,
            "degraded": health.degraded(),
        }))))
    }

    /// `sys/metrics`: Prometheus text with `format=prometheus`, else JSON in
    /// the shape of Vault's in-memory sink.
    pub(crate) async fn metrics_response(
        &self,
        active: &Active,
        req: &Request,
    ) -> Result<Response, LogicalError> {
        let format = Fields::new(&req.data).str("format")?.unwrap_or_default();
        let health = Self::rotation_health_of(&self.rotations(active).await?);
        let leases = active.expiration.stats();
        let gauges: [(&str, &str, u64); 4] = [
            (
                "coffer_rotation_failing",
                "Rotations whose last attempt failed.",
                health.failing as u64,
            ),
            (
                "coffer_rotation_overdue",
                "Scheduled rotations past due.",
                health.overdue as u64,
            ),
            ("coffer_leases", "Leases stored.", leases.total),
            (
                "coffer_leases_failing_revocation",
                "Leases whose last revocation failed.",
                leases.failing.len() as u64,
            ),
        ];
        match format.as_str() {
            "prometheus" => {
                let mut text = String::new();
                for c in crate::metrics::counters() {
                    let _ = writeln!(text, "# HELP {} {}", c.name(), c.help());
                    let _ = writeln!(text, "# TYPE {} counter", c.name());
                    let _ = writeln!(text, "{} {}", c.name(), c.get());
                }
                for (name, help, v) in gauges {
                    let _ = writeln!(text, "# HELP {name} {help}");
                    let _ = writeln!(text, "# TYPE {name} gauge");
                    let _ = writeln!(text, "{name} {v}");
                }
                Ok(Response {
                    raw: Some(("text/plain; version=0.0.4", text.into_bytes())),
                    ..Response::default()
                })
            }
            "" | "json" => {
                let counters: Vec<Value> = crate::metrics::counters()
                    .iter()
                    .map(|c| json!({"Name": c.name(), "Count": c.get(), "Sum": c.get(), "Labels": {}}))
                    .collect();
                let gauges: Vec<Value> = gauges
                    .iter()
                    .map(|(n, _, v)| json!({"Name": n, "Value": v, "Labels": {}}))
                    .collect();
                let body = json!({
                    "Timestamp": rfc3339(now_unix()),
                    "Gauges": gauges,
                    "Counters": counters,
                    "Samples": [],
                });
                Ok(Response {
                    raw: Some(("application/json", body.to_string().into_bytes())),
                    ..Response::default()
                })
            }
            other => Err(LogicalError::BadRequest(format!(
                "unknown metrics format {other:?}; use prometheus or json"
            ))),
        }
    }
}
