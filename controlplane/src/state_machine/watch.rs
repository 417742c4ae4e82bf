//! Event history ring and live fan-out for watches on one replica.
//!
//! Applied writes are published here after their transaction is committed. The ring keeps the
//! last `capacity` events so a watch can resume from a recent revision; a revision older than
//! the ring gives [`Error::Gone`] (HTTP 410: the client relists). After a restart or a snapshot
//! install the ring starts empty at the replica's applied revision.
//!
//! The live fan-out is split by resource (`/registry/<group>/<resource>/`): a watch of pods
//! is not woken by a ConfigMap write. With one channel for everything, each write woke every
//! informer of the controllers, only for all but one or two to drop the event.

use std::collections::{HashMap, VecDeque};
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
    /// The newest seq dropped from `history`, per resource and over all: a lagging watch
    /// can catch up from the ring unless an event it could match was dropped after it.
    dropped: HashMap<String, u64>,
    dropped_any: u64,
    /// Seq of the last reset (the history replaced): a watch from before it must relist.
    reset_at: u64,
    /// `None` once the replica stopped: receivers then see `Closed`.
    tx: Option<Fanout>,
}

impl HubState {
    /// Whether an event a watch of `prefix` could match was dropped after `seq`.
    fn lost_after(&self, prefix: &str, seq: u64) -> bool {
        let dropped = match resource_of(prefix) {
            Some(r) => self.dropped.get(r).copied().unwrap_or(0),
            None => self.dropped_any,
        };
        dropped > seq || self.reset_at > seq
    }
}

/// The live channels: one per resource, made when first watched, and one for watches wider
/// than a resource. Every event goes to its resource's channel and to the wide one.
struct Fanout {
    wide: broadcast::Sender<HubMsg>,
    by_resource: HashMap<String, broadcast::Sender<HubMsg>>,
}

impl Fanout {
    fn new() -> Self {
        Self {
            wide: broadcast::channel(FANOUT_CAPACITY).0,
            by_resource: HashMap::new(),
        }
    }

    /// A receiver of every event a watch of `prefix` can match.
    fn subscribe(&mut self, prefix: &str) -> broadcast::Receiver<HubMsg> {
        match resource_of(prefix) {
            Some(r) => self
                .by_resource
                .entry(r.to_string())
                .or_insert_with(|| broadcast::channel(FANOUT_CAPACITY).0)
                .subscribe(),
            None => self.wide.subscribe(),
        }
    }

    fn send(&self, key: &str, msg: HubMsg) {
        // No receivers is fine.
        if let Some(tx) = resource_of(key).and_then(|r| self.by_resource.get(r)) {
            let _ = tx.send(msg.clone());
        }
        let _ = self.wide.send(msg);
    }

    fn send_all(&self, msg: HubMsg) {
        for tx in self.by_resource.values() {
            let _ = tx.send(msg.clone());
        }
        let _ = self.wide.send(msg);
    }
}

/// `/registry/<group>/<resource>/` of a key or prefix: everything up to its fourth `/`.
/// `None` when it is shorter. A key under a prefix shares the prefix's resource, so a
/// watch subscribed to that resource's channel misses none of its keys.
fn resource_of(key: &str) -> Option<&str> {
    key.match_indices('/').nth(3).map(|(i, _)| &key[..=i])
}

pub(crate) struct WatchHub {
    state: Mutex<HubState>,
    capacity: usize,
}

