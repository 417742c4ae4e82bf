//! Stable ids for backends and reverse-NAT entries.
//!
//! An id names the same address for as long as that address is wanted, and
//! survives agent restarts: the allocator is seeded from what the maps hold.
//! Ids are handed out monotonically and a released id is not reused until the
//! counter wraps, because conntrack entries may still carry it: reusing a
//! backend id at once would silently move an established flow to a different
//! backend, and reusing a rev-NAT id would rewrite replies to the wrong
//! frontend. Id 0 is never used.

use std::collections::{BTreeMap, BTreeSet};

use super::diff::CurrentState;
use super::{FrontendKey, L4Addr};

/// One id space.
#[derive(Clone, Debug)]
struct Pool<K: Ord> {
    by_key: BTreeMap<K, u32>,
    used: BTreeSet<u32>,
    next: u32,
    /// Ids are below this; the counter wraps to 1 there.
    limit: u32,
}

impl<K: Ord + Clone> Default for Pool<K> {
    fn default() -> Self {
        Self {
            by_key: BTreeMap::new(),
            used: BTreeSet::new(),
            next: 1,
            limit: u32::MAX,
        }
    }
}

impl<K: Ord + Clone> Pool<K> {
    fn get(&self, key: &K) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    fn get_or_alloc(&mut self, key: &K) -> u32 {
        if let Some(id) = self.get(key) {
            return id;
        }
        let id = self.fresh();
        if id >= self.limit {
            // No id free: not recorded, the next pass asks again.
            return id;
        }
        self.by_key.insert(key.clone(), id);
        self.used.insert(id);
        id
    }

    /// The next unused id after the last one handed out. When every id
    /// below the limit is taken, the limit itself: the map write with it
    /// fails as a full map's does.
    fn fresh(&mut self) -> u32 {
        if self.used.len() as u64 >= u64::from(self.limit) - 1 {
            return self.limit;
        }
        loop {
            let id = self.next;
            self.bump_past(id);
            if !self.used.contains(&id) {
                return id;
            }
        }
    }

    /// Records that `key` already has `id` in the maps (first claim wins).
    fn seed(&mut self, key: K, id: u32) {
        if id == 0 || self.used.contains(&id) || self.by_key.contains_key(&key) {
            return;
        }
        self.by_key.insert(key, id);
        self.used.insert(id);
        self.bump_past(id);
    }

    fn bump_past(&mut self, id: u32) {
        if id >= self.next {
            self.next = id.checked_add(1).filter(|&n| n < self.limit).unwrap_or(1);
        }
    }

    fn retain(&mut self, keep: impl Fn(&K) -> bool) {
        let used = &mut self.used;
        self.by_key.retain(|k, id| {
            let kept = keep(k);
            if !kept {
                used.remove(id);
            }
            kept
        });
    }
}

/// Backend ids by backend address, rev-NAT ids by frontend address.
#[derive(Clone, Debug, Default)]
pub struct IdAllocator {
    backends: Pool<L4Addr>,
    rev_nat: Pool<L4Addr>,
}

impl IdAllocator {
    /// An allocator that knows every id the maps already use; backend ids
    /// stay below `backend_limit` (the length of the `BACKENDS` array).
    pub fn seeded(current: &CurrentState, backend_limit: u32) -> Self {
        let mut ids = Self::default();
        ids.backends.limit = backend_limit.max(2);
        ids.observe(current);
        ids
    }

    /// Learns the ids present in the maps that this allocator does not know
    /// yet (after a restart, or after a partly failed apply).
    pub fn observe(&mut self, current: &CurrentState) {
        for (&id, b) in &current.backends {
            match L4Addr::from_backend(b) {
                Some(addr) => self.backends.seed(addr, id),
                None => self.backends.bump_past(id),
            }
        }
        for (k, v) in &current.services {
            if k.slot != 0 {
                continue;
            }
            if let Some(fk) = FrontendKey::from_service_key(k) {
                self.rev_nat.seed(fk.l4, v.rev_nat_id);
            }
        }
        for &id in current.rev_nat.keys() {
            self.rev_nat.bump_past(id);
        }
    }

