//! SPDY/3.1 framing, as much as `kubectl port-forward` speaks: streams opened by
//! the client (`SYN_STREAM`), answered (`SYN_REPLY`), their data (`DATA`, with
//! `FIN` for a half-close), resets, pings and `GOAWAY`. Header blocks are
//! zlib streams (one per direction for the whole connection) seeded with the
//! dictionary the SPDY/3 draft fixes (`dictionary.bin`, 1423 bytes, Adler-32
//! `0xe3c6a7c2`). Flow control is not done: the Go client (spdystream) neither
//! sends nor honours `WINDOW_UPDATE`, so both sides ignore windows.
//!
//! [`Decoder`] turns the client's bytes (any slicing) into [`Frame`]s;
//! [`Encoder`] writes the server's frames.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The SPDY/3 header-compression dictionary.
pub const DICTIONARY: &[u8] = include_bytes!("dictionary.bin");

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
/// `FLAG_FIN`: the sender's last frame on the stream.
const FIN: u8 = 0x01;
/// Largest header block once inflated.
const MAX_HEADERS: usize = 64 * 1024;

/// `RST_STREAM` status: the stream is refused or its work failed.
pub const RST_CANCEL: u32 = 5;

/// Why the client's bytes are not SPDY/3 this server can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpdyError {
    #[error("SPDY version {0} (only 3 is spoken)")]
    Version(u16),
    #[error("{0} frame too short")]
    Short(&'static str),
    #[error("header block: {0}")]
    Headers(String),
}

/// A frame the client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        id: u32,
        fin: bool,
        headers: Vec<(String, String)>,
    },
    Data {
        id: u32,
        fin: bool,
        data: Vec<u8>,
    },
    RstStream {
        id: u32,
    },
    Ping(u32),
    GoAway,
    /// SETTINGS, WINDOW_UPDATE, HEADERS and the like: nothing to do.
    Ignored,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reassembles frames from the client's byte stream.
pub struct Decoder {
    buf: Vec<u8>,
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            buf: Vec::new(),
            inflate: Decompress::new(true),
        }
    }
}

impl Decoder {
    /// Adds bytes as they came (a WebSocket message is any slice of the stream).
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SpdyError> {
        if self.buf.len() < 8 {
            return Ok(None);
        }
        let len = u32_at(&self.buf, 4) as usize & 0x00ff_ffff;
        if self.buf.len() < 8 + len {
            return Ok(None);
        }
        let flags = self.buf[4];
        let frame: [u8; 8] = self.buf[..8].try_into().expect("8 bytes");
        let body: Vec<u8> = self.buf.drain(..8 + len).skip(8).collect();
        if frame[0] & 0x80 == 0 {
            return Ok(Some(Frame::Data {
                id: u32_at(&frame, 0) & 0x7fff_ffff,
                fin: flags & FIN != 0,
                data: body,
            }));
        }
        let body = &body[..];
        let version = u16::from_be_bytes([frame[0] & 0x7f, frame[1]]);
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let kind = u16::from_be_bytes([frame[2], frame[3]]);
        let need = |n: usize, what| {
            if body.len() < n {
                Err(SpdyError::Short(what))
            } else {
                Ok(())
            }
        };
        Ok(Some(match kind {
            SYN_STREAM => {
                need(10, "SYN_STREAM")?;
                Frame::SynStream {
                    id: u32_at(body, 0) & 0x7fff_ffff,
                    fin: flags & FIN != 0,
                    headers: self.headers(&body[10..])?,
                }
            }
            HEADERS => {
                // Inflated all the same: the zlib stream spans every block.
                need(4, "HEADERS")?;
                self.headers(&body[4..])?;
                Frame::Ignored
            }
            RST_STREAM => {
                need(8, "RST_STREAM")?;
                Frame::RstStream {
                    id: u32_at(body, 0) & 0x7fff_ffff,
                }
            }
            PING => {
                need(4, "PING")?;
                Frame::Ping(u32_at(body, 0))
            }
            GOAWAY => Frame::GoAway,
            _ => Frame::Ignored,
        }))
    }

