//! A pod's `/etc/resolv.conf`, built the way the kubelet builds it from the
//! pod's `dnsPolicy` and `dnsConfig`.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;

/// The kubelet's limits: extra nameservers and search domains are dropped.
pub const MAX_NAMESERVERS: usize = 3;
pub const MAX_SEARCHES: usize = 32;
pub const MAX_SEARCH_CHARS: usize = 2048;

/// The three things a resolv.conf says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parses a resolv.conf as the kubelet does: `nameserver`, the last
    /// `search` line (without `.` and trailing dots), every `options` line.
    pub fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => out.nameservers.extend(fields.next().map(str::to_owned)),
                Some("search") => {
                    out.searches = fields
                        .filter(|s| *s != ".")
                        .map(|s| s.trim_end_matches('.').to_owned())
                        .collect();
                }
                Some("options") => out.options.extend(fields.map(str::to_owned)),
                _ => {}
            }
        }
        out
    }

    /// The file: `search`, then `nameserver` lines, then `options`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out += &format!("search {}\n", self.searches.join(" "));
        }
        for ns in &self.nameservers {
            out += &format!("nameserver {ns}\n");
        }
        if !self.options.is_empty() {
            out += &format!("options {}\n", self.options.join(" "));
        }
        out
    }
}

/// The node's DNS settings.
#[derive(Clone, Debug, Default)]
pub struct DnsParams {
    /// The cluster DNS Service address(es); empty = none (ClusterFirst then
    /// falls back to the host's settings, as the kubelet does).
    pub cluster_dns: Vec<IpAddr>,
    /// e.g. `cluster.local`; empty = no cluster search domains.
    pub cluster_domain: String,
    /// The host's resolv.conf (the kubelet's `--resolv-conf`). It should not
    /// point at a loopback resolver (systemd-resolved's 127.0.0.53 is not
    /// reachable from a pod): use /run/systemd/resolve/resolv.conf there.
    pub host: ResolvConf,
}

/// What `dnsPolicy` amounts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DnsType {
    Cluster,
    Host,
    None,
}

fn dns_type(pod: &Pod, params: &DnsParams) -> DnsType {
    let spec = pod.spec.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let t = match spec.and_then(|s| s.dns_policy.as_deref()) {
        Some("None") => DnsType::None,
        Some("Default") => DnsType::Host,
        Some("ClusterFirstWithHostNet") => DnsType::Cluster,
        // ClusterFirst (also the default)
        _ if host_network => DnsType::Host,
        _ => DnsType::Cluster,
    };
    if t == DnsType::Cluster && params.cluster_dns.is_empty() {
        return DnsType::Host;
    }
    t
}

/// The pod's resolv.conf.
pub fn resolv_conf(pod: &Pod, params: &DnsParams) -> ResolvConf {
    let mut conf = match dns_type(pod, params) {
        DnsType::None => ResolvConf::default(),
        DnsType::Host => params.host.clone(),
        DnsType::Cluster => ResolvConf {
            nameservers: params.cluster_dns.iter().map(IpAddr::to_string).collect(),
            searches: cluster_searches(pod, params),
            options: vec!["ndots:5".into()],
        },
    };
    if let Some(cfg) = pod.spec.as_ref().and_then(|s| s.dns_config.as_ref()) {
        conf.nameservers
            .extend(cfg.nameservers.iter().flatten().cloned());
        conf.nameservers = dedup(conf.nameservers);
        let mut searches: Vec<String> = cfg.searches.iter().flatten().cloned().collect();
        searches.append(&mut conf.searches);
        conf.searches = dedup(searches);
        for opt in cfg.options.iter().flatten() {
            let Some(name) = opt.name.as_deref() else {
                continue;
            };
            let rendered = match &opt.value {
                Some(v) if !v.is_empty() => format!("{name}:{v}"),
                _ => name.to_owned(),
            };
            let same = |o: &String| o.split(':').next() == Some(name);
            match conf.options.iter_mut().find(|o| same(o)) {
                Some(o) => *o = rendered,
                None => conf.options.push(rendered),
            }
        }
    }
    fit_limits(conf)
}

