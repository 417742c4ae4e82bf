//! Command line of the `skiff` binary.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use skiff_agent::dataplane::bpffs::DEFAULT_ROOT;
use skiff_agent::dataplane::{NodePortMode, TcMode};
use skiff_common::defaults;

#[derive(Debug, Parser)]
#[command(
    name = "skiff",
    version,
    about = "Skiff: a Kubernetes-compatible orchestrator"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node agent (service proxy) in the current network namespace.
    Agent(AgentArgs),
    /// Run a control-plane server (store, Kubernetes API, controllers, scheduler).
    Server(crate::server_cmd::ServerArgs),
    /// Write a kubeconfig for a server.
    Kubeconfig(crate::kubeconfig_cmd::KubeconfigArgs),
    /// Show the store's replicas and the nodes.
    Status(crate::status_cmd::StatusArgs),
    /// The node's image store: import archives, list images.
    Image(crate::image_cmd::ImageArgs),
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Node name; also the pin directory under --bpffs.
    #[arg(long, value_parser = parse_node_name)]
    pub node_name: String,
    /// Directory of YAML manifests (v1 Services, discovery.k8s.io/v1 EndpointSlices).
    #[arg(long, required_unless_present_any = ["teardown", "stats", "server"])]
    pub manifests: Option<PathBuf>,
    /// Watch Services and EndpointSlices from the control plane's agent API
    /// (`host:port` of `skiff server --agent-listen`) instead of --manifests.
    #[arg(long, conflicts_with = "manifests")]
    pub server: Option<String>,
    /// Attach to every interface whose name starts with this.
    #[arg(long, default_value = "lxc")]
    pub pod_veth_prefix: String,
    /// Root of the pin directories (maps: <bpffs>/<node>/, links: <bpffs>/<node>/links/).
    #[arg(long, default_value = DEFAULT_ROOT)]
    pub bpffs: PathBuf,
    /// Source address for pods reaching themselves through a Service.
    #[arg(long, default_value = "169.254.42.1")]
    pub hairpin_addr: Ipv4Addr,
    #[arg(long, default_value_t = defaults::SERVICES_MAX)]
    pub map_size_services: u32,
    #[arg(long, default_value_t = defaults::BACKENDS_MAX)]
    pub map_size_backends: u32,
    #[arg(long, default_value_t = defaults::REV_NAT_MAX)]
    pub map_size_rev_nat: u32,
    #[arg(long, default_value_t = defaults::CONNTRACK_MAX)]
    pub map_size_conntrack: u32,
    /// Debug logs, and BPF debug events (CFG_F_DEBUG) through aya-log.
    #[arg(long)]
    pub debug: bool,
    /// Detach from the pod veths of this netns and remove the node's pins, then exit.
    #[arg(long)]
    pub teardown: bool,
    /// Print the data path counters (name=value, one per line), then exit.
    #[arg(long, conflicts_with = "teardown")]
    pub stats: bool,
    /// How to attach to TC ingress.
    #[arg(long, value_enum, default_value = "auto")]
    pub tc_mode: TcMode,
    /// Load this BPF object instead of the embedded one.
    #[arg(long)]
    pub bpf_object: Option<PathBuf>,
    /// Retry a failed programming pass this often.
    #[arg(long, default_value_t = 2000)]
    pub resync_interval_ms: u64,
    /// Compare the maps themselves (not the agent's mirror of them) with the
    /// desired state this often, repairing any drift.
    #[arg(long, default_value_t = 60_000)]
    pub audit_interval_ms: u64,
    /// Look for new pod veths this often.
    #[arg(long, default_value_t = 500)]
    pub link_scan_interval_ms: u64,
    /// Conntrack garbage collection period.
    #[arg(long, default_value_t = 10_000)]
    pub ct_gc_interval_ms: u64,
    /// Do not attach the socket-level load balancer (cgroup connect/sendmsg
    /// hooks) that lets the node's own processes and hostNetwork pods reach
    /// ClusterIPs.
    #[arg(long)]
    pub no_socket_lb: bool,
    /// Run only the kubelet (pods), not the service proxy; needs --server.
    #[arg(long, requires = "server", conflicts_with = "manifests")]
    pub no_proxy: bool,
    /// The kubelet's state: images, containers, IPAM, pod files and logs.
    #[arg(long, default_value = skiff_agent::sandbox::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Where pod network namespaces are bind-mounted (default /run/skiff/netns). Two
    /// agents on one machine (a lab) need different ones.
    #[arg(long)]
    pub netns_dir: Option<PathBuf>,
    /// Name of the cgroup under which pods run (default `skiff`). Two agents on one
    /// machine need different ones: each removes pods under its own it does not know.
    #[arg(long)]
    pub cgroup_parent: Option<String>,
    /// The node's InternalIP (default: the address of the default-route interface):
    /// NodePorts answer on it (and the external interface's other addresses), SNAT to
    /// remote backends uses it.
    #[arg(long)]
    pub node_ip: Option<Ipv4Addr>,
    /// Where the kubelet's HTTP server (logs, metrics) listens; its port (port 0: a free
    /// one, logged) is published in the Node for `kubectl logs`.
    #[arg(long, default_value = skiff_agent::kubelet::http::DEFAULT_LISTEN)]
    pub kubelet_listen: SocketAddr,
    /// CrashLoopBackOff: first restart delay after the immediate one (doubling).
    #[arg(long, default_value_t = 10_000)]
    pub backoff_base_ms: u64,
    /// CrashLoopBackOff: longest delay.
    #[arg(long, default_value_t = 300_000)]
    pub backoff_max_ms: u64,
    /// Node heartbeat (Lease renewal) period.
    #[arg(long, default_value_t = 10_000)]
    pub heartbeat_interval_ms: u64,
    /// A cluster DNS of your own for pods' resolv.conf. Without it the agent answers its
    /// pods' queries itself on port 53 of the node address (Service names from the
    /// Services it watches, the rest forwarded to the host's resolvers).
    #[arg(long)]
    pub cluster_dns: Vec<Ipv4Addr>,
    /// Neither serve DNS on the node address nor name it in pods' resolv.conf (pods get
    /// the host's resolvers unless --cluster-dns is given).
    #[arg(long)]
    pub no_node_dns: bool,
    /// Interfaces the NodePort program attaches to, comma-separated
    /// (default: the one holding --node-ip, else the default route's). A
    /// node that reaches other nodes through another interface than the
    /// one its clients use lists both: a remote backend's reply is
    /// reverse-SNATed on the interface it arrives on.
    #[arg(long, value_delimiter = ',')]
    pub external_iface: Vec<String>,
    /// NodePort attach: native XDP (TC ingress if XDP cannot attach), or TC.
    #[arg(long, value_enum, default_value = "xdp")]
    pub nodeport_mode: NodePortMode,
}

