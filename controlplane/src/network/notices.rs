//! Commit notices to one follower, sent beside its replication stream.
//!
//! openraft 0.9 replicates to each follower one RPC at a time. Once an entry commits, the
//! leader sends every follower an AppendEntries with no entries (a heartbeat, to openraft)
//! whose news is the new commit index, and the follower's next entries wait until that
//! answer is back. At low concurrency the next write arrives about then: it paid a round
//! trip that carried nothing it needed. The leader needs nothing from that answer either: a
//! follower's commit index only tells it how far it may apply; a heartbeat's answer moves no
//! match in openraft 0.9, and the position it confirms was confirmed by the previous answer
//! on the same stream; a follower that has since seen a newer leader says so at the next RPC
//! that is not a notice (entries, or a heartbeat with no newer commit index). So a notice
//! goes out on a connection of its own, by a task that always sends the latest one (an older
//! one is worth nothing once a newer exists), and the stream is answered at once.
//!
//! One thing does read that answer: openraft records its sending time as the follower's
//! last acknowledgement, which 0.9 reports only as `RaftMetrics::millis_since_quorum_ack`.
//! Skiff does not read it, and it must not be used as a leader lease while notices are
//! answered here (check this again before moving to openraft 0.10, whose leases use it).

use std::time::Duration;

use openraft::raft::AppendEntriesRequest;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::paths;
use super::peer::PeerConnection;
use crate::types::TypeConfig;

type Notice = AppendEntriesRequest<TypeConfig>;

/// The sending task for one follower; it stops when this is dropped.
pub struct CommitNotices {
    latest: watch::Sender<Option<(Notice, Duration)>>,
    task: JoinHandle<()>,
}

impl CommitNotices {
    pub fn start(addr: String) -> Self {
        let (latest, mut rx) = watch::channel(None);
        let task = tokio::spawn(async move {
            let mut peer = PeerConnection::new(addr);
            while rx.changed().await.is_ok() {
                let Some((notice, timeout)) = rx.borrow_and_update().clone() else {
                    continue;
                };
                // The answer is the follower's business: a failure here is seen by the
                // replication stream's next RPC, which goes to the same follower.
                let answer: Result<serde_json::Value, _> =
                    peer.post(paths::APPEND, &notice, timeout).await;
                if let Err(e) = answer {
                    log::debug!("commit notice: {e}");
                }
            }
        });
        Self { latest, task }
    }

    /// Queue `notice` (replacing one not sent yet).
    pub fn send(&self, notice: Notice, timeout: Duration) {
        self.latest.send_replace(Some((notice, timeout)));
    }
}

impl Drop for CommitNotices {
    fn drop(&mut self) {
        self.task.abort();
    }
}
