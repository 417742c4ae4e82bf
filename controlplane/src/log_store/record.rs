//! The framing of one record in a log segment:
//!
//! ```text
//! u32 LE  body length (kind byte + payload), never 0
//! u32 LE  CRC-32 of the body
//! u8      kind
//! ...     payload
//! ```
//!
//! Segments are preallocated with zeros, so a zero length marks the end of what was written.
//! A length that runs past the buffer or a CRC that does not match is a torn write (the tail of
//! a batch that never reached the disk whole) or damage; the caller decides which.

use crate::types::{LogId, Vote};

pub(super) const HEADER: usize = 8;
/// Larger bodies are refused on write and read as damage. An API request body is at most
/// 3 MiB and a `Command::Many` packs at most 512 writes, so no entry comes near it.
pub(super) const MAX_BODY: usize = 2 << 30;

const ENTRY: u8 = 1;
const VOTE: u8 = 2;
const COMMITTED: u8 = 3;
const TRUNCATE: u8 = 4;
const PURGE: u8 = 5;

/// One record as written.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Record {
    /// A log entry, JSON-encoded (`Entry`), with its id.
    Entry {
        id: LogId,
        json: Vec<u8>,
    },
    Vote(Vote),
    /// The committed log id (saved lazily, never ahead of the log on disk).
    Committed(LogId),
    /// Entries from this index on are gone.
    Truncate(u64),
    /// Entries up to and including this id are gone.
    Purge(LogId),
}

impl Record {
    /// Appends the framed record to `out`; returns the payload's offset in `out` and length.
    pub(super) fn encode(&self, out: &mut Vec<u8>) -> Result<(usize, usize), serde_json::Error> {
        let (kind, payload): (u8, std::borrow::Cow<'_, [u8]>) = match self {
            Record::Entry { json, .. } => (ENTRY, json.as_slice().into()),
            Record::Vote(v) => (VOTE, serde_json::to_vec(v)?.into()),
            Record::Committed(c) => (COMMITTED, serde_json::to_vec(c)?.into()),
            Record::Truncate(from) => (TRUNCATE, from.to_le_bytes().to_vec().into()),
            Record::Purge(upto) => (PURGE, serde_json::to_vec(upto)?.into()),
        };
        let body_len = 1 + payload.len();
        if body_len > MAX_BODY {
            return Err(serde::ser::Error::custom(format!(
                "a log record of {body_len} bytes (at most {MAX_BODY})"
            )));
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&[kind]);
        crc.update(&payload);
        out.extend_from_slice(&(body_len as u32).to_le_bytes());
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.push(kind);
        let at = out.len();
        out.extend_from_slice(&payload);
        Ok((at, payload.len()))
    }

    /// The record of `kind` with `payload` (a body that passed its CRC check).
    fn parse(kind: u8, payload: &[u8]) -> Result<Self, String> {
        let json = |what: &str| format!("a {what} record that is not valid JSON");
        Ok(match kind {
            ENTRY => {
                let e: crate::types::Entry =
                    serde_json::from_slice(payload).map_err(|_| json("log entry"))?;
                Record::Entry {
                    id: e.log_id,
                    json: payload.to_vec(),
                }
            }
            VOTE => Record::Vote(serde_json::from_slice(payload).map_err(|_| json("vote"))?),
            COMMITTED => {
                Record::Committed(serde_json::from_slice(payload).map_err(|_| json("committed"))?)
            }
            TRUNCATE => {
                let b: [u8; 8] = payload
                    .try_into()
                    .map_err(|_| "a truncate record that is not 8 bytes".to_string())?;
                Record::Truncate(u64::from_le_bytes(b))
            }
            PURGE => Record::Purge(serde_json::from_slice(payload).map_err(|_| json("purge"))?),
            k => return Err(format!("unknown record kind {k}")),
        })
    }
}

/// What is found at an offset of a segment.
#[derive(Debug, PartialEq)]
pub(super) enum Decoded {
    /// A whole record; its payload is `payload_len` bytes at `payload_at`; the next record
    /// starts at `next`.
    Record {
        record: Record,
        payload_at: usize,
        payload_len: usize,
        next: usize,
    },
    /// Zeros: nothing was written from here on.
    End,
    /// Not a whole, intact record: `why`.
    Bad(String),
}

