//! `cargo xtask bench dataplane [--quick]`: release build, then
//! `skiff-bench dataplane` as root. `cargo xtask bench scheduler`: release
//! build, then `skiff-sched-bench` (simulated nodes; no root needed).

use std::process::Command;

use anyhow::{bail, Result};

use crate::build;
use crate::cmd;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    which: Which,
}

#[derive(clap::Subcommand)]
enum Which {
    /// ClusterIP data path: direct vs Skiff vs kube-proxy iptables/nftables.
    Dataplane {
        /// Short durations, no 100,000-service row: a smoke run.
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
    }
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
