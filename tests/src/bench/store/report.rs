//! Results: a table on stdout and `store.json`.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

/// One system × replica count × concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `skiff` or `etcd`.
    pub system: String,
    pub replicas: usize,
    pub concurrency: usize,
    pub writes: u64,
    pub errors: u64,
    pub secs: f64,
    pub writes_per_s: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Skiff rows: writes/s over etcd's at the same replicas and concurrency.
    pub ratio_vs_etcd: Option<f64>,
    pub error: Option<String>,
}

impl Row {
    pub fn new(system: &str, replicas: usize, concurrency: usize) -> Self {
        Self {
            system: system.into(),
            replicas,
            concurrency,
            writes: 0,
            errors: 0,
            secs: 0.0,
            writes_per_s: 0.0,
            p50_ms: None,
            p99_ms: None,
            ratio_vs_etcd: None,
            error: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// Size of each write's body (the serialized ConfigMap), bytes.
    pub payload_bytes: usize,
    pub max_writes_per_row: u64,
    pub max_secs_per_row: f64,
    pub etcd_version: String,
    pub rows: Vec<Row>,
}

impl Report {
    /// Fill `ratio_vs_etcd` of every Skiff row that has an etcd counterpart.
    pub fn compute_ratios(&mut self) {
        let etcd: Vec<(usize, usize, f64)> = self
            .rows
            .iter()
            .filter(|r| r.system == "etcd" && r.error.is_none() && r.writes_per_s > 0.0)
            .map(|r| (r.replicas, r.concurrency, r.writes_per_s))
            .collect();
        for r in self.rows.iter_mut().filter(|r| r.system == "skiff") {
            r.ratio_vs_etcd = etcd
                .iter()
                .find(|(rep, c, _)| *rep == r.replicas && *c == r.concurrency)
                .map(|(_, _, e)| r.writes_per_s / e);
        }
    }

    pub fn table(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
        let mut out = format!(
            "{:<6} {:>8} {:>6} {:>8} {:>10} {:>9} {:>9} {:>8}  {}\n",
            "system", "replicas", "conc", "writes", "writes/s", "p50 ms", "p99 ms", "ratio", "note"
        );
        for r in &self.rows {
            let note = match (&r.error, r.errors) {
                (Some(e), _) => e.clone(),
                (None, 0) => String::new(),
                (None, n) => format!("{n} failed writes"),
            };
            out += &format!(
                "{:<6} {:>8} {:>6} {:>8} {:>10.0} {:>9} {:>9} {:>8}  {}\n",
                r.system,
                r.replicas,
                r.concurrency,
                r.writes,
                r.writes_per_s,
                ms(r.p50_ms),
                ms(r.p99_ms),
                r.ratio_vs_etcd
                    .map_or("-".to_string(), |v| format!("{v:.2}")),
                note
            );
        }
        out
    }

    pub fn write_json(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: &str, replicas: usize, conc: usize, wps: f64) -> Row {
        Row {
            writes_per_s: wps,
            ..Row::new(system, replicas, conc)
        }
    }

    #[test]
    fn ratios_pair_skiff_with_etcd_at_the_same_shape() {
        let mut r = Report {
            payload_bytes: 0,
            max_writes_per_row: 0,
            max_secs_per_row: 0.0,
            etcd_version: String::new(),
            rows: vec![
                row("etcd", 1, 16, 200.0),
                row("etcd", 3, 16, 100.0),
                row("skiff", 1, 16, 300.0),
                row("skiff", 3, 16, 50.0),
                row("skiff", 3, 256, 50.0),
            ],
        };
        r.compute_ratios();
        assert_eq!(r.rows[2].ratio_vs_etcd, Some(1.5));
        assert_eq!(r.rows[3].ratio_vs_etcd, Some(0.5));
        assert_eq!(r.rows[4].ratio_vs_etcd, None, "no etcd row at 256");
        assert_eq!(r.rows[0].ratio_vs_etcd, None, "etcd rows have no ratio");
    }
}
