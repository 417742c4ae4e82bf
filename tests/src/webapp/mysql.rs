//! A small MySQL/MariaDB client: protocol 4.1 handshake with `mysql_native_password`
//! (including an auth switch), `COM_QUERY` and text result sets. Enough for the demo's web
//! tier to read rows; no TLS, no prepared statements.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use sha1::{Digest, Sha1};

const CLIENT_LONG_PASSWORD: u32 = 1;
const CLIENT_CONNECT_WITH_DB: u32 = 1 << 3;
const CLIENT_PROTOCOL_41: u32 = 1 << 9;
const CLIENT_TRANSACTIONS: u32 = 1 << 13;
const CLIENT_SECURE_CONNECTION: u32 = 1 << 15;
const CLIENT_PLUGIN_AUTH: u32 = 1 << 19;
const NATIVE: &str = "mysql_native_password";
const MAX_PACKET: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum MysqlError {
    #[error("talking to {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server error {code}: {message}")]
    Server { code: u16, message: String },
    #[error("protocol: {0}")]
    Protocol(String),
}

/// One connection.
pub struct Conn {
    sock: TcpStream,
    addr: SocketAddr,
    seq: u8,
}

/// A text result set: column names and rows (`None` is SQL NULL).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// `SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password)))`.
pub fn native_scramble(password: &str, scramble: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let p1 = Sha1::digest(password.as_bytes());
    let p2 = Sha1::digest(p1);
    let mut h = Sha1::new();
    h.update(scramble);
    h.update(p2);
    let mix = h.finalize();
    p1.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect()
}

/// A length-encoded integer at the start of `b`: (value, bytes used).
pub fn lenenc(b: &[u8]) -> Option<(u64, usize)> {
    let first = *b.first()?;
    let wide = |n: usize| {
        let bytes = b.get(1..1 + n)?;
        let mut v = 0u64;
        for (i, x) in bytes.iter().enumerate() {
            v |= u64::from(*x) << (8 * i);
        }
        Some((v, 1 + n))
    };
    match first {
        0..=0xfa => Some((u64::from(first), 1)),
        0xfc => wide(2),
        0xfd => wide(3),
        0xfe => wide(8),
        _ => None,
    }
}

/// A length-encoded string (or NULL, 0xfb) at the start of `b`: (value, bytes used).
fn lenenc_str(b: &[u8]) -> Option<(Option<String>, usize)> {
    if b.first() == Some(&0xfb) {
        return Some((None, 1));
    }
    let (n, used) = lenenc(b)?;
    let s = b.get(used..used + usize::try_from(n).ok()?)?;
    Some((
        Some(String::from_utf8_lossy(s).into_owned()),
        used + s.len(),
    ))
}

fn server_error(p: &[u8]) -> MysqlError {
    let code = u16::from_le_bytes([
        p.get(1).copied().unwrap_or(0),
        p.get(2).copied().unwrap_or(0),
    ]);
    // Protocol 4.1: '#' and a five-character SQL state precede the message.
    let msg = if p.get(3) == Some(&b'#') {
        p.get(9..)
    } else {
        p.get(3..)
    };
    MysqlError::Server {
        code,
        message: String::from_utf8_lossy(msg.unwrap_or_default()).into_owned(),
    }
}

