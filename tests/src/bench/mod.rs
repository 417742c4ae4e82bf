//! `skiff-bench dataplane`: ClusterIP data path on a one-node lab — direct
//! pod IP, Skiff, kube-proxy iptables mode and nftables mode — at growing
//! numbers of services (one service is targeted; the rest are load); then,
//! on a two-node lab, ClusterIP to a backend on the other node and NodePort
//! packets/s from an external client, XDP vs iptables.

mod ctx;
pub mod kube_mode;
pub mod kube_proxy;
pub mod load;
pub mod names;
mod napi;
mod nodeport_lb;
pub mod nodeport_pps;
mod np_manifest;
mod np_report;
pub mod ns_per_packet;
mod one_node;
pub mod pktio;
pub mod report;
pub mod skiff_mode;
mod two_node;
pub mod udp_frame;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use report::Report;

const IPERF_PORT: u16 = 5201;
const ECHO_PORT: u16 = 8080;
const TARGET_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// Load service `i` gets VIP `10.97.0.0 + i`.
const LOAD_VIP_BASE: u32 = u32::from_be_bytes([10, 97, 0, 0]);
/// The whole run stops starting new steps after this.
const BUDGET: Duration = Duration::from_secs(9 * 60);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Short durations, no 100,000-service row: a smoke run.
    #[arg(long)]
    pub quick: bool,
    /// Where to write the JSON report.
    #[arg(long, default_value = "target/bench/dataplane.json")]
    pub out: PathBuf,
    /// Modes to run, comma-separated (`ns-per-packet` alone: only the
    /// programs' per-packet cost, no lab).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct,skiff,iptables,nftables,iptables-legacy,cross-node,nodeport,nodeport-e2e"
    )]
    pub modes: Vec<String>,
    /// Do not measure direct before every row (ratios then use the first
    /// direct row only; faster, but exposed to drift on a busy machine).
    #[arg(long)]
    pub unpaired: bool,
    /// Client threads of the short-connection test.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// NodePort end to end (`nodeport-e2e`): AF_PACKET sender threads in
    /// the external client.
    #[arg(long, default_value_t = 2)]
    pub np_threads: usize,
    /// NodePort: distinct flows (source ports), at most 1024.
    #[arg(long, default_value_t = 64)]
    pub np_flows: u16,
    /// NodePort: seconds per measured window (default 3, --quick 1).
    #[arg(long)]
    pub np_secs: Option<f64>,
}

pub fn progress(msg: impl std::fmt::Display) {
    eprintln!("[bench] {msg}");
}

/// A path from the environment `cargo xtask bench dataplane` sets.
fn env_path(var: &str) -> Result<PathBuf> {
    std::env::var_os(var)
        .map(PathBuf::from)
        .with_context(|| format!("{var} is not set (run through `cargo xtask bench dataplane`)"))
}

pub fn dataplane(args: &Args) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmark creates network namespaces and loads BPF: run as root");
    }
    let scratch = args
        .out
        .parent()
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    std::fs::create_dir_all(&scratch)?;
    let (iperf_secs, conn_secs) = if args.quick { (1, 0.4) } else { (3, 1.0) };
    let mut report = Report {
        quick: args.quick,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .into(),
        iperf3_secs: iperf_secs,
        conn_secs_per_run: conn_secs,
        conn_concurrency: args.concurrency,
        rows: Vec::new(),
        extra: serde_json::Map::new(),
        owns: Vec::new(),
    };
    let start = std::time::Instant::now();
    let run = |m: &str| args.modes.iter().any(|x| x == m);
    if run("ns-per-packet") {
        ns_per_packet::standalone(&mut report)?;
    }
    let one = ["direct", "skiff", "iptables", "nftables", "iptables-legacy"];
    if one.iter().any(|m| run(m)) {
        one_node::run(args, &scratch, &mut report)?;
    }
    let mut two_table = String::new();
    if run("cross-node") || run("nodeport-e2e") {
        match two_node::run(args, &scratch, &mut report) {
            Ok(table) => two_table = table,
            Err(e) => {
                progress(format!("two-node rows stopped: {e:#}"));
                report
                    .extra
                    .insert("two_node_error".into(), format!("{e:#}").into());
            }
        }
    }
    if run("nodeport") {
        report.owns.push(nodeport_lb::owns_key);
        match nodeport_lb::run(args, &scratch, &mut report.extra) {
            Ok(table) => two_table.push_str(&table),
            Err(e) => {
                progress(format!("NodePort row stopped: {e:#}"));
                report
                    .extra
                    .insert("nodeport_error".into(), format!("{e:#}").into());
            }
        }
    }
    report.compute_ratios();
    println!("{}", report.table());
    for mode in ["iptables", "nftables"] {
        if let (Some(r), Some(raw)) = (
            report.skiff_vs(mode, 10_000),
            report.skiff_vs_raw(mode, 10_000),
        ) {
            println!(
                "connections/s at 10,000 Services: Skiff {r:.2}x {mode} against paired direct runs, {raw:.2}x as measured (target 3x)"
            );
        }
    }
    print!("{two_table}");
    report.write_json(&args.out)?;
    progress(format!(
        "wrote {} ({:.0} s)",
        args.out.display(),
        start.elapsed().as_secs_f64()
    ));
    Ok(())
}
