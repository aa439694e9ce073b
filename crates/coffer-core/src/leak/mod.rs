//! Leak response: is a string a scanner found something coffer holds or
//! handed out, and where?
//!
//! Values are never kept here, only their prints: HMAC-SHA256 under a key
//! that lives behind the barrier (`core/leak/key`), so the index says
//! nothing about a value to anyone without that key. The in-memory table
//! keeps 32 bits of each print; a hit is confirmed by its holder (the
//! engine reads the value it holds now and compares full prints in
//! constant time), so a colliding or outdated entry can never report a
//! value as live.
//!
//! Engines feed the index through their [`MountLeak`] at every write that
//! changes what they hold; core adds the values of leased secrets. After an
//! unseal, engines and leases are indexed again in the background.

mod table;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::barrier::Barrier;
use crate::logical::LogicalError;
use crate::secret::Key32;

use table::Table;
pub use table::{Holder, TableStats};

/// Where the print key is kept, behind the barrier.
pub const KEY_PATH: &str = "core/leak/key";
/// Shorter strings are neither indexed nor checked: `true`, `8080` and
/// other everyday values would match everywhere and prove nothing.
pub const MIN_LEN: usize = 8;
/// Candidates one `sys/leak/check` call may carry.
pub const MAX_CANDIDATES: usize = 1000;
/// Bytes one candidate may have (a 4096-bit RSA key in PEM is ~3.3 KiB):
/// hashing stays bounded per candidate, not only per request body.
pub const MAX_CANDIDATE_BYTES: usize = 16 * 1024;
/// Candidates a token may check per minute (a bucket of this size that
/// refills over a minute), so the endpoint cannot be used to guess values.
pub const CANDIDATES_PER_MINUTE: f64 = 2000.0;

/// What kind of thing holds an indexed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LeakKind {
    /// A KV secret's current version.
    Kv,
    /// A database static role's password (current, or previous in its grace period).
    StaticRole,
    /// A database connection's own (root) password.
    RootCredential,
    /// Key material of an exportable transit key.
    TransitKey,
    /// A leased secret (dynamic database credentials).
    Lease,
}

impl LeakKind {
    /// The `type` reported by `sys/leak/check`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kv => "kv",
            Self::StaticRole => "database-static-role",
            Self::RootCredential => "database-root",
            Self::TransitKey => "transit-key",
            Self::Lease => "lease",
        }
    }
}

/// A value's print: HMAC-SHA256 under the index key.
#[derive(Clone, Copy)]
pub struct Print([u8; 32]);

impl Print {
    fn prefix(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(b)
    }

    /// Whether two prints are equal, in constant time.
    pub fn matches(&self, other: &Print) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Hex, as stored with a lease.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses [`Print::to_hex`]'s output.
    pub fn from_hex(s: &str) -> Option<Print> {
        let b = hex::decode(s).ok()?;
        Some(Print(b.try_into().ok()?))
    }

    /// A short form a person can quote in an incident (the first 12 hex
    /// digits): not enough to test guesses against without the key.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..6])
    }
}

impl std::fmt::Debug for Print {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Print(<redacted>)")
    }
}

/// One place a checked value is live, as `sys/leak/check` reports it.
#[derive(Debug, Clone)]
pub struct LeakMatch {
    /// What it is (`kv`, `lease`, `token`, `database-static-role` ...).
    pub kind: &'static str,
    /// Its name within its mount (a secret path, role, config) or a lease id.
    pub name: String,
    /// What else identifies it: version, field, accessor, role ...
    pub details: Map<String, Value>,
}

struct Bucket {
    left: f64,
    at: Instant,
}

