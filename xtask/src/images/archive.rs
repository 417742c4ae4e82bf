//! Image archives: an OCI image layout tar and a `docker save` tar.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;

use super::layer::{sha, Layer};

fn config(entrypoint: &[&str], cmd: &[&str], diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": entrypoint, "Cmd": cmd,
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| format!("sha256:{d}")).collect::<Vec<_>>()},
    }))
    .expect("json")
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes)?;
    Ok(e.finish()?)
}

/// An OCI image layout as a tar: gzip layers, one manifest, named by each of `names`.
pub fn oci_archive(
    out: &Path,
    names: &[&str],
    layers: &[Vec<u8>],
    entrypoint: &[&str],
    cmd: &[&str],
) -> Result<()> {
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut descs = Vec::new();
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    for l in layers {
        let gz = gzip(l)?;
        let d = sha(&gz);
        descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": format!("sha256:{d}"), "size": gz.len()}));
        blobs.insert(d, gz);
    }
    let cfg = config(entrypoint, cmd, &diff_ids);
    let cfg_d = sha(&cfg);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{cfg_d}"), "size": cfg.len()},
        "layers": descs,
    }))?;
    let m_d = sha(&manifest);
    let entries: Vec<_> = names
        .iter()
        .map(|name| json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{m_d}"), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": name, "io.containerd.image.name": name},
        }))
        .collect();
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": entries}))?;
    blobs.insert(cfg_d, cfg);
    blobs.insert(m_d, manifest);
    let mut t = Layer::new();
    t.file("oci-layout", 0o644, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    t.file("index.json", 0o644, &index)?;
    for (d, b) in &blobs {
        t.file(&format!("blobs/sha256/{d}"), 0o644, b)?;
    }
    fs::write(out, t.finish()?).with_context(|| format!("writing {}", out.display()))
}

/// A `docker save` archive: manifest.json, <config>.json, <n>/layer.tar.
pub fn docker_archive(
    out: &Path,
    tag: &str,
    layers: &[Vec<u8>],
    entrypoint: &[&str],
    cmd: &[&str],
) -> Result<()> {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    let cfg = config(entrypoint, cmd, &diff_ids);
    let cfg_name = format!("{}.json", sha(&cfg));
    let mut t = Layer::new();
    let mut paths = Vec::new();
    for (l, d) in layers.iter().zip(&diff_ids) {
        let p = format!("{d}/layer.tar");
        t.file(&p, 0o644, l)?;
        paths.push(p);
    }
    t.file(&cfg_name, 0o644, &cfg)?;
    let manifest =
        serde_json::to_vec(&json!([{"Config": cfg_name, "RepoTags": [tag], "Layers": paths}]))?;
    t.file("manifest.json", 0o644, &manifest)?;
    fs::write(out, t.finish()?).with_context(|| format!("writing {}", out.display()))
}
