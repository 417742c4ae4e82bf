//! The echo server behind `skiff-echo`: TCP and UDP on one port, served by one
//! event-loop thread (a tokio current-thread runtime), so a connection costs an
//! accept and a task, not a thread: the connection-rate benchmark measures the
//! data path, not thread creation in the server.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::format_reply;

/// Longest line a TCP client may send; a longer one closes the connection.
const MAX_LINE: usize = 16 << 20;

/// A bound (not yet running) echo server.
#[derive(Debug)]
pub struct EchoServer {
    name: String,
    tcp: std::net::TcpListener,
    udp: std::net::UdpSocket,
    max_conns: usize,
}

impl EchoServer {
    /// Binds TCP and UDP on `0.0.0.0:port` (0: any free port, the same for
    /// both). At most `max_conns` TCP connections are served at once; more
    /// are closed right away.
    pub fn bind(port: u16, name: &str, max_conns: usize) -> io::Result<Self> {
        let tcp = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
        let port = tcp.local_addr()?.port();
        let udp = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
        tcp.set_nonblocking(true)?;
        udp.set_nonblocking(true)?;
        Ok(Self {
            name: name.to_owned(),
            tcp,
            udp,
            max_conns,
        })
    }

    pub fn port(&self) -> u16 {
        self.tcp.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves forever on the calling thread.
    pub fn run(self) -> io::Result<()> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, self.serve())
    }

    async fn serve(self) -> io::Result<()> {
        let name: Rc<str> = self.name.into();
        let tcp = TcpListener::from_std(self.tcp)?;
        let udp = UdpSocket::from_std(self.udp)?;
        tokio::task::spawn_local(serve_udp(udp, name.clone()));
        let live = Arc::new(AtomicUsize::new(0));
        loop {
            let (stream, peer) = match tcp.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // E.g. out of descriptors: wait a little instead of spinning.
                    eprintln!("skiff-echo {name}: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            if live.fetch_add(1, Ordering::Relaxed) >= self.max_conns {
                live.fetch_sub(1, Ordering::Relaxed);
                eprintln!(
                    "skiff-echo {name}: over {} connections, closing",
                    self.max_conns
                );
                continue;
            }
            let (name, live) = (name.clone(), live.clone());
            tokio::task::spawn_local(async move {
                if let Err(e) = serve_tcp(stream, peer, &name).await {
                    eprintln!("skiff-echo {name}: connection: {e}");
                }
                live.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }
}

async fn serve_tcp(stream: TcpStream, peer: SocketAddr, name: &str) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        if n == MAX_LINE && line.last() != Some(&b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line over {MAX_LINE} bytes"),
            ));
        }
        let text = String::from_utf8_lossy(&line);
        let reply = format_reply(name, peer, text.trim_end_matches(['\r', '\n']));
        writer.write_all(format!("{reply}\n").as_bytes()).await?;
    }
}

async fn serve_udp(socket: UdpSocket, name: Rc<str>) {
    let mut buf = [0u8; 2048];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("skiff-echo {name}: udp recv: {e}");
                continue;
            }
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        let reply = format_reply(&name, peer, text.trim_end_matches(['\r', '\n']));
        if let Err(e) = socket.send_to(format!("{reply}\n").as_bytes(), peer).await {
            eprintln!("skiff-echo {name}: udp send to {peer}: {e}");
        }
    }
}
