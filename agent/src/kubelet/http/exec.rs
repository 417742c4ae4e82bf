//! `GET|POST /exec/{ns}/{pod}/{container}?command=…&stdin=…&stdout=…&stderr=…&tty=…`:
//! `kubectl exec` over a WebSocket, as the kubelet serves it (the API server
//! relays the upgraded connection here).
//!
//! The subprotocols are Kubernetes' channel protocols `v5.channel.k8s.io` and
//! `v4.channel.k8s.io`: every binary message starts with its stream, 0 stdin
//! (client to server), 1 stdout, 2 stderr, 3 the final `Status` (JSON), 4
//! terminal resize; v5 adds 255, "close this stream" (`[255, 0]` ends stdin).
//! The command runs in the container's namespaces and cgroup
//! ([`crate::runtime::exec::exec_streaming`]). With `tty=true` it gets a
//! terminal (a pty: its controlling tty in a session of its own, so shells
//! prompt and ^C is a SIGINT), whose output goes on the stdout stream, and
//! resizes set the terminal's size.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::{error, parse_query_all, KubeletHttp};
use crate::runtime::exec::{exec_streaming, ExecIo, ExecOutput, ExecRequest, ExecTarget};
use crate::runtime::ExitStatus;

/// The channel protocols served, preferred first.
pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// Longest an exec session may run.
const MAX_SESSION: Duration = Duration::from_secs(24 * 3600);

/// What the query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOptions {
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// The streams a channel session asks for (exec, attach): `(stdin, stdout, stderr, tty)`,
/// at least one of the first three.
pub(super) fn stream_flags(pairs: &[(String, String)]) -> Result<[bool; 4], String> {
    let flag = |k: &str| {
        pairs.iter().any(|(key, v)| {
            key == k && matches!(v.as_str(), "true" | "True" | "TRUE" | "1" | "t" | "T")
        })
    };
    let [stdin, stdout, stderr, tty] = ["stdin", "stdout", "stderr", "tty"].map(flag);
    if !(stdin || stdout || stderr) {
        return Err("you must specify at least 1 of stdin, stdout, stderr".into());
    }
    Ok([stdin, stdout, stderr, tty])
}

impl ExecOptions {
    /// From the query's pairs (`command` repeated, one per argument).
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, String> {
        let command: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect();
        if command.is_empty() {
            return Err("you must specify at least 1 command".into());
        }
        let [stdin, stdout, stderr, tty] = stream_flags(pairs)?;
        Ok(Self {
            command,
            stdin,
            stdout,
            stderr,
            tty,
        })
    }
}

pub async fn handler(
    State(s): State<KubeletHttp>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let opts = match ExecOptions::from_pairs(&parse_query_all(q.as_deref())) {
        Ok(o) => o,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let Some(t) = s.pods.exec_target(&ns, &pod, &container) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("container {container} is not running in pod {ns}/{pod} on this node"),
        );
    };
    let target = ExecTarget {
        id: t.id,
        pid: t.pid,
        pid_start: t.pid_start,
        cgroup: t.cgroup,
        cgroups: s.cgroups,
    };
    ws.protocols(PROTOCOLS)
        .on_upgrade(move |socket| session(socket, target, opts))
}

/// The final `Status` Kubernetes sends on the error stream.
pub fn final_status(argv: &[String], result: &Result<ExecOutput, String>) -> serde_json::Value {
    let code = match result {
        Ok(out) => match out.status {
            ExitStatus::Code(0) => return json!({"metadata": {}, "status": "Success"}),
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        },
        Err(message) => {
            return json!({
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": "InternalError",
                "code": 500,
            })
        }
    };
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command {argv:?}, exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

fn frame(stream: u8, data: &[u8]) -> Message {
    let mut b = Vec::with_capacity(data.len() + 1);
    b.push(stream);
    b.extend_from_slice(data);
    Message::Binary(b.into())
}

/// Output chunks (of at most 16 KiB) queued for the client: when it reads slower than the
/// command writes, the command waits (its pipe fills) instead of the agent buffering.
const OUT_QUEUE: usize = 16;
/// Stdin frames queued for the command: when it reads slower than the client sends, the
/// session stops reading the socket (TCP pushes back on the client).
const IN_QUEUE: usize = 16;
/// How often an idle session pings the client, so a vanished one is noticed.
const PING: Duration = Duration::from_secs(30);
/// How long the client gets to answer the final Close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Writes what `rx` brings into the command's stdin until the session closes it (drops
/// the sender) or the command stops reading.
fn spawn_stdin_writer(
    w: std::fs::File,
    mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
) -> tokio::task::JoinHandle<()> {
    let mut w = tokio::fs::File::from_std(w);
    tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            if w.write_all(&data).await.is_err() {
                break;
            }
        }
    })
}

