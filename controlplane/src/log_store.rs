//! Durable Raft log in redb (openraft storage v2 `RaftLogStorage`).
//!
//! Each call is one write transaction committed with fsync before it returns (or before the
//! append callback fires): votes, committed ids, appends, truncations and purges are on disk
//! before openraft is told they happened.

#![expect(
    clippy::result_large_err,
    reason = "openraft's StorageError is the error type of its storage traits"
)]

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogId, RaftLogReader};
use redb::{Database, ReadableDatabase, ReadableTable};

use crate::db::{self, blocking, from_json, read_err, to_json, write_err};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// The Raft log of one replica. Cheap to clone (shares the database).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
}

impl LogStore {
    pub fn new(db: Arc<Database>) -> Self {
        Self { db }
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

    /// Write one metadata value and fsync it.
    async fn write_meta<T: serde::Serialize>(
        &self,
        name: &'static str,
        value: &T,
    ) -> Result<(), StorageError> {
        let bytes = to_json(value)?;
        let db = self.db.clone();
        blocking(move || -> Result<(), StorageError> {
            let txn = db.begin_write().map_err(write_err)?;
            {
                let mut table = txn.open_table(db::LOG_META).map_err(write_err)?;
                table.insert(name, bytes.as_slice()).map_err(write_err)?;
            }
            txn.commit().map_err(write_err)
        })
        .await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(db::LOG).map_err(read_err)?;
        let mut out = Vec::new();
        for item in table.range::<u64>(range).map_err(read_err)? {
            let (_, v) = item.map_err(read_err)?;
            out.push(from_json(v.value())?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_meta(db::LAST_PURGED)?;
        let txn = self.db.begin_read().map_err(read_err)?;
        let table = txn.open_table(db::LOG).map_err(read_err)?;
        let last = match table.last().map_err(read_err)? {
            Some((_, v)) => Some(*from_json::<Entry>(v.value())?.get_log_id()),
            None => last_purged_log_id,
        };
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

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.write_meta(db::COMMITTED, &committed).await
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
        let encoded = entries
            .into_iter()
            .map(|e| Ok((e.get_log_id().index, to_json(&e)?)))
            .collect::<Result<Vec<_>, StorageError>>()?;
        let db = self.db.clone();
        let res = blocking(move || -> Result<(), StorageError> {
            let txn = db.begin_write().map_err(write_err)?;
            {
                let mut table = txn.open_table(db::LOG).map_err(write_err)?;
                for (index, bytes) in &encoded {
                    table.insert(*index, bytes.as_slice()).map_err(write_err)?;
                }
            }
            txn.commit().map_err(write_err)
        })
        .await;
        match &res {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(std::io::Error::other(e.to_string()))),
        }
        res
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let db = self.db.clone();
        blocking(move || -> Result<(), StorageError> {
            let txn = db.begin_write().map_err(write_err)?;
            {
                let mut table = txn.open_table(db::LOG).map_err(write_err)?;
                table
                    .retain_in(log_id.index.., |_, _| false)
                    .map_err(write_err)?;
            }
            txn.commit().map_err(write_err)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let db = self.db.clone();
        let purged = to_json(&log_id)?;
        blocking(move || -> Result<(), StorageError> {
            let txn = db.begin_write().map_err(write_err)?;
            {
                let mut meta = txn.open_table(db::LOG_META).map_err(write_err)?;
                meta.insert(db::LAST_PURGED, purged.as_slice())
                    .map_err(write_err)?;
                let mut table = txn.open_table(db::LOG).map_err(write_err)?;
                table
                    .retain_in(..=log_id.index, |_, _| false)
                    .map_err(write_err)?;
            }
            txn.commit().map_err(write_err)
        })
        .await
    }
}