fn parse_node_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!("{s:?} is not usable as a directory name"))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::{Cli, Command};

    fn agent(args: &[&str]) -> Result<super::AgentArgs, clap::Error> {
        let cli = Cli::try_parse_from([&["skiff", "agent"], args].concat())?;
        match cli.command {
            Command::Agent(a) => Ok(a),
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn defaults_match_the_design() {
        let a = agent(&["--node-name", "n1", "--manifests", "/m"]).unwrap();
        assert_eq!(a.pod_veth_prefix, "lxc");
        assert_eq!(a.bpffs, std::path::Path::new("/sys/fs/bpf/skiff"));
        assert_eq!(a.hairpin_addr, std::net::Ipv4Addr::new(169, 254, 42, 1));
        assert!(!a.debug && !a.teardown);
    }

    #[test]
    fn all_flags_parse() {
        let a = agent(&[
            "--node-name=n1",
            "--manifests=/m",
            "--pod-veth-prefix=veth",
            "--bpffs=/x",
            "--hairpin-addr=169.254.0.9",
            "--map-size-services=64",
            "--map-size-backends=32",
            "--map-size-rev-nat=16",
            "--map-size-conntrack=128",
            "--debug",
            "--tc-mode=netlink",
            "--resync-interval-ms=100",
            "--link-scan-interval-ms=50",
            "--ct-gc-interval-ms=1000",
        ])
        .unwrap();
        assert_eq!((a.map_size_services, a.map_size_conntrack), (64, 128));
        assert_eq!(a.tc_mode, skiff_agent::dataplane::TcMode::Netlink);
    }

    #[test]
    fn server_replaces_manifests() {
        let a = agent(&["--node-name", "n1", "--server", "10.0.0.1:6444"]).unwrap();
        assert_eq!(a.server.as_deref(), Some("10.0.0.1:6444"));
        assert!(a.manifests.is_none());
        assert!(agent(&["--node-name", "n1", "--server", "a:1", "--manifests", "/m"]).is_err());
    }

    #[test]
    fn kubelet_flags() {
        let a = agent(&["--node-name", "n1", "--server", "a:1"]).unwrap();
        assert_eq!(
            (a.kubelet_listen.port(), a.backoff_base_ms, a.backoff_max_ms),
            (10250, 10_000, 300_000)
        );
        assert_eq!(a.state_dir, std::path::Path::new("/var/lib/skiff/agent"));
        assert!(!a.no_proxy);
        let a = agent(&[
            "--node-name=n1",
            "--server=a:1",
            "--no-proxy",
            "--state-dir=/s",
            "--node-ip=192.168.0.10",
            "--kubelet-listen=127.0.0.1:0",
            "--backoff-base-ms=100",
            "--backoff-max-ms=1000",
        ])
        .unwrap();
        assert!(a.no_proxy);
        assert_eq!(a.kubelet_listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(a.node_ip, Some(std::net::Ipv4Addr::new(192, 168, 0, 10)));
        assert!(agent(&["--node-name", "n1", "--manifests", "/m", "--no-proxy"]).is_err());
    }

    #[test]
    fn manifests_are_required_except_for_teardown_and_stats() {
        assert!(agent(&["--node-name", "n1"]).is_err());
        assert!(
            agent(&["--node-name", "n1", "--teardown"])
                .unwrap()
                .teardown
        );
        assert!(agent(&["--node-name", "n1", "--stats"]).unwrap().stats);
        assert!(agent(&["--node-name", "a/b", "--teardown"]).is_err());
    }
}
