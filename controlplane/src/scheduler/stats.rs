//! Counters and a latency sample the loop updates and a bench or metrics endpoint reads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Latency samples kept (the newest ones).
const MAX_SAMPLES: usize = 100_000;

#[derive(Debug, Default)]
pub struct Stats {
    /// Pods whose bind succeeded.
    pub scheduled: AtomicU64,
    /// Scheduling attempts (successful or not).
    pub attempts: AtomicU64,
    /// Attempts that found no feasible node.
    pub unschedulable: AtomicU64,
    pub bind_errors: AtomicU64,
    /// Lists after the first (a watch ended or fell too far behind).
    pub relists: AtomicU64,
    /// Events not written because the queue was full.
    pub events_dropped: AtomicU64,
    /// Per bound pod: dequeue → bind acknowledged, in microseconds (a ring).
    latencies_us: Mutex<(Vec<u64>, usize)>,
}

impl Stats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_latency(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let mut g = self.latencies_us.lock().unwrap_or_else(|e| e.into_inner());
        let (samples, next) = &mut *g;
        if samples.len() < MAX_SAMPLES {
            samples.push(us);
        } else {
            samples[*next] = us;
            *next = (*next + 1) % MAX_SAMPLES;
        }
    }

    /// The `q`-quantile (0.0..=1.0) of the recorded latencies.
    pub fn latency_quantile(&self, q: f64) -> Option<Duration> {
        let mut v = self
            .latencies_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let idx = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        Some(Duration::from_micros(v[idx]))
    }
}
