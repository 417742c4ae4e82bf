//! `skiff-bench dataplane [--quick]`: the ClusterIP data-path benchmark.
//! Run it through `cargo xtask bench dataplane`, which builds in release
//! mode and sets `SKIFF_BIN`, `SKIFF_ECHO_BIN` and `SKIFF_EBPF_OBJ`.

#[path = "../bench/mod.rs"]
mod bench;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Skiff benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Direct vs Skiff vs kube-proxy (iptables, nftables) ClusterIP.
    Dataplane(bench::Args),
}

fn main() -> anyhow::Result<()> {
    env_logger::init();
    let Cli {
        command: Cmd::Dataplane(args),
    } = Cli::parse();
    bench::dataplane(&args)
}
