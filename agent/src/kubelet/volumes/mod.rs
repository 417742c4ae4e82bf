//! Pod volumes: emptyDir (a directory under the pod's), hostPath, configMap and secret
//! (read through the control plane's GetObject), downwardAPI, and persistentVolumeClaim:
//! the claim's PersistentVolume, a `hostPath` or `local` path, or a node-local directory
//! per claim kept across pods (what the built-in `local-path` provisioner's volumes are).
//! Each becomes a directory the runtime bind-mounts at every `volumeMount`.

pub mod files;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, HostPathVolumeSource, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Volume,
};
// The built-in provisioner's driver (`csi.volumeHandle`: the claim uid), and the annotation
// with which the scheduler pins a claim to a node.
use skiff_controlplane::controllers::volumes::matching::PROVISIONER as LOCAL_PATH_DRIVER;
use skiff_controlplane::scheduler::volumes::SELECTED_NODE;

use crate::cpclient::{CpClient, CpError};

/// Host directories of the pod's volumes, by volume name.
pub type VolumePaths = BTreeMap<String, PathBuf>;

/// Whether the volume `name` of `pod` is mounted read-only whatever the volumeMount says
/// (a `persistentVolumeClaim` source with `readOnly: true`).
pub fn read_only_source(pod: &Pod, name: &str) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .and_then(|vs| vs.iter().find(|v| v.name == name))
        .and_then(|v| v.persistent_volume_claim.as_ref())
        .and_then(|c| c.read_only)
        .unwrap_or(false)
}

/// ConfigMap data as bytes (`data` and `binaryData`).
pub fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    out.extend(
        cm.binary_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone())),
    );
    out
}

/// Secret data as bytes (`data`, then `stringData`).
pub fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    out.extend(
        s.string_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone().into_bytes())),
    );
    out
}

/// `Ok(None)` for NOT_FOUND.
async fn fetch<K: crate::cpclient::Gettable>(
    client: &CpClient,
    ns: &str,
    name: &str,
) -> Result<Option<K>, CpError> {
    match client.get::<K>(ns, name).await {
        Ok(k) => Ok(Some(k)),
        Err(e) if e.code() == Some(tonic::Code::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

fn io(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> String {
    let (what, path) = (what.to_owned(), path.display().to_string());
    move |e| format!("{what} {path}: {e}")
}

/// A hostPath source as Kubernetes treats it: `DirectoryOrCreate`, and no type at all
/// (as container runtimes do), make a missing directory; another type must exist.
fn host_path(h: &HostPathVolumeSource) -> Result<PathBuf, String> {
    let p = PathBuf::from(&h.path);
    match h.type_.as_deref().unwrap_or("") {
        "DirectoryOrCreate" | "" if !p.exists() => {
            std::fs::create_dir_all(&p).map_err(io("creating", &p))?;
        }
        "FileOrCreate" if !p.exists() => {
            std::fs::File::create(&p).map_err(io("creating", &p))?;
        }
        t if !p.exists() && t != "DirectoryOrCreate" && t != "FileOrCreate" => {
            return Err(format!("hostPath {} does not exist", p.display()));
        }
        _ => {}
    }
    Ok(p)
}

/// The node other than `node` the claim is pinned to, if any.
fn pinned_elsewhere<'a>(claim: &'a PersistentVolumeClaim, node: &str) -> Option<&'a str> {
    claim
        .metadata
        .annotations
        .as_ref()?
        .get(SELECTED_NODE)
        .map(String::as_str)
        .filter(|n| !n.is_empty() && *n != node)
}

/// Where a node keeps its claims, and which node it is.
pub struct ClaimStore<'a> {
    pub dir: &'a Path,
    pub node: &'a str,
}

/// The directory of the claim `name` in `ns` (made on first use); an error if the claim
/// does not exist, is not bound yet, or is pinned to another node (its data is there).
async fn claim_dir(
    client: &CpClient,
    ns: &str,
    name: &str,
    store: &ClaimStore<'_>,
) -> Result<PathBuf, String> {
    let claim = fetch::<PersistentVolumeClaim>(client, ns, name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("persistentvolumeclaim {name:?} not found"))?;
    let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase != Some("Bound") {
        return Err(format!("persistentvolumeclaim {name:?} is not bound"));
    }
    if let Some(other) = pinned_elsewhere(&claim, store.node) {
        return Err(format!(
            "persistentvolumeclaim {name:?} is on node {other:?}, not on this node"
        ));
    }
    let volume_name = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref());
    let mut key = claim.metadata.uid.as_deref().unwrap_or_default();
    let pv;
    if let Some(v) = volume_name.filter(|v| !v.is_empty()) {
        pv = fetch::<PersistentVolume>(client, "", v)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("persistentvolume {v:?} not found"))?;
        let spec = pv.spec.as_ref();
        if let Some(h) = spec.and_then(|s| s.host_path.as_ref()) {
            return host_path(h);
        }
        if let Some(l) = spec.and_then(|s| s.local.as_ref()) {
            let p = PathBuf::from(&l.path);
            return match p.exists() {
                true => Ok(p),
                false => Err(format!("local volume path {} does not exist", p.display())),
            };
        }
        match spec.and_then(|s| s.csi.as_ref()) {
            Some(c) if c.driver == LOCAL_PATH_DRIVER => key = c.volume_handle.as_str(),
            _ => {
                return Err(format!(
                    "persistentvolume {v:?}: unsupported source (hostPath, local and \
                     {LOCAL_PATH_DRIVER} volumes are)"
                ))
            }
        }
    }
    if !crate::sandbox::valid_uid(key) {
        return Err(format!(
            "persistentvolumeclaim {name:?} has no usable volume id"
        ));
    }
    let path = store.dir.join(key);
    std::fs::create_dir_all(&path).map_err(io("creating", &path))?;
    Ok(path)
}

