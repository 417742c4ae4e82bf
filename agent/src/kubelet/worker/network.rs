//! Where a pod's containers are on the network: a sandbox of their own (a network
//! namespace, veth and address), or — `hostNetwork: true` — the node's namespace and
//! address, with only the pod's generated files.

use std::net::Ipv4Addr;
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;

use crate::sandbox::{files, resolv, PodFiles, Sandbox};

use super::Ctx;

/// A pod's network, once set up.
pub(super) enum PodNet {
    Sandbox(Sandbox),
    /// The node's network namespace (`hostNetwork`).
    Host,
}

impl PodNet {
    /// The pod's address: its own, or the node's.
    pub fn ip(&self, node_ip: Ipv4Addr) -> Ipv4Addr {
        match self {
            Self::Sandbox(sb) => sb.ip(),
            Self::Host => node_ip,
        }
    }

    /// The network namespace containers join; `None`: the node's, the runtime's own.
    pub fn netns_path(&self) -> Option<&Path> {
        match self {
            Self::Sandbox(sb) => Some(sb.netns_path()),
            Self::Host => None,
        }
    }
}

/// Whether the pod asks for the node's network.
pub(super) fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// Pod `uid`'s network with its hosts, resolv.conf and hostname files (blocking).
pub(super) fn create(ctx: &Ctx, uid: &str, pod: &Pod) -> Result<PodNet, String> {
    let cfg = &ctx.cfg;
    let (net, hosts, hostname) = if host_network(pod) {
        // The node's hosts file and name, as Kubernetes gives a pod on the node's network.
        let node_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let hosts = files::host_network_hosts(pod, &node_hosts);
        (PodNet::Host, hosts, cfg.node_name.clone())
    } else {
        let sb =
            Sandbox::create(&ctx.net, uid).map_err(|e| format!("creating the pod sandbox: {e}"))?;
        let hosts = files::hosts(pod, &[sb.ip().into()], &cfg.cluster_domain);
        (PodNet::Sandbox(sb), hosts, files::hostname(pod))
    };
    let pod_files = PodFiles {
        hosts,
        resolv_conf: resolv::resolv_conf(pod, &ctx.dns).render(),
        hostname,
    };
    pod_files
        .write(&ctx.net.files_dir(uid))
        .map_err(|e| format!("writing the pod's hosts/resolv.conf/hostname: {e}"))?;
    Ok(net)
}
