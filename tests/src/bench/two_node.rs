//! The two-node rows, in one lab and one run: ClusterIP from a pod on node 0
//! to a backend on node 1 vs that backend's pod IP, and NodePort packets/s
//! from an external client to node 0 with the backend on node 1 (Skiff: XDP
//! DNAT + SNAT + `XDP_TX` on node 0; iptables: kube-proxy's NodePort chains
//! and masquerade). Skiff runs first (agents on both nodes, as in
//! production), is torn down, then kube-proxy's rules go on both nodes.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::json;
use skiff_tests::lab::{Lab, Node};

use super::ctx::{self, Ctx};
use super::kube_mode::clear_netfilter_in;
use super::kube_proxy::{self, Cluster};
use super::load;
use super::nodeport_pps::{self, PpsLoad, PpsResult, Target};
use super::report::{Report, Row};
use super::skiff_mode::SkiffAgent;
use super::{env_path, np_manifest, pktio, progress, Args, ECHO_PORT, TARGET_VIP};

/// The UDP sink's port in the backend pod.
pub const SINK_PORT: u16 = 9000;
/// The NodePort Service: nodePort, ClusterIP and port.
pub const NODE_PORT: u16 = 30090;
pub const NP_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
pub const NP_PORT: u16 = 9;

struct Lab2<'a> {
    ctx: &'a Ctx<'a>,
    lab: &'a Lab,
    target: Target<'a>,
    load: PpsLoad,
    cross: bool,
    nodeport: bool,
}

/// Runs the `cross-node` and `nodeport` modes `args` selects; adds rows and
/// top-level keys to `report`; returns the NodePort table.
pub fn run(args: &Args, scratch: &Path, report: &mut Report) -> Result<String> {
    let echo = env_path("SKIFF_ECHO_BIN")?;
    progress("building a two-node lab: clients on node 0, backend on node 1, external client");
    let lab = Lab::builder().nodes(2).build()?;
    let _xdp_pass = lab.underlay_like_nics()?;
    let (n0, n1) = (lab.node(0), lab.node(1));
    let client = n0.add_pod("client")?;
    let direct_client = n0.add_pod("client-direct")?;
    let backend = n1.add_pod("backend")?;
    ctx::tune_client(&client)?;
    ctx::tune_client(&direct_client)?;
    ctx::start_servers(&backend, &echo)?;
    let sink = pktio::sink_socket(backend.netns(), SINK_PORT)?;
    let external = lab.add_external_client(0)?;
    let ctx = Ctx::new(n0, [client, direct_client, backend], args, report, scratch);
    // Also resolves node 0's neighbour entry for node 1 (XDP's FIB lookup
    // needs it; XDP cannot resolve one).
    load::wait_listening(
        ctx.client.netns(),
        SocketAddr::from((ctx.backend.ip(), ECHO_PORT)),
        Duration::from_secs(10),
    )?;
    let window_s = args.np_secs.unwrap_or(if args.quick { 1.0 } else { 3.0 });
    let l = Lab2 {
        target: Target {
            client: &external,
            entry: n0,
            node_port: NODE_PORT,
            backend: &ctx.backend,
            sink: &sink,
        },
        ctx: &ctx,
        lab: &lab,
        load: PpsLoad {
            threads: args.np_threads.max(1),
            flows: args.np_flows.clamp(1, 1024),
            warmup_s: if args.quick { 0.3 } else { 1.0 },
            window_s,
            reps: if args.quick { 1 } else { 3 },
        },
        cross: args.modes.iter().any(|m| m == "cross-node"),
        nodeport: args.modes.iter().any(|m| m == "nodeport-e2e"),
    };
    let x = &mut report.extra;
    if l.cross {
        progress(format!(
            "cross-node direct: {} (node 0) → {} (node 1)",
            l.ctx.direct_client.ip(),
            l.ctx.backend.ip()
        ));
        let mut row = Row::new("cross-node direct", 0);
        l.ctx.measure(&mut row, l.ctx.backend.ip());
        row.paired_direct_gbps = row.gbps;
        row.paired_direct_conn_per_s = row.conn_per_s;
        put_row(x, "cross_node_direct", &row);
        report.rows.push(row);
    }
    let mut results: Vec<(&str, Result<PpsResult>)> = Vec::new();
    match skiff(&l) {
        Ok((row, np, attach)) => {
            if let Some(row) = row {
                put_row(&mut report.extra, "cross_node_clusterip", &row);
                report.rows.push(row);
            }
            report
                .extra
                .insert("nodeport_e2e_skiff_attach".into(), attach.into());
            results.extend(np.map(|r| ("xdp", r)));
        }
        Err(e) => {
            progress(format!("skiff (two-node) failed: {e:#}"));
            report
                .extra
                .insert("cross_node_skiff_error".into(), format!("{e:#}").into());
        }
    }
    match iptables(&l) {
        Ok((row, np)) => {
            if let Some(row) = row {
                put_row(&mut report.extra, "cross_node_iptables", &row);
                report.rows.push(row);
            }
            results.extend(np.map(|r| ("iptables", r)));
        }
        Err(e) => {
            progress(format!("iptables (two-node) failed: {e:#}"));
            report
                .extra
                .insert("cross_node_iptables_error".into(), format!("{e:#}").into());
        }
    }
    Ok(super::np_report::put(&mut report.extra, &l.load, &results))
}

