//! The kube-proxy rows: rules installed in the node netns, then measured.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Result;

use super::ctx::Ctx;
use super::kube_proxy::{self, Cluster};
use super::report::Row;
use super::{progress, TARGET_VIP};

pub fn row(ctx: &Ctx, mode: &str, count: u32, row: &mut Row) -> Result<()> {
    let (base, len) = (Ipv4Addr::new(10, 96, 0, 0), 12);
    let cluster = Cluster {
        pod_cidr: "10.244.0.0/16".into(),
        service_cidr: format!("{base}/{len}"),
        node_ip: ctx.node.addr(),
    };
    let svcs = ctx.services(count);
    let legacy = mode == "iptables-legacy";
    clear_netfilter(ctx, legacy)?;
    // The baseline before the rules go in: with them, pod-IP connections
    // walk KUBE-SERVICES too and "direct" would carry the same tax.
    ctx.measure_paired_direct(row);
    progress(format!("{mode}: {count} services → node netns"));
    let t0 = Instant::now();
    let netns = ctx.node.netns().path();
    match mode {
        // kube-proxy's iptables mode on the nft backend (iptables 1.8's
        // default) and on the legacy x_tables backend, which many hosts run.
        "iptables" | "iptables-legacy" => kube_proxy::apply(
            &netns,
            if legacy {
                "iptables-legacy-restore"
            } else {
                "iptables-restore"
            },
            &[],
            &kube_proxy::iptables_rules(&cluster, &svcs),
            &ctx.scratch.join("iptables.rules"),
        )?,
        _ => kube_proxy::apply(
            &netns,
            "nft",
            &["-f"],
            &kube_proxy::nft_rules(&cluster, &svcs),
            &ctx.scratch.join("nftables.rules"),
        )?,
    }
    row.install_s = Some(t0.elapsed().as_secs_f64());
    progress(format!(
        "{mode}: installed in {:.1} s",
        t0.elapsed().as_secs_f64()
    ));
    ctx.measure(row, TARGET_VIP);
    Ok(())
}

/// Empties netfilter in the node netns: iptables tables (also the legacy
/// backend's with `legacy`), every nft table (so no hook stays registered),
/// and the conntrack table.
pub fn clear_netfilter(ctx: &Ctx, legacy: bool) -> Result<()> {
    clear_netfilter_in(&ctx.node.netns().path(), &ctx.scratch, legacy)
}

/// [`clear_netfilter`] of the netns at `netns` (scratch files in `scratch`).
pub fn clear_netfilter_in(netns: &Path, scratch: &Path, legacy: bool) -> Result<()> {
    if legacy {
        kube_proxy::apply(
            netns,
            "iptables-legacy-restore",
            &[],
            kube_proxy::IPTABLES_CLEAR,
            &scratch.join("clear-legacy.rules"),
        )?;
    }
    kube_proxy::apply(
        netns,
        "iptables-restore",
        &[],
        kube_proxy::IPTABLES_CLEAR,
        &scratch.join("clear.rules"),
    )?;
    kube_proxy::apply(
        netns,
        "nft",
        &["-f"],
        "flush ruleset\n",
        &scratch.join("clear.nft"),
    )?;
    let _ = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["conntrack", "-F"])
        .output();
    Ok(())
}
