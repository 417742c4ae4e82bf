//! `cargo xtask bench dataplane [--quick]`: release build, then
//! `skiff-bench dataplane` as root (one-node ClusterIP rows, then the
//! two-node cross-node and NodePort packets/s rows; `--modes` picks). `cargo xtask bench scheduler`: release
//! build, then `skiff-sched-bench` (simulated nodes; no root needed).
//! `cargo xtask bench store`: release build of `skiff` and `skiff-store-bench`
//! only, then Skiff's store against etcd 3.4 (no root needed). `cargo xtask bench pods`:
//! release build of `skiff` and `skiff-pods-bench` only, then 100 pods on one kubelet
//! (root: a netns lab and real containers).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::build;
use crate::cmd::{self, progress};
use crate::setup;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    which: Which,
}

#[derive(clap::Subcommand)]
enum Which {
    /// ClusterIP data path: direct vs Skiff vs kube-proxy iptables/nftables
    /// on one node; then on two nodes ClusterIP to a remote backend vs its pod
    /// IP, and NodePort packets/s (XDP vs iptables); target/bench/dataplane.json.
    Dataplane {
        /// Short durations, no 100,000-service row, one 1 s NodePort window
        /// per mode: a smoke run.
        #[arg(long)]
        quick: bool,
        /// More arguments for `skiff-bench dataplane`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        extra: Vec<String>,
    },
    /// Scheduler: pods/s placing 10,000 pods on 1,000 and 5,000 simulated
    /// nodes, in memory and through the real store.
    Scheduler {
        /// More arguments for `skiff-sched-bench` (`--mode`, `--nodes`, ...).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        extra: Vec<String>,
    },
    /// Store: ConfigMap creates/s and p50/p99 through Skiff's API vs etcd
    /// 3.4 KV Put of the same bytes, 1 and 3 replicas, concurrency 1/16/256.
    Store {
        /// More arguments for `skiff-store-bench` (`--secs`, `--max-writes`,
        /// `--concurrency`, `--replicas`, `--systems`, ...).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        extra: Vec<String>,
    },
    /// Network-programming latency (Service/endpoint change in the store → maps
    /// programmed) on a 3-node cluster; writes target/bench/programming.json.
    Programming {
        /// More arguments for `skiff-programming-bench` (`--services`,
        /// `--endpoint-changes`, `--out`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        extra: Vec<String>,
    },
    /// Kubelet: create→Running p50/p99 of 100 busybox pods on one node, and the
    /// agent's RSS; writes target/bench/pods.json.
    Pods {
        /// More arguments for `skiff-pods-bench` (`--pods`, `--concurrency`, `--out`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        extra: Vec<String>,
    },
}

pub fn run(args: &Args) -> Result<()> {
    match &args.which {
        Which::Dataplane { quick, extra } => dataplane(*quick, extra),
        Which::Scheduler { extra } => {
            let built = build::run(&build::Args { release: true })?;
            let mut c = Command::new(built.bin("skiff-sched-bench")?);
            c.args(extra).current_dir(cmd::workspace_root());
            cmd::run("bench", &mut c)
        }
        Which::Store { extra } => run_with_skiff("skiff-store-bench", extra, &[]),
        Which::Pods { extra } => {
            if !cmd::is_root() {
                bail!("the pods benchmark builds a netns lab and runs containers: run as root");
            }
            run_with_skiff("skiff-pods-bench", extra, &[])
        }
        Which::Programming { extra } => {
            if !cmd::is_root() {
                bail!("the programming benchmark builds a netns lab and runs pods: run as root");
            }
            run_with_skiff(
                "skiff-programming-bench",
                extra,
                &[("--echo", "skiff-echo")],
            )
        }
    }
}

/// Only two binaries are needed, and neither needs the BPF object: build just
/// `skiff` and `bench` (the agent embeds the object if one was built), then run
/// `bench --skiff <skiff> extra...`.
/// `more` are further (flag, binary of skiff-tests) pairs to build and pass.
fn run_with_skiff(bench: &str, extra: &[String], more: &[(&str, &str)]) -> Result<()> {
    setup::ensure()?;
    progress("build", format!("skiff and {bench} (release)"));
    let mut c = cmd::cargo();
    c.args([
        "build",
        "--release",
        "--message-format=json-render-diagnostics",
    ])
    .args(["-p", "skiff-agent", "--bin", "skiff"])
    .args(["-p", "skiff-tests", "--bin", bench]);
    for (_, bin) in more {
        c.args(["--bin", bin]);
    }
    let obj = build::ebpf_obj_path();
    if obj.is_file() {
        c.env("SKIFF_EBPF_OBJ", &obj);
    }
    let mut bins = std::collections::HashMap::new();
    for msg in build::cargo_messages("build", &mut c)? {
        if let (Some(exe), Some(name)) =
            (msg["executable"].as_str(), msg["target"]["name"].as_str())
        {
            bins.insert(name.to_string(), PathBuf::from(exe));
        }
    }
    let bin = |name: &str| {
        bins.get(name)
            .cloned()
            .with_context(|| format!("cargo built no binary named `{name}`"))
    };
    let mut c = Command::new(bin(bench)?);
    c.arg("--skiff").arg(bin("skiff")?);
    for (flag, name) in more {
        c.arg(flag).arg(bin(name)?);
    }
    c.args(extra).current_dir(cmd::workspace_root());
    cmd::run("bench", &mut c)
}

fn dataplane(quick: bool, extra: &[String]) -> Result<()> {
    if !cmd::is_root() {
        bail!("the benchmark builds a netns lab and loads BPF: run as root");
    }
    let built = build::run(&build::Args { release: true })?;
    let mut c = Command::new(built.bin("skiff-bench")?);
    c.arg("dataplane");
    if quick {
        c.arg("--quick");
    }
    c.args(extra)
        .envs(built.env())
        .current_dir(cmd::workspace_root());
    cmd::run("bench", &mut c)
}