impl Conn {
    /// Connect and authenticate as `user` with `password`, using database `db`.
    pub fn connect(
        addr: SocketAddr,
        user: &str,
        password: &str,
        db: &str,
        timeout: Duration,
    ) -> Result<Conn, MysqlError> {
        let io = |source| MysqlError::Io { addr, source };
        let sock = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
        sock.set_read_timeout(Some(timeout)).map_err(io)?;
        sock.set_write_timeout(Some(timeout)).map_err(io)?;
        let mut c = Conn { sock, addr, seq: 0 };
        let hello = c.read_packet()?;
        if hello.first() == Some(&0xff) {
            return Err(server_error(&hello));
        }
        let scramble = handshake_scramble(&hello)?;
        let caps = CLIENT_LONG_PASSWORD
            | CLIENT_CONNECT_WITH_DB
            | CLIENT_PROTOCOL_41
            | CLIENT_TRANSACTIONS
            | CLIENT_SECURE_CONNECTION
            | CLIENT_PLUGIN_AUTH;
        let auth = native_scramble(password, &scramble);
        let mut p = Vec::new();
        p.extend_from_slice(&caps.to_le_bytes());
        p.extend_from_slice(&(MAX_PACKET as u32).to_le_bytes());
        p.push(45); // utf8mb4_general_ci
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(user.as_bytes());
        p.push(0);
        p.push(auth.len() as u8);
        p.extend_from_slice(&auth);
        p.extend_from_slice(db.as_bytes());
        p.push(0);
        p.extend_from_slice(NATIVE.as_bytes());
        p.push(0);
        c.write_packet(&p)?;
        let mut reply = c.read_packet()?;
        if reply.first() == Some(&0xfe) {
            // Auth switch: plugin name, then the new scramble.
            let rest = &reply[1..];
            let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            let plugin = String::from_utf8_lossy(&rest[..end]).into_owned();
            if plugin != NATIVE {
                return Err(MysqlError::Protocol(format!(
                    "unsupported auth plugin {plugin}"
                )));
            }
            let data = rest.get(end + 1..).unwrap_or_default();
            let data = data.strip_suffix(&[0]).unwrap_or(data);
            c.write_packet(&native_scramble(password, data))?;
            reply = c.read_packet()?;
        }
        match reply.first() {
            Some(0x00) => Ok(c),
            Some(0xff) => Err(server_error(&reply)),
            _ => Err(MysqlError::Protocol(
                "unexpected authentication reply".into(),
            )),
        }
    }

    /// Run `sql` and read its text result set.
    pub fn query(&mut self, sql: &str) -> Result<Rows, MysqlError> {
        self.seq = 0;
        let mut p = vec![0x03];
        p.extend_from_slice(sql.as_bytes());
        self.write_packet(&p)?;
        let first = self.read_packet()?;
        match first.first() {
            Some(0x00) => return Ok(Rows::default()),
            Some(0xff) => return Err(server_error(&first)),
            _ => {}
        }
        let (ncols, _) =
            lenenc(&first).ok_or_else(|| MysqlError::Protocol("bad column count".into()))?;
        let mut out = Rows::default();
        for _ in 0..ncols {
            let def = self.read_packet()?;
            out.columns.push(column_name(&def)?);
        }
        let eof = self.read_packet()?;
        if eof.first() != Some(&0xfe) {
            return Err(MysqlError::Protocol("missing EOF after columns".into()));
        }
        loop {
            let row = self.read_packet()?;
            match row.first() {
                Some(0xfe) if row.len() < 9 => return Ok(out),
                Some(0xff) => return Err(server_error(&row)),
                _ => {}
            }
            let mut cells = Vec::new();
            let mut at = 0;
            for _ in 0..ncols {
                let (v, used) = lenenc_str(&row[at..])
                    .ok_or_else(|| MysqlError::Protocol("truncated row".into()))?;
                cells.push(v);
                at += used;
            }
            out.rows.push(cells);
        }
    }

    fn read_packet(&mut self) -> Result<Vec<u8>, MysqlError> {
        let addr = self.addr;
        let io = |source| MysqlError::Io { addr, source };
        let mut head = [0u8; 4];
        self.sock.read_exact(&mut head).map_err(io)?;
        let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
        self.seq = head[3].wrapping_add(1);
        let mut body = vec![0; len];
        self.sock.read_exact(&mut body).map_err(io)?;
        Ok(body)
    }

    fn write_packet(&mut self, body: &[u8]) -> Result<(), MysqlError> {
        let len = body.len();
        if len >= 0xff_ffff {
            return Err(MysqlError::Protocol("packet too large".into()));
        }
        let mut p = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, self.seq];
        p.extend_from_slice(body);
        self.seq = self.seq.wrapping_add(1);
        let addr = self.addr;
        self.sock
            .write_all(&p)
            .map_err(|source| MysqlError::Io { addr, source })
    }
}

