//! Pod resource usage for the autoscaler, read the way metrics-server reads it: each
//! node's kubelet serves `/metrics/resource` (Prometheus text with
//! `container_cpu_usage_seconds_total` and `container_memory_working_set_bytes` per
//! container); CPU becomes a rate between two reads of the same pod.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::resource_metrics;

/// One pod's usage as read at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Cumulative CPU seconds of all its containers.
    pub cpu_seconds: f64,
    pub memory_bytes: f64,
}

/// `(namespace, pod)`.
pub type PodKey = (String, String);

/// Per-pod sums of a kubelet's container series.
pub fn per_pod(s: &resource_metrics::Scrape) -> HashMap<PodKey, Sample> {
    let mut out: HashMap<PodKey, Sample> = HashMap::new();
    for ((ns, pod, _), u) in &s.containers {
        let p = out.entry((ns.clone(), pod.clone())).or_default();
        p.cpu_seconds += u.cpu_seconds;
        p.memory_bytes += u.memory_bytes;
    }
    out
}

/// Reads one kubelet's resource metrics, per pod.
pub async fn scrape(addr: &str) -> Result<HashMap<PodKey, Sample>, String> {
    Ok(per_pod(&resource_metrics::scrape(addr).await?))
}

/// CPU rates from successive samples of each pod (by uid, so a replaced pod starts over).
#[derive(Debug, Default)]
pub struct Rates {
    /// The sample a rate is measured from, and the last rate measured.
    last: HashMap<String, (Instant, f64, Option<f64>)>,
}

/// Samples closer than this give no new rate (the last one stands).
const MIN_INTERVAL: Duration = Duration::from_secs(1);

impl Rates {
    /// Records `cpu_seconds` for pod `uid` at `now`; the rate since its previous sample
    /// (`None` for a first sample or a counter that went back). A sample too close to the
    /// previous one keeps the previous rate and baseline.
    pub fn observe(&mut self, uid: &str, cpu_seconds: f64, now: Instant) -> Option<f64> {
        let Some(&(t, c, rate)) = self.last.get(uid) else {
            self.last.insert(uid.to_string(), (now, cpu_seconds, None));
            return None;
        };
        let dt = now.duration_since(t);
        if dt < MIN_INTERVAL {
            return rate;
        }
        let rate = (cpu_seconds >= c).then(|| (cpu_seconds - c) / dt.as_secs_f64());
        self.last.insert(uid.to_string(), (now, cpu_seconds, rate));
        rate
    }

    /// Forgets pods not read for 5 minutes (gone, or no longer any autoscaler's).
    pub fn expire(&mut self, now: Instant) {
        const MAX_AGE: Duration = Duration::from_secs(300);
        self.last
            .retain(|_, (t, _, _)| now.duration_since(*t) <= MAX_AGE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_add_up_per_pod() {
        let text =
            "container_cpu_usage_seconds_total{container=\"a\",namespace=\"ns\",pod=\"p\"} 1.5\n\
            container_cpu_usage_seconds_total{container=\"b\",namespace=\"ns\",pod=\"p\"} 0.5\n\
            container_memory_working_set_bytes{container=\"a\",namespace=\"ns\",pod=\"p\"} 1024\n";
        let m = per_pod(&resource_metrics::parse(text));
        let p = m[&("ns".to_string(), "p".to_string())];
        assert_eq!((p.cpu_seconds, p.memory_bytes), (2.0, 1024.0));
    }

    #[test]
    fn rates_need_two_samples_of_the_same_pod() {
        let mut r = Rates::default();
        let t0 = Instant::now();
        assert_eq!(r.observe("u", 10.0, t0), None);
        let rate = r.observe("u", 13.0, t0 + Duration::from_secs(10)).unwrap();
        assert!((rate - 0.3).abs() < 1e-9);
        let soon = t0 + Duration::from_millis(10_200);
        assert_eq!(
            r.observe("u", 13.1, soon),
            Some(rate),
            "too soon: the last rate"
        );
        assert_eq!(
            r.observe("u", 1.0, t0 + Duration::from_secs(20)),
            None,
            "reset"
        );
        r.expire(t0 + Duration::from_secs(400));
        assert_eq!(r.observe("u", 2.0, t0 + Duration::from_secs(400)), None);
    }
}
