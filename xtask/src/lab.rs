//! `cargo xtask lab up|down` and `cargo xtask demo`: build, then run
//! `skiff-lab` as root.

use std::process::Command;

use anyhow::{bail, Result};

use crate::build;
use crate::cmd;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Create a lab: an underlay bridge, N nodes with P pods each.
    Up {
        #[arg(long, default_value_t = 2)]
        nodes: u32,
        #[arg(long, default_value_t = 2)]
        pods: u32,
    },
    /// Remove lab namespaces and pins (`--all`: also other runs' leftovers).
    Down {
        #[arg(long)]
        all: bool,
    },
}

/// `cargo xtask demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Tear down right after showing the traffic instead of waiting for Ctrl-C.
    #[arg(long)]
    once: bool,
}

/// Builds what is missing and runs `skiff-lab <args>` as root.
fn skiff_lab(args: &[&str]) -> Result<()> {
    if !cmd::is_root() {
        bail!("the lab creates network namespaces: run as root (`sudo -E cargo xtask ...`)");
    }
    let built = build::run(&build::Args { release: false })?;
    let mut c = Command::new(built.bin("skiff-lab")?);
    c.args(args).envs(built.env());
    cmd::run("lab", &mut c)
}

pub fn demo(args: &DemoArgs) -> Result<()> {
    if args.once {
        skiff_lab(&["demo", "--once"])
    } else {
        skiff_lab(&["demo"])
    }
}

/// `skiff-lab down`: remove labs whose owner process is gone.
pub fn run_down() -> Result<()> {
    skiff_lab(&["down"])
}

pub fn run(args: &Args) -> Result<()> {
    match &args.action {
        Action::Up { nodes, pods } => skiff_lab(&[
            "up",
            "--nodes",
            &nodes.to_string(),
            "--pods",
            &pods.to_string(),
        ]),
        Action::Down { all: true } => skiff_lab(&["down", "--all"]),
        Action::Down { all: false } => skiff_lab(&["down"]),
    }
}
