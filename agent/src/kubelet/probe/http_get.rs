//! A minimal HTTP/1.1 GET for httpGet probes: status code only, headers as
//! Kubernetes sends them (`User-Agent: kube-probe/<version>`, `Accept: */*`,
//! overridable by the probe's httpHeaders, `Host` included). Redirects are
//! not followed: a 3xx counts as success (Kubernetes follows same-host
//! redirects and also treats a final 3xx as success).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head read.
const MAX_HEAD: usize = 16 * 1024;

/// Version in the default User-Agent (the API the agent speaks).
pub const USER_AGENT: &str = "kube-probe/1.32";

#[derive(Debug, Clone)]
pub struct Request {
    pub addr: SocketAddr,
    /// Default `Host` header value (the probe's host or the pod IP).
    pub host: String,
    /// Path and query; `/` when empty.
    pub path: String,
    pub headers: Vec<(String, String)>,
}

/// The request bytes.
pub fn encode(r: &Request) -> Vec<u8> {
    let path = if r.path.starts_with('/') {
        r.path.clone()
    } else {
        format!("/{}", r.path)
    };
    let has = |name: &str| r.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut out = format!("GET {path} HTTP/1.1\r\n");
    if !has("host") {
        let port = r.addr.port();
        out.push_str(&format!("Host: {}:{port}\r\n", r.host));
    }
    if !has("user-agent") {
        out.push_str(&format!("User-Agent: {USER_AGENT}\r\n"));
    }
    if !has("accept") {
        out.push_str("Accept: */*\r\n");
    }
    for (k, v) in &r.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// The status code of `HTTP/1.x <code> <reason>`.
pub fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/1."))?;
    parts.next()?.parse().ok()
}

/// Sends the GET and returns the response status code.
pub async fn get(r: &Request) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(r.addr).await?;
    s.write_all(&encode(r)).await?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    loop {
        if let Some(code) = head
            .iter()
            .position(|b| *b == b'\n')
            .and_then(|_| status_code(&head))
        {
            return Ok(code);
        }
        if head.contains(&b'\n') || head.len() > MAX_HEAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "malformed HTTP response: {:?}",
                    String::from_utf8_lossy(&head[..head.len().min(80)])
                ),
            ));
        }
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before the status line",
            ));
        }
        head.extend_from_slice(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)], path: &str) -> Request {
        Request {
            addr: "10.0.0.5:8080".parse().unwrap(),
            host: "10.0.0.5".into(),
            path: path.into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn sends_kubernetes_default_headers_unless_overridden() {
        let text = String::from_utf8(encode(&req(&[], ""))).unwrap();
        assert_eq!(
            text,
            "GET / HTTP/1.1\r\nHost: 10.0.0.5:8080\r\nUser-Agent: kube-probe/1.32\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n"
        );
        let text = String::from_utf8(encode(&req(
            &[("Host", "example.com"), ("X-Probe", "1")],
            "healthz?full=1",
        )))
        .unwrap();
        assert!(
            text.starts_with("GET /healthz?full=1 HTTP/1.1\r\n"),
            "{text}"
        );
        assert!(text.contains("Host: example.com\r\n") && !text.contains("10.0.0.5"));
        assert!(text.contains("X-Probe: 1\r\n"));
    }

    #[test]
    fn parses_status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_code(b"HTTP/1.0 500 Oops\r\n"), Some(500));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
    }
}
