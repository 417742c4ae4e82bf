//! Earlier versions kept the Raft log in the state machine's redb file (tables `raft_log` and
//! `raft_log_meta`). On first open such a log is written into a WAL beside the log directory,
//! synced, and renamed into place; only then is it removed from redb. A crash before the
//! rename leaves redb's copy whole (the partial import is started over); a crash after it
//! leaves a complete WAL, and the next open just removes the old copy.

use std::io;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable};

use super::record::Record;
use super::segment;
use super::wal::{self, Wal};
use crate::db;
use crate::types::{Entry, LogId, Vote};

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("moving the Raft log out of redb: {e}"))
}

/// What the old tables hold, as records in the order they replay to the same log.
fn read(db: &Database) -> io::Result<Vec<Record>> {
    let txn = db.begin_read().map_err(other)?;
    let meta = txn.open_table(db::LOG_META).map_err(other)?;
    let get = |name: &str| -> io::Result<Option<Vec<u8>>> {
        Ok(meta.get(name).map_err(other)?.map(|v| v.value().to_vec()))
    };
    let mut records = Vec::new();
    if let Some(b) = get(db::VOTE)? {
        records.push(Record::Vote(
            serde_json::from_slice::<Vote>(&b).map_err(other)?,
        ));
    }
    if let Some(b) = get(db::LAST_PURGED)? {
        records.push(Record::Purge(
            serde_json::from_slice::<LogId>(&b).map_err(other)?,
        ));
    }
    let log = txn.open_table(db::LOG).map_err(other)?;
    for item in log.iter().map_err(other)? {
        let (_, v) = item.map_err(other)?;
        let json = v.value().to_vec();
        let e: Entry = serde_json::from_slice(&json).map_err(other)?;
        records.push(Record::Entry { id: e.log_id, json });
    }
    if let Some(b) = get(db::COMMITTED)? {
        if let Some(c) = serde_json::from_slice::<Option<LogId>>(&b).map_err(other)? {
            records.push(Record::Committed(c));
        }
    }
    Ok(records)
}

fn clear(db: &Database) -> io::Result<()> {
    let txn = db.begin_write().map_err(other)?;
    txn.open_table(db::LOG)
        .map_err(other)?
        .retain(|_, _| false)
        .map_err(other)?;
    txn.open_table(db::LOG_META)
        .map_err(other)?
        .retain(|_, _| false)
        .map_err(other)?;
    txn.commit().map_err(other)
}

/// Moves an old log from `db` into the log directory `dir` unless `dir` already exists.
pub(super) fn import(db: &Database, dir: &Path) -> io::Result<()> {
    let records = read(db)?;
    if records.is_empty() {
        return Ok(());
    }
    if !dir.exists() {
        log::info!(
            "moving the Raft log ({} records) from redb into {}",
            records.len(),
            dir.display()
        );
        let tmp = dir.with_extension("import");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        let (mut wal, _) = Wal::open(&tmp, wal::SEGMENT_BYTES, Arc::default())?;
        wal.write(&records)?;
        drop(wal);
        std::fs::rename(&tmp, dir)?;
        if let Some(parent) = dir.parent() {
            segment::sync_dir(parent)?;
        }
    }
    clear(db)
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(3, 1), index)
    }

    #[test]
    fn an_old_log_moves_over_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = db::open(dir.path()).unwrap();
        {
            let txn = db.begin_write().unwrap();
            let mut meta = txn.open_table(db::LOG_META).unwrap();
            let vote = serde_json::to_vec(&Vote::new(3, 1)).unwrap();
            meta.insert(db::VOTE, vote.as_slice()).unwrap();
            let purged = serde_json::to_vec(&id(4)).unwrap();
            meta.insert(db::LAST_PURGED, purged.as_slice()).unwrap();
            let committed = serde_json::to_vec(&Some(id(6))).unwrap();
            meta.insert(db::COMMITTED, committed.as_slice()).unwrap();
            let mut log = txn.open_table(db::LOG).unwrap();
            for i in 5..=7 {
                let e = Entry {
                    log_id: id(i),
                    payload: EntryPayload::Blank,
                };
                log.insert(i, serde_json::to_vec(&e).unwrap().as_slice())
                    .unwrap();
            }
            drop((meta, log));
            txn.commit().unwrap();
        }
        let wal_dir = dir.path().join("wal");
        // A partial import from before a crash is started over.
        std::fs::create_dir_all(wal_dir.with_extension("import").join("junk")).unwrap();
        import(&db, &wal_dir).unwrap();
        assert!(!wal_dir.with_extension("import").exists());
        let (_, rec) = Wal::open(&wal_dir, 1 << 20, Arc::default()).unwrap();
        assert_eq!(rec.vote, Some(Vote::new(3, 1)));
        assert_eq!(rec.last_purged, Some(id(4)));
        assert_eq!(rec.committed, Some(id(6)));
        assert_eq!(
            rec.entries.keys().copied().collect::<Vec<_>>(),
            vec![5, 6, 7]
        );
        assert!(read(&db).unwrap().is_empty(), "the old copy is gone");
        import(&db, &wal_dir).unwrap();
    }
}