/// Decodes the record at `at` in `buf`.
pub(super) fn decode(buf: &[u8], at: usize) -> Decoded {
    let Some(head) = buf.get(at..at + HEADER) else {
        // Fewer than 8 bytes left: an end when they are zeros (or none), else torn.
        return if buf.get(at..).is_none_or(|b| b.iter().all(|&x| x == 0)) {
            Decoded::End
        } else {
            Decoded::Bad("a record header cut short".into())
        };
    };
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len == 0 {
        return if crc == 0 {
            Decoded::End
        } else {
            Decoded::Bad("a record header with a zero length".into())
        };
    }
    if len > MAX_BODY {
        return Decoded::Bad(format!("a record length of {len} bytes"));
    }
    let start = at + HEADER;
    let Some(body) = buf.get(start..start + len) else {
        return Decoded::Bad("a record cut short".into());
    };
    if crc32fast::hash(body) != crc {
        return Decoded::Bad("a record whose checksum does not match".into());
    }
    match Record::parse(body[0], &body[1..]) {
        Ok(record) => Decoded::Record {
            record,
            payload_at: start + 1,
            payload_len: len - 1,
            next: start + len,
        },
        Err(why) => Decoded::Bad(why),
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::types::Entry;

    fn entry_record(term: u64, index: u64) -> Record {
        let e = Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        };
        Record::Entry {
            id: e.log_id,
            json: serde_json::to_vec(&e).unwrap(),
        }
    }

    fn all() -> Vec<Record> {
        vec![
            entry_record(1, 1),
            Record::Vote(Vote::new(3, 2)),
            Record::Committed(LogId::new(CommittedLeaderId::new(1, 1), 1)),
            Record::Truncate(7),
            Record::Purge(LogId::new(CommittedLeaderId::new(1, 1), 1)),
        ]
    }

    fn encode_all(records: &[Record]) -> Vec<u8> {
        let mut buf = Vec::new();
        for r in records {
            r.encode(&mut buf).unwrap();
        }
        buf
    }

    fn decode_all(buf: &[u8]) -> (Vec<Record>, Decoded) {
        let (mut out, mut at) = (Vec::new(), 0);
        loop {
            match decode(buf, at) {
                Decoded::Record { record, next, .. } => {
                    out.push(record);
                    at = next;
                }
                end => return (out, end),
            }
        }
    }

    #[test]
    fn records_round_trip_and_zeros_end_the_segment() {
        let records = all();
        let mut buf = encode_all(&records);
        buf.extend_from_slice(&[0; 64]);
        let (got, end) = decode_all(&buf);
        assert_eq!(got, records);
        assert_eq!(end, Decoded::End);
    }

    #[test]
    fn the_payload_location_points_at_the_entry_json() {
        let r = entry_record(2, 5);
        let mut buf = vec![0xaa; 3];
        let (at, len) = r.encode(&mut buf).unwrap();
        let Record::Entry { json, .. } = &r else {
            unreachable!()
        };
        assert_eq!(&buf[at..at + len], json.as_slice());
        match decode(&buf, 3) {
            Decoded::Record {
                payload_at,
                payload_len,
                ..
            } => assert_eq!((payload_at, payload_len), (at, len)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_torn_or_damaged_tail_is_bad_not_an_end() {
        let records = all();
        let whole = encode_all(&records);
        // Every cut inside the last record leaves the others readable and flags the tail.
        let last_start = whole.len() - encode_all(&records[4..]).len();
        for cut in last_start + 1..whole.len() {
            let (got, end) = decode_all(&whole[..cut]);
            assert_eq!(got, records[..4], "cut at {cut}");
            assert!(matches!(end, Decoded::Bad(_)), "cut at {cut}: {end:?}");
        }
        // A flipped bit in a payload fails the checksum.
        let mut flipped = whole.clone();
        flipped[HEADER + 3] ^= 0x10;
        assert!(matches!(decode(&flipped, 0), Decoded::Bad(_)));
        // Garbage where a header should be.
        let mut garbage = whole;
        garbage.extend_from_slice(&[0xff; 16]);
        assert!(matches!(decode_all(&garbage).1, Decoded::Bad(_)));
    }
}
