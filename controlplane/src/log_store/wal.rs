//! The write-ahead log: append-only segment files ([`segment`]) of framed records
//! ([`record`]). The writer thread owns it.
//!
//! A batch of records is one `pwrite` at the end of the active segment and one
//! `fdatasync`: the cost of a durable append is the pages it fills, not a B-tree's path of
//! pages rewritten elsewhere (what a redb commit costs). Everything is a record: entries,
//! votes, the committed id, truncations (entries from an index on are gone) and purges
//! (entries up to an id are gone). Opening replays the records in order, so the last word on
//! each wins.
//!
//! When the active segment is full, the next batch goes to a new one that starts with the
//! current vote, committed id and purge point, so a segment whose entries are all purged can be
//! deleted without losing them; deletions only ever take the oldest segments, never the
//! active one. Only the active (last) segment can hold a torn batch, since a new segment is
//! created after the previous one's last batch was synced: a damaged record there ends the
//! log (the torn bytes are zeroed) and anywhere else refuses to open.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::record::{decode, Decoded, Record};
use super::segment::{self, Loc, Segments};
use crate::types::{LogId, Vote};

/// Segment size: the preallocation and the point past which the next batch starts a new one.
pub(super) const SEGMENT_BYTES: u64 = 64 << 20;

/// What the log holds, as replayed at open.
#[derive(Debug, Default)]
pub(super) struct Recovered {
    pub vote: Option<Vote>,
    pub committed: Option<LogId>,
    pub last_purged: Option<LogId>,
    pub entries: BTreeMap<u64, (LogId, Loc)>,
}

impl Recovered {
    fn apply(&mut self, record: Record, loc: Loc) {
        match record {
            Record::Entry { id, .. } => {
                if self.last_purged.is_none_or(|p| id.index > p.index) {
                    self.entries.insert(id.index, (id, loc));
                }
            }
            Record::Vote(v) => self.vote = Some(v),
            Record::Committed(c) => self.committed = Some(c),
            Record::Truncate(from) => drop(self.entries.split_off(&from)),
            Record::Purge(upto) => {
                self.last_purged = self.last_purged.max(Some(upto));
                self.entries = self.entries.split_off(&(upto.index + 1));
            }
        }
    }
}

pub(super) struct Wal {
    dir: PathBuf,
    segments: Arc<Segments>,
    segment_bytes: u64,
    seq: u64,
    file: Arc<File>,
    /// Where the next batch goes in the active segment.
    offset: u64,
    /// The highest entry index written to each segment (`None`: no entries).
    max_index: BTreeMap<u64, Option<u64>>,
    /// As on disk; the head of every new segment.
    vote: Option<Vote>,
    committed: Option<LogId>,
    last_purged: Option<LogId>,
}

fn damaged(path: &Path, at: usize, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "Raft log segment {} is damaged at byte {at}: {why}",
            path.display()
        ),
    )
}