/// A terminal for the command: (master, slave), both close-on-exec.
fn open_terminal() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let (master, slave) = crate::runtime::openpty()?;
    // SAFETY: fresh descriptors from openpty, owned from here on.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(master),
            std::os::fd::OwnedFd::from_raw_fd(slave),
        )
    })
}

/// Applies a stream-4 resize (`{"Width": w, "Height": h}`) to the terminal.
fn resize(master: &std::os::fd::OwnedFd, msg: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(msg) else {
        return;
    };
    let dim = |k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_u64)
            .map(|n| n.min(u64::from(u16::MAX)) as u16)
    };
    if let (Some(cols), Some(rows)) = (dim("Width"), dim("Height")) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
        unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(master),
                libc::TIOCSWINSZ,
                &ws,
            )
        };
    }
}

/// The command's side of its input, and ours.
#[derive(Default)]
struct Input {
    /// What the command gets as stdin (with a terminal: the slave side, also its output).
    stdin: Option<std::os::fd::OwnedFd>,
    /// Stdin frames for the writer task.
    queue: Option<tokio::sync::mpsc::Sender<Vec<u8>>>,
    /// The terminal's master side, which carries the command's output.
    master: Option<std::os::fd::OwnedFd>,
    /// The master side again, for resizes.
    resizer: Option<std::os::fd::OwnedFd>,
}

/// A queue into a writer task that writes to `w`.
fn stdin_queue(w: std::fs::File) -> tokio::sync::mpsc::Sender<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel(IN_QUEUE);
    spawn_stdin_writer(w, rx);
    tx
}

/// With -t: a terminal, whose master side carries stdin and output; else a pipe for stdin
/// when the client sends one.
fn open_input(opts: &ExecOptions) -> std::io::Result<Input> {
    if opts.tty {
        let (master, slave) = open_terminal()?;
        let writer = master.try_clone()?;
        return Ok(Input {
            stdin: Some(slave),
            queue: opts.stdin.then(|| stdin_queue(std::fs::File::from(writer))),
            resizer: Some(master.try_clone()?),
            master: Some(master),
        });
    }
    if !opts.stdin {
        return Ok(Input::default());
    }
    let (r, w) = std::io::pipe()?;
    Ok(Input {
        stdin: Some(r.into()),
        queue: Some(stdin_queue(std::fs::File::from(
            std::os::fd::OwnedFd::from(w),
        ))),
        ..Input::default()
    })
}