/// The leak index of one unsealed period.
pub struct LeakIndex {
    key: RwLock<Option<Key32>>,
    table: Mutex<Table>,
    engines_indexed: AtomicBool,
    /// Moves at every open and close, so background indexing of an earlier
    /// unsealed period knows to stop.
    epoch: AtomicU64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Default for LeakIndex {
    fn default() -> Self {
        Self {
            key: RwLock::new(None),
            table: Mutex::new(Table::default()),
            engines_indexed: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl LeakIndex {
    /// Loads the print key from behind the barrier (made on first use) and
    /// starts an empty table.
    pub(crate) async fn open(&self, barrier: &Barrier) -> Result<(), LogicalError> {
        let key = match barrier.get(KEY_PATH).await? {
            Some(b) => Key32::from_slice(b.expose())
                .ok_or_else(|| LogicalError::Internal("the leak index key is corrupt".into()))?,
            None => {
                let k = Key32::random().map_err(|e| LogicalError::Internal(e.to_string()))?;
                barrier.put(KEY_PATH, k.expose()).await?;
                k
            }
        };
        if let Ok(mut t) = self.table.lock() {
            *t = Table::default();
        }
        self.engines_indexed.store(false, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut k) = self.key.write() {
            *k = Some(key);
        }
        Ok(())
    }

    /// Forgets the key and every entry (sealed, or a standby).
    pub(crate) fn close(&self) {
        if let Ok(mut k) = self.key.write() {
            *k = None;
        }
        if let Ok(mut t) = self.table.lock() {
            *t = Table::default();
        }
        self.engines_indexed.store(false, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The print of `value`; none when it is too short to index or the
    /// index is closed.
    pub fn print(&self, value: &str) -> Option<Print> {
        if value.chars().count() < MIN_LEN {
            return None;
        }
        let guard = self.key.read().ok()?;
        let key = guard.as_ref()?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.expose()).ok()?;
        mac.update(value.as_bytes());
        Some(Print(mac.finalize().into_bytes().into()))
    }

    /// The prints of every string inside `v` that is long enough.
    pub(crate) fn prints_json(&self, v: &Value) -> Vec<Print> {
        let mut out = Vec::new();
        if self.is_open() {
            strings(v, &mut String::new(), &mut |_, s| out.extend(self.print(s)));
        }
        out
    }

    /// [`LeakIndex::prints_json`] of an object's values.
    pub(crate) fn prints_map(&self, m: &Map<String, Value>) -> Vec<Print> {
        m.values().flat_map(|v| self.prints_json(v)).collect()
    }

    pub(crate) fn is_open(&self) -> bool {
        self.key.read().is_ok_and(|k| k.is_some())
    }

    pub(crate) fn set(&self, mount: &str, kind: LeakKind, name: &str, prints: &[Print]) {
        if !self.is_open() {
            return;
        }
        let prefixes: Vec<u64> = prints.iter().map(Print::prefix).collect();
        if let Ok(mut t) = self.table.lock() {
            t.set(mount, kind, name, &prefixes);
        }
    }

    pub(crate) fn remove(&self, mount: &str, kind: LeakKind, name: &str) {
        if let Ok(mut t) = self.table.lock() {
            t.remove(mount, kind, name);
        }
    }

    pub(crate) fn remove_mount(&self, mount: &str) {
        if let Ok(mut t) = self.table.lock() {
            t.remove_mount(mount);
        }
    }

    /// Who may hold the value printed `p` (to be confirmed by each holder).
    pub(crate) fn find(&self, p: &Print) -> Vec<Holder> {
        self.table
            .lock()
            .map(|t| t.find(p.prefix()))
            .unwrap_or_default()
    }

    /// Size figures.
    pub fn stats(&self) -> TableStats {
        self.table.lock().map(|t| t.stats()).unwrap_or_default()
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The unseal's indexing of engines finished (if still the same period).
    pub(crate) fn engines_done(&self, epoch: u64) {
        if self.epoch() == epoch {
            self.engines_indexed.store(true, Ordering::Release);
        }
    }

    pub(crate) fn engines_indexed(&self) -> bool {
        self.engines_indexed.load(Ordering::Acquire)
    }

    /// Takes `n` candidates from `who`'s allowance or refuses the call.
    pub(crate) fn admit(&self, who: &str, n: usize) -> Result<(), LogicalError> {
        let mut buckets = self
            .buckets
            .lock()
            .map_err(|_| LogicalError::Internal("leak rate limiter poisoned".into()))?;
        let now = Instant::now();
        if buckets.len() > 10_000 {
            // Forget callers whose allowance has filled up again.
            buckets.retain(|_, b| now.duration_since(b.at).as_secs() < 60);
        }
        let b = buckets.entry(who.to_owned()).or_insert(Bucket {
            left: CANDIDATES_PER_MINUTE,
            at: now,
        });
        let refill = now.duration_since(b.at).as_secs_f64() * CANDIDATES_PER_MINUTE / 60.0;
        b.left = (b.left + refill).min(CANDIDATES_PER_MINUTE);
        b.at = now;
        if (n as f64) > b.left {
            let wait = ((n as f64 - b.left) * 60.0 / CANDIDATES_PER_MINUTE).ceil();
            return Err(LogicalError::TooManyRequests(format!(
                "leak check rate limit: {CANDIDATES_PER_MINUTE} candidates per minute per token; \
                 {n} asked, {} left, retry in {wait} s",
                b.left.floor()
            )));
        }
        b.left -= n as f64;
        Ok(())
    }
}

/// A mount's handle on the index: what engines call when what they hold changes.
#[derive(Clone)]
pub struct MountLeak {
    index: Arc<LeakIndex>,
    mount: Arc<str>,
}

impl MountLeak {
    pub(crate) fn new(index: Arc<LeakIndex>, mount_uuid: &str) -> Self {
        Self {
            index,
            mount: Arc::from(mount_uuid),
        }
    }

    /// Makes `values` (those long enough) what `name` holds.
    pub fn set_strs<'a>(
        &self,
        kind: LeakKind,
        name: &str,
        values: impl IntoIterator<Item = &'a str>,
    ) {
        if !self.index.is_open() {
            return;
        }
        let prints: Vec<Print> = values
            .into_iter()
            .filter_map(|v| self.index.print(v))
            .collect();
        self.index.set(&self.mount, kind, name, &prints);
    }

    /// Makes every string inside `v` (at any depth) what `name` holds.
    pub fn set_json(&self, kind: LeakKind, name: &str, v: &Value) {
        if !self.index.is_open() {
            return;
        }
        let prints = self.index.prints_json(v);
        self.index.set(&self.mount, kind, name, &prints);
    }

    /// Makes every string inside the values of `m` what `name` holds.
    pub fn set_map(&self, kind: LeakKind, name: &str, m: &Map<String, Value>) {
        if !self.index.is_open() {
            return;
        }
        let prints = self.index.prints_map(m);
        self.index.set(&self.mount, kind, name, &prints);
    }

    /// `name` holds nothing any more.
    pub fn remove(&self, kind: LeakKind, name: &str) {
        self.index.remove(&self.mount, kind, name);
    }

    /// Whether `value` is the one printed `p`.
    pub fn matches(&self, value: &str, p: &Print) -> bool {
        self.index.print(value).is_some_and(|q| q.matches(p))
    }

    /// The field (`password`, `db.hosts[1]`) of `v` whose value is printed
    /// `p`, if any. Every string is compared, so the time taken does not
    /// depend on where (or whether) it matched.
    pub fn field_in_json(&self, v: &Value, p: &Print) -> Option<String> {
        let mut found = None;
        strings(v, &mut String::new(), &mut |field, s| {
            if self.matches(s, p) && found.is_none() {
                found = Some(field.to_owned());
            }
        });
        found
    }
}

/// Calls `f(field path, string)` for each string inside `v`.
fn strings(v: &Value, at: &mut String, f: &mut dyn FnMut(&str, &str)) {
    match v {
        Value::String(s) => f(at, s),
        Value::Object(m) => {
            for (k, x) in m {
                let len = at.len();
                if !at.is_empty() {
                    at.push('.');
                }
                at.push_str(k);
                strings(x, at, f);
                at.truncate(len);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let len = at.len();
                at.push_str(&format!("[{i}]"));
                strings(x, at, f);
                at.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opened() -> Arc<LeakIndex> {
        let ix = Arc::new(LeakIndex::default());
        *ix.key.write().unwrap() = Some(Key32::random().unwrap());
        ix
    }

    #[test]
    fn short_values_are_not_indexed_and_prints_are_keyed() {
        let ix = opened();
        assert!(ix.print("8080").is_none());
        assert!(ix.print("true").is_none());
        let a = ix.print("correct horse battery").unwrap();
        let other = opened();
        let b = other.print("correct horse battery").unwrap();
        assert!(!a.matches(&b), "another key gives another print");
        assert!(a.matches(&ix.print("correct horse battery").unwrap()));
    }

    #[test]
    fn a_mount_finds_the_field_holding_a_value() {
        let ix = opened();
        let m = MountLeak::new(ix.clone(), "uuid-1");
        let v = json!({"user": "app", "password": "s3cr3t-pa55word",
            "hosts": ["db1.internal.example", "db2.internal.example"]});
        m.set_json(LeakKind::Kv, "app/db", &v);
        let p = ix.print("db2.internal.example").unwrap();
        let found = ix.find(&p);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name, "app/db");
        assert_eq!(m.field_in_json(&v, &p).as_deref(), Some("hosts[1]"));
        let q = ix.print("s3cr3t-pa55word").unwrap();
        assert_eq!(m.field_in_json(&v, &q).as_deref(), Some("password"));
        // "app" is too short to be indexed; closing forgets everything.
        assert_eq!(ix.stats().values, 3);
        ix.close();
        assert!(ix.print("s3cr3t-pa55word").is_none());
        assert_eq!(ix.stats().values, 0);
    }

    #[test]
    fn the_allowance_refills_over_a_minute() {
        let ix = opened();
        ix.admit("t", 1500).unwrap();
        assert!(ix.admit("t", 600).is_err());
        ix.admit("t", 500).unwrap();
        ix.admit("other", 2000).unwrap();
    }
}
