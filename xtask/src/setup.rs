//! `cargo xtask setup`: check each need and install only what is missing.
//!
//! Needs: Debian packages (the BPF toolchain: Debian's rustc/cargo with the
//! library source and LLVM 22; tools the tests and benchmarks run),
//! bpf-linker 0.13 built against LLVM 22, and bpffs at /sys/fs/bpf.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Result};

use crate::cmd::{self, progress};

/// Debian packages building, testing and benchmarking need.
const PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "llvm-22-dev",
    "build-essential",
    "pkg-config",
    "bpftool",
    "iproute2",
    "iperf3",
    "iptables",
    "nftables",
    "busybox-static",
    "socat",
    "netcat-openbsd",
    "ethtool",
    "wrk",
    "conntrack",
    "python3-kubernetes",
    "etcd-server",
];

/// What shows that a package's content is present, on hosts without dpkg.
fn probe(package: &str) -> &'static str {
    match package {
        "rustc-web" => "/usr/bin/rustc",
        "cargo-web" => "/usr/bin/cargo",
        "rust-web-src" => "/usr/lib/rustlib/src/rust/library",
        "llvm-22-dev" => "/usr/lib/llvm-22/bin/llvm-config",
        "build-essential" => "cc",
        "pkg-config" => "pkg-config",
        "bpftool" => "bpftool",
        "iproute2" => "ip",
        "iperf3" => "iperf3",
        "iptables" => "iptables-restore",
        "nftables" => "nft",
        "busybox-static" => "busybox",
        "socat" => "socat",
        "netcat-openbsd" => "nc",
        "ethtool" => "ethtool",
        "wrk" => "wrk",
        "conntrack" => "conntrack",
        "python3-kubernetes" => "/usr/lib/python3/dist-packages/kubernetes",
        "etcd-server" => "/usr/bin/etcd",
        _ => "",
    }
}

const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BPFFS: &str = "/sys/fs/bpf";

#[derive(clap::Args)]
pub struct Args {
    /// Only report what is missing; change nothing.
    #[arg(long)]
    check: bool,
}

/// What is missing on this host.
#[derive(Debug, Default)]
pub struct Missing {
    packages: Vec<&'static str>,
    bpf_linker: bool,
    bpffs: bool,
}

impl Missing {
    pub fn is_empty(&self) -> bool {
        self.packages.is_empty() && !self.bpf_linker && !self.bpffs
    }
}

pub fn run(args: &Args) -> Result<()> {
    let missing = check();
    if args.check {
        report(&missing);
        if !missing.is_empty() {
            bail!("setup incomplete");
        }
        return Ok(());
    }
    install(missing)
}

/// The cheap check `build` and `test` run first: install what is missing.
/// Fails only if what the build needs is still missing; a missing bpffs (which
/// only root can mount, and the agent mounts itself) is a warning.
pub fn ensure() -> Result<()> {
    let missing = check();
    if missing.is_empty() {
        progress("setup", "all needs present (packages, bpf-linker, bpffs)");
        return Ok(());
    }
    if let Err(err) = install(missing) {
        let left = check();
        if !left.packages.is_empty() || left.bpf_linker {
            return Err(err);
        }
        progress(
            "setup",
            format!("warning: {err:#}; continuing (the build does not need bpffs)"),
        );
    }
    Ok(())
}

fn debian_like() -> bool {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let family = release.lines().any(|l| {
        (l.starts_with("ID=") || l.starts_with("ID_LIKE="))
            && (l.contains("debian") || l.contains("ubuntu"))
    });
    family && cmd::which("apt-get").is_some() && cmd::which("dpkg-query").is_some()
}

/// Check every need; no side effects.
pub fn check() -> Missing {
    Missing {
        packages: missing_packages(),
        bpf_linker: bpf_linker_version().is_none_or(|v| !v.contains("0.13")),
        bpffs: !bpffs_mounted(),
    }
}

fn missing_packages() -> Vec<&'static str> {
    if !debian_like() {
        return PACKAGES
            .iter()
            .copied()
            .filter(|p| {
                let probe = probe(p);
                !(std::path::Path::new(probe).exists() || cmd::which(probe).is_some())
            })
            .collect();
    }
    let mut args = vec!["-W", "-f=${Package}\t${db:Status-Status}\n"];
    args.extend(PACKAGES);
    // dpkg-query exits 1 when some package is unknown; the rest still print.
    let installed = cmd::output("dpkg-query", &args)
        .map(|(_, out)| out)
        .unwrap_or_default();
    PACKAGES
        .iter()
        .copied()
        .filter(|p| !installed.lines().any(|l| l == format!("{p}\tinstalled")))
        .collect()
}

