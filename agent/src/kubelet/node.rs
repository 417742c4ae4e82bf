//! The Node this kubelet registers: capacity and allocatable from the host, labels,
//! addresses and the kubelet endpoint; and the host facts it is built from.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Pods per node, as the kubelet's default `--max-pods`.
pub const MAX_PODS: u32 = 110;

/// What the Node says about the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    pub cpus: usize,
    pub memory_kib: u64,
    pub kernel: String,
    pub os_image: String,
    pub machine_id: String,
    pub boot_id: String,
}

impl HostFacts {
    /// Reads the host: available parallelism, `/proc/meminfo`, `/proc/sys/kernel/*`.
    pub fn read() -> Self {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .trim()
                .to_owned()
        };
        let os = read("/etc/os-release");
        Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_kib: mem_total_kib(&read("/proc/meminfo")).unwrap_or(0),
            kernel: read("/proc/sys/kernel/osrelease"),
            os_image: pretty_name(&os).unwrap_or_else(|| "Linux".into()),
            machine_id: read("/etc/machine-id"),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
        }
    }
}

/// `MemTotal` of `/proc/meminfo`, in KiB.
pub fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn pretty_name(os_release: &str) -> Option<String> {
    let v = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))?;
    Some(v.trim_matches('"').to_owned())
}

/// Kubernetes' GOARCH name of this build's architecture.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// The Node to register.
pub fn build(name: &str, ip: Ipv4Addr, kubelet_port: u16, host: &HostFacts) -> Node {
    let mut resources = BTreeMap::new();
    resources.insert("cpu".to_string(), Quantity(host.cpus.to_string()));
    resources.insert(
        "memory".to_string(),
        Quantity(format!("{}Ki", host.memory_kib)),
    );
    resources.insert("pods".to_string(), Quantity(MAX_PODS.to_string()));
    let labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", arch()),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", arch()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut node = Node::default();
    node.metadata.name = Some(name.to_owned());
    node.metadata.labels = Some(labels);
    node.status = Some(NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: name.to_owned(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(kubelet_port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: arch().into(),
            operating_system: "linux".into(),
            kernel_version: host.kernel.clone(),
            os_image: host.os_image.clone(),
            machine_id: host.machine_id.clone(),
            system_uuid: host.machine_id.clone(),
            boot_id: host.boot_id.clone(),
            container_runtime_version: format!("skiff://{}", env!("CARGO_PKG_VERSION")),
            kubelet_version: format!("v1.32.0-skiff.{}", env!("CARGO_PKG_VERSION")),
            kube_proxy_version: String::new(),
        }),
        ..Default::default()
    });
    node
}

/// A node's `InternalIP`.
pub fn internal_ip(node: &Node) -> Option<Ipv4Addr> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")?
        .address
        .parse()
        .ok()
}

/// The interface of the default route in `/proc/net/route` text.
pub fn default_route_iface(route_table: &str) -> Option<String> {
    route_table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 2 && f[1] == "00000000").then(|| f[0].to_owned())
    })
}

/// The first IPv4 address of interface `ifname` (getifaddrs).
pub fn iface_ipv4(ifname: &str) -> Option<Ipv4Addr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head`, freed below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: NUL-terminated name from getifaddrs.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        // SAFETY: ifa_addr is non-null; family checked before the cast.
        if name.to_bytes() == ifname.as_bytes()
            && i32::from(unsafe { (*ifa.ifa_addr).sa_family }) == libc::AF_INET
        {
            // SAFETY: AF_INET addresses are sockaddr_in.
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            found = Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            break;
        }
    }
    // SAFETY: the list getifaddrs allocated.
    unsafe { libc::freeifaddrs(head) };
    found
}

/// The address of the default-route interface in the calling thread's netns.
pub fn default_node_ip() -> Option<Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    iface_ipv4(&default_route_iface(&table)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> HostFacts {
        HostFacts {
            cpus: 2,
            memory_kib: 4_000_000,
            kernel: "6.18".into(),
            os_image: "Debian".into(),
            machine_id: "m".into(),
            boot_id: "b".into(),
        }
    }

    #[test]
    fn the_node_carries_capacity_labels_addresses_and_port() {
        let n = build("n1", Ipv4Addr::new(192, 168, 200, 10), 10250, &facts());
        let st = n.status.as_ref().unwrap();
        let cap = st.capacity.as_ref().unwrap();
        assert_eq!(cap["cpu"].0, "2");
        assert_eq!(cap["memory"].0, "4000000Ki");
        assert_eq!(cap["pods"].0, "110");
        assert_eq!(st.allocatable, st.capacity);
        let labels = n.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "n1");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(internal_ip(&n), Some(Ipv4Addr::new(192, 168, 200, 10)));
        let port = st
            .daemon_endpoints
            .as_ref()
            .unwrap()
            .kubelet_endpoint
            .as_ref()
            .unwrap()
            .port;
        assert_eq!(port, 10250);
    }

    #[test]
    fn host_parsing() {
        assert_eq!(
            mem_total_kib("MemTotal:        8040552 kB\nMemFree: 1 kB\n"),
            Some(8_040_552)
        );
        let routes = "Iface\tDestination\tGateway\n\
                      eth1\t0000A8C0\t00000000\n\
                      eth0\t00000000\t0100A8C0\n";
        assert_eq!(default_route_iface(routes).as_deref(), Some("eth0"));
        assert_eq!(iface_ipv4("lo"), Some(Ipv4Addr::LOCALHOST));
    }
}
