//! Layer tars: the busybox base, and a binary with the shared libraries it links.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest as _, Sha256};

use crate::cmd;

const BUSYBOX: &str = "/bin/busybox";

/// A layer tar being built.
pub struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    pub fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        Ok(self.0.append_data(&mut h, path, std::io::empty())?)
    }

    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        Ok(self.0.append_data(&mut h, path, data)?)
    }

    pub fn host_file(&mut self, host: &Path, path: &str) -> Result<()> {
        let data = fs::read(host).with_context(|| format!("reading {}", host.display()))?;
        self.file(path, 0o755, &data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        Ok(self.0.append_link(&mut h, path, target)?)
    }

    pub fn finish(self) -> Result<Vec<u8>> {
        Ok(self.0.into_inner()?)
    }
}

pub fn sha(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The busybox base layer: /bin/busybox, a link per applet, the usual dirs.
pub fn busybox_layer() -> Result<Vec<u8>> {
    let (ok, list) = cmd::output(BUSYBOX, &["--list"]).context("running busybox --list")?;
    if !ok {
        bail!("{BUSYBOX} --list failed (is busybox-static installed?)");
    }
    let mut l = Layer::new();
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "root", "var"] {
        l.dir(d, if d == "tmp" { 0o1777 } else { 0o755 })?;
    }
    l.host_file(Path::new(BUSYBOX), "bin/busybox")?;
    for applet in list
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox")
    {
        l.symlink(&format!("bin/{applet}"), "busybox")?;
    }
    l.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    l.file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")?;
    l.finish()
}

/// A layer with `exe` at /bin/<name> and the shared libraries `ldd` lists.
pub fn binary_layer(exe: &Path, name: &str) -> Result<Vec<u8>> {
    let mut l = Layer::new();
    let mut dirs = BTreeSet::new();
    add_libs(&mut l, &mut dirs, exe, None)?;
    l.host_file(exe, &format!("bin/{name}"))?;
    l.finish()
}

/// Add every shared library `exe` loads, at the path the loader finds it. With `staging`
/// (a root unpacked from packages), its library directories are searched first and its
/// files land at their path inside that root.
pub fn add_libs(
    l: &mut Layer,
    dirs: &mut BTreeSet<PathBuf>,
    exe: &Path,
    staging: Option<&Path>,
) -> Result<()> {
    let mut ldd = Command::new("ldd");
    ldd.arg(exe);
    if let Some(root) = staging {
        let path: Vec<String> = ["usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu"]
            .iter()
            .map(|d| root.join(d).to_string_lossy().into_owned())
            .collect();
        ldd.env("LD_LIBRARY_PATH", path.join(":"));
    }
    let out = ldd.output().context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if let Some(missing) = text.lines().find(|l| l.contains("not found")) {
        bail!(
            "{}: a library is missing: {}",
            exe.display(),
            missing.trim()
        );
    }
    for line in text.lines() {
        let Some(path) = line
            .split("=>")
            .last()
            .and_then(|p| p.split_whitespace().next())
        else {
            continue;
        };
        if !path.starts_with('/') {
            continue;
        }
        let host = PathBuf::from(path);
        let inside = match staging.and_then(|root| host.strip_prefix(root).ok()) {
            Some(rel) => PathBuf::from("/").join(rel),
            None => host.clone(),
        };
        parent_dirs(l, dirs, &inside)?;
        let real =
            fs::canonicalize(&host).with_context(|| format!("resolving {}", host.display()))?;
        l.host_file(&real, inside.to_string_lossy().trim_start_matches('/'))?;
    }
    Ok(())
}

/// Directory entries for every parent of `path` not added yet.
pub fn parent_dirs(l: &mut Layer, dirs: &mut BTreeSet<PathBuf>, path: &Path) -> Result<()> {
    let mut p = PathBuf::new();
    for c in path.parent().into_iter().flat_map(Path::components).skip(1) {
        p.push(c);
        if dirs.insert(p.clone()) {
            l.dir(&p.to_string_lossy(), 0o755)?;
        }
    }
    Ok(())
}

/// The version of the host's busybox (`1.35.0` from its banner `BusyBox v1.35.0 (...)`).
pub fn busybox_version() -> Result<String> {
    // `busybox` with no applet prints its banner and exits non-zero.
    let (_, banner) = cmd::output(BUSYBOX, &[]).context("running busybox")?;
    banner
        .split_whitespace()
        .find_map(|w| w.strip_prefix('v'))
        .filter(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map(str::to_owned)
        .context("busybox printed no version")
}