/// The 20-byte scramble of an initial handshake (protocol 10).
pub fn handshake_scramble(p: &[u8]) -> Result<Vec<u8>, MysqlError> {
    let bad = || MysqlError::Protocol("malformed server handshake".into());
    if p.first() != Some(&10) {
        return Err(MysqlError::Protocol(format!(
            "unsupported protocol version {:?}",
            p.first()
        )));
    }
    let version_end = 1 + p[1..].iter().position(|b| *b == 0).ok_or_else(bad)?;
    let at = version_end + 1 + 4; // NUL, connection id
    let mut scramble = p.get(at..at + 8).ok_or_else(bad)?.to_vec();
    // filler, capabilities (2), charset, status (2), capabilities (2), data length, 10 reserved
    let part2 = at + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10;
    let rest = p.get(part2..).ok_or_else(bad)?;
    let end = rest
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(rest.len())
        .min(12);
    scramble.extend_from_slice(&rest[..end]);
    Ok(scramble)
}

/// The name of a column definition packet (catalog, schema, table, org_table, name, ...).
fn column_name(def: &[u8]) -> Result<String, MysqlError> {
    let mut at = 0;
    for _ in 0..4 {
        let (_, used) =
            lenenc_str(&def[at..]).ok_or_else(|| MysqlError::Protocol("bad column".into()))?;
        at += used;
    }
    let (name, _) =
        lenenc_str(&def[at..]).ok_or_else(|| MysqlError::Protocol("bad column".into()))?;
    Ok(name.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scramble_matches_the_server_side_check() {
        // The server stores SHA1(SHA1(pw)) and checks SHA1(scramble + stored) XOR reply
        // against SHA1(pw) by hashing it once more.
        let scramble = b"abcdefghijklmnopqrst";
        let reply = native_scramble("123456", scramble);
        let stored = Sha1::digest(Sha1::digest(b"123456"));
        let mut h = Sha1::new();
        h.update(scramble);
        h.update(stored);
        let mix = h.finalize();
        let p1: Vec<u8> = reply.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect();
        assert_eq!(Sha1::digest(&p1).as_slice(), stored.as_slice());
        assert!(native_scramble("", scramble).is_empty());
    }

    #[test]
    fn length_encoded_integers_and_strings() {
        assert_eq!(lenenc(&[0x05]), Some((5, 1)));
        assert_eq!(lenenc(&[0xfc, 0x34, 0x12]), Some((0x1234, 3)));
        assert_eq!(lenenc(&[0xfd, 1, 2, 3]), Some((0x030201, 4)));
        assert_eq!(lenenc(&[0xfc, 1]), None);
        assert_eq!(lenenc_str(&[0xfb]), Some((None, 1)));
        assert_eq!(
            lenenc_str(&[3, b'a', b'b', b'c', 9]),
            Some((Some("abc".into()), 4))
        );
        assert_eq!(lenenc_str(&[5, b'a']), None);
    }

    #[test]
    fn handshake_scramble_is_both_parts() {
        let mut p = vec![10];
        p.extend_from_slice(b"10.11.19-MariaDB\0");
        p.extend_from_slice(&7u32.to_le_bytes());
        p.extend_from_slice(b"12345678");
        p.push(0);
        p.extend_from_slice(&[0xff, 0xf7, 45, 2, 0, 0xff, 0x81, 21]);
        p.extend_from_slice(&[0; 10]);
        p.extend_from_slice(b"9abcdefghijk\0mysql_native_password\0");
        assert_eq!(handshake_scramble(&p).unwrap(), b"123456789abcdefghijk");
        assert!(handshake_scramble(&[9, 0]).is_err());
        assert!(handshake_scramble(&[10, b'x']).is_err());
    }

    #[test]
    fn server_errors_carry_code_and_message() {
        let mut p = vec![0xff, 0x15, 0x04, b'#'];
        p.extend_from_slice(b"28000Access denied");
        match server_error(&p) {
            MysqlError::Server { code, message } => {
                assert_eq!(code, 1045);
                assert_eq!(message, "Access denied");
            }
            e => panic!("{e}"),
        }
    }
}
