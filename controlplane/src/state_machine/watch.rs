//! Event history ring and live fan-out for watches on one replica.
//!
//! Applied writes are published here after their transaction is committed. The ring keeps the
//! last `capacity` events so a watch can resume from a recent revision; a revision older than
//! the ring gives [`Error::Gone`] (HTTP 410: the client relists). After a restart or a snapshot
//! install the ring starts empty at the replica's applied revision.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::command::KeyValue;
use crate::error::Error;

/// Size of the live fan-out channel; a watcher that falls further behind catches up from
/// the ring (or gets `Gone` if the ring moved past it).
const FANOUT_CAPACITY: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One change to one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Revision of the write (all events of one batch share it).
    pub revision: u64,
    pub kind: EventKind,
    /// The new value; for `Deleted`, the last value before the delete.
    pub kv: KeyValue,
    /// The value before the write (`None` for `Added`).
    pub prev: Option<KeyValue>,
}

#[derive(Clone)]
enum HubMsg {
    Event(u64, Arc<Event>),
    /// The history was replaced (snapshot installed): every watcher must relist.
    Reset(u64),
}

struct HubState {
    /// `(seq, event)`, oldest first. `seq` orders events even within one revision.
    history: VecDeque<(u64, Arc<Event>)>,
    /// Every event with a revision greater than this is in `history`.
    compacted: u64,
    next_seq: u64,
    /// `None` once the replica stopped: receivers then see `Closed`.
    tx: Option<broadcast::Sender<HubMsg>>,
}

pub(crate) struct WatchHub {
    state: Mutex<HubState>,
    capacity: usize,
}

impl WatchHub {
    pub(crate) fn new(capacity: usize, applied_revision: u64) -> Self {
        let (tx, _) = broadcast::channel(FANOUT_CAPACITY);
        Self {
            state: Mutex::new(HubState {
                history: VecDeque::with_capacity(capacity.min(16_384)),
                compacted: applied_revision,
                next_seq: 1,
                tx: Some(tx),
            }),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record committed events and send them to live watchers.
    pub(crate) fn publish(&self, events: Vec<Event>) {
        let mut st = self.lock();
        for ev in events {
            let seq = st.next_seq;
            st.next_seq += 1;
            let ev = Arc::new(ev);
            st.history.push_back((seq, ev.clone()));
            while st.history.len() > self.capacity {
                if let Some((_, old)) = st.history.pop_front() {
                    st.compacted = st.compacted.max(old.revision);
                }
            }
            if let Some(tx) = &st.tx {
                // No receivers is fine.
                let _ = tx.send(HubMsg::Event(seq, ev));
            }
        }
    }

    /// Drop the history: the state was replaced wholesale at `revision`.
    pub(crate) fn reset(&self, revision: u64) {
        let mut st = self.lock();
        st.history.clear();
        st.compacted = revision;
        if let Some(tx) = &st.tx {
            let _ = tx.send(HubMsg::Reset(revision));
        }
    }

    /// End every watch (the replica is shutting down).
    pub(crate) fn close(&self) {
        self.lock().tx = None;
    }

    /// Oldest revision a watch can start from.
    pub(crate) fn compacted_revision(&self) -> u64 {
        self.lock().compacted
    }

    pub(crate) fn watch(
        self: &Arc<Self>,
        prefix: &str,
        from_revision: u64,
    ) -> Result<Watcher, Error> {
        let st = self.lock();
        let Some(tx) = &st.tx else {
            return Err(Error::Stopped);
        };
        if from_revision < st.compacted {
            return Err(Error::Gone {
                requested: from_revision,
                oldest: st.compacted,
            });
        }
        let backlog = st
            .history
            .iter()
            .filter(|(_, e)| e.revision > from_revision)
            .map(|(_, e)| e.clone())
            .collect();
        Ok(Watcher {
            hub: self.clone(),
            prefix: prefix.to_string(),
            backlog,
            rx: tx.subscribe(),
            last_seq: st.next_seq - 1,
            last_revision: from_revision,
        })
    }
}

/// A watch on the keys under one prefix, from a revision on. Obtained from
/// [`crate::ControlPlane::watch`].
pub struct Watcher {
    hub: Arc<WatchHub>,
    prefix: String,
    backlog: VecDeque<Arc<Event>>,
    rx: broadcast::Receiver<HubMsg>,
    last_seq: u64,
    last_revision: u64,
}

impl Watcher {
    /// The next event under the prefix, in revision order. `Some(Err(Gone))` when the watch
    /// can no longer be continued (the client must relist); `None` when the replica stopped.
    pub async fn next(&mut self) -> Option<Result<Arc<Event>, Error>> {
        loop {
            if let Some(ev) = self.backlog.pop_front() {
                if ev.kv.key.starts_with(&self.prefix) {
                    self.last_revision = ev.revision;
                    return Some(Ok(ev));
                }
                continue;
            }
            match self.rx.recv().await {
                Ok(HubMsg::Event(seq, ev)) => {
                    if seq <= self.last_seq {
                        continue;
                    }
                    self.last_seq = seq;
                    if ev.kv.key.starts_with(&self.prefix) {
                        self.last_revision = ev.revision;
                        return Some(Ok(ev));
                    }
                }
                Ok(HubMsg::Reset(revision)) => {
                    return Some(Err(Error::Gone {
                        requested: self.last_revision,
                        oldest: revision,
                    }))
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Err(e) = self.catch_up() {
                        return Some(Err(e));
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Refill the backlog from the ring after falling behind the live channel.
    fn catch_up(&mut self) -> Result<(), Error> {
        let st = self.hub.lock();
        let Some(tx) = &st.tx else {
            return Err(Error::Stopped);
        };
        let first = st.history.front().map(|(s, _)| *s).unwrap_or(st.next_seq);
        if first > self.last_seq + 1 {
            return Err(Error::Gone {
                requested: self.last_revision,
                oldest: st.compacted,
            });
        }
        self.backlog = st
            .history
            .iter()
            .filter(|(s, _)| *s > self.last_seq)
            .map(|(_, e)| e.clone())
            .collect();
        self.last_seq = st.next_seq - 1;
        self.rx = tx.subscribe();
        Ok(())
    }
}
