//! The `skiff-echo` protocol and its clients.
//!
//! For each line a client sends (UDP: each datagram), the server answers one
//! line `<name> <peer_ip>:<peer_port> <line>`: which server answered, and the
//! client address as the server saw it.

pub mod server;

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

/// One answer of an echo server, with the client's view of the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EchoReply {
    /// `--name` of the server that answered.
    pub name: String,
    /// The client address as the server saw it.
    pub client: SocketAddr,
    /// The line echoed back.
    pub line: String,
    /// The peer as the client saw it: TCP `getpeername`, UDP the reply's
    /// source address.
    pub peer: SocketAddr,
    /// The client socket's own address (UDP: unbound, `0.0.0.0:<port>`).
    pub local: SocketAddr,
}

/// Formats a reply line (without the newline).
pub fn format_reply(name: &str, client: SocketAddr, line: &str) -> String {
    format!("{name} {client} {line}")
}

/// Parses `<name> <ip>:<port> <line>` into (name, client, line).
pub fn parse_reply(text: &str) -> io::Result<(String, SocketAddr, String)> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad echo reply {text:?}"),
        )
    };
    let text = text.trim_end_matches(['\r', '\n']);
    let mut parts = text.splitn(3, ' ');
    let name = parts.next().filter(|n| !n.is_empty()).ok_or_else(bad)?;
    let client = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
    let line = parts.next().unwrap_or("");
    Ok((name.to_owned(), client, line.to_owned()))
}

/// A long-lived TCP connection to an echo server.
#[derive(Debug)]
pub struct TcpSession {
    reader: BufReader<TcpStream>,
    peer: SocketAddr,
    local: SocketAddr,
}

impl TcpSession {
    /// Connects with `timeout` for the connect and for each later request.
    /// Create it in the client's netns (`netns.run`); use it from anywhere.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr()?;
        let local = stream.local_addr()?;
        Ok(Self {
            reader: BufReader::new(stream),
            peer,
            local,
        })
    }

    /// Sends one line and reads the answer.
    pub fn request(&mut self, line: &str) -> io::Result<EchoReply> {
        let stream = self.reader.get_mut();
        stream.write_all(format!("{line}\n").as_bytes())?;
        let mut text = String::new();
        if self.reader.read_line(&mut text)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("echo server {} closed the connection", self.peer),
            ));
        }
        let (name, client, line) = parse_reply(&text)?;
        Ok(EchoReply {
            name,
            client,
            line,
            peer: self.peer,
            local: self.local,
        })
    }

    /// `getpeername` of the connection.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn local(&self) -> SocketAddr {
        self.local
    }
}

/// One short TCP connection: connect, one line, answer, close.
pub fn tcp_request(addr: SocketAddr, line: &str, timeout: Duration) -> io::Result<EchoReply> {
    TcpSession::connect(addr, timeout)?.request(line)
}

/// One UDP datagram from a fresh socket (fresh source port) and its answer.
pub fn udp_request(addr: SocketAddr, line: &str, timeout: Duration) -> io::Result<EchoReply> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.set_read_timeout(Some(timeout))?;
    socket.send_to(format!("{line}\n").as_bytes(), addr)?;
    let mut buf = [0u8; 2048];
    let (n, from) = socket.recv_from(&mut buf)?;
    let (name, client, line) = parse_reply(&String::from_utf8_lossy(&buf[..n]))?;
    Ok(EchoReply {
        name,
        client,
        line,
        peer: from,
        local: socket.local_addr()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_round_trip() {
        let client: SocketAddr = "10.244.0.5:40000".parse().unwrap();
        let text = format_reply("b1", client, "hello world");
        assert_eq!(
            parse_reply(&format!("{text}\n")).unwrap(),
            ("b1".into(), client, "hello world".into())
        );
        assert_eq!(parse_reply("b1 1.2.3.4:5").unwrap().2, "");
        assert!(parse_reply("b1 nonsense x").is_err());
        assert!(parse_reply("").is_err());
    }

    #[test]
    fn serves_tcp_and_udp_on_loopback() {
        let server = server::EchoServer::bind(0, "t1", 4).unwrap();
        let port = server.port();
        std::thread::spawn(move || server.run());
        let addr: SocketAddr = (Ipv4Addr::LOCALHOST, port).into();
        let t = Duration::from_secs(5);
        let mut s = TcpSession::connect(addr, t).unwrap();
        for i in 0..3 {
            let r = s.request(&format!("x {i}")).unwrap();
            assert_eq!((r.name.as_str(), r.line.clone()), ("t1", format!("x {i}")));
            assert_eq!(r.client, r.local);
            assert_eq!(r.peer, addr);
        }
        let r = udp_request(addr, "u", t).unwrap();
        assert_eq!(
            (r.name.as_str(), r.line.as_str(), r.peer),
            ("t1", "u", addr)
        );
        assert_eq!(r.client.port(), r.local.port());
    }
}
