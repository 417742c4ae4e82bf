//! `GET|POST /exec/{ns}/{pod}/{container}?command=…&stdin=…&stdout=…&stderr=…&tty=…`:
//! `kubectl exec` over a WebSocket, as the kubelet serves it (the API server
//! relays the upgraded connection here).
//!
//! The subprotocols are Kubernetes' channel protocols `v5.channel.k8s.io` and
//! `v4.channel.k8s.io`: every binary message starts with its stream, 0 stdin
//! (client to server), 1 stdout, 2 stderr, 3 the final `Status` (JSON), 4
//! terminal resize; v5 adds 255, "close this stream" (`[255, 0]` ends stdin).
//! The command runs in the container's namespaces and cgroup
//! ([`crate::runtime::exec::exec_streaming`]). Without a terminal device:
//! with `tty=true` the command gets pipes all the same (stderr is sent on the
//! stdout stream, and resizes are ignored), so a shell works line by line
//! without prompt editing.

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

impl ExecOptions {
    /// From the query's pairs (`command` repeated, one per argument).
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, String> {
        let flag = |k: &str| {
            pairs.iter().any(|(key, v)| {
                key == k && matches!(v.as_str(), "true" | "True" | "TRUE" | "1" | "t" | "T")
            })
        };
        let command: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect();
        if command.is_empty() {
            return Err("you must specify at least 1 command".into());
        }
        let o = Self {
            command,
            stdin: flag("stdin"),
            stdout: flag("stdout"),
            stderr: flag("stderr"),
            tty: flag("tty"),
        };
        if !(o.stdin || o.stdout || o.stderr) {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        Ok(o)
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

async fn session(mut socket: WebSocket, target: ExecTarget, opts: ExecOptions) {
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel();
    let (stdin_r, mut stdin_w) = if opts.stdin {
        match std::io::pipe() {
            Ok((r, w)) => {
                let w = std::fs::File::from(std::os::fd::OwnedFd::from(w));
                (Some(r.into()), Some(tokio::fs::File::from_std(w)))
            }
            Err(e) => {
                let status = final_status(&opts.command, &Err(format!("stdin pipe: {e}")));
                let _ = socket
                    .send(frame(ERROR, status.to_string().as_bytes()))
                    .await;
                return;
            }
        }
    } else {
        (None, None)
    };
    let req = ExecRequest {
        argv: opts.command.clone(),
        timeout: MAX_SESSION,
        max_output: 0,
    };
    let io = ExecIo {
        stdin: stdin_r,
        output: out_tx,
    };
    let mut job = tokio::task::spawn_blocking(move || exec_streaming(&target, &req, io));
    // The stream a chunk goes out on: without a terminal, as it came.
    let stream_of = |s: u8| if opts.tty { STDOUT } else { s };
    let wanted = |s: u8| (s == STDOUT && opts.stdout) || (s != STDOUT && (opts.stderr || opts.tty));
    let result = loop {
        tokio::select! {
            Some((s, data)) = out_rx.recv() => {
                if wanted(s) && socket.send(frame(stream_of(s), &data)).await.is_err() {
                    // The client left: dropping the receiver stops the command.
                    drop(out_rx);
                    let _ = job.await;
                    return;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(b))) => match (b.first(), b.get(1)) {
                    (Some(&STDIN), _) => {
                        if let Some(w) = stdin_w.as_mut() {
                            if w.write_all(&b[1..]).await.is_err() {
                                stdin_w = None;
                            }
                        }
                    }
                    (Some(&CLOSE), Some(&STDIN)) => stdin_w = None,
                    (Some(&RESIZE), _) | (Some(_), _) | (None, _) => {}
                },
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    drop(out_rx);
                    let _ = job.await;
                    return;
                }
                Some(Ok(_)) => {}
            },
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
    let status = final_status(&opts.command, &result);
    let _ = socket
        .send(frame(ERROR, status.to_string().as_bytes()))
        .await;
    // A normal closure (1000): Go's websocket client reports a close
    // without a code (1005) as an error.
    let close = axum::extract::ws::CloseFrame {
        code: axum::extract::ws::close_code::NORMAL,
        reason: "".into(),
    };
    let _ = socket.send(Message::Close(Some(close))).await;
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
