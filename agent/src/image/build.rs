//! Writing small images: a layer tar from files, and an OCI image layout.
//! Used by the tests (and anything that needs an image without a registry).

use std::fs;
use std::io::Write as _;
use std::path::Path;

use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::{ImageConfig, ImageError};

/// A layer being built in memory.
pub struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    pub fn new() -> Self {
        let mut tar = tar::Builder::new(Vec::new());
        tar.mode(tar::HeaderMode::Deterministic);
        Self { tar }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    /// A regular file with `mode`.
    pub fn file(mut self, path: &str, mode: u32, data: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.tar
            .append_data(&mut h, path, data)
            .expect("in-memory tar");
        self
    }

    pub fn dir(mut self, path: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        self.tar
            .append_data(&mut h, path, std::io::empty())
            .expect("in-memory tar");
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.tar
            .append_link(&mut h, path, target)
            .expect("in-memory tar");
        self
    }

    /// `.wh.<name>` in `path`'s directory: deletes `path` from lower layers.
    pub fn whiteout(self, path: &str) -> Self {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&wh, 0o644, b"")
    }

    /// `.wh..wh..opq` in `dir`: hides the lower layers' contents of `dir`.
    pub fn opaque(self, dir: &str) -> Self {
        self.file(&format!("{dir}/.wh..wh..opq"), 0o644, b"")
    }

    /// The uncompressed tar bytes.
    pub fn finish(self) -> Vec<u8> {
        self.tar.into_inner().expect("in-memory tar")
    }
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("in-memory gzip");
    e.finish().expect("in-memory gzip")
}

/// Writes an OCI image layout at `dir` holding one image named `name`
/// (`org.opencontainers.image.ref.name`) with `layers` (uncompressed tars,
/// bottom first; stored gzip-compressed when `compress`).
pub fn write_oci_layout(
    dir: &Path,
    name: &str,
    layers: &[Vec<u8>],
    config: &ImageConfig,
    compress: bool,
) -> Result<String, ImageError> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).map_err(ImageError::io("create directory", &blobs))?;
    let put = |bytes: &[u8]| -> Result<(String, usize), ImageError> {
        let d = sha(bytes);
        let p = blobs.join(&d[7..]);
        fs::write(&p, bytes).map_err(ImageError::io("write", p))?;
        Ok((d, bytes.len()))
    };
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        diff_ids.push(sha(l));
        let (stored, media) = if compress {
            (gzip(l), "application/vnd.oci.image.layer.v1.tar+gzip")
        } else {
            (l.clone(), "application/vnd.oci.image.layer.v1.tar")
        };
        let (d, size) = put(&stored)?;
        layer_descs.push(json!({"mediaType": media, "digest": d, "size": size}));
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let cfg = json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "Entrypoint": config.entrypoint, "Cmd": config.cmd, "Env": config.env,
            "WorkingDir": config.working_dir, "User": config.user,
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let cfg_bytes = serde_json::to_vec(&cfg).expect("json");
    let (cfg_digest, cfg_size) = put(&cfg_bytes)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg_size},
        "layers": layer_descs,
    });
    let (m_digest, m_size) = put(&serde_json::to_vec(&manifest).expect("json"))?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m_digest, "size": m_size,
            "annotations": {"org.opencontainers.image.ref.name": name},
        }],
    });
    let files = [
        ("oci-layout", json!({"imageLayoutVersion": "1.0.0"})),
        ("index.json", index),
    ];
    for (f, v) in files {
        let p = dir.join(f);
        fs::write(&p, serde_json::to_vec(&v).expect("json")).map_err(ImageError::io("write", p))?;
    }
    Ok(cfg_digest)
}