/// `<prefix>_gbps`, `_conn_per_s`, and the ratios vs the paired direct run.
fn put_row(x: &mut serde_json::Map<String, serde_json::Value>, prefix: &str, r: &Row) {
    let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
    x.insert(format!("{prefix}_gbps"), json!(r.gbps));
    x.insert(format!("{prefix}_conn_per_s"), json!(r.conn_per_s));
    x.insert(format!("{prefix}_p99_us"), json!(r.p99_us));
    if prefix != "cross_node_direct" {
        x.insert(
            format!("{prefix}_gbps_ratio_vs_direct"),
            json!(ratio(r.gbps, r.paired_direct_gbps)),
        );
        x.insert(
            format!("{prefix}_conn_ratio_vs_direct"),
            json!(ratio(r.conn_per_s, r.paired_direct_conn_per_s)),
        );
    }
}

type ModeOut = (Option<Row>, Option<Result<PpsResult>>);

/// Skiff: agents on both nodes, the target ClusterIP and the NodePort.
fn skiff(l: &Lab2) -> Result<(Option<Row>, Option<Result<PpsResult>>, String)> {
    let skiff = env_path("SKIFF_BIN")?;
    let manifests = l.ctx.scratch.join("manifests-two-node");
    let _ = std::fs::remove_dir_all(&manifests);
    let mut agents = Vec::new();
    let started = l.lab.nodes().iter().try_for_each(|node| -> Result<()> {
        let log = l
            .ctx
            .scratch
            .join(format!("agent-two-node-{}.log", node.index()));
        let extra = ["--node-ip".to_string(), node.addr().to_string()];
        agents.push(SkiffAgent::start(
            node, &skiff, &manifests, &log, 64, &extra,
        )?);
        Ok(())
    });
    let result = started.and_then(|()| -> Result<(ModeOut, String)> {
        let svcs = l.ctx.services(1);
        agents[0].write_services(&svcs)?;
        let np = np_manifest::documents(l.lab.node(1).name(), l.ctx.backend.ip());
        agents[0].write_named("nodeport.yaml", &np)?;
        agents[0].wait_programmed(&svcs, Duration::from_secs(60))?;
        let log = l.ctx.scratch.join("agent-two-node-0.log");
        let attach = np_manifest::wait_nodeport(
            l.lab.node(0),
            l.lab.node(0).addr(),
            "eth0",
            &log,
            NODE_PORT,
        )?;
        progress(format!("skiff: node 0 serves the NodePort ({attach})"));
        let row = l.cross.then(|| {
            let mut row = Row::new("cross-node skiff", 1);
            l.ctx.measure_vs_direct(&mut row, TARGET_VIP);
            row
        });
        let np = l.nodeport.then(|| {
            let maps = skiff_tests::bpfmaps::PinnedMaps::new(l.lab.node(0).bpffs_dir());
            let before = maps.stats().ok();
            let r = nodeport_pps::measure(&l.target, &l.load, &format!("nodeport {attach}"));
            if let (Some(b), Ok(a)) = (before, maps.stats()) {
                progress(format!(
                    "  node 0 XDP counters during the run: {}",
                    a.since(&b)
                ));
            }
            r
        });
        Ok(((row, np), attach))
    });
    progress("skiff: stopping the agents, unpinning, detaching");
    let mut stopped = Ok(());
    for a in agents {
        stopped = stopped.and(a.stop());
    }
    let _ = std::fs::remove_dir_all(&manifests);
    let _ = std::fs::remove_dir_all(manifests.with_extension("stage"));
    let ((row, np), attach) = result?;
    stopped.context("stopping the two-node agents")?;
    Ok((row, np, attach))
}

/// kube-proxy's iptables rules for the same Services on both nodes.
fn iptables(l: &Lab2) -> Result<ModeOut> {
    let mut svcs = l.ctx.services(1);
    svcs.push(np_manifest::service_port(l.ctx.backend.ip()));
    let scratch = &l.ctx.scratch;
    let install = |node: &Node| -> Result<()> {
        let cluster = Cluster {
            pod_cidr: "10.244.0.0/16".into(),
            service_cidr: "10.96.0.0/12".into(),
            node_ip: node.addr(),
        };
        let netns = node.netns().path();
        clear_netfilter_in(&netns, scratch, false)?;
        kube_proxy::apply(
            &netns,
            "iptables-restore",
            &[],
            &kube_proxy::iptables_rules(&cluster, &svcs),
            &scratch.join(format!("iptables-two-node-{}.rules", node.index())),
        )
    };
    progress("iptables: kube-proxy's rules (ClusterIP + NodePort) → both nodes");
    let result = l.lab.nodes().iter().try_for_each(install).map(|()| {
        let row = l.cross.then(|| {
            let mut row = Row::new("cross-node iptables", 1);
            l.ctx.measure_vs_direct(&mut row, TARGET_VIP);
            row
        });
        let np = l
            .nodeport
            .then(|| nodeport_pps::measure(&l.target, &l.load, "nodeport iptables"));
        (row, np)
    });
    for node in l.lab.nodes() {
        clear_netfilter_in(&node.netns().path(), scratch, false)?;
    }
    result
}
