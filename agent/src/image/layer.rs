//! Unpacking one layer (a tar stream, maybe gzip-compressed) into its own
//! directory, with OCI whiteouts.
//!
//! A whiteout `dir/.wh.name` deletes `dir/name` of the layers below; an
//! opaque marker `dir/.wh..wh..opq` hides everything below in `dir`. They are
//! recorded twice: in a sidecar list (`<layer>.whiteouts.json`) that the copy
//! fallback replays, and — when the process may (root) — in overlayfs' own
//! form inside the layer directory (a 0/0 character device, the
//! `trusted.overlay.opaque=y` xattr), so the directory can be a lowerdir.

use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::ImageError;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// How a layer's bytes are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    /// Decide from the first bytes (docker save archives name no media type).
    Detect,
}

impl Compression {
    /// From an OCI or Docker layer media type.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Some(Self::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Self::Gzip),
            "application/vnd.docker.image.rootfs.diff.tar" => Some(Self::Detect),
            _ => None,
        }
    }
}

/// Whiteouts of one layer, paths relative to the layer root.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Whiteouts {
    /// Paths deleted from the layers below.
    pub deleted: Vec<PathBuf>,
    /// Directories whose lower contents are hidden.
    pub opaque: Vec<PathBuf>,
    /// Whether overlayfs whiteouts were written into the layer directory.
    pub overlay_ready: bool,
}

/// What unpacking a layer produced.
#[derive(Debug)]
pub struct Unpacked {
    /// `sha256:` of the uncompressed tar stream (the layer's diff id).
    pub diff_id: String,
    /// `sha256:` of the bytes as read (the blob digest).
    pub blob_digest: String,
    pub whiteouts: Whiteouts,
}

/// A reader that hashes what passes through it.
pub(crate) struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Hashing<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
        }
    }

    /// Reads the rest, then returns `sha256:<hex>`.
    pub(crate) fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(format!("sha256:{:x}", self.hasher.finalize()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Unpacks the layer read from `blob` into `dest` (created, must not exist).
/// `what` names the layer in errors.
pub fn unpack(
    blob: impl Read,
    compression: Compression,
    dest: &Path,
    what: &str,
) -> Result<Unpacked, ImageError> {
    let io_err =
        |source: io::Error| ImageError::archive(what, format!("reading the layer: {source}"));
    let mut outer = Hashing::new(blob);
    let mut head = [0u8; 2];
    let mut sniffed = 0;
    let compression = match compression {
        Compression::Detect => {
            sniffed = read_up_to(&mut outer, &mut head).map_err(io_err)?;
            if sniffed == 2 && head == [0x1f, 0x8b] {
                Compression::Gzip
            } else {
                Compression::None
            }
        }
        c => c,
    };
    // Put the sniffed bytes back in front of the stream.
    let chained = (&head[..sniffed]).chain(&mut outer);
    let decoded: Box<dyn Read + '_> = match compression {
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(chained)),
        _ => Box::new(chained),
    };
    let mut inner = Hashing::new(decoded);
    fs::create_dir_all(dest).map_err(ImageError::io("create layer directory", dest))?;
    let whiteouts = unpack_entries(&mut inner, dest, what)?;
    let diff_id = inner.finish().map_err(io_err)?;
    let blob_digest = outer.finish().map_err(io_err)?;
    Ok(Unpacked {
        diff_id,
        blob_digest,
        whiteouts,
    })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn unpack_entries(
    stream: &mut impl Read,
    dest: &Path,
    what: &str,
) -> Result<Whiteouts, ImageError> {
    let root = is_root();
    let mut archive = tar::Archive::new(stream);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(root);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    let mut w = Whiteouts {
        overlay_ready: root,
        ..Whiteouts::default()
    };
    let bad = |reason: String| ImageError::archive(what, reason);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("reading tar entries: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("reading a tar entry: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| bad(format!("entry path: {e}")))?
            .into_owned();
        let rel = clean(&path)
            .ok_or_else(|| bad(format!("entry {} leaves the layer", path.display())))?;
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        if name == OPAQUE_MARKER {
            let dir = dest.join(&parent);
            fs::create_dir_all(&dir).map_err(ImageError::io("create directory", &dir))?;
            if w.overlay_ready && !set_opaque(&dir) {
                w.overlay_ready = false;
            }
            w.opaque.push(parent);
        } else if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let target = parent.join(hidden);
            let dir = dest.join(&parent);
            fs::create_dir_all(&dir).map_err(ImageError::io("create directory", &dir))?;
            if w.overlay_ready && !make_whiteout(&dest.join(&target)) {
                w.overlay_ready = false;
            }
            w.deleted.push(target);
        } else {
            entry
                .unpack_in(dest)
                .map_err(|e| bad(format!("unpacking {}: {}", rel.display(), chain(&e))))?;
        }
    }
    Ok(w)
}

/// An error and its sources, `: `-separated (the tar crate hides the cause).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The entry path without `.`/leading `/`, or None if it has `..`.
fn clean(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn cpath(p: &Path) -> Option<CString> {
    CString::new(p.as_os_str().as_bytes()).ok()
}

/// overlayfs' whiteout: a character device 0/0.
fn make_whiteout(path: &Path) -> bool {
    let _ = fs::remove_file(path);
    let Some(c) = cpath(path) else { return false };
    // SAFETY: c is a valid NUL-terminated path.
    unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) == 0 }
}

fn set_opaque(dir: &Path) -> bool {
    let Some(c) = cpath(dir) else { return false };
    // SAFETY: valid path, name and value pointers with their lengths.
    unsafe {
        libc::setxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            b"y".as_ptr().cast(),
            1,
            0,
        ) == 0
    }
}

/// Whether `path` is an overlayfs whiteout (char device 0/0).
pub fn is_overlay_whiteout(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    meta.file_type().is_char_device() && meta.rdev() == 0
}