async fn session(mut socket: WebSocket, target: ExecTarget, opts: ExecOptions) {
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel(OUT_QUEUE);
    let input = match open_input(&opts) {
        Ok(i) => i,
        Err(e) => {
            let status = final_status(&opts.command, &Err(format!("exec input: {e}")));
            let _ = socket
                .send(frame(ERROR, status.to_string().as_bytes()))
                .await;
            return;
        }
    };
    let (stdin_r, mut stdin_tx, master, resizer) =
        (input.stdin, input.queue, input.master, input.resizer);
    let req = ExecRequest {
        argv: opts.command.clone(),
        timeout: MAX_SESSION,
        max_output: 0,
    };
    let io = ExecIo {
        stdin: stdin_r,
        output: out_tx,
        terminal: master,
    };
    let mut job = tokio::task::spawn_blocking(move || exec_streaming(&target, &req, io));
    // The stream a chunk goes out on: with a terminal, stderr joins stdout.
    let stream_of = |s: u8| if opts.tty { STDOUT } else { s };
    let wanted = |s: u8| (s == STDOUT && opts.stdout) || (s != STDOUT && (opts.stderr || opts.tty));
    let mut ping = tokio::time::interval(PING);
    ping.tick().await;
    let result = loop {
        let stdin_room = stdin_tx.as_ref().is_none_or(|t| t.capacity() > 0);
        tokio::select! {
            Some((s, data)) = out_rx.recv() => {
                if wanted(s) && socket.send(frame(stream_of(s), &data)).await.is_err() {
                    // The client left: dropping the receiver stops the command.
                    drop(out_rx);
                    let _ = job.await;
                    return;
                }
            }
            msg = socket.recv(), if stdin_room => match msg {
                Some(Ok(Message::Binary(b))) => match (b.first(), b.get(1)) {
                    (Some(&STDIN), _) => {
                        if let Some(tx) = &stdin_tx {
                            if b.len() > 1 && tx.try_send(b[1..].to_vec()).is_err() {
                                stdin_tx = None;
                            }
                        }
                    }
                    (Some(&CLOSE), Some(&STDIN)) => {
                        // A terminal ends its input with ^D, not by closing.
                        if let (Some(tx), true) = (&stdin_tx, opts.tty) {
                            let _ = tx.try_send(vec![0x04]);
                        }
                        stdin_tx = None;
                    }
                    (Some(&RESIZE), _) => {
                        if let Some(m) = &resizer {
                            resize(m, &b[1..]);
                        }
                    }
                    (Some(_), _) | (None, _) => {}
                },
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    drop(out_rx);
                    let _ = job.await;
                    return;
                }
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    drop(out_rx);
                    let _ = job.await;
                    return;
                }
            }
            res = &mut job => {
                break res.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string()));
            }
        }
    };
    // The command is done: what it wrote last, then the status.
    while let Ok((s, data)) = out_rx.try_recv() {
        if wanted(s) {
            let _ = socket.send(frame(stream_of(s), &data)).await;
        }
    }
    finish(&mut socket, &final_status(&opts.command, &result)).await;
}

/// Ends a channel session: the final `status` on the error stream, then a normal close.
pub(super) async fn finish(socket: &mut WebSocket, status: &serde_json::Value) {
    let _ = socket
        .send(frame(ERROR, status.to_string().as_bytes()))
        .await;
    // A normal closure (1000): Go's websocket client reports a close
    // without a code (1005) as an error.
    let close = axum::extract::ws::CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: "".into(),
    };
    if socket.send(Message::Close(Some(close))).await.is_ok() {
        // Wait for the client's Close (reading what it still sends) so that
        // the status is not lost to a reset of a socket closed with unread data.
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(m)) = socket.recv().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(q: &str) -> Result<ExecOptions, String> {
        ExecOptions::from_pairs(&parse_query_all(Some(q)))
    }

    #[test]
    fn the_command_is_every_command_parameter_in_order() {
        let o = opts("command=sh&command=-c&command=echo%20a%26b&stdout=true&stderr=1").unwrap();
        assert_eq!(o.command, ["sh", "-c", "echo a&b"]);
        assert!(o.stdout && o.stderr && !o.stdin && !o.tty);
        assert!(opts("stdout=true").unwrap_err().contains("command"));
        assert!(opts("command=ls")
            .unwrap_err()
            .contains("stdin, stdout, stderr"));
    }

    #[test]
    fn the_status_carries_the_exit_code() {
        let argv = vec!["false".to_string()];
        let out = |status| {
            Ok(ExecOutput {
                status,
                stdout: vec![],
                stderr: vec![],
                truncated: false,
            })
        };
        assert_eq!(
            final_status(&argv, &out(ExitStatus::Code(0)))["status"],
            "Success"
        );
        let s = final_status(&argv, &out(ExitStatus::Code(3)));
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        let s = final_status(&argv, &out(ExitStatus::Signal(9)));
        assert_eq!(s["details"]["causes"][0]["message"], "137");
        let s = final_status(&argv, &Err("no such file".into()));
        assert_eq!(
            (s["status"].as_str(), s["reason"].as_str()),
            (Some("Failure"), Some("InternalError"))
        );
    }
}
