//! One HTTP/1.1 connection to one replica, driven by the task that calls it.
//!
//! Raft's replication sends one RPC at a time to each follower, and a write at low
//! concurrency waits for that round trip. hyper's pooled client hands every request to a
//! connection task and the answer back through a channel: two task wakeups per RPC, each a
//! thread wakeup when the runtime's workers are parked, and on a VM an idle vCPU to wake.
//! Here the caller polls the connection itself while it waits for the answer, so a round
//! trip costs the socket and nothing else. The server side is the same axum service.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::FutureExt;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sync_wrapper::SyncWrapper;
use tokio::net::TcpStream;

use super::http::{answer_body, HttpError};

/// Only ever polled through `&mut`, so it need not be `Sync` itself (openraft wants a
/// `Sync` network client).
type Driver = SyncWrapper<Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>>;

/// The open connection: the request handle and the future that does its I/O.
struct Live {
    sender: http1::SendRequest<Full<Bytes>>,
    driver: Driver,
}

impl Live {
    /// `self`, unless the peer closed it while it was idle (a restart, a shutdown). The
    /// connection reads only while polled, and nobody polls an idle one: poll it once now.
    /// (A close still on its way when a request goes out fails that call; the next one
    /// reconnects.)
    fn still_open(mut self) -> Option<Self> {
        if self.sender.is_closed() {
            return None;
        }
        match self.driver.get_mut().as_mut().now_or_never() {
            None => Some(self),
            Some(_) => None,
        }
    }
}

/// A connection to `addr`, opened on first use and again after any failure.
pub struct PeerConnection {
    addr: String,
    live: Option<Live>,
}

impl PeerConnection {
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            live: None,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether a connection is kept (the last call succeeded on it).
    pub fn is_open(&self) -> bool {
        self.live.as_ref().is_some_and(|l| !l.sender.is_closed())
    }

    /// `POST http://{addr}{path}` with `req` as JSON; decode the JSON answer. On any error
    /// the connection is dropped (its state is unknown) and the next call opens a new one.
    pub async fn post<Req, Resp>(
        &mut self,
        path: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, HttpError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let body = serde_json::to_vec(req)?;
        let res = tokio::time::timeout(timeout, self.round_trip(path, body)).await;
        let res = res.unwrap_or_else(|_| {
            Err(HttpError::Timeout {
                addr: self.addr.clone(),
                path: path.to_string(),
                timeout,
            })
        });
        Ok(serde_json::from_slice(&res?)?)
    }