    /// Never hands out ids up to these: conntrack entries may still name them.
    pub fn reserve_up_to(&mut self, max_backend_id: u32, max_rev_nat_id: u32) {
        self.backends.bump_past(max_backend_id);
        self.rev_nat.bump_past(max_rev_nat_id);
    }

    /// The id of a backend address, allocating one if it is new; `None` when every id is
    /// taken (ids are freed once the backends no longer wanted are out of the maps).
    pub fn backend(&mut self, addr: &L4Addr) -> Option<u32> {
        Some(self.backends.get_or_alloc(addr)).filter(|&id| id < self.backends.limit)
    }

    /// The rev-NAT id of a frontend address, allocating one if it is new.
    pub fn rev_nat(&mut self, frontend: &L4Addr) -> u32 {
        self.rev_nat.get_or_alloc(frontend)
    }

    /// The id a backend address has, without allocating.
    pub fn backend_id(&self, addr: &L4Addr) -> Option<u32> {
        self.backends.get(addr)
    }

    /// The rev-NAT id a frontend address has, without allocating.
    pub fn rev_nat_id(&self, frontend: &L4Addr) -> Option<u32> {
        self.rev_nat.get(frontend)
    }

    /// Forgets the addresses no longer wanted (call once their map entries
    /// are gone). Their ids are not reused until the counter wraps.
    pub fn retain(&mut self, backend: impl Fn(&L4Addr) -> bool, rev_nat: impl Fn(&L4Addr) -> bool) {
        self.backends.retain(backend);
        self.rev_nat.retain(rev_nat);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::Proto;
    use std::net::Ipv4Addr;

    fn a(last: u8) -> L4Addr {
        L4Addr::new(Ipv4Addr::new(10, 0, 0, last), 80, Proto::Tcp)
    }

    #[test]
    fn ids_are_stable_and_not_reused_after_release() {
        let mut ids = IdAllocator::default();
        let x = ids.backend(&a(1)).unwrap();
        let y = ids.backend(&a(2)).unwrap();
        assert_ne!(x, y);
        assert_eq!(ids.backend(&a(1)), Some(x));
        ids.retain(|k| *k != a(1), |_| true);
        let z = ids.backend(&a(3)).unwrap();
        assert!(z > y, "released id {x} must not be reused soon, got {z}");
        assert_eq!(ids.backend(&a(1)), Some(z + 1));
    }

    #[test]
    fn reservation_skips_ids_conntrack_may_hold() {
        let mut ids = IdAllocator::default();
        ids.reserve_up_to(41, 7);
        assert_eq!(ids.backend(&a(1)), Some(42));
        assert_eq!(ids.rev_nat(&a(1)), 8);
    }

    #[test]
    fn backend_ids_stay_below_the_array_length_and_wrap() {
        let mut ids = IdAllocator::seeded(&CurrentState::default(), 4);
        let got: Vec<Option<u32>> = (1..=3).map(|i| ids.backend(&a(i))).collect();
        assert_eq!(got, [Some(1), Some(2), Some(3)]);
        assert_eq!(ids.backend(&a(4)), None, "full");
        ids.retain(|k| *k != a(2), |_| true);
        // The counter wrapped: the freed id, never one past the end.
        assert_eq!(ids.backend(&a(5)), Some(2));
    }

    #[test]
    fn wraps_to_lowest_free_id() {
        let mut pool: Pool<u8> = Pool::default();
        pool.seed(1, 1);
        pool.seed(2, u32::MAX);
        assert_eq!(pool.get_or_alloc(&3), 2);
        assert_eq!(pool.get_or_alloc(&4), 3);
    }
}
