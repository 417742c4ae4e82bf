//! `skiff-lab up|down|demo`: a netns lab for hands-on work (`cargo xtask lab`).
//!
//! `up` builds a lab, prints how to enter it and keeps it until Ctrl-C or
//! SIGTERM; `down` removes labs left by dead processes (or all with `--all`).

use anyhow::Context;
use clap::{Parser, Subcommand};
use skiff_tests::lab::{cleanup, Lab};

#[derive(Parser, Debug)]
#[command(about = "Skiff's network-namespace lab")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Build a lab and keep it until Ctrl-C / SIGTERM.
    Up {
        /// Number of nodes.
        #[arg(long, default_value_t = 2)]
        nodes: usize,
        /// Pods per node.
        #[arg(long, default_value_t = 2)]
        pods: usize,
    },
    /// Show the ClusterIP data path: a Service over three echo pods, a client
    /// pod, the real agent; kept until Ctrl-C unless `--once`.
    Demo {
        /// Tear down right after showing the traffic.
        #[arg(long)]
        once: bool,
        /// The `skiff-echo` binary (default: next to this one).
        #[arg(long, env = "SKIFF_ECHO_BIN")]
        echo_bin: Option<std::path::PathBuf>,
    },
    /// The seed demo on a cluster of lab nodes (each a control-plane replica and an agent):
    /// kept until Ctrl-C / SIGTERM unless `--once`. `cargo xtask demo` runs it detached.
    Cluster {
        /// Data, state, logs and the kubeconfig.
        #[arg(long)]
        work: std::path::PathBuf,
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        #[arg(long, default_value_t = 3)]
        replicas: usize,
        /// Image archives to import on every node.
        #[arg(long = "image")]
        images: Vec<std::path::PathBuf>,
        /// Local port forwarded to the Kubernetes API (0: none).
        #[arg(long, default_value_t = 6443)]
        api_port: u16,
        /// Local port forwarded to NodePort 30001 (0: none).
        #[arg(long, default_value_t = 30001)]
        web_port: u16,
        /// Tear down right after showing the page.
        #[arg(long)]
        once: bool,
    },
    /// Remove labs whose owner process is dead.
    Down {
        /// Also remove labs of live processes.
        #[arg(long)]
        all: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Up { nodes, pods } => up(nodes, pods),
        Cmd::Demo { once, echo_bin } => demo(once, echo_bin),
        Cmd::Cluster {
            work,
            nodes,
            replicas,
            images,
            api_port,
            web_port,
            once,
        } => {
            let spec = skiff_tests::cluster::ClusterSpec::new(nodes, replicas, images, work);
            skiff_tests::seed_demo::run(spec, api_port, web_port, once)
        }
        Cmd::Down { all } => {
            let removed = cleanup::cleanup_stale(all);
            if removed.is_empty() {
                println!("no lab to remove");
            }
            for lab in removed {
                println!("removed {lab}");
            }
            Ok(())
        }
    }
}

fn demo(once: bool, echo_bin: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let echo_bin = match echo_bin {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("skiff-echo"),
    };
    let fx = skiff_tests::demo::run(&echo_bin)?;
    if once {
        drop(fx);
        println!("[demo] torn down");
        return Ok(());
    }
    println!("Ctrl-C or SIGTERM tears the demo down");
    let _keep = fx;
    loop {
        std::thread::park();
    }
}

fn up(nodes: usize, pods: usize) -> anyhow::Result<()> {
    let lab = Lab::builder()
        .nodes(nodes)
        .build()
        .context("building the lab")?;
    let ul = lab.underlay();
    println!(
        "lab {} (underlay {}/24 on {} in netns {})",
        lab.prefix(),
        ul.subnet(),
        skiff_tests::lab::Underlay::BRIDGE,
        ul.netns().name()
    );
    let mut keep = Vec::new();
    for node in lab.nodes() {
        println!(
            "node {}: netns {}  eth0 {}/24  pods {}/24",
            node.index(),
            node.name(),
            node.addr(),
            node.pod_cidr()
        );
        for k in 0..pods {
            let pod = node
                .add_pod(&format!("pod-{}-{k}", node.index()))
                .with_context(|| format!("adding pod {k} to node {}", node.index()))?;
            println!(
                "  pod {}: netns {}  eth0 {}/32  host veth {}",
                pod.name(),
                pod.netns().name(),
                pod.ip(),
                pod.host_ifname()
            );
            keep.push(pod);
        }
    }
    println!("enter a namespace with: nsenter --net=/run/netns/<netns> bash");
    println!("  (not `ip netns exec`: it remounts /sys and hides bpffs)");
    println!("Ctrl-C or SIGTERM tears the lab down");
    // The lab's signal handler tears everything down and exits; park until then.
    loop {
        std::thread::park();
    }
}