    async fn round_trip(&mut self, path: &str, body: Vec<u8>) -> Result<Bytes, HttpError> {
        // Out of `self` for the whole exchange: a call dropped half-way (a caller's own
        // timeout) leaves no connection in an unknown state behind.
        let live = match self.live.take().and_then(Live::still_open) {
            Some(live) => live,
            None => self.connect().await?,
        };
        let Live { mut sender, driver } = live;
        let mut driver = driver.into_inner();
        let addr = &self.addr;
        let request_err = |message: String| HttpError::Request {
            addr: addr.clone(),
            path: path.to_string(),
            message,
        };
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, addr.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| request_err(e.to_string()))?;
        let (out, driver) = {
            let exchange = async {
                sender
                    .ready()
                    .await
                    .map_err(|e| request_err(e.to_string()))?;
                let resp = sender
                    .send_request(request)
                    .await
                    .map_err(|e| request_err(e.to_string()))?;
                answer_body(resp, addr, path).await
            };
            tokio::pin!(exchange);
            // The connection does its reads and writes only while polled: poll it here,
            // beside the exchange. It may end first having read the whole answer (the peer
            // closed the connection after it): then the exchange has that answer buffered,
            // or, once the connection is dropped, an error.
            let ended = tokio::select! {
                biased;
                out = &mut exchange => Ok(out),
                end = driver.as_mut() => Err(end),
            };
            match ended {
                Ok(out) => (out, Some(driver)),
                Err(end) => {
                    drop(driver);
                    let out = exchange.await.map_err(|e| match end {
                        Err(cause) => request_err(format!("{e} ({cause})")),
                        Ok(()) => e,
                    });
                    (out, None)
                }
            }
        };
        let bytes = out?;
        if let Some(driver) = driver {
            self.live = Some(Live {
                sender,
                driver: SyncWrapper::new(driver),
            });
        }
        Ok(bytes)
    }

    async fn connect(&self) -> Result<Live, HttpError> {
        let connect_err = |message: String| HttpError::Connect {
            addr: self.addr.clone(),
            message,
        };
        let stream = TcpStream::connect(self.addr.as_str())
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| connect_err(e.to_string()))?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        Ok(Live {
            sender,
            driver: SyncWrapper::new(Box::pin(conn)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;
    use axum::routing::post;
    use axum::{Json, Router};

    async fn call(conn: &mut PeerConnection, path: &str, n: u64) -> u64 {
        conn.post(path, &n, Duration::from_secs(5)).await.unwrap()
    }

    async fn serve() -> String {
        let app = Router::new()
            .route(
                "/echo",
                post(|Json(n): Json<u64>| async move { Json(n + 1) }),
            )
            .route(
                "/close",
                post(
                    |Json(n): Json<u64>| async move { ([(header::CONNECTION, "close")], Json(n)) },
                ),
            )
            .route(
                "/slow",
                post(|Json(n): Json<u64>| async move {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Json(n)
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn calls_share_a_connection_and_reopen_one_the_peer_closed() {
        let mut conn = PeerConnection::new(serve().await);
        for n in 0..5u64 {
            let got = call(&mut conn, "/echo", n).await;
            assert_eq!(got, n + 1);
        }
        let got = call(&mut conn, "/close", 7).await;
        assert_eq!(got, 7);
        let got = call(&mut conn, "/echo", 41).await;
        assert_eq!(got, 42);
    }

    #[tokio::test]
    async fn a_late_answer_is_a_timeout_and_the_next_call_works() {
        let mut conn = PeerConnection::new(serve().await);
        let late = conn
            .post::<_, u64>("/slow", &1u64, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(late, HttpError::Timeout { .. }), "{late:?}");
        let got = call(&mut conn, "/echo", 1).await;
        assert_eq!(got, 2);
    }

    #[tokio::test]
    async fn a_call_its_caller_dropped_leaves_no_connection_behind() {
        let mut conn = PeerConnection::new(serve().await);
        let _ = call(&mut conn, "/echo", 1).await;
        assert!(conn.is_open());
        // The caller gives up first (as openraft does at its own time limit).
        let dropped = tokio::time::timeout(
            Duration::from_millis(200),
            conn.post::<_, u64>("/slow", &1u64, Duration::from_secs(60)),
        )
        .await;
        assert!(dropped.is_err());
        assert!(!conn.is_open(), "a half-used connection was kept");
        let got = call(&mut conn, "/echo", 1).await;
        assert_eq!(got, 2);
    }

    #[tokio::test]
    async fn a_connection_the_peer_closed_while_idle_is_replaced() {
        // A peer that answers one request per connection and then closes it, unasked.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut buf = vec![0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let body = b"1";
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(body).await;
                // Kept open by HTTP/1.1 rules; closed shortly after, while idle.
                tokio::time::sleep(Duration::from_millis(50)).await;
                drop(sock);
            }
        });
        let mut conn = PeerConnection::new(addr);
        for _ in 0..3 {
            let got = call(&mut conn, "/any", 0).await;
            assert_eq!(got, 1);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    #[tokio::test]
    async fn an_unreachable_peer_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let mut conn = PeerConnection::new(addr);
        let err = conn
            .post::<_, u64>("/echo", &1u64, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Connect { .. }), "{err:?}");
    }
}
