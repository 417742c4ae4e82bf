//! The scheduling queue: pods waiting for a decision, ordered by priority then arrival;
//! pods that did not fit wait in "unschedulable" until the cluster changes, then retry after
//! an exponential back-off (kube-scheduler's activeQ / backoffQ / unschedulablePods).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use super::pod_info::pod_uid;

#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// An unschedulable pod is retried after this long even without a cluster change.
    pub max_in_unschedulable: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            max_in_unschedulable: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Active,
    Backoff,
    Unschedulable,
    InFlight,
}

#[derive(Debug)]
struct Entry {
    pod: Arc<Pod>,
    state: State,
    /// Bumped on every push so stale heap entries are recognised.
    seq: u64,
    attempts: u32,
    last_attempt: Option<Instant>,
    /// Hash of what the scheduler reads (spec, labels): a change is worth a retry.
    fingerprint: u64,
}

/// A pod handed out by [`SchedulingQueue::pop`].
#[derive(Debug, Clone)]
pub struct Popped {
    pub pod: Arc<Pod>,
    pub attempts: u32,
}

#[derive(Debug, Default)]
pub struct SchedulingQueue {
    cfg: QueueConfig,
    pods: HashMap<String, Entry>,
    /// `(priority, earlier first, seq, uid)`.
    active: BinaryHeap<(i32, Reverse<u64>, String)>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    next_seq: u64,
    /// The scan for pods parked too long runs at most once a second.
    last_stale_scan: Option<Instant>,
}

fn fingerprint(pod: &Pod) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_string(&pod.spec)
        .unwrap_or_default()
        .hash(&mut h);
    pod.metadata.labels.hash(&mut h);
    h.finish()
}

impl SchedulingQueue {
    pub fn new(cfg: QueueConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    pub fn uids(&self) -> impl Iterator<Item = &str> {
        self.pods.keys().map(String::as_str)
    }

    /// A new pending pod, or a newer version of a known one. An unschedulable pod whose spec
    /// or labels changed is retried (after its back-off).
    pub fn add_or_update(&mut self, pod: Pod, now: Instant) {
        let uid = pod_uid(&pod).to_string();
        let fp = fingerprint(&pod);
        match self.pods.get_mut(&uid) {
            Some(e) => {
                let changed = e.fingerprint != fp;
                e.pod = Arc::new(pod);
                e.fingerprint = fp;
                if changed && e.state == State::Unschedulable {
                    self.requeue(&uid, now);
                }
            }
            None => {
                let entry = Entry {
                    pod: Arc::new(pod),
                    state: State::Active,
                    seq: 0,
                    attempts: 0,
                    last_attempt: None,
                    fingerprint: fp,
                };
                self.pods.insert(uid.clone(), entry);
                self.push_active(&uid);
            }
        }
    }

    pub fn remove(&mut self, uid: &str) {
        self.pods.remove(uid);
    }

    /// Highest priority, oldest first. The pod stays known ("in flight") until it is
    /// removed, marked unschedulable or requeued.
    pub fn pop(&mut self, now: Instant) -> Option<Popped> {
        while let Some((_, Reverse(seq), uid)) = self.active.pop() {
            let Some(e) = self.pods.get_mut(&uid) else {
                continue;
            };
            if e.state != State::Active || e.seq != seq {
                continue;
            }
            e.state = State::InFlight;
            e.attempts += 1;
            e.last_attempt = Some(now);
            return Some(Popped {
                pod: e.pod.clone(),
                attempts: e.attempts,
            });
        }
        None
    }

    /// The pod fit nowhere: park it until the cluster changes.
    pub fn mark_unschedulable(&mut self, uid: &str) {
        if let Some(e) = self.pods.get_mut(uid) {
            e.state = State::Unschedulable;
        }
    }

    /// Re-add a pod after a failed bind (it may have been removed meanwhile), with back-off.
    pub fn requeue_after_error(&mut self, pod: Arc<Pod>, now: Instant) {
        let uid = pod_uid(&pod).to_string();
        let fingerprint = fingerprint(&pod);
        let e = self.pods.entry(uid.clone()).or_insert(Entry {
            pod,
            state: State::InFlight,
            seq: 0,
            attempts: 1,
            last_attempt: Some(now),
            fingerprint,
        });
        e.state = State::Unschedulable;
        self.requeue(&uid, now);
    }

    /// The cluster changed: every unschedulable pod gets another chance after its back-off.
    pub fn move_all_unschedulable(&mut self, now: Instant) {
        let parked: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, e)| e.state == State::Unschedulable)
            .map(|(u, _)| u.clone())
            .collect();
        for uid in parked {
            self.requeue(&uid, now);
        }
    }

    /// Move pods whose back-off expired to active, and retry pods parked for too long.
    pub fn flush(&mut self, now: Instant) {
        while self.next_wakeup().is_some_and(|at| at <= now) {
            let Some(Reverse((_, seq, uid))) = self.backoff.pop() else {
                break;
            };
            if self
                .pods
                .get(&uid)
                .is_some_and(|e| e.state == State::Backoff && e.seq == seq)
            {
                self.push_active(&uid);
            }
        }
        if self
            .last_stale_scan
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.last_stale_scan = Some(now);
        let limit = self.cfg.max_in_unschedulable;
        let stale: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, e)| {
                e.state == State::Unschedulable
                    && e.last_attempt
                        .is_some_and(|t| now.duration_since(t) >= limit)
            })
            .map(|(u, _)| u.clone())
            .collect();
        for uid in stale {
            self.requeue(&uid, now);
        }
    }

    /// When the next back-off expires.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.backoff.peek().map(|Reverse((at, _, _))| *at)
    }

    /// `initial × 2^(attempts−1)`, capped.
    pub fn backoff_for(&self, attempts: u32) -> Duration {
        let shift = attempts.saturating_sub(1).min(20);
        self.cfg
            .initial_backoff
            .saturating_mul(1 << shift)
            .min(self.cfg.max_backoff)
    }

    fn requeue(&mut self, uid: &str, now: Instant) {
        let Some(e) = self.pods.get(uid) else {
            return;
        };
        let ready_at = e.last_attempt.map(|t| t + self.backoff_for(e.attempts));
        match ready_at {
            Some(at) if at > now => {
                self.next_seq += 1;
                let seq = self.next_seq;
                if let Some(e) = self.pods.get_mut(uid) {
                    e.state = State::Backoff;
                    e.seq = seq;
                }
                self.backoff.push(Reverse((at, seq, uid.to_string())));
            }
            _ => self.push_active(uid),
        }
    }

    fn push_active(&mut self, uid: &str) {
        self.next_seq += 1;
        let seq = self.next_seq;
        if let Some(e) = self.pods.get_mut(uid) {
            e.state = State::Active;
            e.seq = seq;
            let prio = e.pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
            self.active.push((prio, Reverse(seq), uid.to_string()));
        }
    }
}
