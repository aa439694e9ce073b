//! The in-memory leak index: 64-bit print prefixes to the things that hold
//! the value (its owners), kept small because it covers every indexed value.
//!
//! A print appears once per owner. When an owner's values change, its old
//! entries are not looked up and removed (their prints are not kept): the
//! owner's generation moves on, which makes them stale, and a sweep drops
//! stale entries once they outnumber the live ones. A lookup only returns
//! entries of an owner's current generation.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::LeakKind;

/// Keys are HMAC output or already hashed: no need to hash them again.
#[derive(Default)]
pub(super) struct Spread(u64);

impl Hasher for Spread {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Spreading = BuildHasherDefault<Spread>;

#[derive(Clone, Copy, PartialEq, Eq)]
struct Ref {
    owner: u32,
    generation: u32,
}

struct Owner {
    name: Box<str>,
    mount: u32,
    kind: LeakKind,
    generation: u32,
    /// Entries of the current generation (what becomes stale when it moves).
    values: u32,
    used: bool,
}

/// Who holds a value, as a lookup reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The mount's uuid (empty for leases, which name their mount themselves).
    pub mount: Arc<str>,
    /// What kind of thing.
    pub kind: LeakKind,
    /// Its name within the mount (a path, role, config or lease id).
    pub name: String,
}

/// Figures for `sys/leak/status` and the benchmark.
#[derive(Debug, Clone, Copy, Default)]
pub struct TableStats {
    /// Current entries (one per value and owner).
    pub values: u64,
    /// Owners holding at least one value.
    pub owners: u64,
    /// Entries waiting for the next sweep.
    pub stale: u64,
    /// Estimated heap bytes the index occupies.
    pub bytes: u64,
}

#[derive(Default)]
pub(super) struct Table {
    by_print: HashMap<u64, Ref, Spreading>,
    /// Further owners of a print already taken (the same value kept twice).
    more: HashMap<u64, Vec<Ref>, Spreading>,
    owners: Vec<Owner>,
    free: Vec<u32>,
    /// Owner identity hash to slot; a clash of two identities' hashes
    /// (2^-64 per pair) falls back to `clashes`.
    by_name: HashMap<u64, u32, Spreading>,
    clashes: Vec<u32>,
    mounts: Vec<Arc<str>>,
    mount_ids: HashMap<Arc<str>, u32>,
    names: std::collections::hash_map::RandomState,
    live: u64,
    stale: u64,
}

/// Stale entries tolerated before a sweep, at least.
const SWEEP_FLOOR: u64 = 4096;

impl Table {
    fn identity(&self, mount: u32, kind: LeakKind, name: &str) -> u64 {
        let mut h = self.names.build_hasher();
        h.write_u32(mount);
        h.write_u8(kind as u8);
        h.write(name.as_bytes());
        h.finish()
    }

    fn mount_id(&mut self, mount: &str) -> u32 {
        if let Some(id) = self.mount_ids.get(mount) {
            return *id;
        }
        let id = self.mounts.len() as u32;
        let m: Arc<str> = Arc::from(mount);
        self.mounts.push(m.clone());
        self.mount_ids.insert(m, id);
        id
    }

    fn is(&self, slot: u32, mount: u32, kind: LeakKind, name: &str) -> bool {
        self.owners
            .get(slot as usize)
            .is_some_and(|o| o.used && o.mount == mount && o.kind == kind && &*o.name == name)
    }

    fn find_owner(&self, mount: u32, kind: LeakKind, name: &str) -> Option<u32> {
        let id = self.identity(mount, kind, name);
        match self.by_name.get(&id) {
            Some(&slot) if self.is(slot, mount, kind, name) => Some(slot),
            _ => self
                .clashes
                .iter()
                .copied()
                .find(|&s| self.is(s, mount, kind, name)),
        }
    }

    fn live(&self, r: Ref) -> bool {
        self.owners
            .get(r.owner as usize)
            .is_some_and(|o| o.used && o.generation == r.generation)
    }

