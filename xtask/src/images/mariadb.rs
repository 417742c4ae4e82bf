//! The demo's database image, `skiff.local/mariadb:10.11`: MariaDB's server and client
//! from Debian's packages (downloaded with `apt-get download`, unpacked with `dpkg-deb`,
//! never installed on the host), the libraries they load, and an init script that creates
//! the system tables, `root@'%'` with `MYSQL_ROOT_PASSWORD` (as the seed's manifest sets it)
//! and the demo rows, then runs `mariadbd` in the foreground.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::layer::{add_libs, parent_dirs, Layer};
use crate::cmd::{self, progress};

/// The server, the client, their shared files, and libraries a minimal Debian lacks.
const PACKAGES: &[&str] = &[
    "mariadb-server-core",
    "mariadb-client-core",
    "mariadb-common",
    "libaio1",
    "libnuma1",
    "liburing2",
];
const INIT: &str = include_str!("skiff-mariadb-init.sh");
pub const INIT_PATH: &str = "/usr/local/bin/skiff-mariadb-init";

/// Download what is missing into `work/debs` (kept between runs).
fn download(debs: &Path) -> Result<()> {
    fs::create_dir_all(debs).with_context(|| format!("creating {}", debs.display()))?;
    let have: Vec<String> = fs::read_dir(debs)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    let missing: Vec<&str> = PACKAGES
        .iter()
        .copied()
        .filter(|p| !have.iter().any(|f| f.starts_with(&format!("{p}_"))))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    progress("images", format!("apt-get download {}", missing.join(" ")));
    let fetch = || {
        Command::new("apt-get")
            .arg("download")
            .args(&missing)
            .current_dir(debs)
            .status()
            .context("running apt-get download")
    };
    if !fetch()?.success() {
        cmd::run("images", Command::new("apt-get").arg("update"))?;
        if !fetch()?.success() {
            bail!("apt-get download {} failed", missing.join(" "));
        }
    }
    Ok(())
}

/// Unpack every package into a fresh `root`.
fn unpack(debs: &Path, root: &Path) -> Result<()> {
    let _ = fs::remove_dir_all(root);
    fs::create_dir_all(root)?;
    for e in fs::read_dir(debs)? {
        let deb = e?.path();
        if deb.extension().is_some_and(|x| x == "deb") {
            cmd::run(
                "images",
                Command::new("dpkg-deb").arg("-x").arg(&deb).arg(root),
            )?;
        }
    }
    Ok(())
}

/// `host` (a directory tree) at `inside`, files 0644.
fn add_tree(l: &mut Layer, dirs: &mut BTreeSet<PathBuf>, host: &Path, inside: &Path) -> Result<()> {
    parent_dirs(l, dirs, &inside.join("x"))?;
    let mut entries: Vec<_> = fs::read_dir(host)
        .with_context(|| format!("reading {}", host.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let (h, i) = (e.path(), inside.join(e.file_name()));
        if e.file_type()?.is_dir() {
            add_tree(l, dirs, &h, &i)?;
        } else if e.file_type()?.is_file() {
            let data = fs::read(&h).with_context(|| format!("reading {}", h.display()))?;
            l.file(i.to_string_lossy().trim_start_matches('/'), 0o644, &data)?;
        }
    }
    Ok(())
}

/// The MariaDB layer (on top of the busybox base), staged under `work`.
pub fn layer(work: &Path) -> Result<Vec<u8>> {
    let debs = work.join("debs");
    let root = work.join("root");
    download(&debs)?;
    unpack(&debs, &root)?;
    let mut l = Layer::new();
    let mut dirs = BTreeSet::new();
    for d in ["usr", "var", "run"] {
        dirs.insert(PathBuf::from(d));
    }
    for (bin, inside) in [
        ("usr/sbin/mariadbd", "/usr/sbin/mariadbd"),
        ("usr/bin/mariadb", "/usr/bin/mariadb"),
    ] {
        let host = root.join(bin);
        add_libs(&mut l, &mut dirs, &host, Some(&root))?;
        parent_dirs(&mut l, &mut dirs, Path::new(inside))?;
        l.host_file(&host, inside.trim_start_matches('/'))?;
    }
    add_tree(
        &mut l,
        &mut dirs,
        &root.join("usr/share/mysql"),
        Path::new("/usr/share/mysql"),
    )?;
    for d in ["var/lib/mysql", "run/mysqld"] {
        parent_dirs(&mut l, &mut dirs, &Path::new("/").join(d).join("x"))?;
    }
    parent_dirs(&mut l, &mut dirs, Path::new(INIT_PATH))?;
    l.file(INIT_PATH.trim_start_matches('/'), 0o755, INIT.as_bytes())?;
    l.finish()
}
