//! A work queue of keys: a key is queued at most once, a key being worked on is not handed
//! out again until it is done (changes meanwhile queue it once more), requeue-after, and
//! per-key exponential backoff on failures.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Inner {
    queue: VecDeque<String>,
    queued: HashSet<String>,
    active: HashSet<String>,
    dirty: HashSet<String>,
    failures: HashMap<String, u32>,
}

#[derive(Default)]
pub struct WorkQueue {
    inner: Mutex<Inner>,
    notify: Notify,
}

impl WorkQueue {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    pub fn add(&self, key: &str) {
        let mut q = self.inner.lock().unwrap();
        if q.active.contains(key) {
            q.dirty.insert(key.to_string());
            return;
        }
        if q.queued.insert(key.to_string()) {
            q.queue.push_back(key.to_string());
            drop(q);
            self.notify.notify_one();
        }
    }

    /// Queue `key` after `delay`.
    pub fn add_after(self: &Arc<Self>, key: &str, delay: Duration) {
        let (me, key) = (self.clone(), key.to_string());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            me.add(&key);
        });
    }

    /// The next key to work on.
    pub async fn pop(&self) -> String {
        loop {
            let notified = self.notify.notified();
            {
                let mut q = self.inner.lock().unwrap();
                if let Some(k) = q.queue.pop_front() {
                    q.queued.remove(&k);
                    q.active.insert(k.clone());
                    return k;
                }
            }
            notified.await;
        }
    }

    /// `key` is finished; requeue it if it changed meanwhile.
    pub fn done(&self, key: &str) {
        let again = {
            let mut q = self.inner.lock().unwrap();
            q.active.remove(key);
            q.dirty.remove(key)
        };
        if again {
            self.add(key);
        }
    }

    /// Forget the failures of `key`.
    pub fn forget(&self, key: &str) {
        self.inner.lock().unwrap().failures.remove(key);
    }

    /// Requeue a failed `key` with exponential backoff.
    pub fn retry(self: &Arc<Self>, key: &str) {
        let n = {
            let mut q = self.inner.lock().unwrap();
            let n = q.failures.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let delay = BACKOFF_MIN.saturating_mul(1 << n.min(16)).min(BACKOFF_MAX);
        self.add_after(key, delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedups_and_requeues_dirty_keys() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.pop().await, "a");
        q.add("a");
        assert_eq!(q.pop().await, "b");
        q.done("a");
        assert_eq!(q.pop().await, "a");
    }
}