impl Wal {
    /// Opens (or creates) the log in `dir` and replays it.
    pub(super) fn open(
        dir: &Path,
        segment_bytes: u64,
        segments: Arc<Segments>,
    ) -> io::Result<(Self, Recovered)> {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            if let Some(parent) = dir.parent() {
                segment::sync_dir(parent)?;
            }
        }
        let seqs = segment::list(dir)?;
        let mut rec = Recovered::default();
        let mut max_index = BTreeMap::new();
        let mut end = 0;
        for (i, &seq) in seqs.iter().enumerate() {
            let path = segment::path(dir, seq);
            let buf = std::fs::read(&path)?;
            let mut at = 0;
            let mut max = None;
            loop {
                match decode(&buf, at) {
                    Decoded::Record {
                        record,
                        payload_at,
                        payload_len,
                        next,
                    } => {
                        if let Record::Entry { id, .. } = &record {
                            max = max.max(Some(id.index));
                        }
                        let loc = Loc {
                            seq,
                            offset: payload_at as u64,
                            len: payload_len as u32,
                        };
                        rec.apply(record, loc);
                        at = next;
                    }
                    // In the last segment, whatever follows the end is a batch that never
                    // reached the disk whole (its first page may be lost and later ones not):
                    // zeroed, so that batches written over it are never followed by leftovers.
                    Decoded::End => {
                        if i + 1 == seqs.len() {
                            zero_tail(&path, &buf, at)?;
                        }
                        break;
                    }
                    Decoded::Bad(why) if i + 1 == seqs.len() => {
                        log::warn!(
                            "Raft log {}: {why} at byte {at}: the last batch was torn; \
                             the log ends before it",
                            path.display()
                        );
                        zero_tail(&path, &buf, at)?;
                        break;
                    }
                    Decoded::Bad(why) => return Err(damaged(&path, at, &why)),
                }
            }
            max_index.insert(seq, max);
            segments.insert(seq, Arc::new(segment::open(dir, seq)?));
            end = at as u64;
        }
        let seq = match seqs.last() {
            Some(&seq) => seq,
            None => {
                let file = segment::create(dir, 1, segment_bytes)?;
                segments.insert(1, Arc::new(file));
                max_index.insert(1, None);
                1
            }
        };
        let file = segments
            .get(seq)
            .expect("the active segment was just opened");
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            segments,
            segment_bytes,
            seq,
            file,
            offset: end,
            max_index,
            vote: rec.vote,
            committed: rec.committed,
            last_purged: rec.last_purged,
        };
        // A segment rotated to just before a crash may lack its head (written with the
        // batch that followed): write it now, or deleting the older segments would lose
        // the vote they hold.
        if wal.offset == 0 && seqs.len() > 1 {
            let head = wal.head();
            if !head.is_empty() {
                wal.write(&head)?;
            }
        }
        Ok((wal, rec))
    }

    /// Writes `records` durably (one write, one `fdatasync`); returns where each entry's
    /// payload is, in the order of the entries among `records`.
    pub(super) fn write(&mut self, records: &[Record]) -> io::Result<Vec<Loc>> {
        let mut body = Vec::new();
        let mut at = Vec::new();
        for r in records {
            let (payload_at, len) = r.encode(&mut body).map_err(io::Error::other)?;
            if matches!(r, Record::Entry { .. }) {
                at.push((payload_at, len));
            }
        }
        // A new segment's head goes in front of the batch (rare: the batch is not copied).
        let mut head = Vec::new();
        if self.offset > 0 && self.offset + body.len() as u64 > self.segment_bytes {
            self.rotate()?;
            for r in self.head() {
                r.encode(&mut head).map_err(io::Error::other)?;
            }
            self.file.write_all_at(&head, self.offset)?;
        }
        let base = self.offset + head.len() as u64;
        self.file.write_all_at(&body, base)?;
        self.file.sync_data()?;
        self.offset = base + body.len() as u64;

        for r in records {
            match r {
                Record::Entry { id, .. } => {
                    let max = self.max_index.entry(self.seq).or_default();
                    *max = (*max).max(Some(id.index));
                }
                Record::Vote(v) => self.vote = Some(*v),
                Record::Committed(c) => self.committed = Some(*c),
                Record::Truncate(_) => {}
                Record::Purge(upto) => self.last_purged = self.last_purged.max(Some(*upto)),
            }
        }
        Ok(at
            .into_iter()
            .map(|(payload_at, len)| Loc {
                seq: self.seq,
                offset: base + payload_at as u64,
                len: len as u32,
            })
            .collect())
    }

    /// The records that open a new segment: what the older ones said.
    fn head(&self) -> Vec<Record> {
        let mut head = Vec::new();
        head.extend(self.vote.map(Record::Vote));
        head.extend(self.committed.map(Record::Committed));
        head.extend(self.last_purged.map(Record::Purge));
        head
    }

    fn rotate(&mut self) -> io::Result<()> {
        let seq = self.seq + 1;
        let file = Arc::new(segment::create(&self.dir, seq, self.segment_bytes)?);
        self.segments.insert(seq, file.clone());
        self.max_index.insert(seq, None);
        self.seq = seq;
        self.file = file;
        self.offset = 0;
        Ok(())
    }

    /// Deletes the oldest segments whose entries are all purged (never the active one).
    pub(super) fn remove_purged(&mut self) {
        let Some(purged) = self.last_purged.map(|p| p.index) else {
            return;
        };
        while let Some((&seq, &max)) = self.max_index.first_key_value() {
            if seq == self.seq || max.is_some_and(|m| m > purged) {
                break;
            }
            self.segments.remove(seq);
            let path = segment::path(&self.dir, seq);
            if let Err(e) = std::fs::remove_file(&path) {
                log::warn!("removing purged Raft log segment {}: {e}", path.display());
                break;
            }
            self.max_index.remove(&seq);
        }
    }

    /// The segments on disk (for tests and status).
    #[cfg(test)]
    pub(super) fn segment_count(&self) -> usize {
        self.max_index.len()
    }
}

