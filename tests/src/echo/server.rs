//! The echo server behind `skiff-echo`: TCP and UDP on one port.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::format_reply;

/// A bound (not yet running) echo server.
#[derive(Debug)]
pub struct EchoServer {
    name: String,
    tcp: TcpListener,
    udp: UdpSocket,
    max_conns: usize,
}

impl EchoServer {
    /// Binds TCP and UDP on `0.0.0.0:port` (0: any free port, the same for
    /// both). At most `max_conns` TCP connections are served at once; more
    /// are closed right away.
    pub fn bind(port: u16, name: &str, max_conns: usize) -> io::Result<Self> {
        let tcp = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
        let port = tcp.local_addr()?.port();
        let udp = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port))?;
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

    /// Serves forever (UDP on its own thread, a thread per TCP connection).
    pub fn run(self) -> io::Result<()> {
        let name: Arc<str> = self.name.into();
        let udp_name = name.clone();
        let udp = self.udp;
        std::thread::spawn(move || serve_udp(&udp, &udp_name));
        let live = Arc::new(AtomicUsize::new(0));
        for stream in self.tcp.incoming() {
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("skiff-echo {name}: accept: {e}");
                    continue;
                }
            };
            if live.fetch_add(1, Ordering::SeqCst) >= self.max_conns {
                live.fetch_sub(1, Ordering::SeqCst);
                eprintln!(
                    "skiff-echo {name}: over {} connections, closing",
                    self.max_conns
                );
                continue;
            }
            let (name, live) = (name.clone(), live.clone());
            std::thread::spawn(move || {
                if let Err(e) = serve_tcp(stream, &name) {
                    eprintln!("skiff-echo {name}: connection: {e}");
                }
                live.fetch_sub(1, Ordering::SeqCst);
            });
        }
        Ok(())
    }
}

fn serve_tcp(stream: TcpStream, name: &str) -> io::Result<()> {
    let peer: SocketAddr = stream.peer_addr()?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let reply = format_reply(name, peer, line.trim_end_matches(['\r', '\n']));
        writer.write_all(format!("{reply}\n").as_bytes())?;
    }
}

fn serve_udp(socket: &UdpSocket, name: &str) {
    let mut buf = [0u8; 2048];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("skiff-echo {name}: udp recv: {e}");
                continue;
            }
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        let reply = format_reply(name, peer, text.trim_end_matches(['\r', '\n']));
        if let Err(e) = socket.send_to(format!("{reply}\n").as_bytes(), peer) {
            eprintln!("skiff-echo {name}: udp send to {peer}: {e}");
        }
    }
}
