//! Driving a lab cluster with the real `kubectl`, the way its users do.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

use super::Cluster;
use crate::agent::skiff_bin;

impl Cluster {
    /// A kubeconfig for `server` (inside the lab, or a forwarded local address).
    pub fn write_kubeconfig(&self, path: &Path, server: &str) -> Result<()> {
        let out = Command::new(skiff_bin()?)
            .args(["kubeconfig", "--server", server, "-o"])
            .arg(path)
            .output()
            .context("running skiff kubeconfig")?;
        if !out.status.success() {
            bail!("skiff kubeconfig: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// The real `kubectl` against replica 0, run inside node 0's netns.
    pub fn kubectl(&self, args: &[&str]) -> Result<Output> {
        let kc = self.work_dir().join("kubeconfig.lab");
        if !kc.exists() {
            self.write_kubeconfig(&kc, &format!("http://{}", self.api(0)))?;
        }
        Command::new("ip")
            .args(["netns", "exec", self.node(0).netns().name(), "kubectl"])
            .arg("--kubeconfig")
            .arg(&kc)
            .arg("--request-timeout=20s")
            .args(args)
            .output()
            .context("running kubectl")
    }

    /// `kubectl` that must succeed: its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String> {
        let out = self.kubectl(args)?;
        if !out.status.success() {
            bail!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl apply` of `yaml` (one or more documents), through a file in the work
    /// directory named after `what`.
    pub fn apply(&self, what: &str, yaml: &str) -> Result<String> {
        let path = self.work_dir().join(format!("{what}.yaml"));
        std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
        let file = path.to_string_lossy().into_owned();
        self.kubectl_ok(&["apply", "-f", &file])
    }
}

impl Cluster {
    /// `kubectl get <what> -o jsonpath=<path>`, trimmed.
    pub fn jsonpath(&self, what: &[&str], path: &str) -> Result<String> {
        let jp = format!("jsonpath={path}");
        let mut args = vec!["get"];
        args.extend(what);
        args.extend(["-o", jp.as_str()]);
        Ok(self.kubectl_ok(&args)?.trim().to_string())
    }

    /// The ClusterIP of Service `name`.
    pub fn cluster_ip(&self, name: &str) -> Result<std::net::Ipv4Addr> {
        let ip = self.jsonpath(&["service", name], "{.spec.clusterIP}")?;
        ip.parse()
            .with_context(|| format!("clusterIP {ip:?} of Service {name}"))
    }

    /// The nodePort of Service `name`'s first port.
    pub fn node_port(&self, name: &str) -> Result<u16> {
        let port = self.jsonpath(&["service", name], "{.spec.ports[0].nodePort}")?;
        port.parse()
            .with_context(|| format!("nodePort {port:?} of Service {name}"))
    }
}
