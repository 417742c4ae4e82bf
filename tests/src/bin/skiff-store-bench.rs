//! `skiff-store-bench`: Skiff's store (ConfigMap creates through the Kubernetes API) side by
//! side with etcd 3.4 (gRPC `KV.Put` of the same bytes). Run it through
//! `cargo xtask bench store`, which builds in release mode and sets `SKIFF_BIN`.

#[path = "../bench/store/mod.rs"]
mod store;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Skiff store vs etcd write benchmark")]
struct Cli {
    #[command(flatten)]
    args: store::Args,
}

fn main() -> anyhow::Result<()> {
    env_logger::init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(store::run(&cli.args))
}
