//! What tests and benchmarks read off a running cluster besides the API: every agent's
//! `/metrics` histograms and every node's pinned BPF maps; and the `echo-box` image they
//! deploy.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{procs, Cluster, KUBELET_PORT};
use crate::bpfmaps::PinnedMaps;
use crate::kubelet_lab::{binary_layer, busybox_layer, write_layout};
use crate::metrics::Histogram;

/// busybox plus `skiff-echo` (which answers with its `--name` and the client address it
/// saw): an image for servers, clients and preStop hooks alike.
pub const ECHO_BOX: &str = "skiff.local/echo-box:latest";

/// Writes [`ECHO_BOX`] as an OCI layout under `work` from the `skiff-echo` binary `echo`.
pub fn echo_box_layout(work: &Path, echo: &Path) -> PathBuf {
    let dir = work.join("echo-box");
    write_layout(
        &dir,
        ECHO_BOX,
        &[busybox_layer(), binary_layer(echo, "skiff-echo")],
        vec!["/bin/skiff-echo".into()],
    );
    dir
}

impl Cluster {
    /// Histogram `name` from the `/metrics` of every node's agent, in node order.
    pub fn histograms(&self, name: &str) -> Result<Vec<Histogram>> {
        (0..self.lab().nodes().len())
            .map(|i| {
                let addr = SocketAddr::from((self.node_addr(i), KUBELET_PORT));
                let (code, body) = self
                    .node(i)
                    .netns()
                    .run(|| procs::get(addr, "/metrics"))?
                    .with_context(|| format!("GET {addr}/metrics"))?;
                if code != 200 {
                    bail!("GET {addr}/metrics: {code} {body}");
                }
                Ok(Histogram::parse(&body, name)?)
            })
            .collect()
    }

    /// Every node's pinned maps, in node order.
    pub fn node_maps(&self) -> Vec<PinnedMaps> {
        self.lab()
            .nodes()
            .iter()
            .map(|n| PinnedMaps::new(n.bpffs_dir()))
            .collect()
    }
}
