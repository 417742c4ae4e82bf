//! [`ImageStore`]: import, tag, resolve and list images.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::archive::{self, DirSource, ImagePlan, ImageSource};
use super::config::{self, ImageConfig};
use super::layer::{self, Whiteouts};
use super::reference::{digest_hex, Reference};
use super::ImageError;

/// One image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `sha256:` of the config blob.
    pub id: String,
    pub config: ImageConfig,
    /// Layer diff ids, bottom layer first.
    pub diff_ids: Vec<String>,
    /// Normalized references pointing at this image.
    pub repo_tags: Vec<String>,
    /// Bytes of the unpacked layers when imported.
    pub size: u64,
}

/// The node-local image store.
#[derive(Debug)]
pub struct ImageStore {
    pub(super) root: PathBuf,
    /// Serializes writes of `tags.json` and the records.
    index: Mutex<()>,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl ImageStore {
    /// Opens (creating) the store under `<state_dir>/images`.
    pub fn open(state_dir: &Path) -> Result<Self, ImageError> {
        let root = state_dir.join("images");
        for sub in ["layers", "records", "rootfs", "tmp"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).map_err(ImageError::io("create directory", d))?;
        }
        Ok(Self {
            root,
            index: Mutex::new(()),
        })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(super) fn tmp_path(&self, what: &str) -> PathBuf {
        let n = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
        self.root
            .join("tmp")
            .join(format!("{what}-{}-{n}", std::process::id()))
    }

    /// Imports every image of an OCI image layout or a `docker save`
    /// archive (a directory, or a tar file, maybe gzip-compressed).
    pub fn import(&self, path: &Path) -> Result<Vec<ImageRecord>, ImageError> {
        let meta = fs::metadata(path).map_err(ImageError::io("stat", path))?;
        let (dir, cleanup) = if meta.is_dir() {
            (path.to_path_buf(), None)
        } else {
            let d = self.tmp_path("import");
            archive::extract_archive(path, &d)?;
            (d.clone(), Some(d))
        };
        let result = (|| {
            let source = DirSource::new(&dir);
            let plans = archive::plans(&source)?;
            if plans.is_empty() {
                return Err(ImageError::archive(
                    path,
                    "no image for this platform in the archive",
                ));
            }
            plans.iter().map(|p| self.import_plan(&source, p)).collect()
        })();
        if let Some(d) = cleanup {
            let _ = fs::remove_dir_all(d);
        }
        result
    }

    /// Imports one image: unpacks the layers the store does not have yet
    /// (checking the diff ids the config names), records the config, tags.
    pub fn import_plan(
        &self,
        source: &dyn ImageSource,
        plan: &ImagePlan,
    ) -> Result<ImageRecord, ImageError> {
        let id = format!("sha256:{:x}", Sha256::digest(&plan.config));
        let parsed =
            config::parse(&plan.config).map_err(|r| ImageError::archive(source.describe(), r))?;
        if parsed.diff_ids.len() != plan.layers.len() {
            return Err(ImageError::archive(
                source.describe(),
                format!(
                    "image {id}: config names {} layers, manifest {}",
                    parsed.diff_ids.len(),
                    plan.layers.len()
                ),
            ));
        }
        let mut size = 0;
        for (layer, diff_id) in plan.layers.iter().zip(&parsed.diff_ids) {
            size += self.ensure_layer(source, layer, diff_id)?;
        }
        let record = ImageRecord {
            id: id.clone(),
            config: parsed.config,
            diff_ids: parsed.diff_ids,
            repo_tags: Vec::new(),
            size,
        };
        let _guard = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let mut record = self.read_record(&id).ok().unwrap_or(record);
        self.write_record(&record)?;
        for tag in &plan.tags {
            let r = Reference::parse(tag)?;
            self.tag_locked(&mut record, &r)?;
        }
        Ok(record)
    }

    /// Unpacks one layer unless present; returns its size on disk.
    fn ensure_layer(
        &self,
        source: &dyn ImageSource,
        layer: &archive::LayerRef,
        diff_id: &str,
    ) -> Result<u64, ImageError> {
        let hex = digest_hex(diff_id).map_err(|r| ImageError::archive(source.describe(), r))?;
        let dest = self.layer_dir(hex);
        if dest.is_dir() {
            return Ok(dir_size(&dest));
        }
        let what = format!("{} layer {}", source.describe(), layer.locator);
        let tmp = self.tmp_path("layer");
        let result = (|| {
            let unpacked =
                layer::unpack(source.open(&layer.locator)?, layer.compression, &tmp, &what)?;
            if unpacked.diff_id != diff_id {
                return Err(ImageError::DigestMismatch {
                    what: format!("{what} (uncompressed)"),
                    expected: diff_id.to_owned(),
                    actual: unpacked.diff_id,
                });
            }
            if let Some(expected) = &layer.digest {
                if *expected != unpacked.blob_digest {
                    return Err(ImageError::DigestMismatch {
                        what,
                        expected: expected.clone(),
                        actual: unpacked.blob_digest,
                    });
                }
            }
            let sidecar = self.whiteouts_path(hex);
            let json = serde_json::to_vec(&unpacked.whiteouts).expect("whiteouts serialize");
            write_atomic(&sidecar, &json, &self.tmp_path("whiteouts"))?;
            match fs::rename(&tmp, &dest) {
                Ok(()) => Ok(()),
                // Another import unpacked the same layer first.
                Err(_) if dest.is_dir() => Ok(()),
                Err(e) => Err(ImageError::io("rename layer into place", &dest)(e)),
            }
        })();
        let _ = fs::remove_dir_all(&tmp);
        result.map(|()| dir_size(&dest))
    }

    pub(super) fn layer_dir(&self, hex: &str) -> PathBuf {
        self.root.join("layers").join(hex)
    }

    fn whiteouts_path(&self, hex: &str) -> PathBuf {
        self.root
            .join("layers")
            .join(format!("{hex}.whiteouts.json"))
    }

    /// The whiteouts recorded for a layer.
    pub fn whiteouts(&self, diff_id: &str) -> Result<Whiteouts, ImageError> {
        let hex = digest_hex(diff_id).map_err(|r| ImageError::Corrupt {
            what: "layer id",
            path: self.root.clone(),
            reason: r,
        })?;
        let p = self.whiteouts_path(hex);
        let bytes = fs::read(&p).map_err(ImageError::io("read", &p))?;
        serde_json::from_slice(&bytes).map_err(|e| ImageError::Corrupt {
            what: "whiteout list",
            path: p,
            reason: e.to_string(),
        })
    }

    /// Points `reference` at image `id` (moving it off any other image).
    pub fn tag(&self, id: &str, reference: &str) -> Result<ImageRecord, ImageError> {
        let r = Reference::parse(reference)?;
        let _guard = self.index.lock().unwrap_or_else(|e| e.into_inner());
        let mut record = self.read_record(id)?;
        self.tag_locked(&mut record, &r)?;
        Ok(record)
    }

    fn tag_locked(&self, record: &mut ImageRecord, r: &Reference) -> Result<(), ImageError> {
        let name = r.to_string();
        let mut tags = self.read_tags()?;
        if let Some(old) = tags.insert(name.clone(), record.id.clone()) {
            if old != record.id {
                if let Ok(mut prev) = self.read_record(&old) {
                    prev.repo_tags.retain(|t| *t != name);
                    self.write_record(&prev)?;
                }
            }
        }
        if !record.repo_tags.contains(&name) {
            record.repo_tags.push(name);
            record.repo_tags.sort();
        }
        self.write_record(record)?;
        let json = serde_json::to_vec_pretty(&tags).expect("tags serialize");
        write_atomic(&self.root.join("tags.json"), &json, &self.tmp_path("tags"))
    }

    fn read_tags(&self) -> Result<BTreeMap<String, String>, ImageError> {
        let p = self.root.join("tags.json");
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| ImageError::Corrupt {
                what: "tag index",
                path: p,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(ImageError::io("read", p)(e)),
        }
    }

    fn record_path(&self, id: &str) -> Result<PathBuf, ImageError> {
        let hex = digest_hex(id).map_err(|reason| ImageError::BadReference {
            reference: id.to_owned(),
            reason,
        })?;
        Ok(self.root.join("records").join(format!("{hex}.json")))
    }

    fn read_record(&self, id: &str) -> Result<ImageRecord, ImageError> {
        let p = self.record_path(id)?;
        let bytes = fs::read(&p).map_err(ImageError::io("read", &p))?;
        serde_json::from_slice(&bytes).map_err(|e| ImageError::Corrupt {
            what: "image record",
            path: p,
            reason: e.to_string(),
        })
    }

    fn write_record(&self, record: &ImageRecord) -> Result<(), ImageError> {
        let json = serde_json::to_vec_pretty(record).expect("record serializes");
        write_atomic(
            &self.record_path(&record.id)?,
            &json,
            &self.tmp_path("record"),
        )
    }

    /// Finds an image by reference (`busybox`, `skiff.local/busybox:latest`),
    /// by id (`sha256:<hex>`) or by an id prefix of at least 12 hex digits.
    pub fn resolve(&self, reference: &str) -> Result<ImageRecord, ImageError> {
        let not_found = || ImageError::NotFound {
            reference: reference.to_owned(),
            store: self.root.clone(),
        };
        if reference.starts_with("sha256:") {
            return self.read_record(reference).map_err(|_| not_found());
        }
        let is_hex = reference
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        if reference.len() >= 12 && is_hex {
            let mut found = self
                .list()?
                .into_iter()
                .filter(|r| r.id[7..].starts_with(reference));
            if let (Some(r), None) = (found.next(), found.next()) {
                return Ok(r);
            }
        }
        let r = Reference::parse(reference)?;
        let tags = self.read_tags()?;
        let id = match &r.digest {
            // name@digest: the digest is the image id (manifest digests are
            // not kept; a puller would map them).
            Some(d) => d.clone(),
            None => tags.get(&r.to_string()).cloned().ok_or_else(not_found)?,
        };
        self.read_record(&id).map_err(|_| not_found())
    }

    /// All images, sorted by first tag then id.
    pub fn list(&self) -> Result<Vec<ImageRecord>, ImageError> {
        let dir = self.root.join("records");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(ImageError::io("list", &dir))? {
            let e = e.map_err(ImageError::io("list", &dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(hex) = name.strip_suffix(".json") {
                out.push(self.read_record(&format!("sha256:{hex}"))?);
            }
        }
        out.sort_by(|a, b| (a.repo_tags.first(), &a.id).cmp(&(b.repo_tags.first(), &b.id)));
        Ok(out)
    }

    /// The unpacked layer directories of `image`, bottom first.
    pub fn layer_dirs(&self, image: &ImageRecord) -> Result<Vec<PathBuf>, ImageError> {
        image
            .diff_ids
            .iter()
            .map(|d| {
                let hex = digest_hex(d).map_err(|reason| ImageError::Corrupt {
                    what: "image record",
                    path: self.root.clone(),
                    reason,
                })?;
                Ok(self.layer_dir(hex))
            })
            .collect()
    }
}

/// Writes `bytes` to `path` through `tmp` and a rename.
pub(super) fn write_atomic(path: &Path, bytes: &[u8], tmp: &Path) -> Result<(), ImageError> {
    fs::write(tmp, bytes).map_err(ImageError::io("write", tmp))?;
    fs::rename(tmp, path).map_err(ImageError::io("rename into place", path))
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}
