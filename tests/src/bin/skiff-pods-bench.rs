//! `skiff-pods-bench`: how fast one kubelet starts pods, and its memory. Run it through
//! `cargo xtask bench pods` (release build, root), which passes `--skiff`.

#[path = "../bench/pods/mod.rs"]
mod pods;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Kubelet pod startup latency and agent RSS")]
struct Cli {
    #[command(flatten)]
    args: pods::Args,
}

fn main() -> anyhow::Result<()> {
    env_logger::init();
    pods::run(&Cli::parse().args)
}
