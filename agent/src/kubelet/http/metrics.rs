//! Prometheus text exposition: per-container CPU and memory from the
//! runtime's cgroup stats, and a registry of histograms other parts of the
//! agent add (the service proxy's programming latency, …).

use std::fmt::Write;
use std::sync::{Arc, Mutex};

use super::node_usage::NodeUsage;

/// One container's usage, as the pod manager reads it from its cgroup.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerUsage {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// Cumulative CPU time (cgroup `cpuacct.usage` / `cpu.stat usage_usec`).
    pub cpu_usage_seconds: f64,
    /// Memory usage minus inactive file pages (the kubelet's working set).
    pub memory_working_set_bytes: u64,
}

/// Where container usage comes from (the pod manager implements it).
pub trait StatsSource: Send + Sync {
    fn container_usage(&self) -> Vec<ContainerUsage>;
}

/// A Prometheus histogram with fixed upper bounds.
#[derive(Debug)]
pub struct Histogram {
    name: String,
    help: String,
    bounds: Vec<f64>,
    inner: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// `bounds` are the buckets' upper bounds (sorted here; `+Inf` implied).
    pub fn new(name: &str, help: &str, bounds: &[f64]) -> Self {
        let mut bounds: Vec<f64> = bounds.iter().copied().filter(|b| b.is_finite()).collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        Self {
            name: name.into(),
            help: help.into(),
            inner: Mutex::new(Counts {
                buckets: vec![0; bounds.len()],
                ..Counts::default()
            }),
            bounds,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn observe(&self, v: f64) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            c.buckets[i] += 1;
        }
        c.sum += v;
        c.count += 1;
    }

    /// Appends the `# HELP`, `# TYPE`, cumulative `_bucket`, `_sum` and
    /// `_count` lines.
    pub fn render(&self, out: &mut String) {
        let c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let n = &self.name;
        let _ = writeln!(out, "# HELP {n} {}", escape_help(&self.help));
        let _ = writeln!(out, "# TYPE {n} histogram");
        let mut cumulative = 0;
        for (b, k) in self.bounds.iter().zip(&c.buckets) {
            cumulative += k;
            let _ = writeln!(out, "{n}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{n}_bucket{{le=\"+Inf\"}} {}", c.count);
        let _ = writeln!(out, "{n}_sum {}", c.sum);
        let _ = writeln!(out, "{n}_count {}", c.count);
    }
}

/// `count` bounds from `start`, each `factor` times the previous.
pub fn exponential_buckets(start: f64, factor: f64, count: usize) -> Vec<f64> {
    std::iter::successors(Some(start), |b| Some(b * factor))
        .take(count)
        .collect()
}

/// The agent's metrics registry.
#[derive(Debug, Default)]
pub struct Registry {
    histograms: Mutex<Vec<Arc<Histogram>>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or returns the already registered) histogram `name`.
    pub fn histogram(&self, name: &str, help: &str, bounds: &[f64]) -> Arc<Histogram> {
        let mut hs = self.histograms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = hs.iter().find(|h| h.name == name) {
            return h.clone();
        }
        let h = Arc::new(Histogram::new(name, help, bounds));
        hs.push(h.clone());
        h
    }

    /// The whole exposition: node and container usage, then the histograms.
    pub fn render(&self, node: Option<NodeUsage>, usage: &[ContainerUsage]) -> String {
        let mut out = String::new();
        if let Some(n) = node {
            render_node(n, &mut out);
        }
        render_usage(usage, &mut out);
        for h in self
            .histograms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            h.render(&mut out);
        }
        out
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The node's line of the resource metrics.
fn render_node(n: NodeUsage, out: &mut String) {
    let _ = write!(
        out,
        "# HELP node_cpu_usage_seconds_total Cumulative cpu time consumed by the node in core-seconds\n\
         # TYPE node_cpu_usage_seconds_total counter\n\
         node_cpu_usage_seconds_total {}\n\
         # HELP node_memory_working_set_bytes Current working set of the node in bytes\n\
         # TYPE node_memory_working_set_bytes gauge\n\
         node_memory_working_set_bytes {}\n",
        n.cpu_seconds, n.memory_working_set_bytes
    );
}

/// The kubelet's resource metrics (the names metrics-server reads).
pub fn render_usage(usage: &[ContainerUsage], out: &mut String) {
    let labels = |u: &ContainerUsage| {
        format!(
            "container=\"{}\",namespace=\"{}\",pod=\"{}\"",
            escape_label(&u.container),
            escape_label(&u.namespace),
            escape_label(&u.pod)
        )
    };
    out.push_str(
        "# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed by the container in core-seconds\n\
         # TYPE container_cpu_usage_seconds_total counter\n",
    );
    for u in usage {
        let _ = writeln!(
            out,
            "container_cpu_usage_seconds_total{{{}}} {}",
            labels(u),
            u.cpu_usage_seconds
        );
    }
    out.push_str(
        "# HELP container_memory_working_set_bytes Current working set of the container in bytes\n\
         # TYPE container_memory_working_set_bytes gauge\n",
    );
    for u in usage {
        let _ = writeln!(
            out,
            "container_memory_working_set_bytes{{{}}} {}",
            labels(u),
            u.memory_working_set_bytes
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let r = Registry::new();
        let h = r.histogram("skiff_x_seconds", "Time to x.", &[0.1, 0.01, 1.0]);
        for v in [0.0078125, 0.0625, 0.0625, 4.0] {
            h.observe(v);
        }
        assert!(Arc::ptr_eq(&h, &r.histogram("skiff_x_seconds", "", &[])));
        let text = r.render(None, &[]);
        let want = "# HELP skiff_x_seconds Time to x.\n\
                    # TYPE skiff_x_seconds histogram\n\
                    skiff_x_seconds_bucket{le=\"0.01\"} 1\n\
                    skiff_x_seconds_bucket{le=\"0.1\"} 3\n\
                    skiff_x_seconds_bucket{le=\"1\"} 3\n\
                    skiff_x_seconds_bucket{le=\"+Inf\"} 4\n\
                    skiff_x_seconds_sum 4.1328125\n\
                    skiff_x_seconds_count 4\n";
        assert!(text.ends_with(want), "{text}");
        assert_eq!(exponential_buckets(0.001, 2.0, 3), [0.001, 0.002, 0.004]);
    }

    #[test]
    fn usage_lines_carry_escaped_labels() {
        let mut out = String::new();
        render_usage(
            &[ContainerUsage {
                namespace: "default".into(),
                pod: "we\"b".into(),
                container: "app".into(),
                cpu_usage_seconds: 1.5,
                memory_working_set_bytes: 4096,
            }],
            &mut out,
        );
        assert!(out.contains(
            "container_cpu_usage_seconds_total{container=\"app\",namespace=\"default\",pod=\"we\\\"b\"} 1.5\n"
        ));
        assert!(out.contains("# TYPE container_memory_working_set_bytes gauge\n"));
        assert!(out.contains("container_memory_working_set_bytes{container=\"app\",namespace=\"default\",pod=\"we\\\"b\"} 4096\n"));
    }
}
