//! kube-proxy's ClusterIP rules, as its iptables and nftables modes write
//! them (pkg/proxy/{iptables,nftables}/proxier.go), installed in a node netns.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::names::hash;

/// One TCP service port with its endpoints (kube-proxy's `ServicePort`).
#[derive(Debug, Clone)]
pub struct ServicePort {
    pub namespace: String,
    pub name: String,
    pub port_name: String,
    pub vip: Ipv4Addr,
    pub port: u16,
    pub endpoints: Vec<(Ipv4Addr, u16)>,
}

impl ServicePort {
    /// `ns/name:port` (kube-proxy's `ServicePortName.String()`).
    fn port_name_string(&self) -> String {
        format!("{}/{}:{}", self.namespace, self.name, self.port_name)
    }
    fn svc_chain(&self) -> String {
        format!(
            "KUBE-SVC-{}",
            hash(&format!("{}tcp", self.port_name_string()), 16)
        )
    }
    fn sep_chain(&self, ep: (Ipv4Addr, u16)) -> String {
        let s = format!("{}tcp{}:{}", self.port_name_string(), ep.0, ep.1);
        format!("KUBE-SEP-{}", hash(&s, 16))
    }
    fn nft_base(&self) -> String {
        format!("{}/{}/tcp/{}", self.namespace, self.name, self.port_name)
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
        let m = format!("-m tcp -p tcp -d {} --dport {}", s.vip, s.port);
        let _ = writeln!(
            f,
            "-A KUBE-SERVICES -m comment --comment \"{spn} cluster IP\" {m} -j {chain}"
        );
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
                "-A {sep} -m comment --comment {spn} -m tcp -p tcp -j DNAT --to-destination {}:{}",
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
                "add rule {T} {epc} meta l4proto tcp dnat to {}:{}",
                ep.0, ep.1
            );
        }
        let _ = writeln!(f, "add element {T} cluster-ips {{ {} }}", s.vip);
        let _ = writeln!(
            f,
            "add element {T} service-ips {{ {} . tcp . {} : goto {chain} }}",
            s.vip, s.port
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
mod tests {
    use super::*;

    fn svc(n: usize) -> ServicePort {
        ServicePort {
            namespace: "ns1".into(),
            name: "svc1".into(),
            port_name: "p80".into(),
            vip: Ipv4Addr::new(172, 30, 0, 41),
            port: 80,
            endpoints: (1..=n as u8)
                .map(|i| (Ipv4Addr::new(10, 180, 0, i), 80))
                .collect(),
        }
    }
    const CLUSTER: fn() -> Cluster = || Cluster {
        pod_cidr: "10.0.0.0/8".into(),
        service_cidr: "172.30.0.0/16".into(),
        node_ip: Ipv4Addr::new(192, 168, 0, 2),
    };

    #[test]
    fn iptables_chains_and_probabilities() {
        let r = iptables_rules(&CLUSTER(), &[svc(3)]);
        assert!(r.contains("-A KUBE-SERVICES -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O"));
        assert!(r.contains("-m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-"));
        assert!(r.contains("-m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-"));
        assert!(r.contains("-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80"));
        assert_eq!(r.matches("--probability").count(), 2);
    }

    #[test]
    fn nft_chains_match_kube_proxy() {
        let r = nft_rules(&CLUSTER(), &[svc(1)]);
        assert!(r.contains("add rule ip kube-proxy service-ULMVA6XW-ns1/svc1/tcp/p80 numgen random mod 1 vmap { 0 : goto endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 }"));
        assert!(r.contains("add rule ip kube-proxy endpoint-5OJB2KTY-ns1/svc1/tcp/p80__10.180.0.1/80 meta l4proto tcp dnat to 10.180.0.1:80"));
        assert!(r.contains("add element ip kube-proxy service-ips { 172.30.0.41 . tcp . 80 : goto service-ULMVA6XW-ns1/svc1/tcp/p80 }"));
    }
}
