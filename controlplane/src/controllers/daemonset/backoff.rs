//! Per-node backoff for replacing failed daemon pods (Kubernetes' `failedPodsBackoff`): a
//! node whose pod keeps failing (a kubelet rejecting it, a crashing init) gets a new one
//! after 1 s, then 2 s, 4 s … up to 15 min, instead of in a hot loop. The delay resets
//! once a node has been quiet for twice the maximum.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const INITIAL: Duration = Duration::from_secs(1);
const MAX: Duration = Duration::from_secs(15 * 60);

#[derive(Default)]
pub struct FailedPodBackoff {
    /// By `<set key>/<node>`: the current delay and when it was last stepped.
    entries: Mutex<HashMap<String, (Duration, Instant)>>,
}

impl FailedPodBackoff {
    /// `None`: delete the failed pod now (and step the delay); `Some(wait)`: look again
    /// after `wait`.
    pub fn check(&self, key: &str, node: &str, now: Instant) -> Option<Duration> {
        let mut entries = self.entries.lock().unwrap();
        let id = format!("{key}/{node}");
        match entries.get(&id).copied() {
            Some((delay, at)) if now.duration_since(at) < delay => {
                Some(delay - now.duration_since(at))
            }
            Some((delay, at)) if now.duration_since(at) <= 2 * MAX => {
                entries.insert(id, ((delay * 2).min(MAX), now));
                None
            }
            _ => {
                entries.insert(id, (INITIAL, now));
                None
            }
        }
    }

    /// Forgets a set's nodes (the set is gone).
    pub fn forget(&self, key: &str) {
        let prefix = format!("{key}/");
        self.entries
            .lock()
            .unwrap()
            .retain(|id, _| !id.starts_with(&prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum_and_reset_when_quiet() {
        let b = FailedPodBackoff::default();
        let t0 = Instant::now();
        assert_eq!(b.check("ns/ds", "a", t0), None);
        assert_eq!(b.check("ns/ds", "a", t0), Some(INITIAL));
        // Another node is not held back.
        assert_eq!(b.check("ns/ds", "b", t0), None);
        let t1 = t0 + INITIAL;
        assert_eq!(b.check("ns/ds", "a", t1), None);
        assert_eq!(
            b.check("ns/ds", "a", t1 + Duration::from_millis(500)),
            Some(Duration::from_millis(1500))
        );
        let t2 = t1 + 2 * INITIAL;
        assert_eq!(b.check("ns/ds", "a", t2), None);
        assert_eq!(b.check("ns/ds", "a", t2), Some(4 * INITIAL));
        // Quiet for long: back to the start.
        let late = t2 + 3 * MAX;
        assert_eq!(b.check("ns/ds", "a", late), None);
        assert_eq!(b.check("ns/ds", "a", late), Some(INITIAL));
        b.forget("ns/ds");
        assert_eq!(b.check("ns/ds", "a", late), None);
    }
}
