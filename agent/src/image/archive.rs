//! Reading image archives: an OCI image layout and a `docker save` archive,
//! each as a directory or a tar file, into [`ImagePlan`]s.
//!
//! This is also the seam for a registry puller: it resolves a manifest into
//! an [`ImagePlan`] and implements [`ImageSource`] over HTTP (a locator is
//! then a blob digest); [`super::ImageStore::import_plan`] does the rest.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::layer::{Compression, Hashing};
use super::ImageError;

/// Where an image's blobs come from.
pub trait ImageSource {
    /// Opens the blob `locator` names (a path inside an archive, or a digest).
    fn open(&self, locator: &str) -> Result<Box<dyn Read + '_>, ImageError>;
    /// Names the source in errors and progress.
    fn describe(&self) -> String;
}

/// One layer of an image to import.
#[derive(Debug, Clone)]
pub struct LayerRef {
    pub locator: String,
    pub compression: Compression,
    /// Expected digest of the blob as stored (OCI descriptors have one).
    pub digest: Option<String>,
}

/// Everything needed to import one image from an [`ImageSource`].
#[derive(Debug, Clone)]
pub struct ImagePlan {
    /// The image config blob (JSON); its sha256 is the image id.
    pub config: Vec<u8>,
    pub layers: Vec<LayerRef>,
    /// References the archive names the image by (not yet normalized).
    pub tags: Vec<String>,
}

/// An unpacked archive (or a layout directory) on disk.
#[derive(Debug)]
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, locator: &str) -> Result<PathBuf, ImageError> {
        let rel = Path::new(locator);
        let inside = rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(ImageError::archive(
                &self.root,
                format!("blob path {locator:?} leaves the archive"),
            ));
        }
        Ok(self.root.join(rel))
    }

    fn read(&self, locator: &str) -> Result<Vec<u8>, ImageError> {
        let p = self.path(locator)?;
        fs::read(&p).map_err(ImageError::io("read", p))
    }
}

impl ImageSource for DirSource {
    fn open(&self, locator: &str) -> Result<Box<dyn Read + '_>, ImageError> {
        let p = self.path(locator)?;
        Ok(Box::new(File::open(&p).map_err(ImageError::io("open", p))?))
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

/// Unpacks the tar archive `file` (plain or gzip) into `dest`.
pub fn extract_archive(file: &Path, dest: &Path) -> Result<(), ImageError> {
    let f = File::open(file).map_err(ImageError::io("open", file))?;
    let mut head = [0u8; 2];
    let gz = File::open(file)
        .and_then(|mut g| g.read_exact(&mut head))
        .is_ok()
        && head == [0x1f, 0x8b];
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    fs::create_dir_all(dest).map_err(ImageError::io("create directory", dest))?;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_ownerships(false);
    archive
        .unpack(dest)
        .map_err(|e| ImageError::archive(file, format!("unpacking into {}: {e}", dest.display())))
}

/// The images of an unpacked archive: `docker save`'s `manifest.json` when
/// present (it carries the tags), else the OCI layout's `index.json`.
pub fn plans(source: &DirSource) -> Result<Vec<ImagePlan>, ImageError> {
    if source.root.join("manifest.json").is_file() {
        docker_plans(source)
    } else if source.root.join("index.json").is_file() {
        let index = json(source, "index.json")?;
        let mut out = Vec::new();
        oci_plans(source, &index, &mut out, 0)?;
        Ok(out)
    } else {
        Err(ImageError::archive(
            &source.root,
            "neither manifest.json (docker save) nor index.json (OCI layout) found",
        ))
    }
}

fn json(source: &DirSource, locator: &str) -> Result<Value, ImageError> {
    let bytes = source.read(locator)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ImageError::archive(source.path(locator).unwrap_or_default(), e.to_string()))
}

