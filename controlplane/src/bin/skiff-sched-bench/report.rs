//! The result table and `scheduler.json`.

use std::path::Path;

use super::Result;

/// kube-scheduler's throughput at 5,000 nodes (scheduler_perf, SchedulingBasic).
pub const KUBE_FLOOR_PODS_PER_S: f64 = 680.0;
pub const TARGET_PODS_PER_S: f64 = 2_000.0;
#[derive(Debug)]
pub struct Row {
    pub mode: &'static str,
    pub nodes: usize,
    pub pods: usize,
    pub seconds: f64,
    pub pods_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub bind_errors: u64,
}

pub fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<8} {:>6} {:>7} {:>8} {:>10} {:>8} {:>8}  vs kube-scheduler / target",
        "mode", "nodes", "pods", "seconds", "pods/s", "p50 ms", "p99 ms"
    );
    for r in rows {
        println!(
            "{:<8} {:>6} {:>7} {:>8.2} {:>10.0} {:>8.2} {:>8.2}  {:>4.1}x floor {:.0} / {} target {:.0}",
            r.mode,
            r.nodes,
            r.pods,
            r.seconds,
            r.pods_per_s,
            r.p50_ms,
            r.p99_ms,
            r.pods_per_s / KUBE_FLOOR_PODS_PER_S,
            KUBE_FLOOR_PODS_PER_S,
            if r.pods_per_s >= TARGET_PODS_PER_S { "meets" } else { "MISSES" },
            TARGET_PODS_PER_S,
        );
    }
    println!("(kube-scheduler reference floor: {KUBE_FLOOR_PODS_PER_S:.0} pods/s at 5,000 nodes; target ≥ {TARGET_PODS_PER_S:.0} pods/s)");
}

pub fn write_json(path: &Path, rows: &[Row]) -> Result<()> {
    let runs: Vec<_> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "mode": r.mode, "nodes": r.nodes, "pods": r.pods, "seconds": r.seconds,
                "pods_per_s": r.pods_per_s, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
                "bind_errors": r.bind_errors,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "runs": runs,
        "reference": {"kube_scheduler_pods_per_s_at_5000_nodes": KUBE_FLOOR_PODS_PER_S, "target_pods_per_s": TARGET_PODS_PER_S},
    });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}
