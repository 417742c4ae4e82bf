//! A pod's `/etc/hosts` and `/etc/hostname` (the kubelet's format), and
//! writing the per-pod files the runtime bind-mounts.

use std::net::IpAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;

use super::SandboxError;

/// Longest hostname (a DNS label).
const MAX_HOSTNAME: usize = 63;

/// The pod's hostname: `spec.hostname`, else the pod name, cut to 63
/// characters without a trailing `-` or `.` (as the kubelet does).
pub fn hostname(pod: &Pod) -> String {
    let spec_name = pod.spec.as_ref().and_then(|s| s.hostname.as_deref());
    let name = spec_name
        .filter(|h| !h.is_empty())
        .or(pod.metadata.name.as_deref())
        .unwrap_or_default();
    let cut: String = name.chars().take(MAX_HOSTNAME).collect();
    cut.trim_end_matches(['-', '.']).to_owned()
}

/// `<subdomain>.<namespace>.svc.<cluster domain>` when `spec.subdomain` is set.
pub fn host_domain(pod: &Pod, cluster_domain: &str) -> Option<String> {
    let sub = pod.spec.as_ref()?.subdomain.as_deref()?;
    if sub.is_empty() {
        return None;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    Some(format!("{sub}.{ns}.svc.{cluster_domain}"))
}

/// The pod's `/etc/hosts`: localhost lines, the pod's own names, then
/// `spec.hostAliases`.
pub fn hosts(pod: &Pod, pod_ips: &[IpAddr], cluster_domain: &str) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    let name = hostname(pod);
    for ip in pod_ips {
        match host_domain(pod, cluster_domain) {
            Some(domain) => out += &format!("{ip}\t{name}.{domain}\t{name}\n"),
            None => out += &format!("{ip}\t{name}\n"),
        }
    }
    out + &host_aliases(pod)
}

/// The `/etc/hosts` of a pod on the node's network: the node's own file, then
/// `spec.hostAliases` (as the kubelet writes it).
pub fn host_network_hosts(pod: &Pod, node_hosts: &str) -> String {
    let mut out = String::from("# Kubernetes-managed hosts file (host network).\n");
    out += node_hosts;
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out + &host_aliases(pod)
}

fn host_aliases(pod: &Pod) -> String {
    let mut out = String::new();
    let aliases = pod.spec.as_ref().and_then(|s| s.host_aliases.as_ref());
    if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
        out += "\n# Entries added by HostAliases.\n";
        for alias in aliases {
            let names = alias.hostnames.as_deref().unwrap_or_default().join("\t");
            out += &format!("{}\t{names}\n", alias.ip);
        }
    }
    out
}

/// The contents of a pod's generated files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodFiles {
    pub hosts: String,
    pub resolv_conf: String,
    pub hostname: String,
}

impl PodFiles {
    /// Names of the files in the directory [`PodFiles::write`] fills.
    pub const HOSTS: &'static str = "hosts";
    pub const RESOLV_CONF: &'static str = "resolv.conf";
    pub const HOSTNAME: &'static str = "hostname";

    /// Writes `hosts`, `resolv.conf` and `hostname` into `dir` (created if
    /// needed). A file that exists with other content is replaced through a
    /// temporary file and a rename: a container that bind-mounted the old one
    /// keeps it whole. Nothing is fsynced: the files are rewritten from the pod
    /// whenever its sandbox is set up, after an agent restart as after a boot.
    pub fn write(&self, dir: &Path) -> Result<(), SandboxError> {
        std::fs::create_dir_all(dir).map_err(|e| SandboxError::io("creating", dir, e))?;
        let hostname = format!("{}\n", self.hostname);
        for (name, text) in [
            (Self::HOSTS, &self.hosts),
            (Self::RESOLV_CONF, &self.resolv_conf),
            (Self::HOSTNAME, &hostname),
        ] {
            write_file(&dir.join(name), text.as_bytes())?;
        }
        Ok(())
    }
}

fn write_file(path: &Path, data: &[u8]) -> Result<(), SandboxError> {
    let err = |e| SandboxError::io("writing", path, e);
    match std::fs::read(path) {
        Ok(old) if old == data => Ok(()),
        Ok(_) => {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            let tmp = path.with_file_name(format!(".{name}.tmp"));
            std::fs::write(&tmp, data)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(err)
        }
        // A partial file left by a crash differs from `data` next time.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(path, data).map_err(err)
        }
        Err(e) => Err(err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{HostAlias, PodSpec};

    fn pod(name: &str, spec: PodSpec) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("shop".into());
        pod.spec = Some(spec);
        pod
    }

    const LOCAL: &str = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n";

    #[test]
    fn hosts_without_subdomain() {
        let p = pod("web-0", PodSpec::default());
        let text = hosts(&p, &["10.244.0.5".parse().unwrap()], "cluster.local");
        assert!(text.starts_with(LOCAL), "{text}");
        assert!(
            text.ends_with("fe00::2\tip6-allrouters\n10.244.0.5\tweb-0\n"),
            "{text}"
        );
    }

    #[test]
    fn hosts_with_hostname_subdomain_and_aliases() {
        let spec = PodSpec {
            hostname: Some("db".into()),
            subdomain: Some("mysql".into()),
            host_aliases: Some(vec![HostAlias {
                ip: "10.1.2.3".into(),
                hostnames: Some(vec!["foo.local".into(), "bar.local".into()]),
            }]),
            ..Default::default()
        };
        let text = hosts(
            &pod("mysql-0", spec),
            &["10.244.0.5".parse().unwrap()],
            "cluster.local",
        );
        assert!(
            text.ends_with(
                "10.244.0.5\tdb.mysql.shop.svc.cluster.local\tdb\n\n\
                 # Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn hostname_is_a_dns_label() {
        let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        assert_eq!(hostname(&pod(&long, PodSpec::default())), "a".repeat(62));
        assert_eq!(hostname(&pod("web-0", PodSpec::default())), "web-0");
    }

    #[test]
    fn files_are_written_and_rewritten() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pod");
        let mut files = PodFiles {
            hosts: "h\n".into(),
            resolv_conf: "nameserver 10.96.0.10\n".into(),
            hostname: "web-0".into(),
        };
        files.write(&dir).unwrap();
        let ino =
            |n: &str| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(dir.join(n)).unwrap());
        let hosts_ino = ino(PodFiles::HOSTS);
        let hostname_ino = ino(PodFiles::HOSTNAME);
        files.hostname = "web-1".into();
        files.write(&dir).unwrap();
        assert_eq!(
            ino(PodFiles::HOSTS),
            hosts_ino,
            "unchanged content, same file"
        );
        assert_ne!(
            ino(PodFiles::HOSTNAME),
            hostname_ino,
            "changed content, a new file: a container keeps the one it mounted"
        );
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap();
        assert_eq!(read(PodFiles::HOSTNAME), "web-1\n");
        assert_eq!(read(PodFiles::RESOLV_CONF), "nameserver 10.96.0.10\n");
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            3,
            "no temp files left"
        );
    }
}
