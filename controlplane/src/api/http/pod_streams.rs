//! `GET|POST /api/v1/namespaces/{ns}/pods/{name}/exec` (`kubectl exec`),
//! `…/attach` (`kubectl attach`, `kubectl run -i`) and `…/portforward`
//! (`kubectl port-forward`). As the kube-apiserver does, the API server relays
//! the upgrade: it sends the client's WebSocket handshake to the kubelet of the
//! pod's node (`/exec/{ns}/{pod}/{container}?…`, `/attach/…` or
//! `/portForward/{ns}/{pod}?…`), returns the kubelet's `101 Switching
//! Protocols` to the client, then copies bytes both ways until either side
//! closes. The kubelet answers the handshake itself (accept key, channel or
//! SPDY-tunnel subprotocol), so the relay does not read the frames. Plain
//! SPDY, kubectl's fallback, is not served: a request without a WebSocket
//! upgrade gets 400.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::pod_log::{forwarded_query, kubelet_of, locate, pods_resource, reason, segment};
use crate::api::error::ApiError;
use crate::api::objects::Objects;

/// How long the kubelet may take to connect and answer the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest kubelet response head (and error body) read.
const MAX_HEAD: usize = 64 * 1024;

/// The handshake headers passed on to the kubelet.
const FORWARDED: [header::HeaderName; 3] = [
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_PROTOCOL,
];
/// The kubelet's `101` headers passed back to the client.
const RETURNED: [header::HeaderName; 4] = [
    header::UPGRADE,
    header::CONNECTION,
    header::SEC_WEBSOCKET_ACCEPT,
    header::SEC_WEBSOCKET_PROTOCOL,
];

fn is_websocket_upgrade(h: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        })
    };
    has(header::CONNECTION, "upgrade") && has(header::UPGRADE, "websocket")
}

/// The pod subresources relayed to the kubelet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Exec,
    Attach,
    PortForward,
}

/// Relays the exec or port-forward of pod `ns/name`.
pub async fn serve(
    objects: &Objects,
    ns: &str,
    name: &str,
    req: Request,
    stream: Stream,
) -> Result<Response, ApiError> {
    if !is_websocket_upgrade(req.headers()) {
        return Err(ApiError::bad_request(match stream {
            Stream::Exec | Stream::Attach => "pods/exec and pods/attach need a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io); SPDY is not supported",
            Stream::PortForward => "pods/portforward needs a WebSocket upgrade (SPDY/3.1+portforward.k8s.io); plain SPDY is not supported",
        }));
    }
    let raw_query = req.uri().query().map(str::to_string);
    let query = forwarded_query(raw_query.as_deref());
    let (path, addr, what) = match stream {
        Stream::Exec | Stream::Attach => {
            let (container, addr) = locate(objects, ns, name, raw_query.as_deref()).await?;
            let (n, p, c) = (segment(ns), segment(name), segment(&container));
            let verb = if stream == Stream::Exec {
                "exec"
            } else {
                "attach"
            };
            let what = format!("{verb} {ns}/{name}/{container}");
            (format!("/{verb}/{n}/{p}/{c}{query}"), addr, what)
        }
        Stream::PortForward => {
            let pod = objects.get(pods_resource()?, Some(ns), name).await?;
            let addr = kubelet_of(objects, &pod, name).await?;
            let (n, p) = (segment(ns), segment(name));
            let what = format!("port-forward {ns}/{name}");
            (format!("/portForward/{n}/{p}{query}"), addr, what)
        }
    };
    let mut head = format!(
        "{} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n",
        req.method()
    );
    for name in FORWARDED {
        for v in req.headers().get_all(&name) {
            if let Ok(v) = v.to_str() {
                head.push_str(&format!("{name}: {v}\r\n"));
            }
        }
    }
    head.push_str("\r\n");
    let unreachable =
        |e: String| ApiError::new(503, "ServiceUnavailable", format!("kubelet {addr}: {e}"));
    let (mut kubelet, status, headers, rest) =
        tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&addr, head.as_bytes()))
            .await
            .map_err(|_| unreachable(format!("no answer to the {what} handshake")))?
            .map_err(|e| unreachable(e.to_string()))?;
    if status != 101 {
        let body = String::from_utf8_lossy(&rest).trim().to_string();
        return Err(ApiError::new(
            status,
            reason(status),
            if body.is_empty() {
                format!("kubelet {addr} refused the {what} with status {status}")
            } else {
                body
            },
        ));
    }
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (k, v) in headers {
        if RETURNED.contains(&k) {
            resp.headers_mut().append(k, v);
        }
    }
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                log::warn!("{what}: client upgrade failed: {e}");
                return;
            }
        };
        let mut client = TokioIo::new(upgraded);
        if !rest.is_empty() && client.write_all(&rest).await.is_err() {
            return;
        }
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut kubelet).await {
            log::debug!("{what}: relay ended: {e}");
        }
    });
    Ok(resp)
}

/// Sends `head` to the kubelet at `addr` and reads its response head:
/// (stream, status, headers, bytes read past the head).
async fn handshake(
    addr: &str,
    head: &[u8],
) -> std::io::Result<(
    TcpStream,
    u16,
    Vec<(header::HeaderName, HeaderValue)>,
    Vec<u8>,
)> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    s.write_all(head).await?;
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::other("response head too large"));
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other(
                "connection closed during the handshake",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let mut hdrs = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut hdrs);
    parsed
        .parse(&buf[..end])
        .map_err(|e| std::io::Error::other(format!("bad response head: {e}")))?;
    let status = parsed.code.unwrap_or(502);
    let headers = parsed
        .headers
        .iter()
        .filter_map(|h| {
            let name = header::HeaderName::from_bytes(h.name.as_bytes()).ok()?;
            Some((name, HeaderValue::from_bytes(h.value).ok()?))
        })
        .collect();
    let mut rest = buf[end..].to_vec();
    if status != 101 {
        // An error: its body (its Content-Length, else until the kubelet
        // closes or a second passes; bounded either way).
        let length = parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| {
                std::str::from_utf8(h.value)
                    .ok()?
                    .trim()
                    .parse::<usize>()
                    .ok()
            })
            .map_or(MAX_HEAD, |n| n.min(MAX_HEAD));
        let mut chunk = [0u8; 4096];
        while rest.len() < length {
            match tokio::time::timeout(Duration::from_secs(1), s.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => rest.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
    }
    rest.truncate(MAX_HEAD);
    Ok((s, status, headers, rest))
}
