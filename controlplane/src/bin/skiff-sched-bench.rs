//! `skiff-sched-bench`: scheduling throughput with simulated nodes.
//!
//! For each node count: create the nodes, start the scheduler, create all pods at once and
//! time until every pod is bound. Modes: `memory` (the in-memory API: pure scheduling
//! throughput) and `store` (one replica in a temporary directory: bindings, status writes and
//! Events go through the API logic, Raft and redb). Writes `<target>/bench/scheduler.json`.
//!
//! ```text
//! skiff-sched-bench [--mode memory,store] [--nodes 1000,5000] [--pods 10000] [--in-flight N] [--out PATH]
//! ```

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use report::{print_table, write_json, Row};
use skiff_controlplane::scheduler::{InMemoryApi, Scheduler, SchedulerApi, SchedulerConfig, Stats};
use workload::{cluster, workload};

#[path = "skiff-sched-bench/report.rs"]
mod report;
#[path = "skiff-sched-bench/store.rs"]
mod store;
#[path = "skiff-sched-bench/workload.rs"]
mod workload;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

/// Longest a run may take before it is reported as failed.
const RUN_DEADLINE: Duration = Duration::from_secs(300);

struct Opts {
    nodes: Vec<usize>,
    pods: usize,
    out: PathBuf,
    /// `memory` and/or `store`.
    modes: Vec<String>,
    /// Concurrent binds (`SchedulerConfig::max_in_flight`).
    in_flight: usize,
}

fn parse_args() -> Result<Opts> {
    let mut opts = Opts {
        nodes: vec![1_000, 5_000],
        pods: 10_000,
        out: default_out(),
        modes: vec!["memory".into(), "store".into()],
        in_flight: SchedulerConfig::default().max_in_flight,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--nodes" => {
                opts.nodes = value()?
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<std::result::Result<_, _>>()?
            }
            "--pods" => opts.pods = value()?.parse()?,
            "--in-flight" => opts.in_flight = value()?.parse()?,
            "--out" => opts.out = PathBuf::from(value()?),
            "--mode" => {
                opts.modes = value()?.split(',').map(str::to_string).collect();
                if let Some(bad) = opts
                    .modes
                    .iter()
                    .find(|m| !matches!(m.as_str(), "memory" | "store"))
                {
                    return Err(format!("unknown mode {bad:?} (memory, store)").into());
                }
            }
            "-h" | "--help" => {
                println!("skiff-sched-bench [--mode memory,store] [--nodes 1000,5000] [--pods 10000] [--in-flight N] [--out PATH]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    Ok(opts)
}

/// `<target>/bench/scheduler.json`: the binary lives in `<target>/<profile>/`.
fn default_out() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.to_path_buf())
        });
    target
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("bench")
        .join("scheduler.json")
}

/// Wait until `bound()` reaches `want`, printing progress every second.
async fn wait_bound(label: &str, want: u64, start: Instant, bound: impl Fn() -> u64) -> Result<()> {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut last_print = Instant::now();
    loop {
        tick.tick().await;
        let n = bound();
        if n >= want {
            return Ok(());
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            last_print = Instant::now();
            let secs = start.elapsed().as_secs_f64();
            println!(
                "  [{label}] {n}/{want} bound, {:.0} pods/s so far",
                n as f64 / secs
            );
        }
        if start.elapsed() > RUN_DEADLINE {
            return Err(
                format!("{label}: only {n}/{want} pods bound after {RUN_DEADLINE:?}").into(),
            );
        }
    }
}

/// Start the scheduler against `api`, where the nodes and pending pods already exist, and
/// time until every pod is bound.
async fn measure<A: SchedulerApi>(
    mode: &'static str,
    api: Arc<A>,
    nodes: usize,
    pods: usize,
    in_flight: usize,
) -> Result<Row> {
    let sched = Scheduler::new(SchedulerConfig {
        max_in_flight: in_flight,
        ..SchedulerConfig::default()
    });
    let stats = sched.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let start = Instant::now();
    let task = tokio::spawn(sched.run(api, async move {
        let _ = stopped.await;
    }));
    let label = format!("{mode} {nodes} nodes");
    wait_bound(&label, pods as u64, start, || Stats::get(&stats.scheduled)).await?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "  attempts {}, bind errors {}, relists {}, events dropped {}",
        Stats::get(&stats.attempts),
        Stats::get(&stats.bind_errors),
        Stats::get(&stats.relists),
        Stats::get(&stats.events_dropped)
    );
    let _ = stop.send(());
    task.await?;
    let ms = |q| {
        stats
            .latency_quantile(q)
            .map_or(0.0, |d: Duration| d.as_secs_f64() * 1e3)
    };
    Ok(Row {
        mode,
        nodes,
        pods,
        seconds,
        pods_per_s: pods as f64 / seconds,
        p50_ms: ms(0.50),
        p99_ms: ms(0.99),
        bind_errors: Stats::get(&stats.bind_errors),
    })
}

/// Pods per node over the bound pods: `(min, mean, max)` across all `nodes`.
fn spread(pods: &[Pod], nodes: usize) -> (usize, f64, usize) {
    let mut per: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for p in pods {
        if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            *per.entry(n).or_default() += 1;
        }
    }
    let min = if per.len() < nodes {
        0
    } else {
        per.values().copied().min().unwrap_or(0)
    };
    let bound: usize = per.values().sum();
    (
        min,
        bound as f64 / nodes.max(1) as f64,
        per.values().copied().max().unwrap_or(0),
    )
}

async fn run_memory(nodes: usize, pods: usize, in_flight: usize) -> Result<Row> {
    let api = Arc::new(InMemoryApi::new());
    for n in cluster(nodes) {
        api.put_node(n);
    }
    api.put_pods(workload(pods, "pod"));
    let row = measure("memory", api.clone(), nodes, pods, in_flight).await?;
    let (lo, mean, hi) = spread(&api.pods(), nodes);
    println!("  pods per node: min {lo}, mean {mean:.1}, max {hi}");
    Ok(row)
}

async fn run_store(nodes: usize, pods: usize, in_flight: usize) -> Result<Row> {
    let store = store::Store::start().await?;
    store.create_all("nodes", None, cluster(nodes)).await?;
    store
        .create_all("pods", Some("default"), workload(pods, "pod"))
        .await?;
    let row = measure(
        "store",
        Arc::new(store.client.clone()),
        nodes,
        pods,
        in_flight,
    )
    .await;
    if row.is_ok() {
        let listed = store
            .client
            .list::<Pod>(Some("default"), &Default::default())
            .await;
        match listed {
            Ok(l) => {
                let (lo, mean, hi) = spread(&l.items, nodes);
                println!("  pods per node: min {lo}, mean {mean:.1}, max {hi}");
            }
            Err(e) => println!("  listing pods: {}", e.message),
        }
    }
    store.stop().await;
    row
}

fn main() -> Result<()> {
    let opts = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    for mode in &opts.modes {
        for &nodes in &opts.nodes {
            println!("{mode} mode: {nodes} nodes, {} pods", opts.pods);
            let row = match mode.as_str() {
                "memory" => rt.block_on(run_memory(nodes, opts.pods, opts.in_flight))?,
                _ => rt.block_on(run_store(nodes, opts.pods, opts.in_flight))?,
            };
            println!(
                "  -> {:.0} pods/s, p99 {:.2} ms",
                row.pods_per_s, row.p99_ms
            );
            rows.push(row);
        }
    }
    print_table(&rows);
    write_json(&opts.out, &rows)
}
