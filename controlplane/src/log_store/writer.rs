//! Group commit: one thread owns the [`Wal`]. It takes all the jobs queued since its last
//! write, turns them into records in order, writes them with one `pwrite` and one
//! `fdatasync`, and only then acknowledges each job (the `LogFlushed` callback of an append,
//! the reply of a vote, truncation or purge).
//!
//! So N writes in flight cost one sync, not N, and nothing is acknowledged before it is on
//! disk. The committed log id is the exception by design: openraft allows it to be saved
//! lazily, so it is only noted (no job, no wake-up of the thread) and rides along with the
//! next batch (never ahead of the log written by that batch) instead of costing a sync of
//! its own. After a failed write the log's state on disk
//! is unknown: every later job fails too (openraft stops on a storage error).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use openraft::storage::LogFlushed;
use tokio::sync::oneshot;

use super::index::Index;
use super::record::Record;
use super::wal::Wal;
use crate::db::write_err;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};

/// Jobs taken into one batch at most (bounds its size and the ack latency).
const MAX_BATCH: usize = 4096;

pub(super) type Reply = oneshot::Sender<Result<(), StorageError>>;

pub(super) enum Job {
    Append {
        entries: Vec<Entry>,
        done: LogFlushed<TypeConfig>,
    },
    Vote {
        vote: Vote,
        done: Reply,
    },
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

/// The writer thread's handle; dropping it drains the queue, stops and joins the thread.
pub(super) struct Writer {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// The newest committed id not yet taken by a batch.
    committed: Arc<Mutex<Option<LogId>>>,
    /// The last entry index on disk (0: none).
    durable: Arc<AtomicU64>,
}

impl Writer {
    pub(super) fn start(wal: Wal, index: Arc<Index>, last_index: Option<u64>) -> Self {
        let (tx, rx) = mpsc::channel();
        let committed = Arc::new(Mutex::new(None));
        let durable = Arc::new(AtomicU64::new(last_index.unwrap_or(0)));
        let batcher = Batcher {
            wal,
            index,
            last_index,
            committed: None,
            noted: committed.clone(),
            durable: durable.clone(),
            failed: None,
        };
        let thread = std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || batcher.run(&rx))
            .expect("spawning the Raft log writer thread");
        Self {
            tx: Some(tx),
            thread: Some(thread),
            committed,
            durable,
        }
    }

    pub(super) fn durable_index(&self) -> Arc<AtomicU64> {
        self.durable.clone()
    }

    /// Notes the committed id, to be saved with the next batch that makes the log reach it.
    pub(super) fn note_committed(&self, c: LogId) {
        let mut noted = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        *noted = (*noted).max(Some(c));
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

/// What a batch will acknowledge once written.
enum Ack {
    Flushed(LogFlushed<TypeConfig>),
    Reply(Reply),
}

struct Batcher {
    wal: Wal,
    index: Arc<Index>,
    /// The last entry index on disk: the committed id is never saved ahead of it.
    last_index: Option<u64>,
    /// A committed id waiting for a batch to ride with.
    committed: Option<LogId>,
    noted: Arc<Mutex<Option<LogId>>>,
    durable: Arc<AtomicU64>,
    /// Why the log stopped taking writes.
    failed: Option<String>,
}

impl Batcher {
    fn run(mut self, rx: &mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            while jobs.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(j) => jobs.push(j),
                    Err(_) => break,
                }
            }
            self.batch(jobs);
        }
    }

    fn batch(&mut self, jobs: Vec<Job>) {
        let mut records = Vec::with_capacity(jobs.len());
        let mut acks = Vec::with_capacity(jobs.len());
        let mut sizes = Vec::new();
        let mut vote = None;
        let mut purge = false;
        let mut last = self.last_index;
        let mut encode_err = None;
        for job in jobs {
            match job {
                Job::Append { entries, done } => {
                    for e in &entries {
                        match serde_json::to_vec(e) {
                            Ok(json) => {
                                sizes.push(json.len());
                                records.push(Record::Entry { id: e.log_id, json });
                            }
                            Err(err) => encode_err = Some(err.to_string()),
                        }
                        last = last.max(Some(e.log_id.index));
                    }
                    acks.push(Ack::Flushed(done));
                }
                Job::Vote { vote: v, done } => {
                    records.push(Record::Vote(v));
                    vote = Some(v);
                    acks.push(Ack::Reply(done));
                }
                Job::Truncate { from, done } => {
                    records.push(Record::Truncate(from));
                    last = last.map(|l| l.min(from.saturating_sub(1)));
                    acks.push(Ack::Reply(done));
                }
                Job::Purge { upto, done } => {
                    records.push(Record::Purge(upto));
                    last = last.max(Some(upto.index));
                    purge = true;
                    acks.push(Ack::Reply(done));
                }
            }
        }
        let noted = self.noted.lock().unwrap_or_else(|e| e.into_inner()).take();
        self.committed = self.committed.max(noted);
        let committed = self
            .committed
            .filter(|c| last.is_some_and(|l| c.index <= l));
        if let Some(c) = committed {
            records.push(Record::Committed(c));
            self.committed = None;
        }
        let res = match (&self.failed, encode_err) {
            (Some(why), _) => Err(why.clone()),
            (None, Some(why)) => Err(format!("encoding a log entry: {why}")),
            (None, None) => self.wal.write(&records).map_err(|e| {
                let why = format!("writing the Raft log: {e}");
                log::error!("{why}; the log takes no more writes");
                self.failed = Some(why.clone());
                why
            }),
        };
        if let Ok(locs) = &res {
            let ids = records.iter().filter_map(|r| match r {
                Record::Entry { id, .. } => Some(*id),
                _ => None,
            });
            self.index.written(
                ids.zip(locs.iter().copied())
                    .zip(sizes)
                    .map(|((id, loc), n)| (id, loc, n)),
            );
            if let Some(v) = vote {
                self.index.set_vote(v);
            }
            if let Some(c) = committed {
                self.index.set_committed(c);
            }
            self.last_index = last;
            self.durable.store(last.unwrap_or(0), Ordering::Release);
            if purge {
                self.wal.remove_purged();
            }
        }
        for ack in acks {
            let r = res
                .as_ref()
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.clone()));
            match ack {
                Ack::Flushed(cb) => cb.log_io_completed(r),
                Ack::Reply(tx) => {
                    let _ = tx.send(r.map_err(write_err));
                }
            }
        }
    }
}
