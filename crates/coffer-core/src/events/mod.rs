//! Change events (`sys/events/subscribe/<type>`): what changed, never the
//! value. Engines publish through their `StorageView`, core publishes lease
//! revocations. Events go into one bounded ring with sequence numbers;
//! every subscriber keeps its own cursor into it, so a writer never waits
//! for a reader, and a reader that falls behind the ring's start learns how
//! many events it missed (and re-reads what it watches).

mod subscription;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Value, json};
use tokio::sync::watch;

pub use subscription::{Delivery, Subscription};

/// How many recent events the ring keeps: a subscriber this far behind has
/// missed some.
pub const RING_CAPACITY: usize = 4096;

/// The mount an event comes from, as Vault's `plugin_info` names it.
#[derive(Debug, Clone, Default)]
pub struct PluginInfo {
    /// `secret` or `auth`.
    pub mount_class: &'static str,
    /// The mount's accessor.
    pub mount_accessor: String,
    /// The mount path with its trailing `/`.
    pub mount_path: String,
    /// The engine type (`kv`, `database`, `transit`).
    pub plugin: String,
}

/// One change.
#[derive(Debug)]
pub struct Event {
    /// Position in this server's stream.
    pub seq: u64,
    /// A UUID, as Vault gives each event.
    pub id: String,
    /// `kv-v2/data-write`, `database/rotate`, `lease/revoke`, ...
    pub event_type: String,
    /// RFC 3339 time of publication.
    pub time: String,
    /// `path`, `data_path`, `operation`, `modified`, versions, names.
    pub metadata: BTreeMap<String, String>,
    /// The mount.
    pub plugin: PluginInfo,
}

impl Event {
    /// The path a subscriber must be able to `read` to see this event: the
    /// data it is about, else the path that changed.
    pub fn acl_path(&self) -> &str {
        self.metadata
            .get("data_path")
            .or_else(|| self.metadata.get("path"))
            .map(String::as_str)
            .unwrap_or("")
    }

    /// The CloudEvents JSON Vault Enterprise sends with `?json=true`.
    pub fn to_json(&self, bus: &EventBus) -> Value {
        json!({
            "id": self.id,
            "source": bus.source,
            "specversion": "1.0",
            "type": self.event_type,
            "data": {
                "event": {"id": self.id, "metadata": self.metadata},
                "event_type": self.event_type,
                "plugin_info": {
                    "mount_class": self.plugin.mount_class,
                    "mount_accessor": self.plugin.mount_accessor,
                    "mount_path": self.plugin.mount_path,
                    "plugin": self.plugin.plugin,
                },
            },
            "datacontentype": "application/cloudevents",
            "time": self.time,
        })
    }

    /// This event's resumable position (`<boot>-<seq>`), the SSE `id:`.
    pub fn cursor(&self, bus: &EventBus) -> String {
        format!("{}-{}", bus.boot, self.seq)
    }
}

struct Ring {
    /// Sequence number of `events[0]`.
    first: u64,
    events: VecDeque<Arc<Event>>,
}

/// The server's event stream.
pub struct EventBus {
    ring: Mutex<Ring>,
    /// The next sequence number; subscribers wait for it to move.
    next: watch::Sender<u64>,
    /// Random per process: a cursor from before a restart is recognised.
    boot: String,
    /// `vault://<host>`: the CloudEvents source.
    source: String,
    capacity: usize,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::with_capacity(RING_CAPACITY)
    }
}

impl EventBus {
    /// A bus that remembers `capacity` events.
    pub fn with_capacity(capacity: usize) -> Self {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "coffer".into());
        Self {
            ring: Mutex::new(Ring {
                first: 1,
                events: VecDeque::with_capacity(capacity.min(1024)),
            }),
            next: watch::Sender::new(1),
            boot: uuid::Uuid::new_v4().simple().to_string()[..8].to_owned(),
            source: format!("vault://{host}"),
            capacity: capacity.max(1),
        }
    }

    /// Publishes one event. Never blocks on subscribers.
    pub fn publish(
        &self,
        event_type: &str,
        plugin: PluginInfo,
        metadata: BTreeMap<String, String>,
    ) {
        let time = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let Ok(mut ring) = self.ring.lock() else {
            return;
        };
        let seq = ring.first + ring.events.len() as u64;
        ring.events.push_back(Arc::new(Event {
            seq,
            id: uuid::Uuid::new_v4().to_string(),
            event_type: event_type.to_owned(),
            time,
            metadata,
            plugin,
        }));
        if ring.events.len() > self.capacity {
            ring.events.pop_front();
            ring.first += 1;
        }
        drop(ring);
        self.next.send_replace(seq + 1);
        crate::metrics::EVENTS_PUBLISHED.inc();
    }

    /// The next sequence number to be published: a new subscriber's start.
    pub fn head(&self) -> u64 {
        *self.next.borrow()
    }

    /// Where a subscriber resumes from the cursor it was last given
    /// (`<boot>-<seq>` of the last event it saw): the following event, or
    /// `None` when the cursor is from another run of the server.
    pub fn resume_after(&self, cursor: &str) -> Option<u64> {
        let (boot, seq) = cursor.rsplit_once('-')?;
        if boot != self.boot {
            return None;
        }
        let seq: u64 = seq.parse().ok()?;
        Some((seq + 1).min(self.head()))
    }

    /// The cursor of the last event published (to resume from "now").
    pub fn cursor_at(&self, next: u64) -> String {
        format!("{}-{}", self.boot, next.saturating_sub(1))
    }

    /// Events from `from` on (at most `max`), and how many before them
    /// were already dropped from the ring.
    fn read_from(&self, from: u64, max: usize) -> (u64, Vec<Arc<Event>>) {
        let Ok(ring) = self.ring.lock() else {
            return (0, Vec::new());
        };
        let missed = ring.first.saturating_sub(from);
        let start = from.max(ring.first);
        let skip = (start - ring.first) as usize;
        let out = ring.events.iter().skip(skip).take(max).cloned().collect();
        (missed, out)
    }

    fn watch(&self) -> watch::Receiver<u64> {
        self.next.subscribe()
    }
}

