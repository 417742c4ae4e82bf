//! How far the log is on disk, for the parts of a replica that must not run ahead of it.
//!
//! `append` acknowledges openraft at once (see the module doc of [`super`]), so durability is
//! enforced where it matters instead: a follower answers an AppendEntries only after
//! [`LogDurability::barrier`], the leader tells followers a commit index only once its own
//! log has it ([`LogDurability::wait_index`]), and the state machine applies nothing the
//! local log has not synced.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::db::write_err;
use crate::types::StorageError;

/// What the writer has made durable, published after every batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Progress {
    /// Jobs written and synced, counted in queue order.
    pub(super) jobs: u64,
    /// The last entry index on disk (0: none).
    pub(super) index: u64,
    /// A write failed: nothing more will become durable.
    pub(super) failed: bool,
}

/// A handle on the log's durability. Cheap to clone.
#[derive(Clone)]
pub struct LogDurability {
    progress: watch::Receiver<Progress>,
    /// Jobs queued so far, counted in queue order (under the writer's send lock).
    queued: Arc<AtomicU64>,
}

impl LogDurability {
    pub(super) fn new(progress: watch::Receiver<Progress>, queued: Arc<AtomicU64>) -> Self {
        Self { progress, queued }
    }

    /// The highest entry index on disk (0: none).
    pub fn index(&self) -> u64 {
        self.progress.borrow().index
    }

    /// Waits until the entry at `index` is on disk. Only for entries that cannot be truncated
    /// meanwhile (committed ones, or the leader's own): a truncation followed by a new entry at
    /// the same index would also satisfy it.
    pub async fn wait_index(&self, index: u64) -> Result<(), StorageError> {
        self.wait(|p| p.index >= index).await
    }

    /// Waits until every job queued before this call (appends, truncations, votes) is on
    /// disk.
    pub async fn barrier(&self) -> Result<(), StorageError> {
        let target = self.queued.load(Ordering::Acquire);
        self.wait(|p| p.jobs >= target).await
    }

    async fn wait(&self, done: impl Fn(&Progress) -> bool) -> Result<(), StorageError> {
        let p = *self.progress.borrow();
        if done(&p) {
            return Ok(());
        }
        let mut rx = self.progress.clone();
        let reached = rx
            .wait_for(|p| p.failed || done(p))
            .await
            .map(|p| !p.failed && done(&p));
        match reached {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(write_err(std::io::Error::other(
                "the Raft log writer failed or stopped before the log was on disk",
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn handle(queued: u64) -> (watch::Sender<Progress>, LogDurability) {
        let (tx, rx) = watch::channel(Progress::default());
        (tx, LogDurability::new(rx, Arc::new(AtomicU64::new(queued))))
    }

    async fn pending(f: impl std::future::Future<Output = Result<(), StorageError>>) -> bool {
        tokio::time::timeout(Duration::from_millis(50), f)
            .await
            .is_err()
    }

    #[tokio::test]
    async fn a_barrier_waits_for_the_jobs_queued_before_it() {
        let (tx, log) = handle(3);
        assert!(pending(log.barrier()).await);
        tx.send_modify(|p| p.jobs = 2);
        assert!(pending(log.barrier()).await);
        let waiting = tokio::spawn({
            let log = log.clone();
            async move { log.barrier().await }
        });
        tx.send_modify(|p| p.jobs = 3);
        waiting.await.unwrap().unwrap();
        // A later barrier waits for the jobs queued since.
        log.queued.store(9, Ordering::Release);
        assert!(pending(log.barrier()).await);
    }

    #[tokio::test]
    async fn an_index_wait_ends_when_the_entry_is_on_disk_or_the_log_fails() {
        let (tx, log) = handle(0);
        tx.send_modify(|p| p.index = 4);
        log.wait_index(4).await.unwrap();
        assert_eq!(log.index(), 4);
        assert!(pending(log.wait_index(5)).await);
        let waiting = tokio::spawn({
            let log = log.clone();
            async move { log.wait_index(7).await }
        });
        tx.send_modify(|p| p.failed = true);
        assert!(waiting.await.unwrap().is_err());
        assert!(log.barrier().await.is_ok(), "nothing was queued");
        drop(tx);
        assert!(
            log.wait_index(5).await.is_err(),
            "a stopped writer ends waits"
        );
    }
}
