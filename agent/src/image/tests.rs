//! Import, whiteouts and resolution, without root: small archives built in a
//! tempdir.

use std::fs;
use std::path::Path;

use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::build::{write_oci_layout, LayerBuilder};
use super::{ImageConfig, ImageError, ImageStore};

fn config() -> ImageConfig {
    ImageConfig {
        entrypoint: vec!["/bin/sh".into()],
        cmd: vec!["-c".into(), "echo hi".into()],
        env: vec!["PATH=/bin".into()],
        working_dir: "/work".into(),
        user: String::new(),
    }
}

fn base_layer() -> Vec<u8> {
    LayerBuilder::new()
        .dir("etc")
        .file("etc/keep", 0o644, b"keep")
        .file("etc/gone", 0o644, b"gone")
        .dir("var/cache")
        .file("var/cache/old", 0o600, b"old")
        .file("bin/tool", 0o755, b"#!tool")
        .symlink("bin/alias", "tool")
        .finish()
}

fn top_layer() -> Vec<u8> {
    LayerBuilder::new()
        .whiteout("etc/gone")
        .opaque("var/cache")
        .file("var/cache/new", 0o644, b"new")
        .file("etc/keep", 0o644, b"changed")
        .finish()
}

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn oci_layout_imports_and_flattens_with_whiteouts() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let id = write_oci_layout(
        &layout,
        "skiff.local/test:v1",
        &[base_layer(), top_layer()],
        &config(),
        true,
    )
    .unwrap();
    let store = ImageStore::open(&tmp.path().join("state")).unwrap();
    let imported = store.import(&layout).unwrap();
    assert_eq!(imported.len(), 1);
    let rec = &imported[0];
    assert_eq!(rec.id, id);
    assert_eq!(rec.config, config());
    assert_eq!(rec.repo_tags, ["skiff.local/test:v1"]);
    assert_eq!(store.resolve("skiff.local/test:v1").unwrap().id, id);
    assert_eq!(store.resolve(&id).unwrap().id, id);
    assert_eq!(store.resolve(&id[7..19]).unwrap().id, id);

    let w = store.whiteouts(&rec.diff_ids[1]).unwrap();
    assert_eq!(w.deleted, [Path::new("etc/gone")]);
    assert_eq!(w.opaque, [Path::new("var/cache")]);
    assert_eq!(w.overlay_ready, is_root());

    let root = tmp.path().join("flat");
    fs::create_dir(&root).unwrap();
    store.flatten_into(rec, &root).unwrap();
    assert_eq!(fs::read(root.join("etc/keep")).unwrap(), b"changed");
    assert!(!root.join("etc/gone").exists(), "whiteout applied");
    assert!(
        !root.join("var/cache/old").exists(),
        "opaque dir hid the lower file"
    );
    assert_eq!(fs::read(root.join("var/cache/new")).unwrap(), b"new");
    assert_eq!(
        fs::read_link(root.join("bin/alias")).unwrap(),
        Path::new("tool")
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = fs::metadata(root.join("bin/tool"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    // No whiteout file of any form leaks into the flattened tree.
    assert!(!root.join("etc/.wh.gone").exists());
    assert!(!root.join("var/cache/.wh..wh..opq").exists());
}

/// A `docker save` tar: manifest.json, <config>.json, <dir>/layer.tar.
fn docker_save(path: &Path, tags: &[&str], layers: &[Vec<u8>]) -> String {
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{:x}", Sha256::digest(l)))
        .collect();
    let cfg = serde_json::to_vec(&json!({
        "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["A=1"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cfg_hex = format!("{:x}", Sha256::digest(&cfg));
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, name, data).unwrap();
    };
    let mut layer_paths = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let p = format!("l{i}/layer.tar");
        add(&p, l);
        layer_paths.push(p);
    }
    add(&format!("{cfg_hex}.json"), &cfg);
    let manifest =
        json!([{"Config": format!("{cfg_hex}.json"), "RepoTags": tags, "Layers": layer_paths}]);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    fs::write(path, b.into_inner().unwrap()).unwrap();
    format!("sha256:{cfg_hex}")
}

#[test]
fn docker_save_tar_imports_with_normalized_tags() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("busybox.tar");
    let id = docker_save(&archive, &["busybox:latest"], &[base_layer()]);
    let store = ImageStore::open(tmp.path()).unwrap();
    let rec = store.import(&archive).unwrap().remove(0);
    assert_eq!(rec.id, id);
    assert_eq!(rec.repo_tags, ["docker.io/library/busybox:latest"]);
    assert_eq!(rec.config.cmd, ["sh"]);
    for r in [
        "busybox",
        "busybox:latest",
        "library/busybox",
        "docker.io/library/busybox:latest",
    ] {
        assert_eq!(store.resolve(r).unwrap().id, id, "{r}");
    }
    let err = store.resolve("busybox:1.0").unwrap_err();
    assert!(matches!(err, ImageError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("skiff image import"), "{err}");
    // The import's scratch space is gone; listing finds the image.
    assert_eq!(fs::read_dir(store.root().join("tmp")).unwrap().count(), 0);
    assert_eq!(store.list().unwrap().len(), 1);
    // Re-tagging moves the tag; importing again is idempotent.
    store.tag(&id, "skiff.local/busybox:latest").unwrap();
    let again = store.import(&archive).unwrap().remove(0);
    assert_eq!(again.repo_tags.len(), 2);
}

#[test]
fn a_layer_that_does_not_match_its_diff_id_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_oci_layout(&layout, "x.local/bad:v1", &[base_layer()], &config(), false).unwrap();
    // Swap the layer blob's content for another layer's (size and digest
    // unchanged in the manifest): the blob digest no longer matches.
    let blobs = layout.join("blobs/sha256");
    let hex = format!("{:x}", Sha256::digest(base_layer()));
    fs::write(blobs.join(&hex), top_layer()).unwrap();
    let store = ImageStore::open(&tmp.path().join("state")).unwrap();
    let err = store.import(&layout).unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn archives_without_an_index_are_rejected_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path()).unwrap();
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let err = store.import(&empty).unwrap_err().to_string();
    assert!(
        err.contains("manifest.json") && err.contains("index.json"),
        "{err}"
    );
}