    /// Inflates one header block (the stream's dictionary on first use) and parses it.
    fn headers(&mut self, block: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
        let err = |e: &dyn std::fmt::Display| SpdyError::Headers(e.to_string());
        if block.len() > MAX_HEADERS {
            return Err(SpdyError::Headers("larger than 64 KiB".into()));
        }
        let mut out = Vec::with_capacity((4 * block.len() + 256).min(MAX_HEADERS));
        let mut used = 0;
        loop {
            let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
            let mut seeded = false;
            match self
                .inflate
                .decompress_vec(&block[used..], &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(DICTIONARY)
                        .map_err(|e| err(&e))?;
                    seeded = true;
                }
                Err(e) => return Err(err(&e)),
            }
            let consumed = (self.inflate.total_in() - in0) as usize;
            let produced = self.inflate.total_out() - out0;
            used += consumed;
            if out.len() > MAX_HEADERS {
                return Err(SpdyError::Headers("larger than 64 KiB".into()));
            }
            if used >= block.len() && produced == 0 {
                break;
            }
            if out.len() == out.capacity() {
                out.reserve(out.capacity());
            } else if consumed == 0 && produced == 0 && !seeded {
                return Err(SpdyError::Headers("incomplete".into()));
            }
        }
        parse_name_values(&out)
    }
}

/// The plain header block: a count, then each name and value with its length.
fn parse_name_values(b: &[u8]) -> Result<Vec<(String, String)>, SpdyError> {
    let short = || SpdyError::Headers("truncated".into());
    let mut at = 0;
    let mut take = |n: usize| -> Result<&[u8], SpdyError> {
        let s = b.get(at..at + n).ok_or_else(short)?;
        at += n;
        Ok(s)
    };
    let count = u32::from_be_bytes(take(4)?.try_into().expect("4 bytes"));
    let mut out = Vec::new();
    for _ in 0..count {
        let mut string = || -> Result<String, SpdyError> {
            let n = u32::from_be_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
            Ok(String::from_utf8_lossy(take(n)?).into_owned())
        };
        let name = string()?;
        let value = string()?;
        out.push((name.to_ascii_lowercase(), value));
    }
    Ok(out)
}

/// The value of header `name` (lower case).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Writes the server's frames.
pub struct Encoder {
    deflate: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(DICTIONARY)
            .expect("a fresh deflate stream takes a dictionary");
        Self { deflate }
    }
}

fn control(kind: u16, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + body.len());
    f.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    f.extend_from_slice(&kind.to_be_bytes());
    f.extend_from_slice(&(body.len() as u32 | u32::from(flags) << 24).to_be_bytes());
    f.extend_from_slice(body);
    f
}

impl Encoder {
    /// `SYN_REPLY` with no headers: the stream is accepted.
    pub fn syn_reply(&mut self, id: u32) -> Vec<u8> {
        let mut body = id.to_be_bytes().to_vec();
        body.extend(self.header_block(&[]));
        control(SYN_REPLY, 0, &body)
    }

    /// `SYN_STREAM` opening stream `id` with `headers` (what a client sends).
    pub fn syn_stream(&mut self, id: u32, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(&[0; 6]);
        body.extend(self.header_block(headers));
        control(SYN_STREAM, 0, &body)
    }

    /// The compressed block of `headers`, flushed so the peer can read it now.
    fn header_block(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut plain = (headers.len() as u32).to_be_bytes().to_vec();
        for s in headers.iter().flat_map(|(n, v)| [n, v]) {
            plain.extend_from_slice(&(s.len() as u32).to_be_bytes());
            plain.extend_from_slice(s.as_bytes());
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        let mut used = 0;
        loop {
            let in0 = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(&plain[used..], &mut out, FlushCompress::Sync)
                .expect("deflate into a growing buffer");
            used += (self.deflate.total_in() - in0) as usize;
            // Done once all input is in and the flush left room to spare.
            if used >= plain.len() && out.len() < out.capacity() && status == Status::Ok {
                break;
            }
            out.reserve(out.capacity().max(64));
        }
        out
    }

    pub fn data(id: u32, fin: bool, data: &[u8]) -> Vec<u8> {
        let mut f = Vec::with_capacity(8 + data.len());
        f.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
        let flags = if fin { FIN } else { 0 };
        f.extend_from_slice(&(data.len() as u32 | u32::from(flags) << 24).to_be_bytes());
        f.extend_from_slice(data);
        f
    }

    pub fn ping(id: u32) -> Vec<u8> {
        control(PING, 0, &id.to_be_bytes())
    }

    pub fn rst_stream(id: u32, status: u32) -> Vec<u8> {
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(&status.to_be_bytes());
        control(RST_STREAM, 0, &body)
    }
}

#[cfg(test)]
mod tests;
