//! Group commit: one thread owns the [`Wal`]. It takes all the jobs queued since its last
//! write, turns them into records in order, writes them with one `pwrite` and one
//! `fdatasync`, and only then answers each vote, truncation or purge and publishes its
//! [`Progress`] (jobs and entries on disk) for [`LogDurability`].
//!
//! So N writes in flight cost one sync, not N. Appends are not answered here: openraft was
//! told at once, and what must wait for their sync waits on the progress instead. The
//! committed log id is only noted (no job, no wake-up of the thread; openraft allows it to be
//! saved lazily) and rides along with the next batch (never ahead of the log written by that
//! batch) instead of costing a sync of its own. After a failed write the log's state on disk
//! is unknown: every later job fails too (openraft stops on a storage error) and the progress
//! says so.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::{oneshot, watch};

use super::durability::{LogDurability, Progress};
use super::index::Index;
use super::record::Record;
use super::wal::Wal;
use crate::db::write_err;
use crate::types::{Entry, LogId, StorageError, Vote};

/// Jobs taken into one batch at most (bounds its size and the ack latency).
const MAX_BATCH: usize = 4096;

pub(super) type Reply = oneshot::Sender<Result<(), StorageError>>;

pub(super) enum Job {
    /// Acknowledged to openraft when queued; its sync shows in the [`Progress`].
    Append {
        entries: Vec<Entry>,
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
    /// Taken under this lock together with the count of queued jobs, so that the count is a
    /// position in the queue.
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    queued: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    /// The newest committed id not yet taken by a batch.
    committed: Arc<Mutex<Option<LogId>>>,
    durability: LogDurability,
}

impl Writer {
    pub(super) fn start(wal: Wal, index: Arc<Index>, last_index: Option<u64>) -> Self {
        let (tx, rx) = mpsc::channel();
        let committed = Arc::new(Mutex::new(None));
        let (progress, progress_rx) = watch::channel(Progress {
            jobs: 0,
            index: last_index.unwrap_or(0),
            failed: false,
        });
        let queued = Arc::new(AtomicU64::new(0));
        let batcher = Batcher {
            wal,
            index,
            last_index,
            committed: None,
            noted: committed.clone(),
            progress,
            failed: None,
        };
        let thread = std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || batcher.run(&rx))
            .expect("spawning the Raft log writer thread");
        Self {
            tx: Mutex::new(Some(tx)),
            durability: LogDurability::new(progress_rx, queued.clone()),
            queued,
            thread: Some(thread),
            committed,
        }
    }

    pub(super) fn durability(&self) -> LogDurability {
        self.durability.clone()
    }

    /// Notes the committed id, to be saved with the next batch that makes the log reach it.
    pub(super) fn note_committed(&self, c: LogId) {
        let mut noted = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        *noted = (*noted).max(Some(c));
    }

    pub(super) fn send(&self, job: Job) -> Result<(), StorageError> {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        match tx.as_ref().map(|tx| tx.send(job)) {
            Some(Ok(())) => {
                self.queued.fetch_add(1, Ordering::AcqRel);
                Ok(())
            }
            _ => Err(write_err(std::io::Error::other(
                "the Raft log writer has stopped",
            ))),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Batcher {
    wal: Wal,
    index: Arc<Index>,
    /// The last entry index on disk: the committed id is never saved ahead of it.
    last_index: Option<u64>,
    /// A committed id waiting for a batch to ride with.
    committed: Option<LogId>,
    noted: Arc<Mutex<Option<LogId>>>,
    progress: watch::Sender<Progress>,
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
        let job_count = jobs.len() as u64;
        let mut records = Vec::with_capacity(jobs.len());
        let mut replies = Vec::new();
        let mut sizes = Vec::new();
        let mut vote = None;
        let mut purge = false;
        let mut last = self.last_index;
        let mut encode_err = None;
        for job in jobs {
            match job {
                Job::Append { entries } => {
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
                }
                Job::Vote { vote: v, done } => {
                    records.push(Record::Vote(v));
                    vote = Some(v);
                    replies.push(done);
                }
                Job::Truncate { from, done } => {
                    records.push(Record::Truncate(from));
                    last = last.map(|l| l.min(from.saturating_sub(1)));
                    replies.push(done);
                }
                Job::Purge { upto, done } => {
                    records.push(Record::Purge(upto));
                    last = last.max(Some(upto.index));
                    purge = true;
                    replies.push(done);
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
            if purge {
                self.wal.remove_purged();
            }
        }
        self.progress.send_modify(|p| match &res {
            Ok(_) => {
                p.jobs += job_count;
                p.index = last.unwrap_or(0);
            }
            Err(_) => p.failed = true,
        });
        for tx in replies {
            let r = res
                .as_ref()
                .map(|_| ())
                .map_err(|e| write_err(std::io::Error::other(e.clone())));
            let _ = tx.send(r);
        }
    }
}
