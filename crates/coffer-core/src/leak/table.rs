//! The in-memory leak index: 32-bit print prefixes to the things that hold
//! the value (its holders), kept small because it covers every indexed
//! value. A prefix is only a candidate (one value in 2^32 collides with
//! another); the holder confirms with the full print.
//!
//! Each holder keeps its own prefixes, so replacing or removing what it
//! holds removes exactly its entries: nothing stale stays behind.

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
    fn write_u32(&mut self, n: u32) {
        // hashbrown takes its control bits from the top seven.
        self.0 = u64::from(n) | (u64::from(n) << 32);
    }
}

type Spreading = BuildHasherDefault<Spread>;

/// One allocation per holder: the count of its prefixes (u16), the
/// prefixes (u32 each) and its name, so a holder costs 24 bytes plus that.
struct Owner {
    data: Box<[u8]>,
    mount: u32,
    kind: LeakKind,
}

impl Owner {
    fn new(name: &str, prints: &[u32], mount: u32, kind: LeakKind) -> Owner {
        let mut data = Vec::with_capacity(2 + prints.len() * 4 + name.len());
        data.extend_from_slice(&(prints.len() as u16).to_le_bytes());
        for p in prints {
            data.extend_from_slice(&p.to_le_bytes());
        }
        data.extend_from_slice(name.as_bytes());
        Owner {
            data: data.into_boxed_slice(),
            mount,
            kind,
        }
    }

    fn count(&self) -> usize {
        usize::from(u16::from_le_bytes([self.data[0], self.data[1]]))
    }

    fn prints(&self) -> impl Iterator<Item = u32> + '_ {
        self.data[2..2 + self.count() * 4]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }

    fn name(&self) -> &str {
        std::str::from_utf8(&self.data[2 + self.count() * 4..]).unwrap_or_default()
    }
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
    /// Current entries (one per value and holder).
    pub values: u64,
    /// Holders holding at least one value.
    pub owners: u64,
    /// Estimated heap bytes the index occupies.
    pub bytes: u64,
}

/// `None` marks a free slot.
type Slot = Option<Owner>;

#[derive(Default)]
pub(super) struct Table {
    /// Print prefix to the holder slot (the first one holding it).
    by_print: HashMap<u32, u32, Spreading>,
    /// Further holders of a prefix already taken (the same value kept twice,
    /// or two values sharing a prefix).
    more: HashMap<u32, Vec<u32>, Spreading>,
    owners: Vec<Slot>,
    free: Vec<u32>,
    /// Holder identity hash (32 bits) to slot; identities whose hash is
    /// taken by another go to `clashes`.
    by_name: HashMap<u32, u32, Spreading>,
    clashes: HashMap<(u32, LeakKind, Box<str>), u32>,
    mounts: Vec<Arc<str>>,
    mount_ids: HashMap<Arc<str>, u32>,
    names: std::collections::hash_map::RandomState,
    values: u64,
}

