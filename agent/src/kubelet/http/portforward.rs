//! `GET /portForward/{ns}/{pod}`: `kubectl port-forward`, as the kubelet serves
//! it (the API server relays the upgraded connection here).
//!
//! kubectl 1.31+ opens a WebSocket with the subprotocol
//! `SPDY/3.1+portforward.k8s.io`: its binary messages carry a SPDY/3.1
//! connection ([`super::spdy`]). Each local connection becomes two streams
//! sharing a `requestID` header: `streamType: error`, then `streamType: data`,
//! both naming the pod `port`. The kubelet connects to `127.0.0.1:<port>`
//! inside the pod's network namespace (where the containers listen, loopback
//! included), then copies both ways; a `FIN` from the client half-closes the
//! pod connection, and the pod's close ends the data stream. What goes wrong
//! (nothing listening, say) is written on the error stream, which kubectl
//! prints. SPDY without a WebSocket (kubectl's fallback) is not served.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use super::spdy::{header, Decoder, Encoder, Frame, RST_CANCEL};
use super::{error, KubeletHttp};
use crate::runtime::proc_start_time;
use crate::sandbox::PodNetns;

/// The WebSocket subprotocol: SPDY/3.1 tunnelled in binary messages (KEP-4006).
pub const PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// How long connecting to the pod's port may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read from the pod per DATA frame.
const CHUNK: usize = 32 * 1024;
/// Frames queued towards the client, and chunks towards one pod connection.
const QUEUE: usize = 64;

/// Connects to a port of the pod.
pub type Dial =
    Arc<dyn Fn(u16) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send>> + Send + Sync>;

