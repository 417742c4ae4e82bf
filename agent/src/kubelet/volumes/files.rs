//! The files of configMap, secret and downwardAPI volumes (pure), and writing them.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, Pod};

/// One file of a volume: a relative path, its bytes and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeFile {
    pub path: String,
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Kubernetes' default file mode (0644).
pub const DEFAULT_MODE: i32 = 0o644;

fn safe(path: &str) -> Result<(), String> {
    let p = Path::new(path);
    let ok = !path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)));
    ok.then_some(())
        .ok_or_else(|| format!("volume file path {path:?} must be relative without '..'"))
}

/// The files of a configMap or secret volume: every key, or only `items` (each item's
/// key must exist unless the volume is `optional`).
pub fn projection(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<Vec<VolumeFile>, String> {
    let mode = default_mode.unwrap_or(DEFAULT_MODE) as u32;
    let mut out = Vec::new();
    match items {
        None => {
            for (k, v) in data {
                safe(k)?;
                out.push(VolumeFile {
                    path: k.clone(),
                    data: v.clone(),
                    mode,
                });
            }
        }
        Some(items) => {
            for it in items {
                safe(&it.path)?;
                match data.get(&it.key) {
                    Some(v) => out.push(VolumeFile {
                        path: it.path.clone(),
                        data: v.clone(),
                        mode: it.mode.map_or(mode, |m| m as u32),
                    }),
                    None if optional => {}
                    None => return Err(format!("configured key {:?} not found", it.key)),
                }
            }
        }
    }
    Ok(out)
}

fn kv_lines(map: &Option<BTreeMap<String, String>>) -> String {
    map.iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}\n"))
        .collect()
}

/// The files of a downwardAPI volume (fieldRef items: name, namespace, uid, labels,
/// annotations, a single label/annotation).
pub fn downward_api(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
) -> Result<Vec<VolumeFile>, String> {
    let mode = default_mode.unwrap_or(DEFAULT_MODE) as u32;
    let m = &pod.metadata;
    let mut out = Vec::new();
    for it in items {
        safe(&it.path)?;
        let Some(f) = &it.field_ref else {
            return Err(format!("{}: only fieldRef items are supported", it.path));
        };
        let text = match f.field_path.as_str() {
            "metadata.labels" => kv_lines(&m.labels),
            "metadata.annotations" => kv_lines(&m.annotations),
            p => crate::kubelet::env::metadata_field(m, p)
                .ok_or_else(|| format!("unsupported fieldRef {p:?}"))?,
        };
        out.push(VolumeFile {
            path: it.path.clone(),
            data: text.into_bytes(),
            mode: it.mode.map_or(mode, |m| m as u32),
        });
    }
    Ok(out)
}

/// Writes `files` under `dir` (created), replacing what was there.
pub fn write(dir: &Path, files: &[VolumeFile]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for f in files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension("skiff-tmp");
        std::fs::write(&tmp, &f.data)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(f.mode))?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ObjectFieldSelector;

    use super::*;

    fn data() -> BTreeMap<String, Vec<u8>> {
        [
            ("a".to_string(), b"1".to_vec()),
            ("b".to_string(), b"2".to_vec()),
        ]
        .into()
    }

    #[test]
    fn all_keys_or_selected_items() {
        let all = projection(&data(), None, None, false).unwrap();
        assert_eq!(
            all.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(all[0].mode, 0o644);
        let items = [KeyToPath {
            key: "b".into(),
            path: "dir/bee".into(),
            mode: Some(0o400),
        }];
        let some = projection(&data(), Some(&items), Some(0o600), false).unwrap();
        assert_eq!(
            some,
            vec![VolumeFile {
                path: "dir/bee".into(),
                data: b"2".to_vec(),
                mode: 0o400
            }]
        );
        let missing = [KeyToPath {
            key: "z".into(),
            path: "z".into(),
            mode: None,
        }];
        assert!(projection(&data(), Some(&missing), None, false).is_err());
        assert!(projection(&data(), Some(&missing), None, true)
            .unwrap()
            .is_empty());
        let evil = [KeyToPath {
            key: "a".into(),
            path: "../x".into(),
            mode: None,
        }];
        assert!(projection(&data(), Some(&evil), None, false).is_err());
    }

    #[test]
    fn downward_api_files() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web-0".into());
        pod.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        let item = |path: &str, field: &str| DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(ObjectFieldSelector {
                field_path: field.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let files = downward_api(
            &pod,
            &[
                item("name", "metadata.name"),
                item("labels", "metadata.labels"),
                item("app", "metadata.labels['app']"),
            ],
            None,
        )
        .unwrap();
        let texts: Vec<String> = files
            .iter()
            .map(|f| String::from_utf8(f.data.clone()).unwrap())
            .collect();
        assert_eq!(texts, ["web-0", "app=\"web\"\n", "web"]);
    }

    #[test]
    fn files_are_written_with_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let files = projection(&data(), None, Some(0o600), false).unwrap();
        write(tmp.path(), &files).unwrap();
        let meta = std::fs::metadata(tmp.path().join("a")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(tmp.path().join("b")).unwrap(), b"2");
    }
}
