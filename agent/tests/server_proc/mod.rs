//! Shared by the tests that run `skiff server` as real processes: temporary directories,
//! a server process killed on drop, free ports, and a small blocking HTTP client.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const SKIFF: &str = env!("CARGO_BIN_EXE_skiff");
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("skiff-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `skiff server`, killed on drop.
pub struct ServerProc {
    pub child: Child,
    /// `http://host:port` of the Kubernetes API.
    pub url: String,
    /// The Raft address (for `--join`).
    pub raft: String,
    pub lines: mpsc::Receiver<String>,
}

impl ServerProc {
    /// The API's `host:port`.
    pub fn api(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// SIGKILL, then reap.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `skiff server` on `data` and wait for its ready line; `tag` prefixes its log lines.
pub fn start(tag: &str, data: &Path, extra: &[&str]) -> ServerProc {
    spawn(tag, data, extra).ready()
}

/// A `skiff server` started but not known ready yet (killed on drop, as a [`ServerProc`]).
pub struct Starting(ServerProc);

impl Starting {
    /// Wait for the ready line: the API's address (and the Raft one when logged).
    pub fn ready(mut self) -> ServerProc {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.0.lines.recv_timeout(left).expect("server ready line");
            if let Some(i) = line
                .find(" serving on ")
                .filter(|_| line.contains("replica"))
            {
                self.0.raft = line[i + " serving on ".len()..].trim().to_string();
            }
            if let Some(i) = line.find("Kubernetes API on http://") {
                let rest = &line[i + "Kubernetes API on ".len()..];
                self.0.url = rest.split_whitespace().next().unwrap().to_string();
                return self.0;
            }
        }
    }
}

/// Start `skiff server` on `data` without waiting for it.
pub fn spawn(tag: &str, data: &Path, extra: &[&str]) -> Starting {
    let mut cmd = Command::new(SKIFF);
    cmd.arg("server");
    if !extra.contains(&"--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    for flag in ["--raft-listen", "--agent-listen"] {
        if !extra.contains(&flag) {
            cmd.args([flag, "127.0.0.1:0"]);
        }
    }
    let mut child = cmd
        .arg("--data-dir")
        .arg(data)
        .args(["--fast-raft", "--node-grace-s", "5"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start skiff server");
    let (tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let tag = tag.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{tag}: {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Starting(ServerProc {
        child,
        url: String::new(),
        raft: String::new(),
        lines,
    })
}

/// A port free right now on 127.0.0.1 (for servers that must come back on the same one),
/// never one this process was given before: the kernel may hand a released port out again,
/// and two replicas once got the same one.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// One HTTP/1.1 exchange (`Connection: close`): the status code and the body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let sock = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("no address for {addr}")))?;
    let mut s = TcpStream::connect_timeout(&sock, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let body = body.unwrap_or("");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("truncated HTTP response"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_string()
    };
    Ok((code, body))
}

fn dechunk(mut s: &str) -> std::io::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = s
            .split_once("\r\n")
            .ok_or_else(|| std::io::Error::other("truncated chunk"))?;
        let n = usize::from_str_radix(size.trim(), 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size {size:?}")))?;
        if n == 0 {
            return Ok(out);
        }
        let chunk = rest
            .get(..n)
            .ok_or_else(|| std::io::Error::other("truncated chunk"))?;
        out.push_str(chunk);
        s = rest.get(n + 2..).unwrap_or("");
    }
}
