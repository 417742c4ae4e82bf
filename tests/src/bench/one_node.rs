//! The one-node rows: direct pod IP, Skiff and kube-proxy's ClusterIP at
//! growing numbers of Services, all on one node (client and backend pods).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use skiff_tests::lab::Lab;

use super::ctx::{self, Ctx};
use super::load;
use super::report::{Report, Row};
use super::{env_path, kube_mode, progress, skiff_mode, Args, ECHO_PORT};

/// Runs the one-node modes `args` selects; appends their rows to `report`.
pub fn run(args: &Args, scratch: &Path, report: &mut Report) -> Result<()> {
    let echo = env_path("SKIFF_ECHO_BIN")?;
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
    ctx::tune_client(&client)?;
    ctx::tune_client(&direct_client)?;
    ctx::start_servers(&backend, &echo)?;
    let ctx = Ctx::new(
        node,
        [client, direct_client, backend],
        args,
        report,
        scratch,
    );
    load::wait_listening(
        ctx.client.netns(),
        SocketAddr::from((ctx.backend.ip(), ECHO_PORT)),
        Duration::from_secs(10),
    )?;
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
    Ok(())
}