/// `<ns>.svc.<domain> svc.<domain> <domain>`, then the host's searches.
fn cluster_searches(pod: &Pod, params: &DnsParams) -> Vec<String> {
    let domain = &params.cluster_domain;
    if domain.is_empty() {
        return params.host.searches.clone();
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = vec![
        format!("{ns}.svc.{domain}"),
        format!("svc.{domain}"),
        domain.clone(),
    ];
    out.extend(params.host.searches.iter().cloned());
    dedup(out)
}

fn dedup(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

fn fit_limits(mut conf: ResolvConf) -> ResolvConf {
    conf.nameservers.truncate(MAX_NAMESERVERS);
    conf.searches.truncate(MAX_SEARCHES);
    let mut chars = 0;
    conf.searches.retain(|s| {
        chars += s.len() + 1;
        chars <= MAX_SEARCH_CHARS + 1
    });
    conf
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodDNSConfig, PodDNSConfigOption, PodSpec};

    fn pod(policy: Option<&str>, host_network: bool, cfg: Option<PodDNSConfig>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web-0".into());
        pod.metadata.namespace = Some("shop".into());
        pod.spec = Some(PodSpec {
            dns_policy: policy.map(str::to_owned),
            host_network: Some(host_network),
            dns_config: cfg,
            ..Default::default()
        });
        pod
    }

    fn params(cluster_dns: &[&str]) -> DnsParams {
        DnsParams {
            cluster_dns: cluster_dns.iter().map(|s| s.parse().unwrap()).collect(),
            cluster_domain: "cluster.local".into(),
            host: ResolvConf::parse(
                "# generated\nnameserver 192.168.0.1\nnameserver 8.8.8.8 ; x\n\
                 search old.example\nsearch corp.example. .\noptions rotate timeout:2\n",
            ),
        }
    }

    #[test]
    fn parses_the_host_file_like_the_kubelet() {
        let host = params(&[]).host;
        assert_eq!(host.nameservers, ["192.168.0.1", "8.8.8.8"]);
        assert_eq!(host.searches, ["corp.example"], "the last search line wins");
        assert_eq!(host.options, ["rotate", "timeout:2"]);
    }

    #[test]
    fn cluster_first() {
        let conf = resolv_conf(&pod(None, false, None), &params(&["10.96.0.10"]));
        assert_eq!(
            conf.render(),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n\
             nameserver 10.96.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn cluster_first_without_cluster_dns_falls_back_to_the_host() {
        let p = params(&[]);
        let conf = resolv_conf(&pod(Some("ClusterFirst"), false, None), &p);
        assert_eq!(conf, p.host);
    }

    #[test]
    fn host_network_and_default_use_the_host_but_with_host_net_is_cluster() {
        let p = params(&["10.96.0.10"]);
        assert_eq!(resolv_conf(&pod(None, true, None), &p), p.host);
        assert_eq!(resolv_conf(&pod(Some("Default"), false, None), &p), p.host);
        let c = resolv_conf(&pod(Some("ClusterFirstWithHostNet"), true, None), &p);
        assert_eq!(c.nameservers, ["10.96.0.10"]);
    }

    #[test]
    fn none_takes_only_dns_config_and_options_merge() {
        let opt = |n: &str, v: Option<&str>| PodDNSConfigOption {
            name: Some(n.into()),
            value: v.map(str::to_owned),
        };
        let cfg = PodDNSConfig {
            nameservers: Some(vec!["1.1.1.1".into(), "1.1.1.1".into()]),
            searches: Some(vec!["a.example".into()]),
            options: Some(vec![opt("ndots", Some("2")), opt("edns0", None)]),
        };
        let none = resolv_conf(&pod(Some("None"), false, Some(cfg.clone())), &params(&[]));
        assert_eq!(
            none.render(),
            "search a.example\nnameserver 1.1.1.1\noptions ndots:2 edns0\n"
        );
        // Merged into ClusterFirst: dnsConfig searches first, ndots overridden.
        let merged = resolv_conf(&pod(None, false, Some(cfg)), &params(&["10.96.0.10"]));
        assert_eq!(merged.nameservers, ["10.96.0.10", "1.1.1.1"]);
        assert_eq!(merged.searches[0], "a.example");
        assert_eq!(merged.searches[1], "shop.svc.cluster.local");
        assert_eq!(merged.options, ["ndots:2", "edns0"]);
    }

    #[test]
    fn limits_are_enforced() {
        let cfg = PodDNSConfig {
            nameservers: Some((1..=5).map(|i| format!("10.0.0.{i}")).collect()),
            searches: Some((0..40).map(|i| format!("d{i}.example")).collect()),
            options: None,
        };
        let conf = resolv_conf(&pod(Some("None"), false, Some(cfg)), &params(&[]));
        assert_eq!(conf.nameservers.len(), MAX_NAMESERVERS);
        assert_eq!(conf.searches.len(), MAX_SEARCHES);
    }
}