/// bpf-linker on PATH or in cargo's bin directory.
pub fn bpf_linker() -> Option<PathBuf> {
    cmd::which("bpf-linker").or_else(|| {
        let p = cmd::cargo_bin_dir().join("bpf-linker");
        p.is_file().then_some(p)
    })
}

fn bpf_linker_version() -> Option<String> {
    let linker = bpf_linker()?;
    let (ok, out) = cmd::output(linker.to_str()?, &["--version"])?;
    ok.then(|| out.trim().to_string())
}

fn bpffs_mounted() -> bool {
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let mut f = l.split_whitespace();
            f.nth(1) == Some(BPFFS) && f.next() == Some("bpf")
        })
}

fn bpf_linker_install_cmd() -> Command {
    let mut c = Command::new("/usr/bin/cargo");
    c.args([
        "install",
        "--locked",
        &format!("bpf-linker@{BPF_LINKER_VERSION}"),
    ])
    .args(["--no-default-features", "--features", "llvm-22"])
    .env("LLVM_PREFIX", LLVM_PREFIX)
    .env("RUSTC", "/usr/bin/rustc")
    .env(
        "PATH",
        cmd::path_with(&[&PathBuf::from(LLVM_PREFIX).join("bin")]),
    )
    .env_remove("RUSTUP_TOOLCHAIN")
    .env_remove("RUSTFLAGS")
    .env_remove("CARGO_ENCODED_RUSTFLAGS")
    .env_remove("CARGO_TARGET_DIR");
    c
}

fn report(missing: &Missing) {
    if missing.is_empty() {
        progress("setup", "everything present");
        return;
    }
    progress("setup", "missing:");
    if !missing.packages.is_empty() {
        let pkgs = missing.packages.join(" ");
        if debian_like() {
            eprintln!("  packages: {pkgs}\n    get them: sudo apt-get install -y {pkgs}");
        } else {
            eprintln!("  packages (Debian names): {pkgs}");
            for p in &missing.packages {
                eprintln!("    {p}: nothing provides `{}` here", probe(p));
            }
            eprintln!(
                "    get them from your distribution (LLVM 22 dev files, a rustc with rust-src)"
            );
        }
    }
    if missing.bpf_linker {
        eprintln!(
            "  bpf-linker {BPF_LINKER_VERSION} (LLVM 22)\n    get it: {}",
            cmd::render(&bpf_linker_install_cmd())
                .replace("/usr/bin/cargo", "LLVM_PREFIX=/usr/lib/llvm-22 PATH=/usr/lib/llvm-22/bin:$PATH RUSTC=/usr/bin/rustc /usr/bin/cargo")
        );
    }
    if missing.bpffs {
        eprintln!("  bpffs at {BPFFS}\n    get it: sudo mount -t bpf bpf {BPFFS}");
    }
}

fn install(mut missing: Missing) -> Result<()> {
    if missing.is_empty() {
        progress("setup", "all needs present (packages, bpf-linker, bpffs)");
        return Ok(());
    }
    let root = cmd::is_root();
    if !missing.packages.is_empty() && root && debian_like() {
        let n = missing.packages.len();
        progress(
            "setup",
            format!(
                "apt: installing {n} packages: {}",
                missing.packages.join(" ")
            ),
        );
        let apt = |args: &[&str]| {
            let mut c = Command::new("apt-get");
            c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
            c
        };
        cmd::run("setup", &mut apt(&["update", "-q"]))?;
        let mut install = apt(&["install", "-y", "-q"]);
        install.args(&missing.packages);
        cmd::run("setup", &mut install)?;
        missing.packages = missing_packages();
    }
    if missing.bpf_linker && missing.packages.is_empty() {
        progress(
            "setup",
            format!("bpf-linker: building {BPF_LINKER_VERSION} against LLVM 22 (about a minute)"),
        );
        cmd::run("setup", &mut bpf_linker_install_cmd())?;
        missing.bpf_linker = bpf_linker_version().is_none_or(|v| !v.contains("0.13"));
    }
    if missing.bpffs && root {
        progress("setup", format!("bpffs: mounting at {BPFFS}"));
        cmd::run(
            "setup",
            Command::new("mount").args(["-t", "bpf", "bpf", BPFFS]),
        )?;
        missing.bpffs = !bpffs_mounted();
    }
    if !missing.is_empty() {
        report(&missing);
        if !root {
            bail!(
                "setup incomplete: run `cargo xtask setup` as root, or install the above by hand"
            );
        }
        bail!("setup incomplete");
    }
    progress("setup", "done");
    Ok(())
}
