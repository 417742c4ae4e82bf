//! Skiff's developer tasks: `cargo xtask <setup|build|test|demo|images|lab|bench>`.
//!
//! xtask depends on no other workspace crate: it has to compile on a fresh
//! machine before the BPF toolchain exists. It drives cargo and the built
//! binaries as processes and finds them from `--message-format=json` output.

mod bench;
mod build;
mod cmd;
mod demo;
mod images;
mod lab;
mod setup;
mod test;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Skiff developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what building and testing need (idempotent; root on Debian/Ubuntu).
    Setup(setup::Args),
    /// Build the BPF object, then the userspace workspace embedding it.
    Build(build::Args),
    /// Unit tests, then the root integration tests.
    Test(test::Args),
    /// The seed example on a 3-node lab cluster (`demo down` removes it).
    Demo(demo::Args),
    /// Build the test images (busybox, optionally skiff-echo) and import them.
    Images(images::Args),
    /// Bring a netns lab up or down (runs `skiff-lab`).
    Lab(lab::Args),
    /// Benchmarks (runs `skiff-bench` in release mode).
    Bench(bench::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup(args) => setup::run(&args),
        Command::Build(args) => build::run(&args).map(|_| ()),
        Command::Test(args) => test::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Images(args) => images::run(&args),
        Command::Lab(args) => lab::run(&args),
        Command::Bench(args) => bench::run(&args),
    };
    if let Err(err) = result {
        eprintln!("xtask: error: {err:#}");
        std::process::exit(1);
    }
}