/// A mount's way to publish: the bus and the mount's current identity
/// (a remount changes its path in place).
#[derive(Clone)]
pub struct MountEvents {
    bus: Arc<EventBus>,
    info: Arc<RwLock<PluginInfo>>,
}

impl MountEvents {
    /// Events for the mount described by `info`.
    pub fn new(bus: Arc<EventBus>, info: PluginInfo) -> Self {
        Self {
            bus,
            info: Arc::new(RwLock::new(info)),
        }
    }

    /// The mount moved (`sys/remount`).
    pub fn set_mount_path(&self, path: &str) {
        if let Ok(mut i) = self.info.write() {
            i.mount_path = path.to_owned();
        }
    }

    /// Publishes `event_type` about `path` (relative to the mount) and the
    /// data it concerns (`data_path`, relative too), with extra metadata.
    /// `operation` is the part of the type after its `/`; `modified` is
    /// `true`, as Vault's engines send.
    pub fn publish(
        &self,
        event_type: &str,
        path: &str,
        data_path: Option<&str>,
        extra: &[(&str, String)],
    ) {
        let Ok(info) = self.info.read().map(|i| i.clone()) else {
            return;
        };
        let mut metadata = BTreeMap::new();
        metadata.insert("path".into(), format!("{}{path}", info.mount_path));
        if let Some(d) = data_path {
            metadata.insert("data_path".into(), format!("{}{d}", info.mount_path));
        }
        let op = event_type.rsplit_once('/').map_or(event_type, |(_, op)| op);
        metadata.insert("operation".into(), op.to_owned());
        metadata.insert("modified".into(), "true".into());
        for (k, v) in extra {
            metadata.insert((*k).to_owned(), v.clone());
        }
        self.bus.publish(event_type, info, metadata);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> PluginInfo {
        PluginInfo {
            mount_class: "secret",
            mount_accessor: "kv_1234".into(),
            mount_path: "secret/".into(),
            plugin: "kv".into(),
        }
    }

    #[test]
    fn a_full_ring_drops_the_oldest_and_counts_what_a_reader_missed() {
        let bus = EventBus::with_capacity(4);
        let start = bus.head();
        for i in 0..6 {
            bus.publish(
                "kv-v1/write",
                info(),
                BTreeMap::from([("n".into(), i.to_string())]),
            );
        }
        let (missed, got) = bus.read_from(start, 100);
        assert_eq!(missed, 2);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].metadata["n"], "2");
        let (missed, got) = bus.read_from(bus.head(), 100);
        assert_eq!((missed, got.len()), (0, 0));
    }

    #[test]
    fn cursors_resume_after_the_last_event_seen_and_only_in_this_run() {
        let bus = EventBus::default();
        let ev = MountEvents::new(Arc::new(EventBus::default()), info());
        ev.publish(
            "kv-v2/data-write",
            "data/a",
            Some("data/a"),
            &[("current_version", "1".into())],
        );
        bus.publish("kv-v1/write", info(), BTreeMap::new());
        let (_, got) = bus.read_from(1, 10);
        let cursor = got[0].cursor(&bus);
        assert_eq!(bus.resume_after(&cursor), Some(got[0].seq + 1));
        assert_eq!(bus.resume_after("deadbeef-1"), None);
        assert_eq!(bus.resume_after("garbage"), None);
    }

    #[test]
    fn events_name_full_paths_and_never_values() {
        let bus = Arc::new(EventBus::default());
        let ev = MountEvents::new(bus.clone(), info());
        ev.set_mount_path("moved/");
        ev.publish(
            "kv-v2/metadata-write",
            "metadata/app",
            Some("data/app"),
            &[],
        );
        let (_, got) = bus.read_from(1, 10);
        let e = &got[0];
        assert_eq!(e.metadata["path"], "moved/metadata/app");
        assert_eq!(e.acl_path(), "moved/data/app");
        assert_eq!(e.metadata["operation"], "metadata-write");
        let j = e.to_json(&bus);
        assert_eq!(j["data"]["plugin_info"]["mount_path"], "moved/");
        assert_eq!(j["data"]["event_type"], "kv-v2/metadata-write");
        assert_eq!(j["specversion"], "1.0");
    }
}
