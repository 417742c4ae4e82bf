//! The init layer: one small read-only overlay layer per image, stacked
//! above the image's own layers, holding the mount points every container
//! gets (`/proc`, `/dev`, `/sys`, `/etc/hosts`, `/etc/resolv.conf`,
//! `/etc/hostname`) where the image lacks them.
//!
//! Without it the container process makes those targets in the merged tree,
//! and overlayfs copies each one (and `/etc`) up into the container's
//! writable layer: seven inodes per container on the node's disk, at every
//! start. Docker's per-container `-init` layer exists for the same reason;
//! here it is made once per image.
//!
//! Nothing the image has changes in the merged view: a path is added only if
//! no layer has anything there (a whiteout counts as something), only under
//! ancestors that are directories wherever they exist, and an ancestor the
//! init layer must carry takes the mode and owner of its topmost copy.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{digest_hex, ImageError, ImageRecord, ImageStore};

/// The mount points every container gets, relative to its root.
const MOUNT_POINTS: &[(&str, Kind)] = &[
    ("proc", Kind::Dir),
    ("dev", Kind::Dir),
    ("sys", Kind::Dir),
    ("etc/hosts", Kind::File),
    ("etc/resolv.conf", Kind::File),
    ("etc/hostname", Kind::File),
];

#[derive(Clone, Copy)]
enum Kind {
    Dir,
    File,
}

impl ImageStore {
    /// `<images>/init/<image id hex>`, built on first use (concurrent
    /// builders race to a rename; the loser's copy is dropped).
    pub(super) fn init_layer(
        &self,
        image: &ImageRecord,
        layers: &[PathBuf],
    ) -> Result<PathBuf, ImageError> {
        let hex = digest_hex(&image.id).map_err(|reason| ImageError::Corrupt {
            what: "image record",
            path: self.root.clone(),
            reason,
        })?;
        let parent = self.root.join("init");
        let dir = parent.join(hex);
        if dir.is_dir() {
            return Ok(dir);
        }
        let tmp = self.tmp_path("init");
        let built = fs::create_dir_all(&parent)
            .and_then(|()| build(&tmp, layers))
            .and_then(|()| fs::rename(&tmp, &dir));
        let _ = fs::remove_dir_all(&tmp);
        match built {
            Ok(()) => Ok(dir),
            Err(_) if dir.is_dir() => Ok(dir),
            Err(e) => Err(ImageError::io("build the init layer", &dir)(e)),
        }
    }
}

/// The topmost entry at `rel` across `layers` (bottom first).
fn topmost(layers: &[PathBuf], rel: &Path) -> Option<fs::Metadata> {
    layers
        .iter()
        .rev()
        .find_map(|l| fs::symlink_metadata(l.join(rel)).ok())
}

/// Fills `into` with the mount points `layers` lack.
fn build(into: &Path, layers: &[PathBuf]) -> io::Result<()> {
    fs::create_dir_all(into)?;
    'points: for &(rel, kind) in MOUNT_POINTS {
        let rel = Path::new(rel);
        if topmost(layers, rel).is_some() {
            continue;
        }
        let mut ancestors: Vec<&Path> = rel
            .ancestors()
            .skip(1)
            .take_while(|a| !a.as_os_str().is_empty())
            .collect();
        ancestors.reverse();
        for a in ancestors {
            let dst = into.join(a);
            let like = topmost(layers, a);
            if like.as_ref().is_some_and(|m| !m.is_dir()) {
                // A symlink or a file there: the container copes on its own.
                continue 'points;
            }
            if !dst.is_dir() {
                fs::create_dir(&dst)?;
            }
            if let Some(m) = like {
                fs::set_permissions(&dst, fs::Permissions::from_mode(m.mode() & 0o7777))?;
                std::os::unix::fs::lchown(&dst, Some(m.uid()), Some(m.gid())).or_else(
                    |e| match e.kind() {
                        io::ErrorKind::PermissionDenied => Ok(()),
                        _ => Err(e),
                    },
                )?;
            }
        }
        let dst = into.join(rel);
        match kind {
            Kind::Dir => {
                fs::create_dir(&dst)?;
                fs::set_permissions(&dst, fs::Permissions::from_mode(0o755))?;
            }
            Kind::File => {
                fs::File::create(&dst)?;
                fs::set_permissions(&dst, fs::Permissions::from_mode(0o644))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn names(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
                if e.file_type().unwrap().is_dir() {
                    stack.push(p);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn adds_only_what_no_layer_has_and_keeps_ancestor_modes() {
        let t = tempfile::tempdir().unwrap();
        let (low, high, init) = (
            t.path().join("low"),
            t.path().join("high"),
            t.path().join("init"),
        );
        fs::create_dir_all(low.join("etc")).unwrap();
        fs::set_permissions(low.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::create_dir_all(low.join("proc")).unwrap();
        fs::create_dir_all(high.join("etc")).unwrap();
        fs::set_permissions(high.join("etc"), fs::Permissions::from_mode(0o711)).unwrap();
        fs::write(high.join("etc/hostname"), "image's own").unwrap();
        build(&init, &[low, high]).unwrap();
        assert_eq!(
            names(&init),
            ["dev", "etc", "etc/hosts", "etc/resolv.conf", "sys"]
        );
        let mode = fs::metadata(init.join("etc")).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o711, "the topmost /etc's mode");
        assert!(fs::metadata(init.join("etc/hosts")).unwrap().is_file());
    }

    #[test]
    fn a_non_directory_ancestor_is_left_alone() {
        let t = tempfile::tempdir().unwrap();
        let (layer, init) = (t.path().join("layer"), t.path().join("init"));
        fs::create_dir_all(layer.join("private/etc")).unwrap();
        symlink("private/etc", layer.join("etc")).unwrap();
        build(&init, std::slice::from_ref(&layer)).unwrap();
        assert_eq!(names(&init), ["dev", "proc", "sys"]);
    }

    #[test]
    fn an_image_with_every_mount_point_gets_an_empty_layer() {
        let t = tempfile::tempdir().unwrap();
        let (layer, init) = (t.path().join("layer"), t.path().join("init"));
        for d in ["proc", "dev", "sys", "etc"] {
            fs::create_dir_all(layer.join(d)).unwrap();
        }
        for f in ["etc/hosts", "etc/resolv.conf", "etc/hostname"] {
            fs::write(layer.join(f), "").unwrap();
        }
        build(&init, std::slice::from_ref(&layer)).unwrap();
        assert!(names(&init).is_empty());
    }
}
