//! Coalesced linearizable-read checks (etcd's read-index batching).
//!
//! `Raft::ensure_linearizable` confirms leadership with a heartbeat round to a quorum and
//! waits for the state machine to reach the read index. Many concurrent reads each paying a
//! round flood the followers with heartbeats; instead, one round runs at a time and every
//! read that arrived before it started shares its answer. A read that arrives while a round
//! is in flight waits for the next one: that round started after the read arrived, so its
//! read index covers every write acknowledged before the read — which is exactly the
//! guarantee of a round of its own.
//!
//! The round runs inside the read that started it, and that read may be cancelled (its
//! client went away, its task was aborted). A cancelled round still announces its end, as a
//! failure: its waiters then run rounds of their own rather than wait for an answer that
//! never comes.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{watch, Mutex, MutexGuard};

pub(crate) struct ReadBarrier {
    /// Rounds started so far (the number of the last one started).
    started: AtomicU64,
    /// The last finished round: its number and whether it confirmed leadership.
    finished: watch::Sender<(u64, bool)>,
    /// Held by the read running the current round.
    running: Mutex<()>,
}

impl Default for ReadBarrier {
    fn default() -> Self {
        Self {
            started: AtomicU64::new(0),
            finished: watch::channel((0, false)).0,
            running: Mutex::new(()),
        }
    }
}

/// The round in flight: when dropped (finished or cancelled) it frees the slot, then
/// announces its outcome, so a woken waiter can start the next round at once.
struct Round<'a> {
    slot: Option<MutexGuard<'a, ()>>,
    number: u64,
    ok: bool,
    finished: &'a watch::Sender<(u64, bool)>,
}

impl Drop for Round<'_> {
    fn drop(&mut self) {
        drop(self.slot.take());
        let (n, ok) = (self.number, self.ok);
        self.finished.send_if_modified(|last| {
            let newer = n > last.0;
            if newer {
                *last = (n, ok);
            }
            newer
        });
    }
}

impl ReadBarrier {
    /// Return once a leadership round (`round`, e.g. `Raft::ensure_linearizable`) that
    /// started after this call succeeded. The error of a failed round is the error of a
    /// round of this caller's own (so `NotLeader` still names the leader).
    pub(crate) async fn ensure<E, Fut>(&self, round: impl Fn() -> Fut) -> Result<(), E>
    where
        Fut: Future<Output = Result<(), E>>,
    {
        // The first round that may serve this read: any round numbered higher starts later.
        let need = self.started.load(Ordering::SeqCst) + 1;
        let mut rx = self.finished.subscribe();
        loop {
            let (number, ok) = *rx.borrow_and_update();
            if number >= need {
                if ok {
                    return Ok(());
                }
                // Shared round failed: run one of our own for a precise error.
                return round().await;
            }
            if let Ok(slot) = self.running.try_lock() {
                let mut running = Round {
                    slot: Some(slot),
                    number: self.started.fetch_add(1, Ordering::SeqCst) + 1,
                    ok: false,
                    finished: &self.finished,
                };
                let res = round().await;
                running.ok = res.is_ok();
                return res;
            }
            // A round is running; it may have started before this read: wait for it, then
            // either it covers us or we run (or join) the next one.
            if rx.changed().await.is_err() {
                return round().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn concurrent_reads_share_a_round() {
        let barrier = Arc::new(ReadBarrier::default());
        let rounds = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let round = {
            let (rounds, gate) = (rounds.clone(), gate.clone());
            move || {
                let (rounds, gate) = (rounds.clone(), gate.clone());
                async move {
                    rounds.fetch_add(1, Ordering::SeqCst);
                    gate.notified().await;
                    Ok::<(), ()>(())
                }
            }
        };
        // The first read starts round 1 and blocks in it.
        let first = tokio::spawn({
            let (b, r) = (barrier.clone(), round.clone());
            async move { b.ensure(r).await }
        });
        while rounds.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Reads arriving now wait for round 2, which one of them runs for all.
        let later: Vec<_> = (0..4)
            .map(|_| {
                let (b, r) = (barrier.clone(), round.clone());
                tokio::spawn(async move { b.ensure(r).await })
            })
            .collect();
        gate.notify_waiters();
        tokio::time::timeout(WAIT, first)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        while rounds.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        gate.notify_waiters();
        for r in later {
            tokio::time::timeout(WAIT, r)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        }
        assert_eq!(rounds.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_cancelled_round_does_not_strand_its_waiters() {
        let barrier = Arc::new(ReadBarrier::default());
        let started = Arc::new(tokio::sync::Notify::new());
        // The first read's round never ends; the read is then aborted.
        let stuck = tokio::spawn({
            let (b, started) = (barrier.clone(), started.clone());
            async move {
                b.ensure(|| {
                    let started = started.clone();
                    async move {
                        started.notify_one();
                        std::future::pending::<Result<(), ()>>().await
                    }
                })
                .await
            }
        });
        started.notified().await;
        let waiter = tokio::spawn({
            let b = barrier.clone();
            async move { b.ensure(|| async { Ok::<(), ()>(()) }).await }
        });
        // The waiter is parked behind the running round before the abort.
        tokio::task::yield_now().await;
        stuck.abort();
        let res = tokio::time::timeout(WAIT, waiter).await;
        assert!(matches!(res, Ok(Ok(Ok(())))), "waiter stranded: {res:?}");
    }
}
