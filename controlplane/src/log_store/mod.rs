//! The durable Raft log (openraft storage v2 `RaftLogStorage`): an append-only write-ahead
//! log of segment files ([`wal`]) with group commit ([`writer`]), and an in-memory
//! [`index`] that readers use.
//!
//! Every write goes through one writer thread that writes all the jobs queued meanwhile with
//! one `fdatasync`. Votes, truncations and purges wait for theirs before returning. `append`
//! returns once the entries are readable (cached in the index) and fires openraft's
//! `LogFlushed` callback at once, before the sync, as etcd's leader does with its own append:
//! openraft 0.9's core waits for that callback before it replicates, so a truthful callback
//! put the leader's sync and the followers' in series. Durability is kept where it counts
//! ([`LogDurability`]): a follower acknowledges an AppendEntries only once its log has synced
//! everything queued before the answer, the leader sends a commit index only once its own log
//! has it on disk, and no replica applies an entry its log has not synced. So an entry is
//! applied (and its write answered) only when it is on disk on a majority, the leader
//! included. Only the committed log id is saved lazily (openraft allows it): it rides with the
//! next batch, never ahead of the log on disk.
//!
//! The log lives in its own directory rather than in the state machine's redb file: a redb
//! commit rewrites a B-tree path of pages for every table it touches and syncs them all,
//! where an append here fills the next page of one file. Logs written by earlier versions
//! into redb are moved here on first open ([`legacy`]).

#![expect(
    clippy::result_large_err,
    reason = "openraft's StorageError is the error type of its storage traits"
)]

mod durability;
mod index;
mod legacy;
mod record;
mod segment;
mod wal;
mod writer;

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use redb::Database;
use tokio::sync::oneshot;

use crate::db::{from_json, read_err, write_err};
use crate::error::Error;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
pub use durability::LogDurability;
use index::{Found, Index};
use segment::Segments;
use wal::Wal;
use writer::{Job, Reply, Writer};

/// The directory of the log inside a replica's data directory.
pub const LOG_DIR: &str = "raft-log";

/// The Raft log of one replica. Cheap to clone (clones share the index and the writer; the
/// writer stops when the last clone is dropped).
#[derive(Clone)]
pub struct LogStore {
    index: Arc<Index>,
    segments: Arc<Segments>,
    writer: Arc<Writer>,
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, first moving in a log that an earlier version
    /// kept in `db`.
    pub fn open(dir: &Path, db: &Database) -> Result<Self, Error> {
        let io = |source| Error::Io {
            path: dir.to_path_buf(),
            source,
        };
        legacy::import(db, dir).map_err(io)?;
        let segments = Arc::new(Segments::default());
        let (wal, rec) = Wal::open(dir, wal::SEGMENT_BYTES, segments.clone()).map_err(io)?;
        Ok(Self::start(wal, &rec, segments))
    }

    fn start(wal: Wal, rec: &wal::Recovered, segments: Arc<Segments>) -> Self {
        let index = Arc::new(Index::new(rec, index::CACHE_BYTES));
        let last_index = index.last().map(|l| l.index);
        let writer = Arc::new(Writer::start(wal, index.clone(), last_index));
        Self {
            index,
            segments,
            writer,
        }
    }

    /// How far the log is on disk: the state machine applies behind it, the Raft service
    /// answers behind it.
    pub fn durability(&self) -> LogDurability {
        self.writer.durability()
    }

    /// Queue a job that is acknowledged through `done` and wait for it to be durable.
    async fn submit(&self, job: impl FnOnce(Reply) -> Job) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        self.writer.send(job(tx))?;
        rx.await
            .map_err(|_| write_err(std::io::Error::other("the Raft log writer has stopped")))?
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let mut out = Vec::new();
        for found in self.index.range(range) {
            match found {
                Found::Cached(e) => out.push(e),
                Found::OnDisk(loc) => match self.segments.read(loc) {
                    Ok(bytes) => out.push(from_json(&bytes)?),
                    // Purged meanwhile: fewer entries than asked for is allowed.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) => return Err(read_err(e)),
                },
            }
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        Ok(LogState {
            last_purged_log_id: self.index.last_purged(),
            last_log_id: self.index.last(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = *vote;
        self.submit(|done| Job::Vote { vote, done }).await
    }

    /// The saved vote, never as committed: openraft 0.9 restarts a replica whose committed
    /// vote is its own as leader of the same term, without an election. Its log may have
    /// lost entries it had already sent (appends are acknowledged before their sync), and
    /// as leader of the same term it would hand their log ids out again to other entries,
    /// which followers holding the old ones would take as matching. Restarted, a leader
    /// wins a new term first.
    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.index.vote().map(|mut v| {
            v.committed = false;
            v
        }))
    }

    /// Lazy (see the module doc): a stale committed id only means a restarted replica
    /// re-applies less at start and waits for the leader for the rest.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        if let Some(c) = committed {
            self.writer.note_committed(c);
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.index.committed())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        self.index.append(&entries);
        self.writer.send(Job::Append { entries })?;
        // Early, on purpose: see the module doc and `LogDurability`.
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.index.truncate(log_id.index);
        self.submit(|done| Job::Truncate {
            from: log_id.index,
            done,
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.index.purge(log_id);
        self.submit(|done| Job::Purge { upto: log_id, done }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reopened_log_never_reads_its_vote_as_committed() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::open(dir.path()).unwrap();
        let mut log = LogStore::open(&dir.path().join(LOG_DIR), &db).unwrap();
        log.save_vote(&Vote::new_committed(3, 1)).await.unwrap();
        drop(log);
        let mut log = LogStore::open(&dir.path().join(LOG_DIR), &db).unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(3, 1)));
    }
}