fn docker_plans(source: &DirSource) -> Result<Vec<ImagePlan>, ImageError> {
    let manifest = json(source, "manifest.json")?;
    let bad = |r: &str| ImageError::archive(source.root.join("manifest.json"), r.to_owned());
    let entries = manifest.as_array().ok_or_else(|| bad("not a JSON array"))?;
    entries
        .iter()
        .map(|m| {
            let config = m["Config"]
                .as_str()
                .ok_or_else(|| bad("an entry has no Config"))?;
            let layers = m["Layers"]
                .as_array()
                .ok_or_else(|| bad("an entry has no Layers"))?;
            let layers = layers
                .iter()
                .map(|l| {
                    let locator = l.as_str().ok_or_else(|| bad("a layer is not a path"))?;
                    Ok(LayerRef {
                        locator: locator.to_owned(),
                        compression: Compression::Detect,
                        digest: None,
                    })
                })
                .collect::<Result<_, ImageError>>()?;
            let tags = strings(&m["RepoTags"]);
            Ok(ImagePlan {
                config: source.read(config)?,
                layers,
                tags,
            })
        })
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn blob_locator(digest: &str) -> Result<String, String> {
    let hex = super::reference::digest_hex(digest)?;
    Ok(format!("blobs/sha256/{hex}"))
}

/// Reads a blob named by a descriptor and checks its digest.
fn verified_blob(source: &DirSource, desc: &Value) -> Result<Vec<u8>, ImageError> {
    let digest = desc["digest"].as_str().unwrap_or_default();
    let locator = blob_locator(digest).map_err(|r| ImageError::archive(&source.root, r))?;
    let mut h = Hashing::new(source.open(&locator)?);
    let mut bytes = Vec::new();
    h.read_to_end(&mut bytes)
        .map_err(ImageError::io("read", source.root.join(&locator)))?;
    let actual = h
        .finish()
        .map_err(ImageError::io("read", source.root.join(&locator)))?;
    if actual != digest {
        return Err(ImageError::DigestMismatch {
            what: format!("blob {locator} of {}", source.describe()),
            expected: digest.to_owned(),
            actual,
        });
    }
    Ok(bytes)
}

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

fn oci_plans(
    source: &DirSource,
    index: &Value,
    out: &mut Vec<ImagePlan>,
    depth: u8,
) -> Result<(), ImageError> {
    let bad = |r: String| ImageError::archive(&source.root, r);
    let manifests = index["manifests"]
        .as_array()
        .ok_or_else(|| bad("index has no manifests".into()))?;
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    for desc in manifests {
        let media = desc["mediaType"].as_str().unwrap_or_default();
        let platform_ok = desc["platform"].is_null()
            || (desc["platform"]["os"] == "linux" && desc["platform"]["architecture"] == arch);
        if !platform_ok {
            continue;
        }
        let blob = verified_blob(source, desc)?;
        let doc: Value =
            serde_json::from_slice(&blob).map_err(|e| bad(format!("manifest: {e}")))?;
        let is_index = INDEX_TYPES.contains(&media) || doc["manifests"].is_array();
        if is_index {
            if depth > 4 {
                return Err(bad("image indexes nested too deep".into()));
            }
            let before = out.len();
            oci_plans(source, &doc, out, depth + 1)?;
            let tags = oci_tags(desc);
            for plan in &mut out[before..] {
                plan.tags.extend(tags.iter().cloned());
            }
            continue;
        }
        let config = verified_blob(source, &doc["config"])?;
        let layers = doc["layers"]
            .as_array()
            .ok_or_else(|| bad("manifest has no layers".into()))?
            .iter()
            .map(|l| {
                let digest = l["digest"].as_str().unwrap_or_default().to_owned();
                let locator = blob_locator(&digest).map_err(&bad)?;
                let media = l["mediaType"].as_str().unwrap_or_default();
                let compression = Compression::from_media_type(media).ok_or_else(|| {
                    ImageError::UnsupportedMediaType {
                        locator: locator.clone(),
                        media_type: media.to_owned(),
                    }
                })?;
                Ok(LayerRef {
                    locator,
                    compression,
                    digest: Some(digest),
                })
            })
            .collect::<Result<_, ImageError>>()?;
        out.push(ImagePlan {
            config,
            layers,
            tags: oci_tags(desc),
        });
    }
    Ok(())
}

/// Full references from a descriptor's annotations. A bare
/// `org.opencontainers.image.ref.name` (`latest`) names only a tag, not a
/// repository, so it is not used.
fn oci_tags(desc: &Value) -> Vec<String> {
    let a = &desc["annotations"];
    let mut tags = Vec::new();
    for key in [
        "io.containerd.image.name",
        "org.opencontainers.image.ref.name",
    ] {
        if let Some(name) = a[key].as_str() {
            if (name.contains('/') || name.contains(':')) && !tags.iter().any(|t| t == name) {
                tags.push(name.to_owned());
            }
        }
    }
    tags
}
