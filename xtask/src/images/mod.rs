//! `cargo xtask images`: builds the test images from Debian's busybox-static
//! (and, with `--echo`, the workspace's skiff-echo with the shared libraries
//! it links), writes them under `target/images/` — busybox as an OCI image
//! layout tar, skiff-echo as a `docker save` tar, so both import paths are
//! exercised — and imports them with `skiff image import`. With `--demo`, also the demo's
//! images: MariaDB from Debian's packages ([`mariadb`]) and the web tier
//! (`skiff-demo-web`).

mod archive;
mod layer;
mod mariadb;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::build::cargo_messages;
use crate::cmd::{self, progress};
use archive::{docker_archive, oci_archive};
use layer::{binary_layer, busybox_layer, busybox_version};

const BUSYBOX: &str = "/bin/busybox";

#[derive(clap::Args)]
pub struct Args {
    /// Also build skiff.local/skiff-echo:latest from target/debug/skiff-echo.
    #[arg(long)]
    echo: bool,
    /// Also build the demo's images: skiff.local/mariadb:10.11 and
    /// skiff.local/demo-web:latest.
    #[arg(long)]
    pub demo: bool,
    /// Only write the archives; do not import them.
    #[arg(long)]
    no_import: bool,
    /// The agent state directory to import into.
    #[arg(long, default_value = "/var/lib/skiff/agent")]
    state_dir: PathBuf,
}

/// The demo's archives (busybox, MariaDB, the web tier), written but not imported: the
/// demo imports them on each of its nodes.
pub fn build_demo_archives() -> Result<Vec<PathBuf>> {
    run(&Args {
        echo: false,
        demo: true,
        no_import: true,
        state_dir: PathBuf::new(),
    })?;
    let dir = cmd::target_dir().join("images");
    Ok(
        ["busybox.oci.tar", "mariadb.oci.tar", "demo-web.docker.tar"]
            .iter()
            .map(|f| dir.join(f))
            .collect(),
    )
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
    if args.demo {
        c.args(["-p", "skiff-tests", "--bin", "skiff-demo-web"]);
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
    // Also under Docker Hub's name, so `kubectl run --image=busybox` finds it: it is
    // Debian's busybox, tagged with the version it is as well.
    let hub_version = format!("docker.io/library/busybox:{}", busybox_version()?);
    oci_archive(
        &busybox,
        &[
            "skiff.local/busybox:latest",
            "docker.io/library/busybox:latest",
            &hub_version,
        ],
        std::slice::from_ref(&base),
        &[],
        &["sh"],
    )?;
    archives.push((busybox, vec![]));
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
    if args.demo {
        let db = out_dir.join("mariadb.oci.tar");
        progress("images", format!("writing {}", db.display()));
        let layers = [base.clone(), mariadb::layer(&out_dir.join("mariadb"))?];
        oci_archive(
            &db,
            &["skiff.local/mariadb:10.11"],
            &layers,
            &["/bin/sh", mariadb::INIT_PATH],
            &[],
        )?;
        archives.push((db, vec![]));
        let exe = bins
            .get("skiff-demo-web")
            .context("cargo built no skiff-demo-web")?;
        let web = out_dir.join("demo-web.docker.tar");
        progress("images", format!("writing {}", web.display()));
        let layers = [base.clone(), binary_layer(exe, "skiff-demo-web")?];
        docker_archive(
            &web,
            "skiff.local/demo-web:latest",
            &layers,
            &["/bin/skiff-demo-web"],
            &[],
        )?;
        archives.push((web, vec![]));
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
