//! kube-proxy's ClusterIP (and, in iptables mode, NodePort) rules, as its
//! iptables and nftables modes write them (pkg/proxy/{iptables,nftables}/
//! proxier.go), installed in a node netns.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use skiff_tests::manifests::Proto;

use super::names::hash;

/// One service port with its endpoints (kube-proxy's `ServicePort`).
#[derive(Debug, Clone)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    pub port_name: String,
    pub vip: Ipv4Addr,
    pub port: u16,
    pub proto: Proto,
    /// The nodePort (externalTrafficPolicy Cluster); iptables mode only.
    pub node_port: Option<u16>,
    pub endpoints: Vec<(Ipv4Addr, u16)>,
}

impl ServicePort {
    /// `tcp` / `udp`, as kube-proxy lowercases the protocol.
    fn proto(&self) -> &'static str {
        match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
    /// `ns/name:port` (kube-proxy's `ServicePortName.String()`).
    fn port_name_string(&self) -> String {
        format!("{}/{}:{}", self.namespace, self.name, self.port_name)
    }
    fn port_proto_hash(&self) -> String {
        hash(&format!("{}{}", self.port_name_string(), self.proto()), 16)
    }
    fn svc_chain(&self) -> String {
        format!("KUBE-SVC-{}", self.port_proto_hash())
    }
    /// `KUBE-EXT-*`: where NodePort traffic is marked for masquerade
    /// before it joins the service chain.
    fn ext_chain(&self) -> String {
        format!("KUBE-EXT-{}", self.port_proto_hash())
    }
    fn sep_chain(&self, ep: (Ipv4Addr, u16)) -> String {
        let s = format!(
            "{}{}{}:{}",
            self.port_name_string(),
            self.proto(),
            ep.0,
            ep.1
        );
        format!("KUBE-SEP-{}", hash(&s, 16))
    }
    fn nft_base(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.namespace,
            self.name,
            self.proto(),
            self.port_name
        )
    }
    fn nft_service_chain(&self) -> String {
        let base = self.nft_base();
        format!("service-{}-{base}", hash(&base, 8))
    }
    fn nft_endpoint_chain(&self, ep: (Ipv4Addr, u16)) -> String {
        let base = format!("{}__{}/{}", self.nft_base(), ep.0, ep.1);
        format!("endpoint-{}-{base}", hash(&base, 8))
    }
}

/// Cluster-wide settings kube-proxy is configured with.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub pod_cidr: String,
    pub service_cidr: String,
    pub node_ip: Ipv4Addr,
}