    /// Makes `prints` the values `name` holds (replacing what it held).
    pub(super) fn set(&mut self, mount: &str, kind: LeakKind, name: &str, prints: &[u64]) {
        let m = self.mount_id(mount);
        let slot = match self.find_owner(m, kind, name) {
            Some(slot) => {
                self.retire(slot);
                slot
            }
            None if prints.is_empty() => return,
            None => self.new_owner(m, kind, name),
        };
        if prints.is_empty() {
            self.release(slot);
            self.maybe_sweep();
            return;
        }
        let mut prints = prints.to_vec();
        prints.sort_unstable();
        prints.dedup();
        let Some(o) = self.owners.get_mut(slot as usize) else {
            return;
        };
        o.values = prints.len() as u32;
        let r = Ref {
            owner: slot,
            generation: o.generation,
        };
        self.live += prints.len() as u64;
        for p in prints {
            match self.by_print.get(&p).copied() {
                None => {
                    self.by_print.insert(p, r);
                }
                Some(old) if !self.live(old) || old == r => {
                    self.by_print.insert(p, r);
                }
                Some(_) => {
                    let live: Vec<Ref> = self
                        .more
                        .remove(&p)
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|x| self.live(*x) && *x != r)
                        .collect();
                    let mut v = live;
                    v.push(r);
                    self.more.insert(p, v);
                }
            }
        }
        self.maybe_sweep();
    }

    /// Forgets everything `name` held.
    pub(super) fn remove(&mut self, mount: &str, kind: LeakKind, name: &str) {
        let Some(&m) = self.mount_ids.get(mount) else {
            return;
        };
        if let Some(slot) = self.find_owner(m, kind, name) {
            self.retire(slot);
            self.release(slot);
            self.maybe_sweep();
        }
    }

    /// Forgets every owner in a mount (unmounted).
    pub(super) fn remove_mount(&mut self, mount: &str) {
        let Some(&m) = self.mount_ids.get(mount) else {
            return;
        };
        let slots: Vec<u32> = (0..self.owners.len() as u32)
            .filter(|&s| self.owners[s as usize].used && self.owners[s as usize].mount == m)
            .collect();
        for s in slots {
            self.retire(s);
            self.release(s);
        }
        self.maybe_sweep();
    }

    /// The current holders of a print prefix.
    pub(super) fn find(&self, print: u64) -> Vec<Holder> {
        let first = self.by_print.get(&print).copied().into_iter();
        let rest = self.more.get(&print).into_iter().flatten().copied();
        first
            .chain(rest)
            .filter(|r| self.live(*r))
            .filter_map(|r| {
                let o = self.owners.get(r.owner as usize)?;
                Some(Holder {
                    mount: self.mounts.get(o.mount as usize)?.clone(),
                    kind: o.kind,
                    name: o.name.to_string(),
                })
            })
            .collect()
    }

    pub(super) fn stats(&self) -> TableStats {
        let names: usize = self
            .owners
            .iter()
            .filter(|o| o.used)
            .map(|o| o.name.len())
            .sum();
        let more: usize = self
            .more
            .values()
            .map(|v| v.capacity() * size_of::<Ref>())
            .sum();
        // hashbrown: one control byte per bucket besides the entry.
        let map = |cap: usize, entry: usize| cap * (entry + 1);
        let bytes = map(self.by_print.capacity(), size_of::<(u64, Ref)>())
            + map(self.more.capacity(), size_of::<(u64, Vec<Ref>)>())
            + more
            + self.owners.capacity() * size_of::<Owner>()
            + names
            + map(self.by_name.capacity(), size_of::<(u64, u32)>())
            + self.free.capacity() * 4;
        TableStats {
            values: self.live,
            owners: self.owners.iter().filter(|o| o.used).count() as u64,
            stale: self.stale,
            bytes: bytes as u64,
        }
    }

    fn new_owner(&mut self, mount: u32, kind: LeakKind, name: &str) -> u32 {
        let owner = Owner {
            name: name.into(),
            mount,
            kind,
            generation: 0,
            values: 0,
            used: true,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                let generation = self.owners[s as usize].generation;
                self.owners[s as usize] = Owner {
                    generation,
                    ..owner
                };
                s
            }
            None => {
                self.owners.push(owner);
                (self.owners.len() - 1) as u32
            }
        };
        let id = self.identity(mount, kind, name);
        match self.by_name.get(&id) {
            Some(&other) if other != slot && self.owners[other as usize].used => {
                self.clashes.push(slot)
            }
            _ => {
                self.by_name.insert(id, slot);
            }
        }
        slot
    }

    /// Makes the owner's current entries stale.
    fn retire(&mut self, slot: u32) {
        if let Some(o) = self.owners.get_mut(slot as usize) {
            o.generation = o.generation.wrapping_add(1);
            self.live -= u64::from(o.values);
            self.stale += u64::from(o.values);
            o.values = 0;
        }
    }

    fn release(&mut self, slot: u32) {
        let Some(o) = self.owners.get(slot as usize) else {
            return;
        };
        let id = self.identity(o.mount, o.kind, &o.name);
        if self.by_name.get(&id) == Some(&slot) {
            self.by_name.remove(&id);
        }
        self.clashes.retain(|&s| s != slot);
        if let Some(o) = self.owners.get_mut(slot as usize) {
            o.used = false;
            o.name = Box::from("");
        }
        self.free.push(slot);
    }

    fn maybe_sweep(&mut self) {
        if self.stale <= self.live.max(SWEEP_FLOOR) {
            return;
        }
        let owners = &self.owners;
        let live = |r: &Ref| {
            owners
                .get(r.owner as usize)
                .is_some_and(|o| o.used && o.generation == r.generation)
        };
        self.by_print.retain(|_, r| live(r));
        self.more.retain(|_, v| {
            v.retain(|r| live(r));
            !v.is_empty()
        });
        self.by_print.shrink_to_fit();
        self.more.shrink_to_fit();
        self.stale = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(t: &Table, p: u64) -> Vec<String> {
        let mut v: Vec<String> = t.find(p).into_iter().map(|h| h.name).collect();
        v.sort();
        v
    }

    #[test]
    fn replacing_an_owner_forgets_its_old_values() {
        let mut t = Table::default();
        t.set("m1", LeakKind::Kv, "app/db", &[1, 2]);
        t.set("m1", LeakKind::Kv, "app/api", &[2, 3]);
        assert_eq!(names(&t, 2), ["app/api", "app/db"]);
        t.set("m1", LeakKind::Kv, "app/db", &[4]);
        assert_eq!(names(&t, 1), Vec::<String>::new());
        assert_eq!(names(&t, 2), ["app/api"]);
        assert_eq!(names(&t, 4), ["app/db"]);
        t.remove("m1", LeakKind::Kv, "app/api");
        assert!(t.find(2).is_empty() && t.find(3).is_empty());
        assert_eq!(t.stats().values, 1);
        assert_eq!(t.stats().owners, 1);
        // A reused slot does not revive the entries of its previous owner.
        t.set("m1", LeakKind::Kv, "other", &[9]);
        assert!(t.find(2).is_empty() && t.find(3).is_empty());
        assert_eq!(names(&t, 9), ["other"]);
    }

    #[test]
    fn owners_are_told_apart_by_mount_and_kind() {
        let mut t = Table::default();
        t.set("m1", LeakKind::Kv, "x", &[7]);
        t.set("m2", LeakKind::Kv, "x", &[7]);
        t.set("m1", LeakKind::StaticRole, "x", &[7]);
        assert_eq!(t.find(7).len(), 3);
        t.remove_mount("m1");
        let left = t.find(7);
        assert_eq!(left.len(), 1);
        assert_eq!(&*left[0].mount, "m2");
    }

    #[test]
    fn sweeping_keeps_every_live_entry() {
        let mut t = Table::default();
        for round in 0..20u64 {
            for i in 0..1000u64 {
                let name = format!("k{i}");
                t.set("m", LeakKind::Kv, &name, &[round * 1_000_000 + i, i % 7]);
            }
        }
        let s = t.stats();
        assert_eq!(s.values, 2000);
        assert!(s.stale <= 4096, "{s:?}");
        for i in 0..1000u64 {
            assert_eq!(names(&t, 19_000_000 + i), [format!("k{i}")]);
            assert!(t.find(18_000_000 + i).is_empty());
        }
        assert_eq!(t.find(3).len(), 1000 / 7 + 1);
    }
}
