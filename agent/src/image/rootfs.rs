//! A container's root filesystem: an overlayfs mount over the image's layers
//! (a writable upper directory per container), or a flattened copy where
//! overlayfs is unavailable (no module, layers unpacked without privilege).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::layer::is_overlay_whiteout;
use super::{ImageError, ImageRecord, ImageStore};

/// How a rootfs was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootfsMode {
    Overlay,
    Copy,
}

/// A prepared root filesystem.
#[derive(Debug, Clone)]
pub struct Rootfs {
    /// The directory to pivot_root into.
    pub path: PathBuf,
    pub mode: RootfsMode,
}

impl ImageStore {
    fn rootfs_dir(&self, container_id: &str) -> Result<PathBuf, ImageError> {
        let ok = !container_id.is_empty()
            && container_id.len() <= 128
            && container_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            && !container_id.starts_with('.');
        if !ok {
            return Err(ImageError::Corrupt {
                what: "container id",
                path: self.root.join("rootfs"),
                reason: format!("{container_id:?} is not [A-Za-z0-9_.-]{{1,128}}"),
            });
        }
        Ok(self.root.join("rootfs").join(container_id))
    }

    /// Makes the root filesystem of container `container_id` from `image`.
    /// Idempotent: an existing rootfs (e.g. after an agent restart) is kept.
    pub fn prepare_rootfs(
        &self,
        container_id: &str,
        image: &ImageRecord,
    ) -> Result<Rootfs, ImageError> {
        let dir = self.rootfs_dir(container_id)?;
        let merged = dir.join("merged");
        if is_mount_point(&merged) {
            return Ok(Rootfs {
                path: merged,
                mode: RootfsMode::Overlay,
            });
        }
        if dir.join("copy.done").exists() {
            return Ok(Rootfs {
                path: merged,
                mode: RootfsMode::Copy,
            });
        }
        let _ = fs::remove_dir_all(&dir);
        for sub in ["upper", "work", "merged"] {
            let d = dir.join(sub);
            fs::create_dir_all(&d).map_err(ImageError::io("create directory", d))?;
        }
        let overlay_ready = image
            .diff_ids
            .iter()
            .map(|d| self.whiteouts(d).map(|w| w.overlay_ready))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .all(|ready| ready);
        if overlay_ready {
            let layers = self.layer_dirs(image)?;
            let init = match self.init_layer(image, &layers) {
                Ok(d) => Some(d),
                Err(e) => {
                    log::warn!("{e}: mount points will be copied up per container");
                    None
                }
            };
            if mount_overlay(&layers, init.as_deref(), &dir).is_ok() {
                return Ok(Rootfs {
                    path: merged,
                    mode: RootfsMode::Overlay,
                });
            }
        }
        self.flatten_into(image, &merged)?;
        let done = dir.join("copy.done");
        fs::write(&done, b"").map_err(ImageError::io("write", done))?;
        Ok(Rootfs {
            path: merged,
            mode: RootfsMode::Copy,
        })
    }

    /// Copies `image`'s layers, bottom first, into `dest`, applying each
    /// layer's whiteouts before its files (the copy fallback).
    pub fn flatten_into(&self, image: &ImageRecord, dest: &Path) -> Result<(), ImageError> {
        for (layer, diff_id) in self.layer_dirs(image)?.iter().zip(&image.diff_ids) {
            let w = self.whiteouts(diff_id)?;
            apply_whiteouts(dest, &w.deleted, &w.opaque)?;
            copy_tree(layer, dest)?;
        }
        Ok(())
    }

    /// Unmounts and removes container `container_id`'s rootfs (its writable
    /// layer included). Nothing to do is not an error.
    pub fn release_rootfs(&self, container_id: &str) -> Result<(), ImageError> {
        let dir = self.rootfs_dir(container_id)?;
        let merged = dir.join("merged");
        while is_mount_point(&merged) {
            let c = cstring(&merged);
            // SAFETY: valid NUL-terminated path.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
                return Err(ImageError::io("unmount", &merged)(
                    io::Error::last_os_error(),
                ));
            }
        }
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ImageError::io("remove", &dir)(e)),
            _ => Ok(()),
        }
    }
}

fn cstring(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

/// Whether `path` is a mount point: `statx`'s `STATX_ATTR_MOUNT_ROOT`
/// (Linux 5.8), else a device different from its parent's. Constant time,
/// unlike a scan of /proc/self/mountinfo, which grows with every container.
pub fn is_mount_point(path: &Path) -> bool {
    let c = cstring(path);
    // SAFETY: `statx` fills the zeroed buffer; the path is NUL-terminated.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BASIC_STATS,
            &mut stx,
        )
    };
    if rc != 0 {
        return false;
    }
    let mount_root = libc::STATX_ATTR_MOUNT_ROOT as u64;
    if stx.stx_attributes_mask & mount_root != 0 {
        return stx.stx_attributes & mount_root != 0;
    }
    let parent = path.parent().and_then(|p| fs::metadata(p).ok());
    let here = fs::symlink_metadata(path).ok();
    match (here, parent) {
        (Some(h), Some(p)) => {
            use std::os::unix::fs::MetadataExt;
            h.dev() != p.dev() || h.ino() == p.ino()
        }
        _ => false,
    }
}