/// `iptables-restore` input (flushing the nat and filter tables).
pub fn iptables_rules(cluster: &Cluster, svcs: &[ServicePort]) -> String {
    let mut f =
        String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    for c in [
        "KUBE-EXTERNAL-SERVICES",
        "KUBE-FORWARD",
        "KUBE-NODEPORTS",
        "KUBE-PROXY-FIREWALL",
        "KUBE-SERVICES",
    ] {
        let _ = writeln!(f, ":{c} - [0:0]");
    }
    f.push_str(concat!(
        "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n",
        "-A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS\n",
        "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n",
        "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n",
        "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n",
        "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
        "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n",
        "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n",
        "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n",
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark 0x4000/0x4000 -j ACCEPT\n",
        "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n",
        "COMMIT\n",
        "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n",
        ":KUBE-MARK-MASQ - [0:0]\n:KUBE-NODEPORTS - [0:0]\n:KUBE-POSTROUTING - [0:0]\n:KUBE-SERVICES - [0:0]\n",
    ));
    for s in svcs {
        let _ = writeln!(f, ":{} - [0:0]", s.svc_chain());
        if s.node_port.is_some() {
            let _ = writeln!(f, ":{} - [0:0]", s.ext_chain());
        }
        for &ep in &s.endpoints {
            let _ = writeln!(f, ":{} - [0:0]", s.sep_chain(ep));
        }
    }
    f.push_str(concat!(
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
        "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
        "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n",
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n",
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n",
    ));
    for s in svcs {
        let (spn, chain) = (s.port_name_string(), s.svc_chain());
        let p = s.proto();
        let m = format!("-m {p} -p {p} -d {} --dport {}", s.vip, s.port);
        let _ = writeln!(
            f,
            "-A KUBE-SERVICES -m comment --comment \"{spn} cluster IP\" {m} -j {chain}"
        );
        if let Some(np) = s.node_port {
            let ext = s.ext_chain();
            let _ = writeln!(
                f,
                "-A KUBE-NODEPORTS -m comment --comment {spn} -m {p} -p {p} --dport {np} -j {ext}"
            );
            let _ = writeln!(f, "-A {ext} -m comment --comment \"masquerade traffic for {spn} external destinations\" -j KUBE-MARK-MASQ");
            let _ = writeln!(f, "-A {ext} -j {chain}");
        }
        let _ = writeln!(
            f,
            "-A {chain} -m comment --comment \"{spn} cluster IP\" {m} ! -s {} -j KUBE-MARK-MASQ",
            cluster.pod_cidr
        );
        let n = s.endpoints.len();
        for (i, &ep) in s.endpoints.iter().enumerate() {
            let stat = if i + 1 < n {
                format!(
                    " -m statistic --mode random --probability {:.10}",
                    1.0 / (n - i) as f64
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                f,
                "-A {chain} -m comment --comment \"{spn} -> {}:{}\"{stat} -j {}",
                ep.0,
                ep.1,
                s.sep_chain(ep)
            );
        }
        for &ep in &s.endpoints {
            let sep = s.sep_chain(ep);
            let _ = writeln!(
                f,
                "-A {sep} -m comment --comment {spn} -s {} -j KUBE-MARK-MASQ",
                ep.0
            );
            let _ = writeln!(
                f,
                "-A {sep} -m comment --comment {spn} -m {p} -p {p} -j DNAT --to-destination {}:{}",
                ep.0, ep.1
            );
        }
    }
    f.push_str("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\nCOMMIT\n");
    f
}

/// Empties what [`iptables_rules`] wrote.
pub const IPTABLES_CLEAR: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n";

/// `nft -f` input: kube-proxy's base rules, then per service port a chain
/// dispatching with `numgen random mod N vmap` to endpoint chains that DNAT.
/// ClusterIPs only: `node_port` is not written.
pub fn nft_rules(cluster: &Cluster, svcs: &[ServicePort]) -> String {
    const T: &str = "ip kube-proxy";
    let mut f = format!(
        include_str!("nft_base.txt"),
        service_cidr = cluster.service_cidr,
        node_ip = cluster.node_ip
    );
    for s in svcs {
        let chain = s.nft_service_chain();
        // Chains first: a `goto` must name an existing chain.
        let _ = writeln!(f, "add chain {T} {chain}");
        for &ep in &s.endpoints {
            let _ = writeln!(f, "add chain {T} {}", s.nft_endpoint_chain(ep));
        }
        let _ = writeln!(
            f,
            "add rule {T} {chain} ip daddr {} ip saddr != {} jump mark-for-masquerade",
            s.vip, cluster.pod_cidr
        );
        let vmap: Vec<String> = s
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, &ep)| format!("{i} : goto {}", s.nft_endpoint_chain(ep)))
            .collect();
        let _ = writeln!(
            f,
            "add rule {T} {chain} numgen random mod {} vmap {{ {} }}",
            s.endpoints.len(),
            vmap.join(" , ")
        );
        for &ep in &s.endpoints {
            let epc = s.nft_endpoint_chain(ep);
            let _ = writeln!(
                f,
                "add rule {T} {epc} ip saddr {} jump mark-for-masquerade",
                ep.0
            );
            let _ = writeln!(
                f,
                "add rule {T} {epc} meta l4proto {} dnat to {}:{}",
                s.proto(),
                ep.0,
                ep.1
            );
        }
        let _ = writeln!(f, "add element {T} cluster-ips {{ {} }}", s.vip);
        let _ = writeln!(
            f,
            "add element {T} service-ips {{ {} . {} . {} : goto {chain} }}",
            s.vip,
            s.proto(),
            s.port
        );
    }
    f
}

/// Runs `program <args> <file with input>` in the netns at `netns` (via
/// nsenter), bounded to 5 minutes.
pub fn apply(
    netns: &Path,
    program: &str,
    args: &[&str],
    input: &str,
    scratch: &Path,
) -> Result<()> {
    std::fs::write(scratch, input).with_context(|| format!("writing {}", scratch.display()))?;
    let out = Command::new("timeout")
        .args(["-k", "5", "300", "nsenter"])
        .arg(format!("--net={}", netns.display()))
        .arg(program)
        .args(args)
        .arg(scratch)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {args:?} {} failed: {}",
            scratch.display(),
            String::from_utf8_lossy(&out.stderr)
                .chars()
                .take(1500)
                .collect::<String>()
                .trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
