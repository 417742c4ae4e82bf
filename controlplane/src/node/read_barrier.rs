//! Coalesced linearizable-read checks (etcd's read-index batching).
//!
//! `Raft::ensure_linearizable` confirms leadership with a heartbeat round to a quorum and
//! waits for the state machine to reach the read index. Many concurrent reads each paying a
//! round flood the followers with heartbeats; instead, one round runs at a time and every
//! read that arrived before it started shares its answer. A read that arrives while a round
//! is in flight waits for the next one: that round started after the read arrived, so its
//! read index covers every write acknowledged before the read — which is exactly the
//! guarantee of a round of its own.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{watch, Mutex};

use crate::error::Error;
use crate::types::Raft;

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

impl ReadBarrier {
    /// Return once a leadership round that started after this call confirmed that `raft`
    /// leads and has applied up to its read index. The error of a failed round is the error
    /// of a round of this caller's own (so `NotLeader` still names the leader).
    pub(crate) async fn ensure(
        &self,
        raft: &Raft,
        map_err: impl Fn(
            openraft::error::RaftError<
                crate::types::NodeId,
                openraft::error::CheckIsLeaderError<crate::types::NodeId, crate::types::Node>,
            >,
        ) -> Error,
    ) -> Result<(), Error> {
        // The first round that may serve this read: any round numbered higher starts later.
        let need = self.started.load(Ordering::SeqCst) + 1;
        let mut rx = self.finished.subscribe();
        loop {
            let (round, ok) = *rx.borrow_and_update();
            if round >= need {
                if ok {
                    return Ok(());
                }
                // Shared round failed: run one of our own for a precise error.
                return raft
                    .ensure_linearizable()
                    .await
                    .map(|_| ())
                    .map_err(map_err);
            }
            if let Ok(guard) = self.running.try_lock() {
                let n = self.started.fetch_add(1, Ordering::SeqCst) + 1;
                let res = raft.ensure_linearizable().await;
                // Free the slot before announcing, so a woken waiter can start the next round.
                drop(guard);
                let ok = res.is_ok();
                self.finished.send_if_modified(|last| {
                    let newer = n > last.0;
                    if newer {
                        *last = (n, ok);
                    }
                    newer
                });
                return res.map(|_| ()).map_err(map_err);
            }
            // A round is running; it may have started before this read: wait for it, then
            // either it covers us or we run (or join) the next one.
            if rx.changed().await.is_err() {
                return raft
                    .ensure_linearizable()
                    .await
                    .map(|_| ())
                    .map_err(map_err);
            }
        }
    }
}
