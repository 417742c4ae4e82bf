//! The log as readers see it, in memory: each entry's id and where its record is on disk, the
//! newest entries themselves (a cache bounded in bytes: replication and apply read entries
//! right after they are appended), and the vote, committed id and purge point.
//!
//! openraft requires an appended entry to be readable as soon as `append` returns, before it
//! is durable, so an entry is cached from its append until the writer has written it; it may
//! be evicted (and read back from its segment) only after that.

use std::collections::BTreeMap;
use std::ops::RangeBounds;
use std::sync::{Mutex, MutexGuard};

use super::segment::Loc;
use super::wal::Recovered;
use crate::types::{Entry, LogId, Vote};

/// Bytes of written entries kept in memory.
pub(super) const CACHE_BYTES: usize = 32 << 20;

struct Slot {
    id: LogId,
    loc: Option<Loc>,
    entry: Option<Entry>,
    /// Bytes this slot counts in the cache (0 until it is written).
    counted: usize,
}

#[derive(Default)]
struct Inner {
    slots: BTreeMap<u64, Slot>,
    cached: usize,
    /// No slot below this index counts in the cache.
    evict_from: u64,
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
}

/// An entry as found: in memory, or on disk at a location.
pub(super) enum Found {
    Cached(Entry),
    OnDisk(Loc),
}

pub(super) struct Index {
    inner: Mutex<Inner>,
    budget: usize,
}

impl Index {
    pub(super) fn new(rec: &Recovered, budget: usize) -> Self {
        let slots = rec
            .entries
            .iter()
            .map(|(&i, &(id, loc))| {
                let slot = Slot {
                    id,
                    loc: Some(loc),
                    entry: None,
                    counted: 0,
                };
                (i, slot)
            })
            .collect();
        Self {
            inner: Mutex::new(Inner {
                slots,
                vote: rec.vote,
                committed: rec.committed,
                last_purged: rec.last_purged,
                ..Default::default()
            }),
            budget,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Entries handed to `append`: readable from now on.
    pub(super) fn append(&self, entries: &[Entry]) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        for e in entries {
            let slot = Slot {
                id: e.log_id,
                loc: None,
                entry: Some(e.clone()),
                counted: 0,
            };
            if let Some(old) = inner.slots.insert(e.log_id.index, slot) {
                inner.cached -= old.counted;
            }
        }
    }

    /// The writer has these entries (id, location, size) on disk; drop the oldest cached
    /// ones beyond the budget. An id whose slot holds a newer entry (after a truncation) is
    /// skipped.
    pub(super) fn written(&self, placed: impl IntoIterator<Item = (LogId, Loc, usize)>) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        for (id, loc, bytes) in placed {
            let Some(slot) = inner.slots.get_mut(&id.index) else {
                continue;
            };
            if slot.id != id || slot.loc.is_some() {
                continue;
            }
            slot.loc = Some(loc);
            slot.counted = bytes;
            inner.cached += bytes;
        }
        while inner.cached > self.budget {
            let from = inner.evict_from;
            let Some((&i, slot)) = inner.slots.range_mut(from..).find(|(_, s)| s.counted > 0)
            else {
                break;
            };
            inner.cached -= slot.counted;
            slot.counted = 0;
            slot.entry = None;
            inner.evict_from = i + 1;
        }
    }

    /// Entries from `from` on are gone.
    pub(super) fn truncate(&self, from: u64) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        for (_, old) in inner.slots.split_off(&from) {
            inner.cached -= old.counted;
        }
        inner.evict_from = inner.evict_from.min(from);
    }

    /// Entries up to and including `upto` are gone.
    pub(super) fn purge(&self, upto: LogId) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let kept = inner.slots.split_off(&(upto.index + 1));
        for (_, old) in std::mem::replace(&mut inner.slots, kept) {
            inner.cached -= old.counted;
        }
        inner.last_purged = inner.last_purged.max(Some(upto));
    }

    /// The entries in `range`, in order.
    pub(super) fn range(&self, range: impl RangeBounds<u64>) -> Vec<Found> {
        self.lock()
            .slots
            .range(range)
            .filter_map(|(_, s)| match (&s.entry, s.loc) {
                (Some(e), _) => Some(Found::Cached(e.clone())),
                (None, Some(loc)) => Some(Found::OnDisk(loc)),
                (None, None) => None,
            })
            .collect()
    }

    /// The last entry's id (the purge point when none is left).
    pub(super) fn last(&self) -> Option<LogId> {
        let inner = self.lock();
        match inner.slots.last_key_value() {
            Some((_, s)) => Some(s.id),
            None => inner.last_purged,
        }
    }

    pub(super) fn last_purged(&self) -> Option<LogId> {
        self.lock().last_purged
    }

    pub(super) fn vote(&self) -> Option<Vote> {
        self.lock().vote
    }

    pub(super) fn set_vote(&self, vote: Vote) {
        self.lock().vote = Some(vote);
    }

    pub(super) fn committed(&self) -> Option<LogId> {
        self.lock().committed
    }

    pub(super) fn set_committed(&self, committed: LogId) {
        self.lock().committed = Some(committed);
    }

    /// Bytes of entries cached (for tests).
    #[cfg(test)]
    fn cached_bytes(&self) -> usize {
        self.lock().cached
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn loc(i: u64) -> Loc {
        Loc {
            seq: 1,
            offset: i * 100,
            len: 10,
        }
    }

    fn kinds(index: &Index) -> Vec<char> {
        index
            .range(..)
            .iter()
            .map(|f| match f {
                Found::Cached(_) => 'c',
                Found::OnDisk(_) => 'd',
            })
            .collect()
    }

    #[test]
    fn entries_stay_cached_until_written_then_the_oldest_go_to_disk() {
        let index = Index::new(&Recovered::default(), 25);
        let es: Vec<Entry> = (1..=4).map(|i| entry(1, i)).collect();
        index.append(&es);
        assert_eq!(kinds(&index), vec!['c'; 4]);
        index.written(es[..3].iter().map(|e| (e.log_id, loc(e.log_id.index), 10)));
        // 30 bytes written, budget 25: the oldest goes; the unwritten one stays.
        assert_eq!(kinds(&index), vec!['d', 'c', 'c', 'c']);
        assert_eq!(index.cached_bytes(), 20);
        index.written([(es[3].log_id, loc(4), 10)]);
        assert_eq!(kinds(&index), vec!['d', 'd', 'c', 'c']);
    }

    #[test]
    fn a_replaced_entry_keeps_its_own_state() {
        let index = Index::new(&Recovered::default(), 1 << 20);
        index.append(&[entry(1, 1), entry(1, 2)]);
        index.truncate(2);
        index.append(&[entry(2, 2)]);
        index.written([(entry(1, 2).log_id, loc(2), 10)]);
        assert_eq!(index.cached_bytes(), 0, "the old id's write is not counted");
        assert_eq!(index.last().map(|l| l.leader_id.term), Some(2));
        index.purge(entry(2, 2).log_id);
        assert!(index.range(..).is_empty());
        assert_eq!(index.last(), Some(entry(2, 2).log_id));
        assert_eq!(index.last_purged(), Some(entry(2, 2).log_id));
    }
}