impl Table {
    fn identity(&self, mount: u32, kind: LeakKind, name: &str) -> u32 {
        let mut h = self.names.build_hasher();
        h.write_u32(mount);
        h.write_u8(kind as u8);
        h.write(name.as_bytes());
        h.finish() as u32
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

    fn owner(&self, slot: u32) -> Option<&Owner> {
        self.owners.get(slot as usize).and_then(Option::as_ref)
    }

    fn is(&self, slot: u32, mount: u32, kind: LeakKind, name: &str) -> bool {
        self.owner(slot)
            .is_some_and(|o| o.mount == mount && o.kind == kind && o.name() == name)
    }

    fn find_owner(&self, mount: u32, kind: LeakKind, name: &str) -> Option<u32> {
        let id = self.identity(mount, kind, name);
        match self.by_name.get(&id) {
            Some(&slot) if self.is(slot, mount, kind, name) => Some(slot),
            Some(_) => self.clashes.get(&(mount, kind, Box::from(name))).copied(),
            None => None,
        }
    }

    /// Makes `prints` the values `name` holds (replacing what it held).
    pub(super) fn set(&mut self, mount: &str, kind: LeakKind, name: &str, prints: &[u64]) {
        let m = self.mount_id(mount);
        let mut prefixes: Vec<u32> = prints.iter().map(|p| (p >> 32) as u32).collect();
        prefixes.sort_unstable();
        prefixes.dedup();
        // A holder keeps at most u16::MAX values (a secret with more is
        // indexed in part).
        prefixes.truncate(usize::from(u16::MAX));
        let slot = match self.find_owner(m, kind, name) {
            Some(slot) => {
                self.unlink(slot);
                slot
            }
            None if prefixes.is_empty() => return,
            None => self.new_owner(m, kind, name),
        };
        if prefixes.is_empty() {
            self.release(slot);
            return;
        }
        for &p in &prefixes {
            match self.by_print.get(&p) {
                None => {
                    self.by_print.insert(p, slot);
                }
                Some(_) => self.more.entry(p).or_default().push(slot),
            }
        }
        self.values += prefixes.len() as u64;
        if let Some(Some(o)) = self.owners.get_mut(slot as usize) {
            *o = Owner::new(o.name(), &prefixes, m, kind);
        }
    }

    /// Forgets everything `name` held.
    pub(super) fn remove(&mut self, mount: &str, kind: LeakKind, name: &str) {
        let Some(&m) = self.mount_ids.get(mount) else {
            return;
        };
        if let Some(slot) = self.find_owner(m, kind, name) {
            self.unlink(slot);
            self.release(slot);
        }
    }

    /// Forgets every holder in a mount (unmounted).
    pub(super) fn remove_mount(&mut self, mount: &str) {
        let Some(&m) = self.mount_ids.get(mount) else {
            return;
        };
        let slots: Vec<u32> = (0..self.owners.len() as u32)
            .filter(|&s| self.owner(s).is_some_and(|o| o.mount == m))
            .collect();
        for s in slots {
            self.unlink(s);
            self.release(s);
        }
    }

    /// The holders of a print prefix (64 bits given; 32 kept).
    pub(super) fn find(&self, print: u64) -> Vec<Holder> {
        let p = (print >> 32) as u32;
        let first = self.by_print.get(&p).copied().into_iter();
        let rest = self.more.get(&p).into_iter().flatten().copied();
        first
            .chain(rest)
            .filter_map(|slot| {
                let o = self.owner(slot)?;
                Some(Holder {
                    mount: self.mounts.get(o.mount as usize)?.clone(),
                    kind: o.kind,
                    name: o.name().to_owned(),
                })
            })
            .collect()
    }

    pub(super) fn stats(&self) -> TableStats {
        let more: usize = self
            .more
            .values()
            .map(|v| v.capacity() * size_of::<u32>())
            .sum();
        let clashes: usize = self.clashes.keys().map(|k| k.2.len() + 32).sum();
        let data: usize = self.owners.iter().flatten().map(|o| o.data.len()).sum();
        // hashbrown: one control byte per bucket besides the entry.
        let map = |cap: usize, entry: usize| cap * (entry + 1);
        let bytes = map(self.by_print.capacity(), size_of::<(u32, u32)>())
            + map(self.more.capacity(), size_of::<(u32, Vec<u32>)>())
            + more
            + self.owners.capacity() * size_of::<Slot>()
            + data
            + map(self.by_name.capacity(), size_of::<(u32, u32)>())
            + clashes
            + self.free.capacity() * size_of::<u32>();
        TableStats {
            values: self.values,
            owners: (self.owners.len() - self.free.len()) as u64,
            bytes: bytes as u64,
        }
    }

    fn new_owner(&mut self, mount: u32, kind: LeakKind, name: &str) -> u32 {
        let owner = Owner::new(name, &[], mount, kind);
        let slot = match self.free.pop() {
            Some(s) => {
                self.owners[s as usize] = Some(owner);
                s
            }
            None => {
                if self.owners.len() == self.owners.capacity() {
                    // Grow by a quarter, not double: this vector is most
                    // of the index's fixed cost per holder.
                    self.owners.reserve_exact((self.owners.len() / 4).max(64));
                }
                self.owners.push(Some(owner));
                (self.owners.len() - 1) as u32
            }
        };
        let id = self.identity(mount, kind, name);
        match self.by_name.entry(id) {
            std::collections::hash_map::Entry::Occupied(_) => {
                self.clashes.insert((mount, kind, Box::from(name)), slot);
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(slot);
            }
        }
        slot
    }

    /// Takes the holder's entries out of the print maps.
    fn unlink(&mut self, slot: u32) {
        let Some(Some(o)) = self.owners.get_mut(slot as usize) else {
            return;
        };
        let prints: Vec<u32> = o.prints().collect();
        *o = Owner::new(o.name(), &[], o.mount, o.kind);
        self.values -= prints.len() as u64;
        for p in prints.iter() {
            let others = self.more.get_mut(p);
            if self.by_print.get(p) == Some(&slot) {
                // Promote another holder of the prefix, if any.
                match others.and_then(Vec::pop) {
                    Some(next) => {
                        self.by_print.insert(*p, next);
                    }
                    None => {
                        self.by_print.remove(p);
                    }
                }
            } else if let Some(v) = others {
                v.retain(|&s| s != slot);
            }
            if self.more.get(p).is_some_and(Vec::is_empty) {
                self.more.remove(p);
            }
        }
    }

    fn release(&mut self, slot: u32) {
        let Some(Some(o)) = self.owners.get_mut(slot as usize).map(Option::take) else {
            return;
        };
        let id = self.identity(o.mount, o.kind, o.name());
        if self.by_name.get(&id) == Some(&slot) {
            self.by_name.remove(&id);
            // A clashing identity of the same hash takes the direct place.
            let moved = self
                .clashes
                .iter()
                .find(|((m, k, n), _)| self.identity(*m, *k, n) == id)
                .map(|(key, s)| (key.clone(), *s));
            if let Some((key, s)) = moved {
                self.clashes.remove(&key);
                self.by_name.insert(id, s);
            }
        } else {
            self.clashes.remove(&(o.mount, o.kind, Box::from(o.name())));
        }
        self.free.push(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-bit print whose kept prefix is `p`.
    fn pr(p: u32) -> u64 {
        u64::from(p) << 32
    }

    fn names(t: &Table, p: u32) -> Vec<String> {
        let mut v: Vec<String> = t.find(pr(p)).into_iter().map(|h| h.name).collect();
        v.sort();
        v
    }

    #[test]
    fn replacing_a_holder_forgets_its_old_values() {
        let mut t = Table::default();
        t.set("m1", LeakKind::Kv, "app/db", &[pr(1), pr(2)]);
        t.set("m1", LeakKind::Kv, "app/api", &[pr(2), pr(3)]);
        assert_eq!(names(&t, 2), ["app/api", "app/db"]);
        t.set("m1", LeakKind::Kv, "app/db", &[pr(4)]);
        assert!(names(&t, 1).is_empty());
        assert_eq!(names(&t, 2), ["app/api"]);
        assert_eq!(names(&t, 4), ["app/db"]);
        t.remove("m1", LeakKind::Kv, "app/api");
        assert!(t.find(pr(2)).is_empty() && t.find(pr(3)).is_empty());
        assert_eq!(t.stats().values, 1);
        assert_eq!(t.stats().owners, 1);
        // A reused slot does not revive the entries of its previous holder.
        t.set("m1", LeakKind::Kv, "other", &[pr(9)]);
        assert!(t.find(pr(2)).is_empty() && t.find(pr(3)).is_empty());
        assert_eq!(names(&t, 9), ["other"]);
        // Holding nothing is being forgotten.
        t.set("m1", LeakKind::Kv, "other", &[]);
        assert!(t.find(pr(9)).is_empty());
        assert_eq!(t.stats().owners, 1);
    }

    #[test]
    fn holders_are_told_apart_by_mount_and_kind() {
        let mut t = Table::default();
        t.set("m1", LeakKind::Kv, "x", &[pr(7)]);
        t.set("m2", LeakKind::Kv, "x", &[pr(7)]);
        t.set("m1", LeakKind::StaticRole, "x", &[pr(7)]);
        assert_eq!(t.find(pr(7)).len(), 3);
        t.remove_mount("m1");
        let left = t.find(pr(7));
        assert_eq!(left.len(), 1);
        assert_eq!(&*left[0].mount, "m2");
        t.remove("m2", LeakKind::Kv, "x");
        assert!(t.find(pr(7)).is_empty());
        assert!(t.more.is_empty() && t.by_print.is_empty());
    }

    #[test]
    fn churn_leaves_exactly_the_live_entries() {
        let mut t = Table::default();
        for round in 0..20u32 {
            for i in 0..1000u32 {
                let name = format!("k{i}");
                t.set(
                    "m",
                    LeakKind::Kv,
                    &name,
                    &[pr(round * 1_000_000 + i), pr(i % 7)],
                );
            }
        }
        assert_eq!(t.stats().values, 2000);
        assert_eq!(
            t.by_print.len() + t.more.values().map(Vec::len).sum::<usize>(),
            2000
        );
        for i in 0..1000u32 {
            assert_eq!(names(&t, 19_000_000 + i), [format!("k{i}")]);
            assert!(t.find(pr(18_000_000 + i)).is_empty());
        }
        assert_eq!(t.find(pr(3)).len(), 1000 / 7 + 1);
    }

    #[test]
    fn identities_whose_hashes_clash_stay_apart() {
        let mut t = Table::default();
        // Force a clash: register one identity's hash for another slot.
        t.set("m", LeakKind::Kv, "a", &[pr(1)]);
        let id_b = t.identity(0, LeakKind::Kv, "b");
        let a_slot = t.by_name.values().copied().next().unwrap();
        t.by_name.insert(id_b, a_slot);
        t.set("m", LeakKind::Kv, "b", &[pr(2)]);
        assert_eq!(t.clashes.len(), 1);
        assert_eq!(names(&t, 2), ["b"]);
        t.set("m", LeakKind::Kv, "b", &[pr(3)]);
        assert!(t.find(pr(2)).is_empty());
        assert_eq!(names(&t, 3), ["b"]);
        t.remove("m", LeakKind::Kv, "b");
        assert!(t.find(pr(3)).is_empty() && t.clashes.is_empty());
        assert_eq!(names(&t, 1), ["a"]);
    }
}
