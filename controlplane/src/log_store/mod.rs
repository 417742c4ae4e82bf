//! Durable Raft log in redb (openraft storage v2 `RaftLogStorage`), with group commit.
//!
//! Every write goes through one writer thread ([`writer`]) that commits all the writes
//! queued meanwhile in one fsync'd transaction. `append` returns once the entries are
//! readable (from [`pending`] until the writer has them in redb) and fires openraft's
//! `LogFlushed` callback only after the fsync; votes, truncations and purges wait for theirs
//! before returning. Only the committed log id is saved lazily (openraft allows it): it is
//! written with the next transaction, never ahead of the log on disk.

#![expect(
    clippy::result_large_err,
    reason = "openraft's StorageError is the error type of its storage traits"
)]

mod pending;
mod writer;

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogId, RaftLogReader};
use redb::{Database, ReadableDatabase, ReadableTable};

use tokio::sync::oneshot;

use crate::db::{self, from_json, read_err, to_json, write_err};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use pending::Pending;
use writer::{Job, Reply, Writer};

/// The Raft log of one replica. Cheap to clone (clones share the database and the writer;
/// the writer stops, and lets go of the database, when the last clone is dropped).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    pending: Arc<Pending>,
    writer: Arc<Writer>,
}

impl LogStore {
    pub fn new(db: Arc<Database>) -> Self {
        let pending = Arc::new(Pending::default());
        let writer = Arc::new(Writer::start(db.clone(), pending.clone()));
        Self {
            db,
            pending,
            writer,
        }
    }

    /// Queue a job that is acknowledged through `done` and wait for it to be durable.
    async fn submit(&self, job: impl FnOnce(Reply) -> Job) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        self.writer.send(job(tx))?;
        rx.await
            .map_err(|_| write_err(std::io::Error::other("the Raft log writer has stopped")))?
    }

    fn read_meta<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StorageError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(db::LOG_META).map_err(read_err)?;
        match table.get(name).map_err(read_err)? {
            Some(v) => Ok(Some(from_json(v.value())?)),
            None => Ok(None),
        }
    }

    /// Write one metadata value and wait until it is fsync'd.
    async fn write_meta<T: serde::Serialize>(
        &self,
        name: &'static str,
        value: &T,
    ) -> Result<(), StorageError> {
        let bytes = to_json(value)?;
        self.submit(|done| Job::Meta { name, bytes, done }).await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        // Pending first: an entry the writer commits meanwhile leaves `pending` only after
        // its commit, so the read transaction begun next sees it in redb.
        let mut found = self.pending.range(range.clone());
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(db::LOG).map_err(read_err)?;
        let mut out = Vec::new();
        for item in table.range::<u64>(range).map_err(read_err)? {
            let (k, v) = item.map_err(read_err)?;
            // A pending entry replaces a stored one at the same index (after a truncation).
            match found.remove(&k.value()) {
                Some(newer) => out.push(newer),
                None => out.push(from_json(v.value())?),
            }
        }
        out.extend(found.into_values());
        out.sort_by_key(|e: &Entry| e.get_log_id().index);
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_meta(db::LAST_PURGED)?;
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(db::LOG).map_err(read_err)?;
        let stored = match table.last().map_err(read_err)? {
            Some((_, v)) => Some(*from_json::<Entry>(v.value())?.get_log_id()),
            None => last_purged_log_id,
        };
        let last = stored.max(self.pending.last());
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write_meta(db::VOTE, vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(db::VOTE)
    }

    /// Lazy (see the module doc): a stale committed id only means a restarted replica
    /// re-applies less at start and waits for the leader for the rest.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        match committed {
            Some(c) => self.writer.send(Job::Committed(c)),
            None => Ok(()),
        }
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_meta::<Option<LogId>>(db::COMMITTED)?.flatten())
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
        self.pending.add(&entries);
        self.writer.send(Job::Append {
            entries,
            done: callback,
        })
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.pending.truncate(log_id.index);
        self.submit(|done| Job::Truncate {
            from: log_id.index,
            done,
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.pending.purge(log_id.index);
        self.submit(|done| Job::Purge { upto: log_id, done }).await
    }
}
