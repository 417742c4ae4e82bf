//! Packing concurrent writes into one Raft log entry (the leader's group commit).
//!
//! openraft 0.9's core proposes one client write per log entry and waits for that entry's
//! append to be flushed before it takes its next message. So on the leader every entry costs
//! one fsync however many writes are waiting, and the log writer's group commit never has more
//! than one entry to group: writes were serialised on the disk, the server mostly idle.
//! The batcher groups above openraft instead: writes queue here; while [`MAX_IN_FLIGHT`]
//! entries are being proposed the queue grows, and the next proposal takes all of it (up to
//! [`MAX_BATCH`]) as one [`Command::Many`] entry. A lone write is proposed as it is, by
//! its own task when a slot is free and nothing waits (no hop through the batching task:
//! at low concurrency that hop is most of what a write costs above its fsync). Each
//! packed write still gets a revision and a response of its own, and none is answered before
//! its entry is committed (fsync'd on a quorum) and applied, as when proposed alone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::command::{Command, CommandResponse, Proposal};
use crate::error::Error;
use crate::state_machine::answers::Answers;
use crate::types::{Node, NodeId, Raft};

/// Entries being proposed at once: one appending (openraft flushes it before the next), one
/// queued behind it, so the disk never waits for the batcher.
const MAX_IN_FLIGHT: usize = 2;
/// Writes packed into one entry at most (bounds the entry and the replication message).
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<CommandResponse, Error>>;

/// Handle of the batching task; it stops when the handle is dropped.
pub(crate) struct WriteBatcher {
    tx: mpsc::UnboundedSender<(Command, Reply)>,
    /// Proposes a lone write from its own task.
    proposer: Proposer,
    /// Entries being proposed (by the batching task or by a lone writer).
    slots: Arc<Semaphore>,
    /// Writes in the channel, not yet taken by the batching task.
    queued: Arc<AtomicUsize>,
}

impl WriteBatcher {
    /// Start the batching task on the current tokio runtime.
    pub(crate) fn start(raft: Raft, answers: Answers) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let queued = Arc::new(AtomicUsize::new(0));
        let proposer = Proposer { raft, answers };
        tokio::spawn(drive(proposer.clone(), rx, slots.clone(), queued.clone()));
        Self {
            tx,
            proposer,
            slots,
            queued,
        }
    }

    /// Propose `cmd` on this replica (packed with whatever else is waiting); `NotLeader` if
    /// it does not lead.
    pub(crate) async fn write(&self, cmd: Command) -> Result<CommandResponse, Error> {
        if self.queued.load(Ordering::Acquire) == 0 {
            if let Ok(_slot) = self.slots.clone().try_acquire_owned() {
                return self.proposer.propose_one(cmd).await;
            }
        }
        let (reply, rx) = oneshot::channel();
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.tx.send((cmd, reply)).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::Stopped);
        }
        rx.await.map_err(|_| Error::Stopped)?
    }
}

async fn drive(
    proposer: Proposer,
    mut rx: mpsc::UnboundedReceiver<(Command, Reply)>,
    slots: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
) {
    while let Some(first) = rx.recv().await {
        // Wait for a free slot first: what arrives meanwhile joins this batch.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        queued.fetch_sub(batch.len(), Ordering::AcqRel);
        let proposer = proposer.clone();
        tokio::spawn(async move {
            proposer.propose(batch).await;
            drop(slot);
        });
    }
}

/// Proposes entries and waits for their answers.
#[derive(Clone)]
struct Proposer {
    raft: Raft,
    answers: Answers,
}

impl Proposer {
    async fn propose(&self, mut batch: Vec<(Command, Reply)>) {
        if batch.len() == 1 {
            let (cmd, reply) = batch.remove(0);
            let _ = reply.send(self.propose_one(cmd).await);
            return;
        }
        let (cmds, replies): (Vec<Command>, Vec<Reply>) = batch.into_iter().unzip();
        match self.client_write(Command::Many(cmds)).await {
            Ok(resp) => {
                let mut responses = resp.batched.into_iter();
                for reply in replies {
                    let r = responses
                        .next()
                        .ok_or_else(|| Error::Raft("a packed write got no response".to_string()));
                    let _ = reply.send(r);
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(write_error(&e)));
                }
            }
        }
    }

    /// `cmd` as an entry of its own.
    async fn propose_one(&self, cmd: Command) -> Result<CommandResponse, Error> {
        self.client_write(cmd).await.map_err(|e| write_error(&e))
    }

    /// Propose `cmd`; its answer comes from the state machine as it applies the entry, or
    /// from openraft, whichever is first (see `state_machine::answers`).
    async fn client_write(&self, cmd: Command) -> Result<CommandResponse, WriteError> {
        let mut waiter = self.answers.wait();
        let write = self
            .raft
            .client_write(Proposal::answered_to(cmd, waiter.token()));
        tokio::select! {
            biased;
            resp = waiter.answered() => Ok(resp),
            res = write => res.map(|r| r.data),
        }
    }
}

type WriteError =
    openraft::error::RaftError<NodeId, openraft::error::ClientWriteError<NodeId, Node>>;

/// `NotLeader` (naming the leader, so the caller forwards) or the Raft error as text.
fn write_error(e: &WriteError) -> Error {
    match e.forward_to_leader() {
        Some(fwd) => Error::NotLeader {
            leader_id: fwd.leader_id,
            leader_addr: fwd.leader_node.as_ref().map(|n| n.addr.clone()),
        },
        None => Error::Raft(e.to_string()),
    }
}
