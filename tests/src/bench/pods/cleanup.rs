//! Tearing a pods benchmark down: the pods through the API (the kubelet stops them and
//! removes their sandboxes), then — also when the run failed half-way, through
//! [`Cleanup`]'s drop — any container left in the agent's state, its cgroups, rootfs
//! mounts and pod netns bind mounts, the control plane and the scratch directory.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use skiff_agent::kubelet::KubeletConfig;
use skiff_controlplane::api::client::Selectors;
use skiff_controlplane::api::objects::DeleteOptions;
use skiff_controlplane::api::ApiClient;
use skiff_controlplane::server::Server;
use skiff_tests::kubelet_lab::clean_node;
use tokio::runtime::Runtime;

use super::agent::AgentProc;

const DELETE_DEADLINE: Duration = Duration::from_secs(120);

/// Deletes every pod in `default` and waits until the API has none left.
pub async fn delete_pods(api: &ApiClient, agent: &AgentProc) -> Result<()> {
    let pods = api
        .list::<Pod>(Some("default"), &Selectors::default())
        .await
        .context("listing pods")?;
    for p in &pods.items {
        let name = p.metadata.name.as_deref().unwrap_or_default();
        let _ = api
            .delete::<Pod>(Some("default"), name, &DeleteOptions::default())
            .await;
    }
    let start = Instant::now();
    loop {
        agent.check_alive()?;
        let left = api
            .list::<Pod>(Some("default"), &Selectors::default())
            .await
            .context("listing pods")?
            .items
            .len();
        if left == 0 {
            return Ok(());
        }
        if start.elapsed() > DELETE_DEADLINE {
            bail!("{left} pods still there after {DELETE_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the run owns outside the lab.
pub struct Cleanup {
    pub server: Option<Server>,
    scratch: PathBuf,
    state: PathBuf,
    done: bool,
}

impl Cleanup {
    pub fn new(scratch: PathBuf, state: PathBuf) -> Self {
        Self {
            server: None,
            scratch,
            state,
            done: false,
        }
    }

    /// Shuts the control plane down on `cp` and removes what is left.
    pub fn finish(&mut self, cp: &Runtime) {
        if let Some(s) = self.server.take() {
            let _ = cp.block_on(cp.spawn(s.shutdown()));
        }
        self.remove();
    }

    fn remove(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let uids = pod_uids(&self.state);
        let mut cfg = KubeletConfig::new("bench");
        cfg.state_dir = self.state.clone();
        clean_node(&cfg);
        for uid in uids {
            let ns = PathBuf::from(skiff_agent::sandbox::DEFAULT_NETNS_DIR).join(&uid);
            if let Ok(c) = std::ffi::CString::new(ns.to_string_lossy().as_bytes()) {
                // SAFETY: a valid NUL-terminated path; MNT_DETACH has no other preconditions.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
            let _ = std::fs::remove_file(&ns);
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Uids of the pods with files under the agent's state (left by a failed run).
fn pod_uids(state: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(state.join("pods"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}
