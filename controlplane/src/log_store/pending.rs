//! Entries appended but not yet committed to redb by the writer. openraft requires appended
//! entries to be readable as soon as `append` returns (replication reads them right away),
//! before they are durable; readers look here first, then in redb.

use std::collections::BTreeMap;
use std::ops::RangeBounds;
use std::sync::Mutex;

use openraft::RaftLogId;

use crate::types::{Entry, LogId};

#[derive(Default)]
pub(super) struct Pending {
    entries: Mutex<BTreeMap<u64, Entry>>,
}

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn add(&self, entries: &[Entry]) {
        let mut m = self.lock();
        for e in entries {
            m.insert(e.get_log_id().index, e.clone());
        }
    }

    /// The writer committed these: drop them unless they were replaced meanwhile (after a
    /// truncation, the same index may hold a newer entry that is still pending).
    pub(super) fn flushed(&self, ids: &[LogId]) {
        let mut m = self.lock();
        for id in ids {
            if m.get(&id.index).is_some_and(|e| e.get_log_id() == id) {
                m.remove(&id.index);
            }
        }
    }

    pub(super) fn truncate(&self, from: u64) {
        self.lock().retain(|i, _| *i < from);
    }

    pub(super) fn purge(&self, upto: u64) {
        self.lock().retain(|i, _| *i > upto);
    }

    pub(super) fn range(&self, range: impl RangeBounds<u64>) -> BTreeMap<u64, Entry> {
        self.lock()
            .range(range)
            .map(|(i, e)| (*i, e.clone()))
            .collect()
    }

    pub(super) fn last(&self) -> Option<LogId> {
        self.lock().values().next_back().map(|e| *e.get_log_id())
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

    #[test]
    fn flushed_keeps_a_replacement_at_the_same_index() {
        let p = Pending::default();
        p.add(&[entry(1, 1), entry(1, 2)]);
        p.truncate(2);
        p.add(&[entry(2, 2)]);
        p.flushed(&[*entry(1, 1).get_log_id(), *entry(1, 2).get_log_id()]);
        let left = p.range(..);
        assert_eq!(left.len(), 1);
        assert_eq!(left[&2].log_id.leader_id.term, 2);
        assert_eq!(p.last().map(|l| l.index), Some(2));
        p.purge(2);
        assert!(p.range(..).is_empty());
    }
}
