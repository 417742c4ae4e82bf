//! Where a pod's things live on the node, and how container ids are formed.
//!
//! ```text
//! <state>/pods/<uid>/                       pod_dir: hosts, resolv.conf, hostname (sandbox)
//! <state>/pods/<uid>/logs/<container>/<restartCount>.log   CRI-format container logs
//! <state>/pods/<uid>/volumes/<name>/        emptyDir, configMap, secret, downwardAPI
//! <state>/claims/<claim uid>/               persistentVolumeClaim (node-local, outlives pods)
//! <state>/containers/<uid>_<container>_<restartCount>/     runtime state (Runtime)
//! ```
//!
//! A container id is `<pod uid>_<container name>_<restart count>`: deterministic, so an
//! agent restart finds every instance of every pod again from `Runtime::list` alone.

use std::path::{Path, PathBuf};

/// `<state>/pods`: a directory per pod.
pub fn pods_dir(state: &Path) -> PathBuf {
    state.join("pods")
}

/// `<state>/pods/<uid>`.
pub fn pod_dir(state: &Path, uid: &str) -> PathBuf {
    pods_dir(state).join(uid)
}

/// `<state>/pods/<uid>/logs/<container>/<restart>.log`.
pub fn log_path(state: &Path, uid: &str, container: &str, restart: u32) -> PathBuf {
    pod_dir(state, uid)
        .join("logs")
        .join(container)
        .join(format!("{restart}.log"))
}

/// `<state>/pods/<uid>/volumes`.
pub fn volumes_dir(state: &Path, uid: &str) -> PathBuf {
    pod_dir(state, uid).join("volumes")
}

/// `<state>/claims`: the directories of PersistentVolumeClaims used on this node.
pub fn claims_dir(state: &Path) -> PathBuf {
    state.join("claims")
}

/// `<state>/containers`: the runtime's directory.
pub fn containers_dir(state: &Path) -> PathBuf {
    state.join("containers")
}

/// The runtime id of instance `restart` of `container` in pod `uid`.
pub fn container_id(uid: &str, container: &str, restart: u32) -> String {
    format!("{uid}_{container}_{restart}")
}

/// A container id split back into (pod uid, container name, restart count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerKey {
    pub uid: String,
    pub name: String,
    pub restart: u32,
}

/// Parses [`container_id`]'s output; `None` for ids not made by the kubelet.
pub fn parse_container_id(id: &str) -> Option<ContainerKey> {
    let mut parts = id.rsplitn(3, '_');
    let restart = parts.next()?.parse().ok()?;
    let name = parts.next()?;
    let uid = parts.next()?;
    (!name.is_empty() && !uid.is_empty()).then(|| ContainerKey {
        uid: uid.to_owned(),
        name: name.to_owned(),
        restart,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_design() {
        let s = Path::new("/var/lib/skiff/agent");
        assert_eq!(
            log_path(s, "u1", "app", 3),
            Path::new("/var/lib/skiff/agent/pods/u1/logs/app/3.log")
        );
        assert_eq!(pod_dir(s, "u1"), Path::new("/var/lib/skiff/agent/pods/u1"));
    }

    #[test]
    fn container_ids_round_trip() {
        let uid = "2b7c1e7a-5d0e-4f0e-9a43-3b1c2d4e5f60";
        let id = container_id(uid, "web-app", 12);
        assert_eq!(
            parse_container_id(&id),
            Some(ContainerKey {
                uid: uid.into(),
                name: "web-app".into(),
                restart: 12
            })
        );
        assert_eq!(parse_container_id("other"), None);
        assert_eq!(parse_container_id("a_b_x"), None);
    }
}
