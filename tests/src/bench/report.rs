//! Results: a table on stdout and `dataplane.json`.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

/// One measured configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `direct`, `skiff`, `iptables`, `nftables` or `iptables-legacy`.
    pub mode: String,
    /// Services installed (0 for direct).
    pub services: u32,
    pub gbps: Option<f64>,
    pub conn_per_s: Option<f64>,
    pub p99_us: Option<f64>,
    pub conn_errors: u64,
    /// Direct pod-to-pod, measured right before this row (drift-proof ratios).
    pub paired_direct_gbps: Option<f64>,
    pub paired_direct_conn_per_s: Option<f64>,
    /// Throughput and connection rate relative to direct pod-to-pod (the
    /// paired measurement when there is one, else the first direct row).
    pub gbps_ratio_vs_direct: Option<f64>,
    pub conn_ratio_vs_direct: Option<f64>,
    /// Skiff only, BPF_PROG_TEST_RUN: `skiff_from_pod` on an established
    /// flow's packet to a frontend, `skiff_to_pod` on a reply, and
    /// `skiff_from_pod` on a packet to no frontend.
    pub ns_per_packet: Option<f64>,
    pub ns_per_packet_to_pod: Option<f64>,
    pub ns_per_packet_passthrough: Option<f64>,
    /// Seconds it took the rules or maps to be in place.
    pub install_s: Option<f64>,
    pub error: Option<String>,
}

impl Row {
    pub fn new(mode: &str, services: u32) -> Self {
        Self {
            mode: mode.into(),
            services,
            gbps: None,
            conn_per_s: None,
            p99_us: None,
            conn_errors: 0,
            paired_direct_gbps: None,
            paired_direct_conn_per_s: None,
            gbps_ratio_vs_direct: None,
            conn_ratio_vs_direct: None,
            ns_per_packet: None,
            ns_per_packet_passthrough: None,
            ns_per_packet_to_pod: None,
            install_s: None,
            error: None,
        }
    }
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub quick: bool,
    pub kernel: String,
    pub iperf3_secs: u32,
    /// The short-connection test runs 3 times this long; medians are kept.
    pub conn_secs_per_run: f64,
    pub conn_concurrency: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<Row>,
    /// Top-level keys of the two-node part (`cross_node_*`, `nodeport_*`,
    /// `ratio_xdp_vs_iptables`).
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
    /// Which keys of the previous file this run replaces: a part that ran
    /// owns its keys, so that one it did not write this time (a mode that
    /// failed) does not survive from an earlier run.
    #[serde(skip)]
    pub owns: Vec<fn(&str) -> bool>,
}

impl Report {
    /// Fills the ratios from the `direct` row.
    pub fn compute_ratios(&mut self) {
        let first = self.rows.iter().find(|r| r.mode == "direct").cloned();
        let (dg, dc) = first.map_or((None, None), |d| (d.gbps, d.conn_per_s));
        for r in &mut self.rows {
            let g = r.paired_direct_gbps.or(dg);
            let c = r.paired_direct_conn_per_s.or(dc);
            r.gbps_ratio_vs_direct = r.gbps.zip(g).map(|(a, b)| a / b);
            r.conn_ratio_vs_direct = r.conn_per_s.zip(c).map(|(a, b)| a / b);
        }
        for (mode, key) in [
            ("iptables", "conn_ratio_skiff_vs_iptables_10000"),
            ("nftables", "conn_ratio_skiff_vs_nftables_10000"),
        ] {
            if let Some(r) = self.skiff_vs(mode, 10_000) {
                self.extra.insert(key.into(), r.into());
            }
            if let Some(r) = self.skiff_vs_raw(mode, 10_000) {
                self.extra.insert(format!("{key}_raw"), r.into());
            }
        }
    }

    /// Skiff's connections/s over `mode`'s at `services`, as measured.
    pub fn skiff_vs_raw(&self, mode: &str, services: u32) -> Option<f64> {
        self.conn_ratio(mode, services, |r| r.conn_per_s)
    }

    /// Skiff's connection rate over `mode`'s at `services`, each taken against
    /// its own paired direct run (so machine drift between the rows cancels).
    pub fn skiff_vs(&self, mode: &str, services: u32) -> Option<f64> {
        self.conn_ratio(mode, services, |r| r.conn_ratio_vs_direct)
    }

    /// `value` of Skiff's row over `value` of `mode`'s, at `services`.
    fn conn_ratio(&self, mode: &str, services: u32, value: fn(&Row) -> Option<f64>) -> Option<f64> {
        let of = |m: &str| {
            self.rows
                .iter()
                .find(|r| r.mode == m && r.services == services)
                .and_then(value)
        };
        Some(of("skiff")? / of(mode)?)
    }

    pub fn table(&self) -> String {
        let f = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
        let mut s = format!(
            "{:<19} {:>8} {:>7} {:>6} {:>9} {:>6} {:>8} {:>7} {:>9}\n",
            "mode", "services", "Gbit/s", "xdir", "conn/s", "xdir", "p99 µs", "ns/pkt", "install s"
        );
        for r in &self.rows {
            s.push_str(&format!(
                "{:<19} {:>8} {:>7} {:>6} {:>9} {:>6} {:>8} {:>7} {:>9}{}\n",
                r.mode,
                r.services,
                f(r.gbps, 2),
                f(r.gbps_ratio_vs_direct, 2),
                f(r.conn_per_s, 0),
                f(r.conn_ratio_vs_direct, 2),
                f(r.p99_us, 0),
                f(r.ns_per_packet, 1),
                f(r.install_s, 1),
                r.error
                    .as_ref()
                    .map_or(String::new(), |e| format!("  ERROR: {e}")),
            ));
        }
        s
    }

    /// Writes the report over the keys of an existing `path`: keys this run
    /// did not produce (e.g. `rows` when only the two-node modes ran) stay.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let old = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
        let owned = |k: &str| self.owns.iter().any(|owns| owns(k));
        let text = serde_json::to_string_pretty(&merge(old, serde_json::to_value(self)?, owned))?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }
}

/// `new`'s top-level keys over `old`'s (when `old` is an object), less
/// `old`'s keys that `owned` says this run replaces.
fn merge(
    old: Option<serde_json::Value>,
    new: serde_json::Value,
    owned: impl Fn(&str) -> bool,
) -> serde_json::Value {
    match (old, new) {
        (Some(serde_json::Value::Object(mut o)), serde_json::Value::Object(n)) => {
            o.retain(|k, _| !owned(k));
            o.extend(n);
            serde_json::Value::Object(o)
        }
        (_, n) => n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn new_keys_win_and_old_ones_stay() {
        let old = json!({"rows": [1], "nodeport_xdp_pps": 1.0, "quick": true});
        let new = json!({"nodeport_xdp_pps": 2.0, "quick": false});
        assert_eq!(
            merge(Some(old), new, |_| false),
            json!({"rows": [1], "nodeport_xdp_pps": 2.0, "quick": false})
        );
        assert_eq!(
            merge(Some(json!([1])), json!({"a": 1}), |_| false),
            json!({"a": 1})
        );
    }

    #[test]
    fn owned_old_keys_go_even_when_not_written_again() {
        let old = json!({"rows": [1], "nodeport_xdp_error": "x", "nodeport_xdp_pps": 1.0});
        let new = json!({"nodeport_xdp_pps": 2.0});
        assert_eq!(
            merge(Some(old), new, |k| k.starts_with("nodeport_")),
            json!({"rows": [1], "nodeport_xdp_pps": 2.0})
        );
    }
}
