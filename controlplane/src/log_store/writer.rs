//! Group commit: one thread owns every write to the Raft log. It takes all the jobs queued
//! since its last commit, applies them in order in ONE redb write transaction, commits it
//! with `Durability::Immediate` (fsync) and only then acknowledges each of them (the
//! `LogFlushed` callback of an append, the reply of a vote, truncation or purge).
//!
//! So N writes in flight cost one fsync, not N, and nothing is acknowledged before it is on
//! disk. The committed log id is the exception by design: openraft allows it to be saved
//! lazily, so it rides along with the next transaction (never ahead of the log written in
//! that transaction) instead of costing an fsync of its own.

#![expect(
    clippy::result_large_err,
    reason = "openraft's StorageError is the error type of its storage traits"
)]

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use openraft::storage::LogFlushed;
use openraft::RaftLogId;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, WriteTransaction};
use tokio::sync::oneshot;

use super::pending::Pending;
use crate::db::{self, to_json, write_err};
use crate::types::{Entry, LogId, StorageError, TypeConfig};

/// Jobs taken into one transaction at most (bounds its size and the ack latency).
const MAX_BATCH: usize = 4096;

pub(super) type Reply = oneshot::Sender<Result<(), StorageError>>;

pub(super) enum Job {
    Append {
        entries: Vec<Entry>,
        done: LogFlushed<TypeConfig>,
    },
    /// A `LOG_META` value (the vote), acknowledged once durable.
    Meta {
        name: &'static str,
        bytes: Vec<u8>,
        done: Reply,
    },
    /// Saved with the next transaction that makes the log reach it.
    Committed(LogId),
    /// Delete entries from `from` on.
    Truncate {
        from: u64,
        done: Reply,
    },
    Purge {
        upto: LogId,
        done: Reply,
    },
}

/// The writer thread's handle; dropping it drains the queue, stops and joins the thread
/// (so the database is closed when the log store is gone).
pub(super) struct Writer {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(super) fn start(db: Arc<Database>, pending: Arc<Pending>) -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || {
                // The committed id is never saved ahead of the last index on disk. Unknown
                // (unreadable) means "not yet": it is learnt from the next append.
                let last_index = stored_last_index(&db).ok().flatten();
                run(&db, &pending, last_index, &rx)
            })
            .expect("spawning the Raft log writer thread");
        Self {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    pub(super) fn send(&self, job: Job) -> Result<(), StorageError> {
        self.tx
            .as_ref()
            .and_then(|tx| tx.send(job).ok())
            .ok_or_else(|| write_err(std::io::Error::other("the Raft log writer has stopped")))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn stored_last_index(db: &Database) -> Result<Option<u64>, redb::Error> {
    let txn = db.begin_read()?;
    let table = txn.open_table(db::LOG)?;
    let last = table.last()?;
    Ok(last.map(|(k, _)| k.value()))
}

/// What a transaction will acknowledge once committed.
enum Ack {
    Flushed(LogFlushed<TypeConfig>, Vec<LogId>),
    Reply(Reply),
}

fn run(db: &Database, pending: &Pending, mut last_index: Option<u64>, rx: &mpsc::Receiver<Job>) {
    let mut committed: Option<LogId> = None;
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let mut acks = Vec::with_capacity(jobs.len());
        let mut durable_work = false;
        let mut next_last = last_index;
        let res = (|| -> Result<(), StorageError> {
            let mut txn = db.begin_write().map_err(write_err)?;
            txn.set_durability(Durability::Immediate)
                .map_err(write_err)?;
            for job in jobs {
                if let Job::Committed(c) = job {
                    committed = Some(c);
                    continue;
                }
                durable_work = true;
                apply(&txn, job, &mut next_last, &mut acks)?;
            }
            if !durable_work {
                // Only a committed id: nothing to acknowledge, no fsync of its own.
                return txn.abort().map_err(write_err);
            }
            if let Some(c) = committed.filter(|c| next_last.is_some_and(|l| c.index <= l)) {
                let mut meta = txn.open_table(db::LOG_META).map_err(write_err)?;
                meta.insert(db::COMMITTED, to_json(&Some(c))?.as_slice())
                    .map_err(write_err)?;
                committed = None;
            }
            txn.commit().map_err(write_err)
        })();
        if res.is_ok() {
            last_index = next_last;
        }
        for ack in acks {
            match ack {
                Ack::Flushed(cb, ids) => {
                    if res.is_ok() {
                        pending.flushed(&ids);
                    }
                    let r = res
                        .as_ref()
                        .map(|_| ())
                        .map_err(|e| std::io::Error::other(e.to_string()));
                    cb.log_io_completed(r);
                }
                Ack::Reply(tx) => {
                    let _ = tx.send(res.clone());
                }
            }
        }
    }
}

/// Apply one job to the open transaction; queue what to acknowledge after the commit.
fn apply(
    txn: &WriteTransaction,
    job: Job,
    last: &mut Option<u64>,
    acks: &mut Vec<Ack>,
) -> Result<(), StorageError> {
    match job {
        Job::Append { entries, done } => {
            let mut log = txn.open_table(db::LOG).map_err(write_err)?;
            let mut ids = Vec::with_capacity(entries.len());
            for e in &entries {
                let id = *e.get_log_id();
                log.insert(id.index, to_json(e)?.as_slice())
                    .map_err(write_err)?;
                *last = Some(last.map_or(id.index, |l| l.max(id.index)));
                ids.push(id);
            }
            acks.push(Ack::Flushed(done, ids));
        }
        Job::Meta { name, bytes, done } => {
            let mut meta = txn.open_table(db::LOG_META).map_err(write_err)?;
            meta.insert(name, bytes.as_slice()).map_err(write_err)?;
            acks.push(Ack::Reply(done));
        }
        Job::Truncate { from, done } => {
            let mut log = txn.open_table(db::LOG).map_err(write_err)?;
            log.retain_in(from.., |_, _| false).map_err(write_err)?;
            *last = log.last().map_err(write_err)?.map(|(k, _)| k.value());
            acks.push(Ack::Reply(done));
        }
        Job::Purge { upto, done } => {
            let mut meta = txn.open_table(db::LOG_META).map_err(write_err)?;
            meta.insert(db::LAST_PURGED, to_json(&upto)?.as_slice())
                .map_err(write_err)?;
            let mut log = txn.open_table(db::LOG).map_err(write_err)?;
            log.retain_in(..=upto.index, |_, _| false)
                .map_err(write_err)?;
            *last = Some(last.map_or(upto.index, |l| l.max(upto.index)));
            acks.push(Ack::Reply(done));
        }
        Job::Committed(_) => unreachable!("handled by the caller"),
    }
    Ok(())
}
