//! A directory of YAML manifests (multi-document; `.yaml`, `.yml`,
//! `.json`), re-read whenever a file is added, removed or modified.
//!
//! Hidden files (names starting with `.`) are skipped, so writers can
//! create `.name.tmp` and rename it into place atomically.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize as _;
use serde_yaml::Value;

use super::{ServiceSource, Snapshot, SourceError};

/// What identifies a file version: path, mtime, size, inode.
type Fingerprint = Vec<(PathBuf, Option<SystemTime>, u64, u64)>;

/// The manifest-directory source.
#[derive(Debug)]
pub struct ManifestDir {
    dir: PathBuf,
    last: Last,
}

/// What the previous poll saw.
#[derive(Debug, PartialEq)]
enum Last {
    Nothing,
    /// The directory could not be listed (reported already).
    Unreadable,
    Files(Fingerprint),
}

impl ManifestDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            last: Last::Nothing,
        }
    }

    /// The directory watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn fingerprint(&self) -> Result<Fingerprint, SourceError> {
        use std::os::unix::fs::MetadataExt as _;
        let read_err = |source| SourceError::Read {
            path: self.dir.clone(),
            source,
        };
        let mut fp = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default();
            if name.starts_with('.') || !matches!(ext, "yaml" | "yml" | "json") {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_file() {
                fp.push((path, meta.modified().ok(), meta.len(), meta.ino()));
            }
        }
        fp.sort();
        Ok(fp)
    }
}

impl ServiceSource for ManifestDir {
    fn poll(&mut self) -> Result<Option<Snapshot>, SourceError> {
        let fp = self.fingerprint();
        let fp = match fp {
            Ok(fp) => fp,
            Err(e) => {
                // Report once, and re-read everything when it comes back.
                let first = self.last != Last::Unreadable;
                self.last = Last::Unreadable;
                return if first { Err(e) } else { Ok(None) };
            }
        };
        if matches!(&self.last, Last::Files(last) if *last == fp) {
            return Ok(None);
        }
        self.last = Last::Files(fp.clone());
        let mut snap = Snapshot::default();
        for (path, ..) in &fp {
            let text = std::fs::read_to_string(path).map_err(|source| SourceError::Read {
                path: path.clone(),
                source,
            })?;
            parse_into(path, &text, &mut snap)?;
        }
        Ok(Some(snap))
    }
}

/// Parses every document of one file into `snap`.
pub fn parse_into(path: &Path, text: &str, snap: &mut Snapshot) -> Result<(), SourceError> {
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let err = |source| SourceError::Parse {
            path: path.into(),
            doc: i + 1,
            source,
        };
        let value = Value::deserialize(doc).map_err(err)?;
        add_object(value, snap).map_err(err)?;
    }
    Ok(())
}

fn add_object(value: Value, snap: &mut Snapshot) -> Result<(), serde_yaml::Error> {
    if value.is_null() {
        return Ok(());
    }
    let field = |k: &str| {
        value
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (api, kind) = (field("apiVersion"), field("kind"));
    match (api.as_str(), kind.as_str()) {
        ("v1", "Service") => snap.services.push(serde_yaml::from_value(value)?),
        ("discovery.k8s.io/v1", "EndpointSlice") => {
            snap.slices.push(serde_yaml::from_value(value)?)
        }
        ("v1", "List") => {
            let items = value.get("items").and_then(Value::as_sequence).cloned();
            for item in items.unwrap_or_default() {
                add_object(item, snap)?;
            }
        }
        _ => log::debug!("ignoring manifest of kind {api}/{kind}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
