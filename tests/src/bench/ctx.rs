//! What the benchmark steps share: the lab's pods, durations, the budget.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use skiff_tests::lab::{Node, Pod};
use skiff_tests::manifests::Proto;

use super::kube_proxy::ServicePort;
use super::load::{self, ConnLoad, ConnStats};
use super::report::{Report, Row};
use super::{progress, Args, BUDGET, ECHO_PORT, IPERF_PORT, LOAD_VIP_BASE, TARGET_VIP};

/// Everything the steps share.
pub struct Ctx<'a> {
    pub node: &'a Node,
    pub client: Pod,
    /// A second, identical client for the direct measurements: a direct flow
    /// from `client` could reuse a port (TIME_WAIT reuse) whose service flow
    /// left a reply conntrack entry behind, and Skiff would rewrite it.
    pub direct_client: Pod,
    pub backend: Pod,
    pub iperf_secs: u32,
    pub conn: ConnLoad,
    pub start: Instant,
    pub scratch: PathBuf,
    /// Measure direct right before every row and take ratios against it.
    pub paired: bool,
}

impl<'a> Ctx<'a> {
    /// The steps' context on `node` with pods `[client, direct_client,
    /// backend]`, durations from `report`, the rest from `args`.
    pub fn new(
        node: &'a Node,
        pods: [Pod; 3],
        args: &Args,
        report: &Report,
        scratch: &Path,
    ) -> Self {
        let [client, direct_client, backend] = pods;
        Self {
            node,
            client,
            direct_client,
            backend,
            iperf_secs: report.iperf3_secs,
            conn: ConnLoad {
                concurrency: args.concurrency,
                duration: Duration::from_secs_f64(report.conn_secs_per_run),
                max_conns: 2_000_000,
            },
            start: Instant::now(),
            scratch: scratch.into(),
            paired: !args.unpaired,
        }
    }

    pub fn over_budget(&self) -> bool {
        self.start.elapsed() > BUDGET
    }

    /// The service set for `count` services: the target (iperf3 + echo
    /// ports) and `count - 1` load services, each with its own endpoint.
    pub fn services(&self, count: u32) -> Vec<ServicePort> {
        let b = self.backend.ip();
        let port = |name: &str, port_name: &str, vip, port| ServicePort {
            namespace: "default".into(),
            name: name.into(),
            port_name: port_name.into(),
            vip,
            port,
            proto: Proto::Tcp,
            node_port: None,
            endpoints: vec![(b, port)],
        };
        let mut v: Vec<ServicePort> = (1..count)
            .map(|i| {
                let vip = Ipv4Addr::from(LOAD_VIP_BASE + i);
                ServicePort {
                    endpoints: vec![(b, ECHO_PORT)],
                    ..port(&format!("load-{i}"), "http", vip, 80)
                }
            })
            .collect();
        // The measured Service sits in the middle: kube-proxy writes its
        // KUBE-SERVICES chain in map order, so a connection walks half of it
        // on average (first place would flatter iptables; Skiff's hash and
        // nftables' verdict map do not care).
        let mid = v.len() / 2;
        v.splice(
            mid..mid,
            [
                port("bench-target", "iperf", TARGET_VIP, IPERF_PORT),
                port("bench-target", "echo", TARGET_VIP, ECHO_PORT),
            ],
        );
        v
    }

    /// [`Ctx::measure`] of `ip`, preceded (when `paired`) by a direct
    /// measurement the row's ratios are taken against.
    pub fn measure_vs_direct(&self, row: &mut Row, ip: Ipv4Addr) {
        self.measure_paired_direct(row);
        self.measure(row, ip);
    }

    /// When `paired`: measures direct pod-to-pod now and keeps it in `row` as
    /// the baseline of its ratios. Call it before the row's mode is installed
    /// when that mode taxes pod-IP traffic too (kube-proxy's `KUBE-SERVICES`
    /// is walked by every new connection, whatever its destination).
    pub fn measure_paired_direct(&self, row: &mut Row) {
        if self.paired {
            let mut direct = Row::new("direct", 0);
            self.measure(&mut direct, self.backend.ip());
            row.paired_direct_gbps = direct.gbps;
            row.paired_direct_conn_per_s = direct.conn_per_s;
        }
    }

    /// Throughput and connection rate from the client pod to `ip`.
    pub fn measure(&self, row: &mut Row, ip: Ipv4Addr) {
        let client = if ip == self.backend.ip() {
            &self.direct_client
        } else {
            &self.client
        };
        let netns = client.netns();
        // Three iperf3 runs, the median counts: a single run on 2 vCPUs
        // swings by ±15 % with whatever else the machine does.
        let mut runs = Vec::new();
        let mut failure = None;
        for _ in 0..3 {
            match load::iperf3_gbps(
                &netns.path(),
                SocketAddr::from((ip, IPERF_PORT)),
                self.iperf_secs,
            ) {
                Ok(g) => runs.push(g),
                Err(e) => failure = Some(e),
            }
        }
        if !runs.is_empty() {
            row.gbps = Some(super::nodeport_pps::median(&runs));
        } else if let Some(e) = failure {
            row.error = Some(format!("{e:#}"));
        }
        // Three short runs, median of each figure: one scheduler hiccup on
        // 2 vCPUs should not decide a row.
        let mut runs = Vec::new();
        for _ in 0..3 {
            match load::conn_rate(netns, SocketAddr::from((ip, ECHO_PORT)), self.conn) {
                Ok(stats) => runs.push(stats),
                Err(e) => row.error = Some(format!("{e:#}")),
            }
        }
        if !runs.is_empty() {
            let median = |f: fn(&ConnStats) -> f64| {
                let mut v: Vec<f64> = runs.iter().map(f).collect();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            row.conn_per_s = Some(median(|s| s.conn_per_s));
            row.p99_us = Some(median(|s| s.p99_us));
            row.conn_errors = runs.iter().map(|s| s.errors).sum();
            let conns: u64 = runs.iter().map(|s| s.conns).sum();
            progress(format!(
                "  {conns} connections in {} runs, {} errors",
                runs.len(),
                row.conn_errors
            ));
        }
        progress(format!(
            "  {} {}: {:.2} Gbit/s, {:.0} conn/s, p99 {:.0} µs",
            row.mode,
            row.services,
            row.gbps.unwrap_or(f64::NAN),
            row.conn_per_s.unwrap_or(f64::NAN),
            row.p99_us.unwrap_or(f64::NAN)
        ));
    }
}

/// Starts the backend's servers: iperf3 and skiff-echo.
pub fn start_servers(backend: &Pod, echo: &Path) -> Result<()> {
    let mut iperf = Command::new("iperf3");
    iperf
        .args(["-s", "-p", &IPERF_PORT.to_string()])
        .stdout(Stdio::null());
    backend.netns().spawn(iperf)?;
    let mut echo_cmd = Command::new(echo);
    echo_cmd.args([
        "--port",
        &ECHO_PORT.to_string(),
        "--name",
        backend.name(),
        "--max-conns",
        "4096",
    ]);
    backend.netns().spawn(echo_cmd)?;
    Ok(())
}

/// Settings of a high-rate client, the same for every mode: every row
/// connects to the same address, and ~100,000 short connections a minute
/// would otherwise leave the ephemeral ports in TIME_WAIT and make
/// `connect()` crawl through the port space (an artifact, not a data-path
/// cost). Reuse TIME_WAIT ports and use the whole port range.
pub fn tune_client(pod: &Pod) -> Result<()> {
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
