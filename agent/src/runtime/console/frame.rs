//! The attach socket's messages, agent → shim: `[kind u8][len u32 LE][payload]`.
//! Nothing flows back: the container's output reaches an attach through its log.

/// Largest payload accepted (a stdin chunk); a longer frame ends the connection.
pub const MAX_PAYLOAD: usize = 64 * 1024;

const STDIN: u8 = 0;
const CLOSE_STDIN: u8 = 1;
const RESIZE: u8 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Bytes for the container's stdin.
    Stdin(Vec<u8>),
    /// The client's input ended.
    CloseStdin,
    /// The client's terminal size.
    Resize { cols: u16, rows: u16 },
}

impl Frame {
    pub fn encode(&self) -> Vec<u8> {
        let (kind, payload): (u8, &[u8]) = match self {
            Frame::Stdin(b) => (STDIN, b),
            Frame::CloseStdin => (CLOSE_STDIN, &[]),
            Frame::Resize { cols, rows } => {
                let mut v = Vec::with_capacity(9);
                v.push(RESIZE);
                v.extend_from_slice(&4u32.to_le_bytes());
                v.extend_from_slice(&cols.to_le_bytes());
                v.extend_from_slice(&rows.to_le_bytes());
                return v;
            }
        };
        let mut v = Vec::with_capacity(5 + payload.len());
        v.push(kind);
        v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        v.extend_from_slice(payload);
        v
    }
}

/// A malformed stream: the shim drops the connection.
#[derive(Debug, PartialEq, Eq)]
pub struct BadFrame;

/// Splits a byte stream into frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, if any.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, BadFrame> {
        let Some(head) = self.buf.get(..5) else {
            return Ok(None);
        };
        let kind = head[0];
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(BadFrame);
        }
        let Some(payload) = self.buf.get(5..5 + len) else {
            return Ok(None);
        };
        let frame = match (kind, payload) {
            (STDIN, p) => Frame::Stdin(p.to_vec()),
            (CLOSE_STDIN, []) => Frame::CloseStdin,
            (RESIZE, [c0, c1, r0, r1]) => Frame::Resize {
                cols: u16::from_le_bytes([*c0, *c1]),
                rows: u16::from_le_bytes([*r0, *r1]),
            },
            _ => return Err(BadFrame),
        };
        self.buf.drain(..5 + len);
        Ok(Some(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_split() {
        let frames = [
            Frame::Stdin(b"hello\n".to_vec()),
            Frame::Resize {
                cols: 120,
                rows: 40,
            },
            Frame::Stdin(vec![]),
            Frame::CloseStdin,
        ];
        let wire: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        for chunk in [1, 2, 3, 7, wire.len()] {
            let mut d = Decoder::default();
            let mut got = Vec::new();
            for part in wire.chunks(chunk) {
                d.push(part);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, frames, "chunk {chunk}");
        }
    }

    #[test]
    fn malformed_frames_are_refused() {
        let mut d = Decoder::default();
        d.push(&[9, 0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(BadFrame));
        let mut d = Decoder::default();
        d.push(&[0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(d.next_frame(), Err(BadFrame));
        let mut d = Decoder::default();
        d.push(&[2, 1, 0, 0, 0, 7]);
        assert_eq!(d.next_frame(), Err(BadFrame));
    }
}