/// Makes every volume of `pod` under `dir` (`<pod dir>/volumes`; claims in `claims`);
/// an error is the message of the pod's `FailedMount` event.
pub async fn prepare(
    client: &CpClient,
    pod: &Pod,
    dir: &Path,
    claims: &ClaimStore<'_>,
) -> Result<VolumePaths, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = VolumePaths::new();
    let volumes: &[Volume] = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    for v in volumes {
        let path = dir.join(&v.name);
        let err = |e: String| format!("volume {:?}: {e}", v.name);
        if let Some(h) = &v.host_path {
            out.insert(v.name.clone(), host_path(h).map_err(err)?);
            continue;
        }
        if let Some(c) = &v.persistent_volume_claim {
            let p = claim_dir(client, ns, &c.claim_name, claims)
                .await
                .map_err(err)?;
            out.insert(v.name.clone(), p);
            continue;
        }
        let files = if v.empty_dir.is_some() {
            std::fs::create_dir_all(&path)
                .map_err(io("creating", &path))
                .map_err(err)?;
            None
        } else if let Some(c) = &v.config_map {
            let optional = c.optional.unwrap_or(false);
            let cm = fetch::<ConfigMap>(client, ns, &c.name)
                .await
                .map_err(|e| err(e.to_string()))?;
            let data = match cm {
                Some(cm) => config_map_data(&cm),
                None if optional => BTreeMap::new(),
                None => return Err(err(format!("configmap {:?} not found", c.name))),
            };
            Some(
                files::projection(&data, c.items.as_deref(), c.default_mode, optional)
                    .map_err(err)?,
            )
        } else if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            let optional = s.optional.unwrap_or(false);
            let secret = fetch::<Secret>(client, ns, &name)
                .await
                .map_err(|e| err(e.to_string()))?;
            let data = match secret {
                Some(s) => secret_data(&s),
                None if optional => BTreeMap::new(),
                None => return Err(err(format!("secret {name:?} not found"))),
            };
            Some(
                files::projection(&data, s.items.as_deref(), s.default_mode, optional)
                    .map_err(err)?,
            )
        } else if let Some(d) = &v.downward_api {
            Some(
                files::downward_api(pod, d.items.as_deref().unwrap_or_default(), d.default_mode)
                    .map_err(err)?,
            )
        } else {
            return Err(err("unsupported volume type (emptyDir, hostPath, configMap, secret, downwardAPI and persistentVolumeClaim are)".into()));
        };
        if let Some(files) = files {
            files::write(&path, &files)
                .map_err(io("writing files into", &path))
                .map_err(err)?;
        }
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_read_only_claim_source_forces_read_only_mounts() {
        let pod = from(serde_json::json!({"spec": {"containers": [], "volumes": [
            {"name": "ro", "persistentVolumeClaim": {"claimName": "c", "readOnly": true}},
            {"name": "rw", "persistentVolumeClaim": {"claimName": "c"}},
            {"name": "tmp", "emptyDir": {}}]}}));
        assert!(read_only_source(&pod, "ro"));
        assert!(!read_only_source(&pod, "rw"));
        assert!(!read_only_source(&pod, "tmp"));
        assert!(!read_only_source(&pod, "missing"));
    }

    #[test]
    fn a_claim_pinned_to_another_node_is_not_mounted_here() {
        let claim = |node: &str| -> PersistentVolumeClaim {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "c",
                "annotations": {SELECTED_NODE: node}}}))
            .unwrap()
        };
        assert_eq!(pinned_elsewhere(&claim("n2"), "n1"), Some("n2"));
        assert_eq!(pinned_elsewhere(&claim("n1"), "n1"), None);
        assert_eq!(pinned_elsewhere(&claim(""), "n1"), None);
        assert_eq!(
            pinned_elsewhere(&PersistentVolumeClaim::default(), "n1"),
            None
        );
    }
}
