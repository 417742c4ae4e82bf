//! `GET|POST /attach/{ns}/{pod}/{container}?stdin=…&stdout=…&stderr=…&tty=…`:
//! `kubectl attach`, and `kubectl run -i`, over the channel protocols of
//! [`super::exec`] (the API server relays the upgraded connection here).
//!
//! The container's output comes from its log as the shim writes it (stdout on
//! channel 1, stderr on 2, both on 1 with a terminal), followed until the
//! instance ends; then the final `Success` status goes on channel 3. A
//! container whose spec asks for stdin (`kubectl run -i`) shows its output
//! from the start of the instance, so nothing printed before kubectl attached
//! is lost; others show what comes after. Not yet: the client's stdin reaches
//! no container (containers run with stdin closed, and no pty), so input and
//! resize messages are read and dropped.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::exec::{finish, stream_flags, PROTOCOLS};
use super::{error, instance_running, parse_query_all, KubeletHttp};
use crate::kubelet::logs::{self, LogOptions};

const STDOUT: u8 = 1;
const STDERR: u8 = 2;

/// The streams asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Streams {
    stdout: bool,
    stderr: bool,
    tty: bool,
}

impl Streams {
    fn from_query(pairs: &[(String, String)]) -> Result<Self, String> {
        let [_, stdout, stderr, tty] = stream_flags(pairs)?;
        Ok(Self {
            stdout,
            stderr,
            tty,
        })
    }

    /// The channel a log chunk goes out on, if it is wanted: with a terminal there is
    /// one output stream.
    fn route(&self, chunk: &mut [u8]) -> bool {
        match chunk.first().copied() {
            Some(STDERR) if self.tty => {
                chunk[0] = STDOUT;
                self.stdout
            }
            Some(STDOUT) => self.stdout,
            Some(STDERR) => self.stderr,
            _ => false,
        }
    }
}

pub async fn handler(
    State(s): State<KubeletHttp>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        let msg = "attach needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io)";
        return error(StatusCode::BAD_REQUEST, msg.into());
    };
    let streams = match Streams::from_query(&parse_query_all(q.as_deref())) {
        Ok(s) => s,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let not_found = || {
        let msg = format!("container \"{container}\" in pod \"{pod}\" not found");
        error(StatusCode::NOT_FOUND, msg)
    };
    let Some(info) = s.pods.pod(&ns, &pod) else {
        return not_found();
    };
    let Some(c) = info.containers.iter().find(|c| c.name == container) else {
        return not_found();
    };
    if !c.running {
        let msg = format!("container \"{container}\" in pod \"{pod}\" is not running");
        return error(StatusCode::BAD_REQUEST, msg);
    }
    let path = logs::path(&s.state_dir, &info.uid, &container, c.restart_count);
    let opts = LogOptions {
        follow: true,
        tail_lines: if c.stdin { None } else { Some(0) },
        channels: true,
        ..LogOptions::default()
    };
    let (uid, restart) = (info.uid.clone(), c.restart_count);
    let running = instance_running(&s, (ns, pod), uid, container, restart);
    let output = logs::stream(path, opts, running);
    ws.protocols(PROTOCOLS)
        .on_upgrade(move |socket| session(socket, output, streams))
}

/// Sends the output until the instance ends (then the final status) or the client goes.
async fn session(
    mut socket: WebSocket,
    mut output: tokio::sync::mpsc::Receiver<Vec<u8>>,
    streams: Streams,
) {
    loop {
        tokio::select! {
            chunk = output.recv() => match chunk {
                Some(mut chunk) => {
                    if streams.route(&mut chunk)
                        && socket.send(Message::Binary(chunk.into())).await.is_err()
                    {
                        return;
                    }
                }
                None => break,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                // Stdin and resizes: no container takes them (see the module).
                Some(Ok(_)) => {}
            },
        }
    }
    finish(&mut socket, &json!({"metadata": {}, "status": "Success"})).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        parse_query_all(Some(q))
    }

    #[test]
    fn streams_pick_channels_and_a_terminal_merges_them() {
        assert!(Streams::from_query(&pairs("container=c")).is_err());
        let s = Streams::from_query(&pairs("stdin=true&stdout=true&stderr=true")).unwrap();
        let (mut out, mut err) = (vec![STDOUT, b'a'], vec![STDERR, b'b']);
        assert!(s.route(&mut out) && s.route(&mut err));
        assert_eq!((out[0], err[0]), (STDOUT, STDERR));
        let tty = Streams::from_query(&pairs("stdout=true&tty=true")).unwrap();
        let mut err = vec![STDERR, b'b'];
        assert!(tty.route(&mut err));
        assert_eq!(err[0], STDOUT);
        let quiet = Streams::from_query(&pairs("stdin=true&stdout=true")).unwrap();
        assert!(!quiet.route(&mut [STDERR, b'x']));
    }
}