pub async fn handler(
    State(s): State<KubeletHttp>,
    Path((ns, pod)): Path<(String, String)>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "port-forward needs a WebSocket upgrade ({PROTOCOL}); plain SPDY is not served"
            ),
        );
    };
    let Some(info) = s.pods.pod(&ns, &pod) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("pod {ns}/{pod} is not on this node"),
        );
    };
    let Some(target) = info
        .containers
        .iter()
        .filter(|c| c.running)
        .find_map(|c| s.pods.exec_target(&ns, &pod, &c.name))
    else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("pod {ns}/{pod} has no running container"),
        );
    };
    // The pod's network namespace, held open for the session: it outlives container
    // restarts, and a pid reused later cannot redirect a dial.
    let netns_path = std::path::PathBuf::from(format!("/proc/{}/ns/net", target.pid));
    let netns = match PodNetns::open(&netns_path) {
        Ok(Some(n)) if proc_start_time(target.pid) == Some(target.pid_start) => Arc::new(n),
        Ok(_) => {
            let msg = format!("pod {ns}/{pod}: its container is no longer running");
            return error(StatusCode::BAD_REQUEST, msg);
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let what = format!("port-forward {ns}/{pod}");
    let dial: Dial = Arc::new(move |port| Box::pin(dial_in(netns.clone(), port)));
    ws.protocols([PROTOCOL])
        .on_upgrade(move |socket| relay(socket, dial, what))
}

/// Connects to `127.0.0.1:port` in the network namespace `netns`.
async fn dial_in(netns: Arc<PodNetns>, port: u16) -> io::Result<TcpStream> {
    let std_stream = tokio::task::spawn_blocking(move || {
        netns
            .run(|| {
                let to = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                std::net::TcpStream::connect_timeout(&to, DIAL_TIMEOUT)
            })
            .map_err(io::Error::other)?
    })
    .await
    .map_err(io::Error::other)??;
    std_stream.set_nonblocking(true)?;
    TcpStream::from_std(std_stream)
}

/// Moves the WebSocket's bytes in and out of a [`session`]. Reading and writing are
/// separate tasks, so frames towards the client always drain while the session waits on
/// a pod connection.
async fn relay(socket: WebSocket, dial: Dial, what: String) {
    let (to_session, incoming) = mpsc::channel::<Vec<u8>>(QUEUE);
    let (outgoing, mut from_session) = mpsc::channel::<Vec<u8>>(QUEUE);
    let mut session = tokio::spawn(session(incoming, outgoing, dial, what.clone()));
    let (mut sink, mut stream) = socket.split();
    let mut writer = tokio::spawn(async move {
        while let Some(frame) = from_session.recv().await {
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let reader = async {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Binary(b) if to_session.send(b.to_vec()).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    tokio::select! {
        _ = reader => {}
        _ = &mut writer => {}
        _ = &mut session => {}
    }
    session.abort();
    writer.abort();
    log::debug!("{what}: closed");
}

/// One SPDY connection: `incoming` are the client's bytes, `outgoing` the
/// server's frames. Ends (and drops every pod connection) when either closes.
pub async fn session(
    mut incoming: mpsc::Receiver<Vec<u8>>,
    outgoing: mpsc::Sender<Vec<u8>>,
    dial: Dial,
    what: String,
) {
    let mut decoder = Decoder::default();
    let mut encoder = Encoder::default();
    // Error streams by request, until their data stream comes.
    let mut errors: HashMap<String, u32> = HashMap::new();
    // Data streams: where the client's bytes for the pod go, and their tasks.
    let mut to_pod: HashMap<u32, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut tasks: HashMap<u32, AbortHandle> = HashMap::new();
    let mut forwards = JoinSet::new();
    loop {
        let bytes = tokio::select! {
            b = incoming.recv() => match b {
                Some(b) => b,
                None => return,
            },
            // Finished connections leave the set (and the maps).
            Some(done) = forwards.join_next() => {
                let id = match &done {
                    Ok(stream) => *stream,
                    Err(e) => {
                        let gone = e.id();
                        tasks.iter().find(|(_, h)| h.id() == gone).map_or(0, |(s, _)| *s)
                    }
                };
                tasks.remove(&id);
                to_pod.remove(&id);
                continue;
            }
        };
        decoder.push(&bytes);
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    log::warn!("{what}: {e}");
                    return;
                }
            };
            let reply = match frame {
                Frame::SynStream { id, headers, .. } => {
                    if outgoing.send(encoder.syn_reply(id)).await.is_err() {
                        return;
                    }
                    let request = header(&headers, "requestid").unwrap_or("").to_string();
                    let port = header(&headers, "port").and_then(|p| p.parse::<u16>().ok());
                    match header(&headers, "streamtype") {
                        Some("error") => {
                            errors.insert(request, id);
                            None
                        }
                        Some("data") => {
                            let (tx, rx) = mpsc::channel(QUEUE);
                            to_pod.insert(id, tx);
                            let stream = Stream {
                                data: id,
                                error: errors.remove(&request),
                                out: outgoing.clone(),
                            };
                            let task = forwards.spawn(stream.forward(port, rx, dial.clone()));
                            tasks.insert(id, task);
                            None
                        }
                        _ => Some(Encoder::rst_stream(id, RST_CANCEL)),
                    }
                }
                Frame::Data { id, fin, data } => {
                    if let Some(tx) = to_pod.get(&id) {
                        if !data.is_empty() && tx.send(data).await.is_err() {
                            to_pod.remove(&id);
                        }
                    }
                    if fin {
                        to_pod.remove(&id);
                    }
                    None
                }
                // A reset stream is gone both ways: its pod connection closes.
                Frame::RstStream { id } => {
                    to_pod.remove(&id);
                    if let Some(task) = tasks.remove(&id) {
                        task.abort();
                    }
                    None
                }
                Frame::Ping(n) => Some(Encoder::ping(n)),
                Frame::GoAway => return,
                Frame::Ignored => None,
            };
            if let Some(frame) = reply {
                if outgoing.send(frame).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// One forwarded connection: its data stream and (if the client opened one)
/// its error stream.
struct Stream {
    data: u32,
    error: Option<u32>,
    out: mpsc::Sender<Vec<u8>>,
}

impl Stream {
    /// Forwards one connection; returns its data stream's id when done.
    async fn forward(
        self,
        port: Option<u16>,
        mut from_client: mpsc::Receiver<Vec<u8>>,
        dial: Dial,
    ) -> u32 {
        let conn = match port {
            None => Err(io::Error::other("no valid port requested")),
            Some(p) => tokio::time::timeout(DIAL_TIMEOUT, dial(p))
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
        };
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                let port = port.map_or("?".to_string(), |p| p.to_string());
                let msg = format!("error forwarding port {port} to pod: {e}");
                self.close(Some(&msg)).await;
                return self.data;
            }
        };
        let _ = conn.set_nodelay(true);
        let (mut rd, mut wr) = conn.into_split();
        let up = async {
            while let Some(chunk) = from_client.recv().await {
                if wr.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        };
        let out = &self.out;
        let data = self.data;
        let down = async {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if out
                            .send(Encoder::data(data, false, &buf[..n]))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        };
        // The pod's side ending ends the stream; the client's only half-closes.
        tokio::pin!(up, down);
        let mut up_done = false;
        loop {
            tokio::select! {
                _ = &mut up, if !up_done => up_done = true,
                _ = &mut down => break,
            }
        }
        self.close(None).await;
        self.data
    }

    /// Ends the data stream, and the error stream with `error` written on it.
    async fn close(&self, error: Option<&str>) {
        if let Some(e) = self.error {
            let msg = error.unwrap_or("").as_bytes();
            let _ = self.out.send(Encoder::data(e, true, msg)).await;
        }
        let _ = self.out.send(Encoder::data(self.data, true, &[])).await;
    }
}

#[cfg(test)]
mod tests;
