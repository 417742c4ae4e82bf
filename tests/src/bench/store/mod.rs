//! `skiff-store-bench`: ConfigMap creates through Skiff's Kubernetes API against the same
//! payloads Put into etcd 3.4 through its gRPC API, at several concurrencies, with 1 and 3
//! replicas. Every cluster runs on 127.0.0.1 in temp data dirs and is torn down after its
//! rows (and on error, panic or Ctrl-C). Both systems acknowledge a write only once it is
//! fsync'd on a quorum.

pub mod etcd;
pub mod etcd_rpc;
pub mod load;
pub mod procs;
pub mod report;
pub mod skiff;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use load::{Budget, Target};
use report::{Report, Row};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The `skiff` binary (release build).
    #[arg(long, env = "SKIFF_BIN")]
    pub skiff: PathBuf,
    /// The etcd binary (Debian's `etcd-server`, 3.4).
    #[arg(long, default_value = "/usr/bin/etcd")]
    pub etcd: PathBuf,
    /// Systems to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "etcd,skiff")]
    pub systems: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "1,3")]
    pub replicas: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    pub concurrency: Vec<usize>,
    /// Stop a row after this many writes...
    #[arg(long, default_value_t = 20_000)]
    pub max_writes: u64,
    /// ...or after this many seconds, whichever comes first.
    #[arg(long, default_value_t = 10.0)]
    pub secs: f64,
    /// Bytes of the ConfigMap's data value (the whole body is a bit larger).
    #[arg(long, default_value_t = 512)]
    pub data_bytes: usize,
    #[arg(long, default_value = "target/bench/store.json")]
    pub out: PathBuf,
}

pub fn progress(msg: impl std::fmt::Display) {
    eprintln!("[store-bench] {msg}");
}

pub async fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    let budget = Budget {
        max_writes: args.max_writes,
        max_time: Duration::from_secs_f64(args.secs),
    };
    let mut report = Report {
        payload_bytes: load::configmap("bench-0-0", args.data_bytes).len(),
        max_writes_per_row: args.max_writes,
        max_secs_per_row: args.secs,
        etcd_version: etcd_version(args),
        rows: Vec::new(),
    };
    for &replicas in &args.replicas {
        for system in ["etcd", "skiff"] {
            if !args.systems.iter().any(|s| s == system) {
                continue;
            }
            progress(format!("{system}: starting {replicas} replica(s)"));
            if let Err(e) = cluster_rows(args, system, replicas, budget, &mut report.rows).await {
                progress(format!("{system} x{replicas}: {e:#}"));
                let mut row = Row::new(system, replicas, 0);
                row.error = Some(format!("{e:#}"));
                report.rows.push(row);
            }
        }
    }
    report.compute_ratios();
    println!("{}", report.table());
    report.write_json(&args.out)?;
    progress(format!(
        "wrote {} ({:.0} s)",
        args.out.display(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn etcd_version(args: &Args) -> String {
    std::process::Command::new(&args.etcd)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// Start one cluster, measure every concurrency on it, tear it down.
async fn cluster_rows(
    args: &Args,
    system: &str,
    replicas: usize,
    budget: Budget,
    rows: &mut Vec<Row>,
) -> Result<()> {
    // Each guard lives until the end of this function: its processes die and its data
    // dir goes when it drops, whatever way we leave.
    let mut _skiff = None;
    let mut _etcd = None;
    let target = match system {
        "skiff" => {
            let client = skiff::HttpJson::default();
            let mut c = skiff::SkiffCluster::start(&args.skiff, replicas)?;
            let api = c.leader_api(&client).await?;
            _skiff = Some(c);
            Target::Skiff {
                client: Box::new(client),
                api,
            }
        }
        _ => {
            let mut c = etcd::EtcdCluster::start(&args.etcd, replicas).await?;
            let url = c.leader_url().await?;
            let mut channels = Vec::new();
            for _ in 0..8 {
                channels.push(etcd::connect(&url).await?);
            }
            _etcd = Some(c);
            Target::Etcd { channels }
        }
    };
    // Warm-up: connections, first allocations, the leader's first entries.
    let warm = Budget {
        max_writes: 50,
        max_time: Duration::from_secs(10),
    };
    let m = load::run(
        &target,
        &format!("warm-{replicas}"),
        4,
        warm,
        args.data_bytes,
    )
    .await;
    if m.writes == 0 {
        return Err(anyhow::anyhow!(m.first_error.unwrap_or_default()))
            .context("warm-up writes failed");
    }
    for &conc in &args.concurrency {
        progress(format!(
            "{system} x{replicas}, concurrency {conc}: up to {} writes or {:.0} s",
            budget.max_writes,
            budget.max_time.as_secs_f64()
        ));
        let prefix = format!("bench-{replicas}-{conc}");
        let m = load::run(&target, &prefix, conc, budget, args.data_bytes).await;
        let mut row = Row::new(system, replicas, conc);
        row.writes = m.writes;
        row.errors = m.errors;
        row.secs = m.secs;
        row.writes_per_s = m.writes_per_s();
        row.p50_ms = m.quantile_ms(0.5);
        row.p99_ms = m.quantile_ms(0.99);
        if m.errors > 0 {
            row.error = m.first_error.clone();
        }
        progress(format!(
            "  {:.0} writes/s, p50 {:.2} ms, p99 {:.2} ms, {} writes, {} errors",
            row.writes_per_s,
            row.p50_ms.unwrap_or(f64::NAN),
            row.p99_ms.unwrap_or(f64::NAN),
            row.writes,
            row.errors
        ));
        rows.push(row);
    }
    progress(format!("{system} x{replicas}: stopping"));
    Ok(())
}
