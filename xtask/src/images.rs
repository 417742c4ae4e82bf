//! `cargo xtask images`: builds the test images from Debian's busybox-static
//! (and, with `--echo`, the workspace's skiff-echo with the shared libraries
//! it links), writes them under `target/images/` — busybox as an OCI image
//! layout tar, skiff-echo as a `docker save` tar, so both import paths are
//! exercised — and imports them with `skiff image import`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::build::cargo_messages;
use crate::cmd::{self, progress};

const BUSYBOX: &str = "/bin/busybox";

#[derive(clap::Args)]
pub struct Args {
    /// Also build skiff.local/skiff-echo:latest from target/debug/skiff-echo.
    #[arg(long)]
    echo: bool,
    /// Only write the archives; do not import them.
    #[arg(long)]
    no_import: bool,
    /// The agent state directory to import into.
    #[arg(long, default_value = "/var/lib/skiff/agent")]
    state_dir: PathBuf,
}

/// A layer tar being built.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
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

    fn dir(&mut self, path: &str, mode: u32) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        Ok(self.0.append_data(&mut h, path, std::io::empty())?)
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        Ok(self.0.append_data(&mut h, path, data)?)
    }

    fn host_file(&mut self, host: &Path, path: &str) -> Result<()> {
        let data = fs::read(host).with_context(|| format!("reading {}", host.display()))?;
        self.file(path, 0o755, &data)
    }

    fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        Ok(self.0.append_link(&mut h, path, target)?)
    }

    fn finish(self) -> Result<Vec<u8>> {
        Ok(self.0.into_inner()?)
    }
}

fn sha(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The busybox base layer: /bin/busybox, a link per applet, the usual dirs.
fn busybox_layer() -> Result<Vec<u8>> {
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
fn binary_layer(exe: &Path, name: &str) -> Result<Vec<u8>> {
    let (_, ldd) = cmd::output("ldd", &[&exe.to_string_lossy()]).context("running ldd")?;
    let mut l = Layer::new();
    let mut dirs = std::collections::BTreeSet::new();
    let libs: Vec<PathBuf> = ldd
        .lines()
        .filter_map(|line| {
            let path = line.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect();
    for lib in &libs {
        let mut p = PathBuf::new();
        for c in lib.parent().into_iter().flat_map(Path::components).skip(1) {
            p.push(c);
            if dirs.insert(p.clone()) {
                l.dir(&p.to_string_lossy(), 0o755)?;
            }
        }
        let real = fs::canonicalize(lib).with_context(|| format!("resolving {}", lib.display()))?;
        l.host_file(&real, lib.to_string_lossy().trim_start_matches('/'))?;
    }
    l.host_file(exe, &format!("bin/{name}"))?;
    l.finish()
}

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

/// An OCI image layout as a tar: gzip layers, one manifest, named `name`.
fn oci_archive(
    out: &Path,
    name: &str,
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
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{m_d}"), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": name, "io.containerd.image.name": name},
        }],
    }))?;
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
fn docker_archive(
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

pub fn run(args: &Args) -> Result<()> {
    if !Path::new(BUSYBOX).exists() {
        crate::setup::ensure()?;
    }
    let mut c = cmd::cargo();
    c.args([
        "build",
        "-p",
        "skiff-agent",
        "--bin",
        "skiff",
        "--message-format=json-render-diagnostics",
    ]);
    if args.echo {
        c.args(["-p", "skiff-tests", "--bin", "skiff-echo"]);
    }
    let mut bins = BTreeMap::new();
    for msg in cargo_messages("images", &mut c)? {
        if let (Some(exe), Some(name)) =
            (msg["executable"].as_str(), msg["target"]["name"].as_str())
        {
            bins.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    let out_dir = cmd::target_dir().join("images");
    fs::create_dir_all(&out_dir)?;
    let base = busybox_layer()?;
    let mut archives = Vec::new();
    let busybox = out_dir.join("busybox.oci.tar");
    progress("images", format!("writing {}", busybox.display()));
    oci_archive(
        &busybox,
        "skiff.local/busybox:latest",
        std::slice::from_ref(&base),
        &[],
        &["sh"],
    )?;
    archives.push((busybox, vec!["busybox:latest"]));
    if args.echo {
        let exe = bins
            .get("skiff-echo")
            .context("cargo built no skiff-echo")?;
        let echo = out_dir.join("skiff-echo.docker.tar");
        progress("images", format!("writing {}", echo.display()));
        let layers = [base.clone(), binary_layer(exe, "skiff-echo")?];
        docker_archive(
            &echo,
            "skiff.local/skiff-echo:latest",
            &layers,
            &["/bin/skiff-echo"],
            &[],
        )?;
        archives.push((echo, vec![]));
    }
    if args.no_import {
        return Ok(());
    }
    let skiff = bins.get("skiff").context("cargo built no skiff binary")?;
    for (archive, tags) in archives {
        let mut c = Command::new(skiff);
        c.arg("image")
            .arg("--state-dir")
            .arg(&args.state_dir)
            .arg("import")
            .arg(&archive);
        for t in tags {
            c.args(["--tag", t]);
        }
        cmd::run("images", &mut c)?;
    }
    cmd::run(
        "images",
        Command::new(skiff)
            .arg("image")
            .arg("--state-dir")
            .arg(&args.state_dir)
            .arg("ls"),
    )
}
