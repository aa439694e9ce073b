//! One subscriber's view of the event stream: its own cursor, the event
//! types it asked for, and the token whose policies decide, event by event,
//! what it may see.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{Event, EventBus};
use crate::Core;
use crate::logical::Operation;
use crate::policy::AclRequest;
use crate::secret::SecretString;

/// How many events are taken from the ring at a time.
const BATCH: usize = 256;

/// What a subscriber gets next.
#[derive(Debug)]
pub enum Delivery {
    /// An event the token may see.
    Event(Arc<Event>),
    /// The subscriber fell this many events behind the ring and missed
    /// them (0: an unknown number): whatever it watches must be read again.
    Missed(u64),
    /// The subscription is over (token revoked or expired, access to the
    /// subscription path removed, server sealed).
    End(&'static str),
}

/// A live subscription.
pub struct Subscription {
    core: Arc<Core>,
    bus: Arc<EventBus>,
    token: SecretString,
    pattern: String,
    next: u64,
    published: watch::Receiver<u64>,
    revocations: Option<watch::Receiver<u64>>,
    pending: VecDeque<Arc<Event>>,
    missed: u64,
    /// The client's cursor was from an earlier run: an unknown number missed.
    lost: bool,
}

impl Subscription {
    pub(crate) fn new(
        core: Arc<Core>,
        bus: Arc<EventBus>,
        token: SecretString,
        pattern: String,
        from: u64,
    ) -> Self {
        let revocations = core.active().ok().map(|a| a.tokens.revocations());
        let published = bus.watch();
        Self {
            core,
            bus,
            token,
            pattern,
            next: from,
            published,
            revocations,
            pending: VecDeque::new(),
            missed: 0,
            lost: false,
        }
    }

    /// The event types asked for (a glob such as `kv*`).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The bus, for encoding events and cursors.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// The cursor to resume from after everything delivered so far.
    pub fn cursor(&self) -> String {
        let next = self.pending.front().map_or(self.next, |e| e.seq);
        self.bus.cursor_at(next)
    }

    /// Starts with a "missed events" notice of unknown size (0) (the client's
    /// cursor came from an earlier run of the server).
    pub(crate) fn note_lost_cursor(&mut self) {
        self.lost = true;
    }

    /// The next delivery, or `None` if nothing came within `wait` (callers
    /// send keep-alives or answer a long poll then).
    pub async fn next(&mut self, wait: Duration) -> Option<Delivery> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if std::mem::take(&mut self.lost) {
                crate::metrics::EVENTS_MISSED.inc();
                return Some(Delivery::Missed(0));
            }
            if self.missed > 0 {
                let n = std::mem::take(&mut self.missed);
                crate::metrics::EVENTS_MISSED.inc();
                return Some(Delivery::Missed(n));
            }
            while let Some(ev) = self.pending.pop_front() {
                if !crate::glob::matches(&self.pattern, &ev.event_type) {
                    continue;
                }
                match self.may_see(ev.acl_path()).await {
                    Ok(true) => return Some(Delivery::Event(ev)),
                    Ok(false) => {}
                    Err(why) => return Some(Delivery::End(why)),
                }
            }
            let (missed, events) = self.bus.read_from(self.next, BATCH);
            if missed > 0 || !events.is_empty() {
                self.missed = missed;
                self.next = events.last().map_or(self.next + missed, |e| e.seq + 1);
                self.pending.extend(events);
                continue;
            }
            tokio::select! {
                changed = self.published.changed() => {
                    if changed.is_err() {
                        return Some(Delivery::End("the server is shutting down"));
                    }
                }
                _ = revoked(&mut self.revocations) => {
                    if let Err(why) = self.may_see("").await {
                        return Some(Delivery::End(why));
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    // An idle stream still notices a token that expired.
                    return match self.may_see("").await {
                        Err(why) => Some(Delivery::End(why)),
                        Ok(_) => None,
                    };
                }
            }
        }
    }

    /// Whether the token may still subscribe and may read `path` (empty:
    /// only the first). `Err` ends the subscription.
    async fn may_see(&self, path: &str) -> Result<bool, &'static str> {
        let active = self.core.active().map_err(|_| "the server is sealed")?;
        let token = match active.tokens.lookup(self.token.expose()).await {
            Ok(Some(t)) => t,
            Ok(None) => return Err("the token was revoked or expired"),
            Err(_) => return Err("the token could not be checked"),
        };
        let acl = active
            .policies
            .acl(&token.entry.policies)
            .await
            .map_err(|_| "the token's policies could not be read")?;
        let none = serde_json::Map::new();
        let allowed = |p: &str| {
            acl.allow(&AclRequest {
                operation: Operation::Read,
                path: p,
                data: &none,
                root_protected: false,
                wrap_ttl: None,
            })
            .allowed
        };
        if !allowed(&format!("sys/events/subscribe/{}", self.pattern)) {
            return Err("the token may no longer subscribe to these events");
        }
        Ok(path.is_empty() || allowed(path))
    }
}

/// Resolves when a token was revoked somewhere (never, without a store).
async fn revoked(rx: &mut Option<watch::Receiver<u64>>) {
    match rx {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}
