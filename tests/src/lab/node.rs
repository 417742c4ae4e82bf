//! A node: a netns with `eth0` on the underlay, forwarding, and its pods.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::cleanup::BPFFS_DIR;
use super::{add_netns, ip_batch, names, sysctl, LabError, Netns, Pod, Underlay};

/// Largest pod index per node: addresses run from `.2` to `.254`.
const MAX_PODS: usize = 253;

/// One node of a lab.
#[derive(Debug)]
pub struct Node {
    lab: String,
    index: usize,
    netns: Netns,
    addr: Ipv4Addr,
    pod_cidr: Ipv4Addr,
    next_pod: AtomicUsize,
}

impl Node {
    pub(crate) fn create(
        lab: &str,
        index: usize,
        underlay: &Underlay,
        pod_cidr: Ipv4Addr,
    ) -> Result<Self, LabError> {
        let netns = add_netns(&names::node(lab, index), lab)?;
        for (key, value) in [
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
        ] {
            sysctl(&netns, key, value)?;
        }
        underlay.attach(index, &netns)?;
        let addr = underlay.node_addr(index);
        ip_batch(
            Some(netns.name()),
            &[
                format!("addr add {addr}/24 dev eth0"),
                "link set eth0 up".into(),
            ],
        )?;
        Ok(Self {
            lab: lab.to_owned(),
            index,
            netns,
            addr,
            pod_cidr,
            next_pod: AtomicUsize::new(0),
        })
    }

    /// Direct routing: every other node's pod /24 via that node's address.
    pub(crate) fn route_to_peers(&self, nodes: &[Node]) -> Result<(), LabError> {
        let routes: Vec<String> = nodes
            .iter()
            .filter(|n| n.index != self.index)
            .map(|n| format!("route add {}/24 via {} dev eth0", n.pod_cidr, n.addr))
            .collect();
        if routes.is_empty() {
            return Ok(());
        }
        ip_batch(Some(self.netns.name()), &routes)
    }

    /// 0-based index in the lab.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The netns name, also the agent's `--node-name`.
    pub fn name(&self) -> &str {
        self.netns.name()
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// Address of `eth0` on the underlay.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The node's pod /24 (network address).
    pub fn pod_cidr(&self) -> Ipv4Addr {
        self.pod_cidr
    }

    /// Where the agent running as this node pins its maps and links.
    pub fn bpffs_dir(&self) -> PathBuf {
        PathBuf::from(BPFFS_DIR).join(self.name())
    }

    /// Adds pod `k` (the next index): netns `<node>-p<k>`, host veth
    /// `lxc<k>` here, `eth0` there with `10.244.<i>.<k+2>/32`.
    /// `name` is a label for messages (e.g. "backend-0").
    pub fn add_pod(&self, name: &str) -> Result<Pod, LabError> {
        let k = self.next_pod.fetch_add(1, Ordering::Relaxed);
        if k >= MAX_PODS {
            return Err(LabError::Config(format!(
                "more than {MAX_PODS} pods on a node"
            )));
        }
        let [a, b, c, _] = self.pod_cidr.octets();
        let ip = Ipv4Addr::new(a, b, c, k as u8 + 2);
        let netns = add_netns(&names::pod(&self.lab, self.index, k), &self.lab)?;
        let pod = Pod::new(name, self.index, k, ip, netns);
        let host = pod.host_ifname();
        ip_batch(
            Some(self.netns.name()),
            &[
                format!(
                    "link add {host} address {} type veth peer name eth0 address {} netns {}",
                    pod.host_mac(),
                    pod.mac(),
                    pod.netns().name()
                ),
                format!("link set {host} up"),
            ],
        )?;
        sysctl(&self.netns, &format!("net.ipv4.conf.{host}.proxy_arp"), "1")?;
        ip_batch(
            Some(self.netns.name()),
            &[format!("route add {ip}/32 dev {host}")],
        )?;
        pod.configure()?;
        Ok(pod)
    }
}
