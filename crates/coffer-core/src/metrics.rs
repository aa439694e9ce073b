//! Process-wide counters exported by `sys/metrics`. Counters only grow; the
//! gauges there are computed when asked.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing count.
pub struct Counter {
    name: &'static str,
    help: &'static str,
    value: AtomicU64,
}

impl Counter {
    const fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            value: AtomicU64::new(0),
        }
    }

    /// Adds one.
    pub fn inc(&self) {
        self.value.fetch_add(1, Ordering::Relaxed);
    }

    /// The current count.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }

    /// The metric name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// One line of help text.
    pub fn help(&self) -> &'static str {
        self.help
    }
}

/// Failed scheduled or manual rotations (database static roles and root
/// credentials, transit keys).
pub static ROTATION_FAILURES: Counter = Counter::new(
    "coffer_rotation_failures_total",
    "Rotations that failed (database static roles and root credentials, transit keys).",
);

/// Failed lease revocations (each attempt).
pub static REVOCATION_FAILURES: Counter = Counter::new(
    "coffer_lease_revocation_failures_total",
    "Lease revocation attempts that failed and were scheduled again.",
);

/// Audit writes that failed on one device (others may have succeeded).
pub static AUDIT_DEVICE_FAILURES: Counter = Counter::new(
    "coffer_audit_device_failures_total",
    "Audit entries a device failed to record.",
);

/// Requests refused because no audit device could record them.
pub static AUDIT_REFUSALS: Counter = Counter::new(
    "coffer_audit_refused_requests_total",
    "Requests refused (500) because no enabled audit device recorded them.",
);

/// Requests refused because too much heavy work (password hashing) was queued.
pub static HEAVY_REFUSALS: Counter = Counter::new(
    "coffer_heavy_work_refused_total",
    "Requests refused (429) because the bounded pool for password hashing and generation was full.",
);

/// Change events published (`sys/events/subscribe`).
pub static EVENTS_PUBLISHED: Counter = Counter::new(
    "coffer_events_published_total",
    "Change events published to subscribers.",
);

/// Events subscribers missed because they fell behind the event ring.
pub static EVENTS_MISSED: Counter = Counter::new(
    "coffer_events_missed_total",
    "Change events that slow subscribers missed (they were told to re-read).",
);

/// Every counter, for export.
pub fn counters() -> [&'static Counter; 7] {
    [
        &ROTATION_FAILURES,
        &REVOCATION_FAILURES,
        &AUDIT_DEVICE_FAILURES,
        &AUDIT_REFUSALS,
        &HEAVY_REFUSALS,
        &EVENTS_PUBLISHED,
        &EVENTS_MISSED,
    ]
}