/// Zeros a torn batch (from `at` to the last non-zero byte) so that later batches written
/// over it cannot be followed by its leftovers.
fn zero_tail(path: &Path, buf: &[u8], at: usize) -> io::Result<()> {
    let Some(last) = buf[at..].iter().rposition(|&b| b != 0) else {
        return Ok(());
    };
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.write_all_at(&vec![0; last + 1], at as u64)?;
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::types::Entry;

    fn id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn entry(term: u64, index: u64) -> Record {
        let e = Entry {
            log_id: id(term, index),
            payload: EntryPayload::Blank,
        };
        Record::Entry {
            id: e.log_id,
            json: serde_json::to_vec(&e).unwrap(),
        }
    }

    fn open(dir: &Path, segment_bytes: u64) -> (Wal, Recovered) {
        Wal::open(dir, segment_bytes, Arc::default()).unwrap()
    }

    fn indexes(rec: &Recovered) -> Vec<(u64, u64)> {
        rec.entries
            .values()
            .map(|(id, _)| (id.leader_id.term, id.index))
            .collect()
    }

    #[test]
    fn replay_applies_truncations_purges_and_the_last_vote() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, rec) = open(dir.path(), SEGMENT_BYTES);
            assert!(rec.entries.is_empty() && rec.vote.is_none());
            wal.write(&[Record::Vote(Vote::new(1, 1)), entry(1, 1), entry(1, 2)])
                .unwrap();
            wal.write(&[entry(1, 3), Record::Truncate(2), entry(2, 2)])
                .unwrap();
            wal.write(&[Record::Vote(Vote::new(2, 1)), Record::Committed(id(2, 2))])
                .unwrap();
            wal.write(&[Record::Purge(id(1, 1)), entry(2, 3)]).unwrap();
        }
        let (_, rec) = open(dir.path(), SEGMENT_BYTES);
        assert_eq!(indexes(&rec), vec![(2, 2), (2, 3)]);
        assert_eq!(rec.vote, Some(Vote::new(2, 1)));
        assert_eq!(rec.committed, Some(id(2, 2)));
        assert_eq!(rec.last_purged, Some(id(1, 1)));
    }

    #[test]
    fn locations_read_back_the_entries() {
        let dir = tempfile::tempdir().unwrap();
        let segments = Arc::new(Segments::default());
        let (mut wal, _) = Wal::open(dir.path(), 512, segments.clone()).unwrap();
        let mut written = Vec::new();
        for i in 1..=20 {
            let r = entry(1, i);
            let loc = wal.write(std::slice::from_ref(&r)).unwrap()[0];
            written.push((r, loc));
        }
        assert!(wal.segment_count() > 1, "small segments rotate");
        for (r, loc) in &written {
            let Record::Entry { json, .. } = r else {
                unreachable!()
            };
            assert_eq!(&segments.read(*loc).unwrap(), json);
        }
        drop(wal);
        let (_, rec) = open(dir.path(), 512);
        for (r, loc) in &written {
            let Record::Entry { id, .. } = r else {
                unreachable!()
            };
            assert_eq!(rec.entries[&id.index], (*id, *loc));
        }
    }

    #[test]
    fn purged_segments_go_and_their_vote_stays() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = open(dir.path(), 256);
            wal.write(&[Record::Vote(Vote::new(4, 2))]).unwrap();
            for i in 1..=30 {
                wal.write(&[entry(4, i)]).unwrap();
            }
            wal.write(&[Record::Committed(id(4, 30))]).unwrap();
            let before = wal.segment_count();
            wal.write(&[Record::Purge(id(4, 25))]).unwrap();
            wal.remove_purged();
            assert!(wal.segment_count() < before);
            assert!(segment::list(dir.path()).unwrap().len() < before);
        }
        let (_, rec) = open(dir.path(), 256);
        assert_eq!(rec.vote, Some(Vote::new(4, 2)));
        assert_eq!(rec.committed, Some(id(4, 30)));
        assert_eq!(rec.last_purged, Some(id(4, 25)));
        assert_eq!(
            rec.entries.keys().copied().collect::<Vec<_>>(),
            (26..=30).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_segment_rotated_just_before_a_crash_gets_its_head_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let next = {
            let (mut wal, _) = open(dir.path(), 256);
            wal.write(&[Record::Vote(Vote::new(5, 1))]).unwrap();
            for i in 1..=10 {
                wal.write(&[entry(5, i)]).unwrap();
            }
            wal.seq + 1
        };
        // Created and synced, but the batch with its head never written.
        segment::create(dir.path(), next, 256).unwrap();
        {
            let (mut wal, rec) = open(dir.path(), 256);
            assert_eq!(rec.vote, Some(Vote::new(5, 1)));
            assert!(wal.offset > 0, "the head was written at open");
            wal.write(&[Record::Purge(id(5, 10))]).unwrap();
            wal.remove_purged();
            assert_eq!(segment::list(dir.path()).unwrap(), vec![next]);
        }
        let (_, rec) = open(dir.path(), 256);
        assert_eq!(
            rec.vote,
            Some(Vote::new(5, 1)),
            "the vote outlives its segment"
        );
        assert_eq!(rec.last_purged, Some(id(5, 10)));
    }

    #[test]
    fn leftovers_after_the_end_are_zeroed() {
        let dir = tempfile::tempdir().unwrap();
        let end = {
            let (mut wal, _) = open(dir.path(), SEGMENT_BYTES);
            wal.write(&[entry(1, 1)]).unwrap();
            wal.offset
        };
        // The second page of a batch whose first page was lost.
        let mut stale = Vec::new();
        entry(1, 2).encode(&mut stale).unwrap();
        let seg = segment::path(dir.path(), 1);
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.write_all_at(&stale, end + 4096).unwrap();
        drop(open(dir.path(), SEGMENT_BYTES));
        let bytes = std::fs::read(&seg).unwrap();
        assert!(bytes[end as usize..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_torn_last_batch_is_dropped_and_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let end = {
            let (mut wal, _) = open(dir.path(), SEGMENT_BYTES);
            wal.write(&[entry(1, 1), entry(1, 2)]).unwrap();
            wal.offset
        };
        // Half a record after the synced batch, as a crash mid-write leaves it.
        let mut torn = Vec::new();
        entry(1, 3).encode(&mut torn).unwrap();
        let seg = segment::path(dir.path(), 1);
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.write_all_at(&torn[..torn.len() / 2], end).unwrap();
        {
            let (mut wal, rec) = open(dir.path(), SEGMENT_BYTES);
            assert_eq!(indexes(&rec), vec![(1, 1), (1, 2)]);
            assert_eq!(wal.offset, end);
            // A shorter record over the torn one leaves no leftovers to misread.
            wal.write(&[Record::Truncate(9)]).unwrap();
        }
        let (_, rec) = open(dir.path(), SEGMENT_BYTES);
        assert_eq!(indexes(&rec), vec![(1, 1), (1, 2)]);
    }

    #[test]
    fn damage_before_the_last_segment_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = open(dir.path(), 128);
            for i in 1..=10 {
                wal.write(&[entry(1, i)]).unwrap();
            }
            assert!(wal.segment_count() > 2);
        }
        let first = segment::path(dir.path(), 1);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&first)
            .unwrap();
        f.write_all_at(b"\xff\xff", 20).unwrap();
        let err = Wal::open(dir.path(), 128, Arc::default()).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("damaged"), "{err}");
    }
}
