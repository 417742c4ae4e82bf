use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::time::timeout;

use super::*;

const WAIT: Duration = Duration::from_secs(10);

/// A pod port: reads until the client half-closes, answers `echo:<what it read>`.
async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                c.read_to_end(&mut got).await.unwrap();
                c.write_all(b"echo:").await.unwrap();
                c.write_all(&got).await.unwrap();
            });
        }
    });
    addr
}

/// Port 80 is the echo server; any other port refuses.
fn dial_to(echo: SocketAddr) -> Dial {
    Arc::new(move |port| {
        Box::pin(async move {
            if port == 80 {
                TcpStream::connect(echo).await
            } else {
                Err(io::ErrorKind::ConnectionRefused.into())
            }
        })
    })
}

struct Harness {
    client: Encoder,
    to_session: mpsc::Sender<Vec<u8>>,
    from_session: mpsc::Receiver<Vec<u8>>,
    frames: Decoder,
}

impl Harness {
    async fn start() -> Self {
        let (to_session, incoming) = mpsc::channel(QUEUE);
        let (outgoing, from_session) = mpsc::channel(QUEUE);
        let dial = dial_to(echo_server().await);
        tokio::spawn(session(incoming, outgoing, dial, "test".into()));
        Self {
            client: Encoder::default(),
            to_session,
            from_session,
            frames: Decoder::default(),
        }
    }

    async fn open(&mut self, id: u32, kind: &str, port: &str, request: &str) {
        let h = [("streamType", kind), ("port", port), ("requestID", request)];
        let f = self.client.syn_stream(id, &h);
        self.to_session.send(f).await.unwrap();
    }

    async fn send(&mut self, frame: Vec<u8>) {
        self.to_session.send(frame).await.unwrap();
    }

    /// The next frame from the server: `(control type or 0 for data, frame)`.
    async fn next(&mut self) -> (u16, Frame) {
        let raw = timeout(WAIT, self.from_session.recv())
            .await
            .expect("a frame in time")
            .expect("the session is running");
        let kind = if raw[0] & 0x80 != 0 {
            u16::from_be_bytes([raw[2], raw[3]])
        } else {
            0
        };
        self.frames.push(&raw);
        (kind, self.frames.next_frame().unwrap().unwrap())
    }
}

#[tokio::test]
async fn a_connection_is_forwarded_and_closed_both_ways() {
    let mut h = Harness::start().await;
    h.open(1, "error", "80", "0").await;
    h.open(3, "data", "80", "0").await;
    assert_eq!(h.next().await.0, 2, "SYN_REPLY to the error stream");
    assert_eq!(h.next().await.0, 2, "SYN_REPLY to the data stream");
    h.send(Encoder::data(3, false, b"hello ")).await;
    h.send(Encoder::data(3, true, b"pod")).await;
    let mut got = Vec::new();
    let mut ended = Vec::new();
    while ended.len() < 2 {
        match h.next().await.1 {
            Frame::Data { id: 3, fin, data } => {
                got.extend(data);
                if fin {
                    ended.push(3);
                }
            }
            Frame::Data {
                id: 1,
                fin: true,
                data,
            } => {
                assert!(
                    data.is_empty(),
                    "no error: {}",
                    String::from_utf8_lossy(&data)
                );
                ended.push(1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, b"echo:hello pod");
}

#[tokio::test]
async fn a_closed_port_is_reported_on_the_error_stream() {
    let mut h = Harness::start().await;
    h.open(1, "error", "8081", "7").await;
    h.open(3, "data", "8081", "7").await;
    h.next().await;
    h.next().await;
    let (_, f) = h.next().await;
    let Frame::Data {
        id: 1,
        fin: true,
        data,
    } = f
    else {
        panic!("{f:?}");
    };
    let msg = String::from_utf8(data).unwrap();
    assert!(msg.contains("error forwarding port 8081"), "{msg}");
    assert!(matches!(
        h.next().await.1,
        Frame::Data {
            id: 3,
            fin: true,
            ..
        }
    ));
}

#[tokio::test]
async fn pings_are_answered_and_unknown_streams_refused() {
    let mut h = Harness::start().await;
    h.send(Encoder::ping(9)).await;
    assert_eq!(h.next().await.1, Frame::Ping(9));
    h.open(5, "bogus", "80", "1").await;
    assert_eq!(h.next().await.0, 2);
    assert_eq!(h.next().await.1, Frame::RstStream { id: 5 });
}
