//! `skiff-bench dataplane`: ClusterIP data path on a one-node lab — direct
//! pod IP, Skiff, kube-proxy iptables mode and nftables mode — at growing
//! numbers of services. One service is targeted; the rest are load.

mod ctx;
pub mod kube_mode;
pub mod kube_proxy;
pub mod load;
pub mod names;
pub mod ns_per_packet;
pub mod report;
pub mod skiff_mode;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use skiff_tests::lab::Lab;

use ctx::Ctx;
use load::ConnLoad;
use report::{Report, Row};

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
    /// Modes to run, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct,skiff,iptables,nftables,iptables-legacy"
    )]
    pub modes: Vec<String>,
    /// Do not measure direct before every row (ratios then use the first
    /// direct row only; faster, but exposed to drift on a busy machine).
    #[arg(long)]
    pub unpaired: bool,
    /// Client threads of the short-connection test.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
}

pub fn progress(msg: impl std::fmt::Display) {
    eprintln!("[bench] {msg}");
}

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
    let echo = env_path("SKIFF_ECHO_BIN")?;
    let scratch = args
        .out
        .parent()
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    std::fs::create_dir_all(&scratch)?;
    let (iperf_secs, conn_secs) = if args.quick { (1, 0.4) } else { (3, 1.0) };
    let skiff_counts: &[u32] = if args.quick {
        &[1, 1000, 10_000]
    } else {
        &[1, 1000, 10_000, 100_000]
    };
    let kube_counts: &[u32] = &[1, 1000, 10_000];

    progress("building a one-node lab: client, backend and client-direct pods");
    let lab = Lab::builder().nodes(1).build()?;
    let node = lab.node(0);
    let client = node.add_pod("client")?;
    let backend = node.add_pod("backend")?;
    let direct_client = node.add_pod("client-direct")?;
    tune_client(&client)?;
    tune_client(&direct_client)?;
    let mut iperf = Command::new("iperf3");
    iperf
        .args(["-s", "-p", &IPERF_PORT.to_string()])
        .stdout(std::process::Stdio::null());
    backend.netns().spawn(iperf)?;
    let mut echo_cmd = Command::new(&echo);
    echo_cmd.args([
        "--port",
        &ECHO_PORT.to_string(),
        "--name",
        "backend",
        "--max-conns",
        "4096",
    ]);
    backend.netns().spawn(echo_cmd)?;
    let conn = ConnLoad {
        concurrency: args.concurrency,
        duration: Duration::from_secs_f64(conn_secs),
        max_conns: 2_000_000,
    };
    let ctx = Ctx {
        node,
        client,
        direct_client,
        backend,
        iperf_secs,
        conn,
        start: Instant::now(),
        scratch,
        paired: !args.unpaired,
    };
    load::wait_listening(
        ctx.client.netns(),
        SocketAddr::from((ctx.backend.ip(), ECHO_PORT)),
        Duration::from_secs(10),
    )?;

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
    };
    let run = |m: &str| args.modes.iter().any(|x| x == m);
    if run("direct") {
        progress(format!(
            "direct: client {} → backend {}",
            ctx.direct_client.ip(),
            ctx.backend.ip()
        ));
        let mut row = Row::new("direct", 0);
        ctx.measure(&mut row, ctx.backend.ip());
        report.rows.push(row);
    }
    if run("skiff") {
        let bins = env_path("SKIFF_BIN").and_then(|s| Ok((s, env_path("SKIFF_EBPF_OBJ")?)));
        let res = bins.and_then(|(skiff, obj)| {
            skiff_mode::rows(&ctx, &skiff, &obj, skiff_counts, &mut report.rows)
        });
        if let Err(e) = res {
            progress(format!("skiff rows stopped: {e:#}"));
            let mut row = Row::new("skiff", 0);
            row.error = Some(format!("{e:#}"));
            report.rows.push(row);
        }
    }
    // iptables-legacy last: its x_tables hooks stay registered in the node
    // netns once loaded, which would tax the rows after it.
    let kube_modes = ["iptables", "nftables", "iptables-legacy"];
    for mode in kube_modes.into_iter().filter(|m| run(m)) {
        for &count in kube_counts {
            let mut row = Row::new(mode, count);
            if ctx.over_budget() {
                row.error = Some("skipped: time budget spent".into());
            } else if let Err(e) = kube_mode::row(&ctx, mode, count, &mut row) {
                row.error = Some(format!("{e:#}"));
            }
            report.rows.push(row);
        }
        kube_mode::clear_netfilter(&ctx, mode == "iptables-legacy")?;
    }
    if run("direct") {
        // Again at the end: the two direct rows bracket the run and show how
        // much the machine drifted meanwhile.
        progress("direct again (drift check)");
        let mut row = Row::new("direct_end", 0);
        ctx.measure(&mut row, ctx.backend.ip());
        report.rows.push(row);
    }
    report.compute_ratios();
    println!("{}", report.table());
    report.write_json(&args.out)?;
    progress(format!(
        "wrote {} ({:.0} s)",
        args.out.display(),
        ctx.start.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Settings of a high-rate client, the same for every mode: every row
/// connects to the same address, and ~100,000 short connections a minute
/// would otherwise leave the ephemeral ports in TIME_WAIT and make
/// `connect()` crawl through the port space (an artifact, not a data-path
/// cost). Reuse TIME_WAIT ports and use the whole port range.
fn tune_client(pod: &skiff_tests::lab::Pod) -> Result<()> {
    for (key, value) in [
        ("net/ipv4/tcp_tw_reuse", "1"),
        ("net/ipv4/ip_local_port_range", "1024 65535"),
    ] {
        let path = format!("/proc/sys/{key}");
        pod.netns()
            .run(move || std::fs::write(&path, value))?
            .with_context(|| format!("setting {key} in {}", pod.name()))?;
    }
    Ok(())
}
