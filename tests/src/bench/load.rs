//! Load generators: iperf3 for throughput, and a short-connection loop
//! (connect, send a line, read the echo, close) for connections per second.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use skiff_tests::lab::Netns;

/// TCP throughput from `netns` to `target` with iperf3 for `secs` seconds,
/// in Gbit/s (receiver side). The run is bounded by `timeout(1)`.
pub fn iperf3_gbps(netns: &Path, target: SocketAddr, secs: u32) -> Result<f64> {
    let out = Command::new("timeout")
        .args(["-k", "2", &(secs + 15).to_string(), "nsenter"])
        .arg(format!("--net={}", netns.display()))
        .args(["iperf3", "-J", "--connect-timeout", "3000", "-c"])
        .arg(target.ip().to_string())
        .args(["-p", &target.port().to_string(), "-t", &secs.to_string()])
        .output()
        .context("running iperf3")?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("iperf3 output: {}", String::from_utf8_lossy(&out.stderr)))?;
    if let Some(err) = json["error"].as_str() {
        bail!("iperf3 to {target}: {err}");
    }
    let bps = json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("iperf3 JSON has no end.sum_received.bits_per_second")?;
    Ok(bps / 1e9)
}

/// What a short-connection run measured.
#[derive(Debug, Clone, Copy)]
pub struct ConnStats {
    pub conns: u64,
    pub errors: u64,
    pub conn_per_s: f64,
    pub p99_us: f64,
}

/// Bounds of a short-connection run.
#[derive(Debug, Clone, Copy)]
pub struct ConnLoad {
    pub concurrency: usize,
    pub duration: Duration,
    pub max_conns: u64,
}

/// Runs the connect/send/recv/close loop from `netns` against `target`
/// with `load.concurrency` threads, until the duration or the count is spent.
pub fn conn_rate(netns: &Netns, target: SocketAddr, load: ConnLoad) -> Result<ConnStats> {
    let res = netns.run(move || -> Result<ConnStats> {
        // Short connections leave TIME_WAIT sockets: allow reusing them and
        // widen the port range, in the client's netns only.
        for (key, value) in [("tcp_tw_reuse", "1"), ("ip_local_port_range", "1024 65000")] {
            let path = format!("/proc/sys/net/ipv4/{key}");
            std::fs::write(&path, value).with_context(|| format!("writing {path}"))?;
        }
        let start = Instant::now();
        let per_thread = load.max_conns / load.concurrency as u64;
        let results: Vec<(Vec<u32>, u64)> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..load.concurrency)
                .map(|_| s.spawn(move || worker(target, start + load.duration, per_thread)))
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("worker panicked"))
                .collect()
        });
        let elapsed = start.elapsed().as_secs_f64();
        let errors = results.iter().map(|r| r.1).sum();
        let mut lat: Vec<u32> = results.into_iter().flat_map(|r| r.0).collect();
        lat.sort_unstable();
        let conns = lat.len() as u64;
        if conns == 0 {
            bail!("no connection to {target} succeeded ({errors} errors)");
        }
        let p99 = lat[((lat.len() * 99) / 100).min(lat.len() - 1)];
        Ok(ConnStats {
            conns,
            errors,
            conn_per_s: conns as f64 / elapsed,
            p99_us: f64::from(p99),
        })
    })?;
    res
}

/// One client thread: latencies in µs of successful round trips, errors.
fn worker(target: SocketAddr, deadline: Instant, max: u64) -> (Vec<u32>, u64) {
    let mut lat = Vec::with_capacity(max.min(1 << 20) as usize);
    let mut errors = 0;
    // The answer is one short line; read until its newline into a reused
    // buffer (no allocation per connection).
    let mut buf = [0u8; 256];
    while (lat.len() as u64) < max && Instant::now() < deadline {
        let t0 = Instant::now();
        let ok = (|| -> std::io::Result<()> {
            let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(1))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(1)))?;
            s.write_all(b"ping\n")?;
            let mut got = 0;
            while !buf[..got].contains(&b'\n') {
                if got == buf.len() {
                    return Err(std::io::ErrorKind::InvalidData.into());
                }
                match s.read(&mut buf[got..])? {
                    0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    n => got += n,
                }
            }
            Ok(())
        })();
        match ok {
            Ok(()) => lat.push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32),
            Err(_) => errors += 1,
        }
        if errors > 1000 {
            break;
        }
    }
    (lat, errors)
}

/// Waits until a TCP connect from `netns` to `target` succeeds.
pub fn wait_listening(netns: &Netns, target: SocketAddr, deadline: Duration) -> Result<()> {
    let ok = netns.run(move || {
        let end = Instant::now() + deadline;
        while Instant::now() < end {
            if TcpStream::connect_timeout(&target, Duration::from_millis(200)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    })?;
    if !ok {
        bail!("{target} did not accept connections within {deadline:?}");
    }
    Ok(())
}
