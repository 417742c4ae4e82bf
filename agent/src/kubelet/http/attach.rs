//! `GET|POST /attach/{ns}/{pod}/{container}?stdin=…&stdout=…&stderr=…&tty=…`:
//! `kubectl attach`, and `kubectl run -i`, over the channel protocols of
//! [`super::exec`] (the API server relays the upgraded connection here).
//!
//! The container's output comes from its log as the shim writes it (stdout on
//! channel 1, stderr on 2, both on 1 with a terminal), followed until the
//! instance ends; then the final `Success` status goes on channel 3. A
//! container whose spec asks for stdin or a terminal (`kubectl run -i`, `-t`)
//! shows its output from the start of the instance, so nothing printed before
//! kubectl attached is lost; others show what comes after.
//!
//! Input: with `stdin=true`, channel 0 and resizes (channel 4) go to the
//! container's console, which its shim serves ([`crate::runtime::console`]);
//! v5's close of channel 0 ends the input (with `stdinOnce`, the container's
//! stdin closes; a terminal gets ^D). A container without stdin in its spec
//! takes no input, as in Kubernetes.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use tokio::io::AsyncWriteExt as _;
use tokio::net::UnixStream;

use super::exec::{finish, stream_flags, PROTOCOLS};
use super::{error, instance_running, parse_query_all, KubeletHttp};
use crate::kubelet::layout;
use crate::kubelet::logs::{self, LogOptions};
use crate::runtime::console::{self, frame::Frame};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// The streams asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Streams {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
}

impl Streams {
    fn from_query(pairs: &[(String, String)]) -> Result<Self, String> {
        let [stdin, stdout, stderr, tty] = stream_flags(pairs)?;
        Ok(Self {
            stdin,
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
    let input = if streams.stdin && c.stdin {
        let id = layout::container_id(&info.uid, &container, c.restart_count);
        let dir = layout::containers_dir(&s.state_dir).join(id);
        match console::connect(&dir).await {
            Ok(conn) => Some(conn),
            Err(e) => {
                let msg = format!("container \"{container}\" in pod \"{pod}\": console: {e}");
                return error(StatusCode::INTERNAL_SERVER_ERROR, msg);
            }
        }
    } else {
        None
    };
    let (uid, restart) = (info.uid.clone(), c.restart_count);
    let running = instance_running(&s, (ns, pod), uid, container, restart);
    let output = logs::stream(path, opts, running);
    ws.protocols(PROTOCOLS)
        .on_upgrade(move |socket| session(socket, output, input, streams))
}

/// What a client's message asks of the console, if anything.
fn console_frame(msg: &[u8]) -> Option<Frame> {
    match msg {
        [STDIN, data @ ..] if !data.is_empty() => Some(Frame::Stdin(data.to_vec())),
        [CLOSE, STDIN] => Some(Frame::CloseStdin),
        [RESIZE, json @ ..] => {
            let v: serde_json::Value = serde_json::from_slice(json).ok()?;
            let dim = |k: &str| Some(v.get(k)?.as_u64()?.min(u64::from(u16::MAX)) as u16);
            Some(Frame::Resize {
                cols: dim("Width")?,
                rows: dim("Height")?,
            })
        }
        _ => None,
    }
}

/// Sends the output until the instance ends (then the final status) or the client goes;
/// passes the client's input to the console meanwhile.
async fn session(
    mut socket: WebSocket,
    mut output: tokio::sync::mpsc::Receiver<Vec<u8>>,
    mut input: Option<UnixStream>,
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
                Some(Ok(Message::Binary(b))) => {
                    let frame = console_frame(&b);
                    if let (Some(conn), Some(f)) = (input.as_mut(), frame) {
                        // The container ended or its console went: input goes nowhere.
                        if conn.write_all(&f.encode()).await.is_err() {
                            input = None;
                        }
                    }
                }
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
    fn client_messages_become_console_frames() {
        assert_eq!(
            console_frame(b"\x00hi\n"),
            Some(Frame::Stdin(b"hi\n".to_vec()))
        );
        assert_eq!(console_frame(&[STDIN]), None);
        assert_eq!(console_frame(&[CLOSE, STDIN]), Some(Frame::CloseStdin));
        assert_eq!(console_frame(&[CLOSE, STDOUT]), None);
        assert_eq!(
            console_frame(b"\x04{\"Width\":80,\"Height\":24}"),
            Some(Frame::Resize { cols: 80, rows: 24 })
        );
        assert_eq!(console_frame(b"\x04not json"), None);
        assert_eq!(console_frame(&[STDERR, b'x']), None);
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
