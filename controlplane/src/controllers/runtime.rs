//! The controller loop: a [`Controller`] reconciles one key at a time from its
//! [`WorkQueue`] once its caches are synced; every key of its primary cache is requeued
//! periodically, so a missed event only delays convergence.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::cache::Cache;
use super::queue::WorkQueue;
use super::ControllerError;

/// Requeue every key this often.
const RESYNC: Duration = Duration::from_secs(30);

/// What to do with a key after a successful reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Wait for the next change.
    Done,
    RequeueAfter(Duration),
}

pub trait Controller: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Bring the object `key` (its queue's key format) towards its desired state.
    fn reconcile(&self, key: &str) -> impl Future<Output = Result<Action, ControllerError>> + Send;
}

/// Revisions a controller wrote per key: until its caches have seen them, decisions
/// taken from the caches would repeat the writes (Kubernetes' "expectations").
#[derive(Default)]
pub struct Expectations(Mutex<HashMap<String, u64>>);

impl Expectations {
    pub fn expect(&self, key: &str, revision: u64) {
        let mut m = self.0.lock().unwrap();
        let e = m.entry(key.to_string()).or_insert(0);
        *e = (*e).max(revision);
    }

    /// Expect the write that returned `obj` (its resourceVersion).
    pub fn expect_written(&self, key: &str, obj: &serde_json::Value) {
        let rev = crate::api::meta::resource_version(obj).ok().flatten();
        self.expect(key, rev.unwrap_or(0));
    }

    /// `true` once `cache` has caught up with every write for `key`.
    pub fn satisfied(&self, key: &str, cache: &Cache) -> bool {
        let mut m = self.0.lock().unwrap();
        match m.get(key) {
            Some(&rev) if cache.revision() < rev => false,
            Some(_) => {
                m.remove(key);
                true
            }
            None => true,
        }
    }
}

/// Work on `queue` with `c` forever, once `caches` are synced.
pub async fn run<C: Controller>(c: Arc<C>, queue: Arc<WorkQueue>, caches: Vec<Arc<Cache>>) {
    for cache in &caches {
        cache.wait_synced().await;
    }
    log::info!("controller {} started", c.name());
    loop {
        let key = queue.pop().await;
        match c.reconcile(&key).await {
            Ok(action) => {
                queue.forget(&key);
                if let Action::RequeueAfter(d) = action {
                    queue.add_after(&key, d);
                }
            }
            Err(e) => {
                if e.is_conflict() {
                    log::debug!("{} {key}: {e}", c.name());
                } else {
                    log::warn!("{} {key}: {e}", c.name());
                }
                queue.retry(&key);
            }
        }
        queue.done(&key);
    }
}

/// Requeue every key of `cache` (mapped by `to_key`) every [`RESYNC`].
pub async fn resync(cache: Arc<Cache>, queue: Arc<WorkQueue>, to_key: fn(&str) -> String) {
    cache.wait_synced().await;
    loop {
        tokio::time::sleep(RESYNC).await;
        for k in cache.keys() {
            queue.add(&to_key(&k));
        }
    }
}
