//! `skiff-programming-bench`: network-programming latency in a 3-node cluster. Run it
//! through `cargo xtask bench programming` (release build, root).

#[path = "../bench/programming/mod.rs"]
mod programming;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Network-programming latency (store change → maps programmed) on 3 nodes")]
struct Cli {
    #[command(flatten)]
    args: programming::Args,
}

fn main() -> anyhow::Result<()> {
    env_logger::init();
    programming::run(&Cli::parse().args)
}
