//! `cargo xtask build`: the BPF object with Debian's toolchain, then the
//! userspace workspace (rustup's cargo) with the object embedded.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::cmd::{self, progress};
use crate::setup;

#[derive(clap::Args)]
pub struct Args {
    /// Build userspace in release mode (the BPF object is always release).
    #[arg(long)]
    pub release: bool,
}

/// What a build produced.
#[derive(Debug)]
pub struct Built {
    /// Executables by target name (`skiff`, `skiff-echo`, `skiff-bench`, ...).
    pub bins: HashMap<String, PathBuf>,
    /// The BPF object the agent embeds.
    pub ebpf_obj: PathBuf,
}

impl Built {
    pub fn bin(&self, name: &str) -> Result<&PathBuf> {
        self.bins
            .get(name)
            .with_context(|| format!("cargo built no binary named `{name}`"))
    }

    /// The environment tests and benchmarks find the binaries through.
    pub fn env(&self) -> Vec<(&'static str, PathBuf)> {
        let mut env = vec![
            ("SKIFF_EBPF_OBJ", self.ebpf_obj.clone()),
            ("SKIFF_BENCH_EBPF_OBJ", bench_obj_path()),
        ];
        for (var, bin) in [("SKIFF_BIN", "skiff"), ("SKIFF_ECHO_BIN", "skiff-echo")] {
            if let Some(path) = self.bins.get(bin) {
                env.push((var, path.clone()));
            }
        }
        env
    }
}

pub fn run(args: &Args) -> Result<Built> {
    setup::ensure()?;
    let ebpf_obj = build_ebpf()?;
    let bins = build_userspace(args.release, &ebpf_obj)?;
    progress("build", format!("done: {} binaries", bins.len()));
    Ok(Built { bins, ebpf_obj })
}

/// The object path `agent/build.rs` looks for.
pub fn ebpf_obj_path() -> PathBuf {
    cmd::target_dir().join("bpf/bpfel-unknown-none/release/skiff-ebpf")
}

/// The benchmark's generator and sink (`ebpf/programs/src/bench.rs`).
pub fn bench_obj_path() -> PathBuf {
    cmd::target_dir().join("bpf/bpfel-unknown-none/release/skiff-bench-ebpf")
}

fn build_ebpf() -> Result<PathBuf> {
    let linker = setup::bpf_linker().context("bpf-linker not found")?;
    let linker_dir = linker.parent().context("bpf-linker path has no parent")?;
    progress(
        "build",
        "BPF programs (Debian rustc, bpfel-unknown-none, release)",
    );
    let mut c = Command::new("/usr/bin/cargo");
    c.current_dir(cmd::workspace_root().join("ebpf/programs"))
        .arg("build")
        .arg("--release")
        .arg("--target-dir")
        .arg(cmd::target_dir().join("bpf"))
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTC_BOOTSTRAP", "1")
        .env("PATH", cmd::path_with(&[linker_dir]));
    cmd::run("build", &mut c)?;
    let obj = ebpf_obj_path();
    if !obj.is_file() {
        bail!("BPF build succeeded but {} is missing", obj.display());
    }
    progress("build", format!("BPF object: {}", obj.display()));
    Ok(obj)
}

fn build_userspace(release: bool, ebpf_obj: &PathBuf) -> Result<HashMap<String, PathBuf>> {
    let mode = if release { "release" } else { "debug" };
    progress("build", format!("userspace workspace ({mode})"));
    let mut c = cmd::cargo();
    c.args([
        "build",
        "--workspace",
        "--bins",
        "--message-format=json-render-diagnostics",
    ]);
    if release {
        c.arg("--release");
    }
    c.env("SKIFF_EBPF_OBJ", ebpf_obj);
    let mut bins = HashMap::new();
    for msg in cargo_messages("build", &mut c)? {
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let is_bin = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "bin"));
        if let (true, Some(exe), Some(name)) = (
            is_bin,
            msg["executable"].as_str(),
            msg["target"]["name"].as_str(),
        ) {
            bins.insert(name.to_string(), PathBuf::from(exe));
        }
    }
    Ok(bins)
}

/// Run a cargo command with `--message-format=json*`, returning its JSON
/// messages (stderr, with rendered diagnostics, stays on the terminal).
pub fn cargo_messages(step: &str, c: &mut Command) -> Result<Vec<serde_json::Value>> {
    progress(step, format!("$ {}", cmd::render(c)));
    let mut child = c
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start `{}`", cmd::render(c)))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut msgs = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(v) => msgs.push(v),
            Err(_) => println!("{line}"),
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`{}` failed: {status}", cmd::render(c));
    }
    Ok(msgs)
}
