//! `cargo xtask demo`: the seed example on a lab cluster of 3 nodes, each a control-plane
//! replica and an agent. Builds what is missing (toolchain, binaries, the demo images),
//! starts `skiff-lab cluster` detached (its log: `target/demo/demo.log`), follows its
//! progress until it is ready, and prints how to reach the page and the API.
//! `cargo xtask demo down` stops it (pods drained, processes stopped, the lab removed).
//! `cargo xtask demo --once` runs it in the foreground and tears it down at the end;
//! `cargo xtask demo clusterip` is the smaller one-node ClusterIP demo.

use std::fs;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cmd::{self, progress};
use crate::{build, images, lab};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Option<Action>,
    /// Run in the foreground and tear down once the page has been shown.
    #[arg(long)]
    once: bool,
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    #[arg(long, default_value_t = 3)]
    replicas: usize,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Stop a running demo and remove everything it created.
    Down,
    /// The one-node ClusterIP data-path demo.
    Clusterip(lab::DemoArgs),
}

fn work_dir() -> PathBuf {
    cmd::target_dir().join("demo")
}

fn pid_file() -> PathBuf {
    work_dir().join("pid")
}

fn running_pid() -> Option<i32> {
    let pid: i32 = fs::read_to_string(pid_file()).ok()?.trim().parse().ok()?;
    // SAFETY: kill with signal 0 only checks that the process exists.
    (unsafe { libc::kill(pid, 0) } == 0).then_some(pid)
}

pub fn run(args: &Args) -> Result<()> {
    match &args.action {
        Some(Action::Down) => down(),
        Some(Action::Clusterip(a)) => lab::demo(a),
        None => up(args),
    }
}

fn up(args: &Args) -> Result<()> {
    if !cmd::is_root() {
        bail!("the demo creates network namespaces and cgroups: run as root");
    }
    if let Some(pid) = running_pid() {
        bail!("a demo is already running (pid {pid}): `cargo xtask demo down` first");
    }
    let built = build::run(&build::Args { release: false })?;
    let archives = images::build_demo_archives()?;
    let work = work_dir();
    if work.exists() {
        fs::remove_dir_all(&work).with_context(|| {
            format!(
                "removing the last demo's {} (still mounted? `cargo xtask demo down`)",
                work.display()
            )
        })?;
    }
    fs::create_dir_all(&work)?;
    let mut c = Command::new(built.bin("skiff-lab")?);
    c.arg("cluster")
        .arg("--work")
        .arg(&work)
        .args(["--nodes", &args.nodes.to_string()])
        .args(["--replicas", &args.replicas.to_string()])
        .envs(built.env());
    for a in &archives {
        c.arg("--image").arg(a);
    }
    if args.once {
        c.arg("--once");
        return cmd::run("demo", &mut c);
    }
    let log_path = work.join("demo.log");
    let log = fs::File::create(&log_path)?;
    // SAFETY: setsid in the child before exec: the demo outlives this command's session.
    unsafe {
        use std::os::unix::process::CommandExt as _;
        c.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = c
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting skiff-lab cluster")?;
    fs::write(pid_file(), child.id().to_string())?;
    progress(
        "demo",
        format!("started (pid {}), log {}", child.id(), log_path.display()),
    );
    follow(&log_path, &mut child)
}

/// Print the demo's `[demo]` lines until `[demo] READY`, or fail if it exits first.
fn follow(log_path: &PathBuf, child: &mut std::process::Child) -> Result<()> {
    let mut f = fs::File::open(log_path)?;
    let mut pos = 0;
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        f.seek(SeekFrom::Start(pos))?;
        let mut r = BufReader::new(&f);
        let mut line = String::new();
        while r.read_line(&mut line)? > 0 && line.ends_with('\n') {
            pos += line.len() as u64;
            if let Some(rest) = line.strip_prefix("[demo] ") {
                println!("[demo] {}", rest.trim_end());
                if rest.trim_end() == "READY" {
                    println!(
                        "[demo] running in the background; `cargo xtask demo down` removes it"
                    );
                    return Ok(());
                }
            } else if line.starts_with("  ") || line.starts_with('<') {
                print!("{line}");
            }
            line.clear();
        }
        if let Some(status) = child.try_wait()? {
            let _ = fs::remove_file(pid_file());
            bail!(
                "the demo exited ({status}) before it was ready; its log: {} (and {}/logs)",
                log_path.display(),
                work_dir().display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the demo was not ready after 15 minutes; see {}",
                log_path.display()
            );
        }
        // Polling a log file being written by another process.
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn down() -> Result<()> {
    match running_pid() {
        Some(pid) => {
            progress(
                "demo",
                format!("stopping pid {pid} (drains the pods first)"),
            );
            // SAFETY: signalling the demo process this command started.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(180);
            while running_pid().is_some() {
                if Instant::now() > deadline {
                    progress("demo", "still running after 180 s: SIGKILL");
                    // SAFETY: as above.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        None => progress("demo", "no demo running"),
    }
    let _ = fs::remove_file(pid_file());
    lab::run_down()
}