impl WatchHub {
    pub(crate) fn new(capacity: usize, applied_revision: u64) -> Self {
        Self {
            state: Mutex::new(HubState {
                history: VecDeque::with_capacity(capacity.min(16_384)),
                compacted: applied_revision,
                next_seq: 1,
                dropped: HashMap::new(),
                dropped_any: 0,
                reset_at: 0,
                tx: Some(Fanout::new()),
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
                if let Some((old_seq, old)) = st.history.pop_front() {
                    st.compacted = st.compacted.max(old.revision);
                    st.dropped_any = old_seq;
                    if let Some(r) = resource_of(&old.kv.key) {
                        // Per event once the ring is full: allocate only for a new resource.
                        if let Some(s) = st.dropped.get_mut(r) {
                            *s = old_seq;
                        } else {
                            st.dropped.insert(r.to_string(), old_seq);
                        }
                    }
                }
            }
            if let Some(tx) = &st.tx {
                tx.send(&ev.kv.key, HubMsg::Event(seq, ev.clone()));
            }
        }
    }

    /// Drop the history: the state was replaced wholesale at `revision`.
    pub(crate) fn reset(&self, revision: u64) {
        let mut st = self.lock();
        st.history.clear();
        st.compacted = revision;
        // A seq of its own: a watch that lags across the reset cannot miss it.
        st.reset_at = st.next_seq;
        st.next_seq += 1;
        if let Some(tx) = &st.tx {
            tx.send_all(HubMsg::Reset(revision));
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
        let mut st = self.lock();
        let st = &mut *st;
        let Some(tx) = &mut st.tx else {
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
            rx: tx.subscribe(prefix),
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
        let mut st = self.hub.lock();
        let st = &mut *st;
        if st.tx.is_none() {
            return Err(Error::Stopped);
        }
        // A watch of one resource only sees its channel's seqs, so its `last_seq` may be
        // far behind the ring's start with nothing of its resource dropped since.
        if st.lost_after(&self.prefix, self.last_seq) {
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
        if let Some(tx) = &mut st.tx {
            self.rx = tx.subscribe(&self.prefix);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn added(revision: u64, key: &str) -> Event {
        Event {
            revision,
            kind: EventKind::Added,
            kv: KeyValue {
                key: key.to_string(),
                value: "{}".to_string(),
                create_revision: revision,
                mod_revision: revision,
            },
            prev: None,
        }
    }

    async fn keys(w: &mut Watcher, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(w.next().await.unwrap().unwrap().kv.key.clone());
        }
        out
    }

    #[test]
    fn resource_of_a_key_or_prefix() {
        assert_eq!(
            resource_of("/registry/core/pods/default/web"),
            Some("/registry/core/pods/")
        );
        assert_eq!(
            resource_of("/registry/core/pods/"),
            Some("/registry/core/pods/")
        );
        assert_eq!(resource_of("/registry/core/pods"), None);
        assert_eq!(resource_of("/registry/"), None);
        assert_eq!(resource_of(""), None);
    }

    #[tokio::test]
    async fn a_watch_sees_its_resource_and_a_wide_one_sees_all_in_order() {
        let hub = Arc::new(WatchHub::new(100, 0));
        let mut pods = hub.watch("/registry/core/pods/default/", 0).unwrap();
        let mut all = hub.watch("/registry/", 0).unwrap();
        hub.publish(vec![
            added(1, "/registry/core/configmaps/default/a"),
            added(2, "/registry/core/pods/default/p"),
            added(3, "/registry/core/pods/other/q"),
            added(4, "/registry/core/pods/default/r"),
        ]);
        assert_eq!(
            keys(&mut pods, 2).await,
            [
                "/registry/core/pods/default/p",
                "/registry/core/pods/default/r"
            ]
        );
        assert_eq!(
            keys(&mut all, 4).await[0],
            "/registry/core/configmaps/default/a"
        );
        // A ConfigMap write is not even queued for the pods watch.
        hub.publish(vec![added(5, "/registry/core/configmaps/default/b")]);
        assert!(matches!(
            pods.rx.try_recv(),
            Err(broadcast::error::TryRecvError::Empty)
        ));
    }

    #[tokio::test]
    async fn a_lagging_resource_watch_catches_up_from_the_ring() {
        let n = FANOUT_CAPACITY as u64 + 50;
        let hub = Arc::new(WatchHub::new(2 * n as usize, 0));
        let mut pods = hub.watch("/registry/core/pods/", 0).unwrap();
        hub.publish(vec![added(1, "/registry/core/pods/default/p0")]);
        keys(&mut pods, 1).await;
        // Other kinds push the pod watch's last event out of the ring...
        for i in 2..=3 * n {
            hub.publish(vec![added(
                i,
                &format!("/registry/core/configmaps/default/c{i}"),
            )]);
        }
        // ...then more pods arrive than its channel holds: it catches up, no relist.
        for i in 1..=n {
            let rev = 3 * n + i;
            hub.publish(vec![added(
                rev,
                &format!("/registry/core/pods/default/p{i}"),
            )]);
        }
        let got = keys(&mut pods, n as usize).await;
        let want: Vec<String> = (1..=n)
            .map(|i| format!("/registry/core/pods/default/p{i}"))
            .collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_watch_that_lags_past_its_own_dropped_events_or_a_reset_is_gone() {
        let n = FANOUT_CAPACITY as u64 + 50;
        let hub = Arc::new(WatchHub::new(n as usize, 0));
        let mut pods = hub.watch("/registry/core/pods/", 0).unwrap();
        for i in 1..=2 * n {
            hub.publish(vec![added(i, &format!("/registry/core/pods/default/p{i}"))]);
        }
        assert!(matches!(pods.next().await, Some(Err(Error::Gone { .. }))));

        let hub = Arc::new(WatchHub::new(4 * n as usize, 0));
        let mut pods = hub.watch("/registry/core/pods/", 0).unwrap();
        hub.reset(0);
        for i in 1..=n {
            hub.publish(vec![added(i, &format!("/registry/core/pods/default/p{i}"))]);
        }
        // The Reset was overwritten in its channel; the catch-up still sees it.
        assert!(matches!(pods.next().await, Some(Err(Error::Gone { .. }))));
    }

    #[tokio::test]
    async fn a_reset_ends_every_resource_watch_with_gone() {
        let hub = Arc::new(WatchHub::new(10, 0));
        let mut pods = hub.watch("/registry/core/pods/", 0).unwrap();
        let mut cms = hub.watch("/registry/core/configmaps/", 0).unwrap();
        hub.reset(7);
        for w in [&mut pods, &mut cms] {
            assert!(matches!(
                w.next().await,
                Some(Err(Error::Gone { oldest: 7, .. }))
            ));
        }
        hub.close();
        assert!(hub.watch("/registry/core/pods/", 0).is_err());
        assert!(pods.next().await.is_none());
    }
}
