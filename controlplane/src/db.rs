//! The redb database that holds one replica's state machine (the Raft log has files of its
//! own, see `log_store`; the log tables here only hold logs of earlier versions until they
//! are moved out).
//!
//! Snapshots are committed with `Durability::Immediate`: when `commit` returns, the data is
//! fsync'd. Most state-machine apply batches are committed with `Durability::None` and become
//! durable with a later durable commit (see `state_machine`).

#![expect(
    clippy::result_large_err,
    reason = "openraft's StorageError is the error type of its storage traits"
)]

use std::path::Path;
use std::sync::Arc;

use openraft::{AnyError, StorageIOError};
use redb::{Database, TableDefinition};

use crate::error::Error;
use crate::types::StorageError;

/// Raft log entries by index (JSON-encoded `Entry`), as earlier versions kept them.
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Log store metadata ([`VOTE`], [`COMMITTED`], [`LAST_PURGED`]), as earlier versions kept it.
pub(crate) const LOG_META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_log_meta");
/// The object store: key → JSON-encoded `StoredValue`.
pub(crate) const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// State-machine metadata: [`LAST_APPLIED`], [`REVISION`], [`MEMBERSHIP`], [`SNAPSHOT_META`] (and
/// [`SNAPSHOT_DATA`] in stores written before [`SNAPSHOT`] existed).
pub(crate) const SM_META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");
/// The current snapshot's bytes under [`SNAPSHOT_DATA`]. A table of its own: every apply
/// rewrites the `SM_META` leaf holding the last applied id, and a multi-megabyte snapshot
/// in that leaf would be copied with it on every write.
pub(crate) const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_snapshot");

pub(crate) const VOTE: &str = "vote";
pub(crate) const COMMITTED: &str = "committed";
pub(crate) const LAST_PURGED: &str = "last_purged";
pub(crate) const LAST_APPLIED: &str = "last_applied";
/// The last revision given to a command (absent in stores from before [`crate::Command::Many`]:
/// there every revision was its log index, which the rule `max(index, last + 1)` continues).
pub(crate) const REVISION: &str = "revision";
pub(crate) const MEMBERSHIP: &str = "membership";
pub(crate) const SNAPSHOT_META: &str = "snapshot_meta";
pub(crate) const SNAPSHOT_DATA: &str = "snapshot_data";

/// File name of the database inside a replica's data directory.
pub const DB_FILE: &str = "skiff-store.redb";

/// Open (or create) the database in `dir` and make sure every table exists, so read
/// transactions never see a missing table.
pub fn open(dir: &Path) -> Result<Arc<Database>, Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(DB_FILE);
    let db = Database::create(&path).map_err(|e| Error::Db {
        path: path.clone(),
        source: e.into(),
    })?;
    let init = || -> Result<(), redb::Error> {
        let txn = db.begin_write()?;
        txn.open_table(LOG)?;
        txn.open_table(LOG_META)?;
        txn.open_table(KV)?;
        txn.open_table(SM_META)?;
        txn.open_table(SNAPSHOT)?;
        txn.commit()?;
        Ok(())
    };
    init().map_err(|source| Error::Db { path, source })?;
    Ok(Arc::new(db))
}

/// Run blocking database work (a write transaction and its fsync) off the async workers.
pub(crate) async fn blocking<T, F>(f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .expect("database task panicked")
}

/// Storage-layer failure while reading (for openraft).
pub(crate) fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read(AnyError::new(&e)).into()
}

/// Storage-layer failure while writing (for openraft).
pub(crate) fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write(AnyError::new(&e)).into()
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StorageError> {
    serde_json::to_vec(v).map_err(write_err)
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, StorageError> {
    serde_json::from_slice(b).map_err(read_err)
}
