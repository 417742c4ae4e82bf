//! What to run: [`ContainerSpec`], and Kubernetes' rules for combining a
//! container's command/args/env/workingDir with the image config.

use std::path::PathBuf;

use crate::image::ImageConfig;

/// A bind mount into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub host_path: PathBuf,
    /// Absolute path inside the container.
    pub container_path: PathBuf,
    pub read_only: bool,
}

/// Everything needed to start one container process.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// Unique on the node: `[A-Za-z0-9_.-]{1,128}`.
    pub id: String,
    /// A prepared root filesystem (see `ImageStore::prepare_rootfs`).
    pub rootfs: PathBuf,
    /// argv; `args[0]` without a `/` is looked up in the env's `PATH`.
    pub args: Vec<String>,
    /// `KEY=VALUE`.
    pub env: Vec<String>,
    /// Working directory inside the container (`/` when empty).
    pub cwd: String,
    pub hostname: Option<String>,
    /// `(uid, gid)`; root when `None`.
    pub user: Option<(u32, u32)>,
    /// The pod's network namespace (`/run/skiff/netns/<pod-uid>`); the
    /// process stays in the caller's network namespace when `None`.
    pub netns: Option<PathBuf>,
    pub mounts: Vec<VolumeMount>,
    /// This instance's log file (CRI format); rotated to `<path>.1`, ….
    pub log_path: PathBuf,
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    /// The container's cgroup, relative to the hierarchy root (see
    /// `CgroupTree::container_path`); created by the caller.
    pub cgroup: Option<String>,
    /// Its stdin: none, a pipe, or a terminal (the pod spec's stdin, stdinOnce, tty).
    pub stdio: super::console::Stdio,
    /// The node's namespaces it shares instead of having its own.
    pub host: HostNamespaces,
}

/// The node's namespaces a container shares (the pod spec's `hostPID`, `hostIPC`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostNamespaces {
    pub pid: bool,
    pub ipc: bool,
}

/// PATH when neither the image nor the container sets one (containerd's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Kubernetes' rule: `command` replaces the image Entrypoint (and then the
/// image Cmd is ignored); `args` replace the image Cmd.
pub fn resolve_argv(image: &ImageConfig, command: &[String], args: &[String]) -> Vec<String> {
    match (command.is_empty(), args.is_empty()) {
        (false, _) => command.iter().chain(args).cloned().collect(),
        (true, false) => image.entrypoint.iter().chain(args).cloned().collect(),
        (true, true) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
    }
}

/// The image's env overridden by the container's, in first-seen order, with
/// a PATH when none is set.
pub fn merge_env(image: &[String], container: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let image_pairs = image.iter().map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k.to_owned(), v.to_owned())
    });
    for (k, v) in image_pairs.chain(container.iter().cloned()) {
        match out.iter_mut().find(|(ek, _)| *ek == k) {
            Some(e) => e.1 = v,
            None => out.push((k, v)),
        }
    }
    if !out.iter().any(|(k, _)| k == "PATH") {
        out.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn command_and_args_follow_kubernetes() {
        let img = ImageConfig {
            entrypoint: s(&["/ep"]),
            cmd: s(&["c1"]),
            ..ImageConfig::default()
        };
        assert_eq!(resolve_argv(&img, &[], &[]), s(&["/ep", "c1"]));
        assert_eq!(resolve_argv(&img, &[], &s(&["a"])), s(&["/ep", "a"]));
        assert_eq!(resolve_argv(&img, &s(&["/cmd"]), &[]), s(&["/cmd"]));
        assert_eq!(
            resolve_argv(&img, &s(&["/cmd"]), &s(&["a"])),
            s(&["/cmd", "a"])
        );
    }

    #[test]
    fn container_env_overrides_image_env() {
        let env = merge_env(
            &s(&["A=1", "PATH=/bin"]),
            &[("A".into(), "2".into()), ("B".into(), "3".into())],
        );
        assert_eq!(env, s(&["A=2", "PATH=/bin", "B=3"]));
        assert!(merge_env(&[], &[]).contains(&format!("PATH={DEFAULT_PATH}")));
    }
}
