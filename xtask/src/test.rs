//! `cargo xtask test`: build, unit tests (no root), then the root integration
//! tests of `tests/tests/` with the built binaries passed by environment.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::build;
use crate::cmd::{self, progress};

#[derive(clap::Args)]
pub struct Args {
    /// Run only the unit and doc tests (no root needed).
    #[arg(long, conflicts_with = "integration_only")]
    unit_only: bool,
    /// Run only the root integration tests.
    #[arg(long)]
    integration_only: bool,
    /// Parallel integration tests (each builds its own lab; 2 cores here).
    #[arg(long, default_value_t = 2)]
    test_threads: usize,
    /// Passed to the test harness, e.g. a name filter or `--nocapture`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    harness_args: Vec<String>,
}

/// Sums of the `test result:` lines of every run.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    errors: Vec<String>,
}

impl Tally {
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                _ => {}
            }
        }
    }
}

pub fn run(args: &Args) -> Result<()> {
    let built = build::run(&build::Args { release: false })?;
    let mut tally = Tally::default();
    if !args.integration_only {
        // Everything that needs no root: every crate's unit, doc and
        // integration tests (the control plane's drive the real kubectl and
        // Python client on loopback), and the test crate's own unit tests.
        let mut unit = cmd::cargo();
        unit.args([
            "test",
            "--no-fail-fast",
            "--workspace",
            "--exclude",
            "skiff-tests",
        ]);
        cargo_test("unit", unit, &built, &args.harness_args, &mut tally)?;
        let mut lab_unit = cmd::cargo();
        lab_unit.args([
            "test",
            "--no-fail-fast",
            "-p",
            "skiff-tests",
            "--lib",
            "--bins",
        ]);
        cargo_test("unit", lab_unit, &built, &args.harness_args, &mut tally)?;
    }
    if !args.unit_only {
        if cmd::is_root() {
            let mut integ = cmd::cargo();
            integ.args(["test", "--no-fail-fast", "-p", "skiff-tests", "--test", "*"]);
            let mut harness = vec!["--test-threads".to_string(), args.test_threads.to_string()];
            harness.extend(args.harness_args.iter().cloned());
            cargo_test("integration", integ, &built, &harness, &mut tally)?;
        } else {
            let msg = "integration tests need root (network namespaces, BPF, bpffs): \
                       run `sudo -E cargo xtask test`, or `cargo xtask test --unit-only`";
            progress("integration", format!("refused: {msg}"));
            tally.errors.push(msg.to_string());
        }
    }
    let summary = format!("{} passed, {} failed", tally.passed, tally.failed);
    println!("{summary}");
    for err in &tally.errors {
        eprintln!("  error: {err}");
    }
    if tally.failed > 0 || !tally.errors.is_empty() {
        bail!("tests failed: {summary}");
    }
    Ok(())
}

/// Run one `cargo test` invocation, echoing its output and tallying results.
fn cargo_test(
    phase: &str,
    mut c: Command,
    built: &build::Built,
    harness: &[String],
    tally: &mut Tally,
) -> Result<()> {
    for (var, value) in built.env() {
        c.env(var, value);
    }
    // `cargo xtask setup` installs the official Python client: its test must
    // not skip silently here.
    c.env("SKIFF_REQUIRE_PYTHON_CLIENT", "1");
    if !harness.is_empty() {
        c.arg("--").args(harness);
    }
    progress(phase, format!("$ {}", cmd::render(&c)));
    let mut child = c
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start `{}`", cmd::render(&c)))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        tally.add_line(&line);
    }
    let status = child.wait()?;
    if !status.success() {
        tally.errors.push(format!(
            "{phase}: `{}` exited with {status}",
            cmd::render(&c)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn sums_result_lines() {
        let mut t = Tally::default();
        t.add_line("test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s");
        t.add_line(
            "test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        t.add_line("running 5 tests");
        assert_eq!((t.passed, t.failed), (15, 2));
    }
}