/// Mounts `dir/merged`: `init` (if any) over `layers` (bottom first) as
/// lower directories, `dir/upper` as the container's writable layer.
fn mount_overlay(layers: &[PathBuf], init: Option<&Path>, dir: &Path) -> io::Result<()> {
    let empty = dir.join("empty");
    let mut lower: Vec<String> = init
        .into_iter()
        .chain(layers.iter().rev().map(PathBuf::as_path))
        .map(|l| l.display().to_string())
        .collect();
    if lower.is_empty() {
        fs::create_dir_all(&empty)?;
        lower.push(empty.display().to_string());
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        dir.join("upper").display(),
        dir.join("work").display()
    );
    let target = cstring(&dir.join("merged"));
    let data = CString::new(opts).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: valid NUL-terminated strings for source, target, type, data.
    let rc = unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            target.as_ptr(),
            c"overlay".as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Applies a layer's whiteouts to a flattened tree, before its files are
/// copied in: deleted paths go, opaque directories are emptied.
pub fn apply_whiteouts(
    tree: &Path,
    deleted: &[PathBuf],
    opaque: &[PathBuf],
) -> Result<(), ImageError> {
    for rel in deleted {
        let p = tree.join(rel);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&p).map_err(ImageError::io("remove", &p))?,
            Ok(_) => fs::remove_file(&p).map_err(ImageError::io("remove", &p))?,
            Err(_) => {}
        }
    }
    for rel in opaque {
        let d = tree.join(rel);
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let r = if e.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.map_err(ImageError::io("remove", &p))?;
        }
    }
    Ok(())
}

/// Copies `src` over `dst`: directories merged, files and symlinks replaced,
/// modes kept (owners too when root); overlay whiteouts skipped.
pub fn copy_tree(src: &Path, dst: &Path) -> Result<(), ImageError> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut stack = vec![(src.to_path_buf(), dst.to_path_buf())];
    while let Some((s, d)) = stack.pop() {
        for e in fs::read_dir(&s).map_err(ImageError::io("list", &s))? {
            let e = e.map_err(ImageError::io("list", &s))?;
            let from = e.path();
            let to = d.join(e.file_name());
            let m = fs::symlink_metadata(&from).map_err(ImageError::io("stat", &from))?;
            let existing = fs::symlink_metadata(&to).ok();
            if m.is_dir() {
                if existing.as_ref().is_some_and(|x| !x.is_dir()) {
                    fs::remove_file(&to).map_err(ImageError::io("remove", &to))?;
                }
                if !to.is_dir() {
                    fs::create_dir(&to).map_err(ImageError::io("create directory", &to))?;
                }
                fs::set_permissions(&to, fs::Permissions::from_mode(m.mode() & 0o7777))
                    .map_err(ImageError::io("chmod", &to))?;
                stack.push((from, to.clone()));
            } else {
                if is_overlay_whiteout(&m) {
                    continue;
                }
                if let Some(x) = existing {
                    let r = if x.is_dir() {
                        fs::remove_dir_all(&to)
                    } else {
                        fs::remove_file(&to)
                    };
                    r.map_err(ImageError::io("remove", &to))?;
                }
                if m.file_type().is_symlink() {
                    let target = fs::read_link(&from).map_err(ImageError::io("readlink", &from))?;
                    symlink(&target, &to).map_err(ImageError::io("symlink", &to))?;
                } else if m.is_file() {
                    fs::copy(&from, &to).map_err(ImageError::io("copy", &to))?;
                } else {
                    continue; // devices, fifos, sockets: not in images we run
                }
            }
            if root {
                let c = cstring(&to);
                // SAFETY: valid path; lchown does not follow symlinks.
                unsafe { libc::lchown(c.as_ptr(), m.uid(), m.gid()) };
                if m.is_file() {
                    // chown clears setuid bits: restore the mode.
                    let _ = fs::set_permissions(&to, fs::Permissions::from_mode(m.mode() & 0o7777));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_mount_point;
    use std::path::Path;

    #[test]
    fn mount_points_are_told_from_plain_directories() {
        assert!(is_mount_point(Path::new("/")));
        assert!(is_mount_point(Path::new("/proc")));
        let dir = std::env::temp_dir().join(format!("skiff-mnt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!is_mount_point(&dir));
        assert!(!is_mount_point(&dir.join("missing")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
