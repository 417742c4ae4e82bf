//! DNS messages (RFC 1035), only as much as the node's cluster DNS needs: one question
//! in; A answers, an empty answer or an error code out.

use std::net::Ipv4Addr;

pub const TYPE_A: u16 = 1;
pub const TYPE_ANY: u16 = 255;
pub const CLASS_IN: u16 = 1;

pub const NOERROR: u8 = 0;
pub const FORMERR: u8 = 1;
pub const SERVFAIL: u8 = 2;
pub const NXDOMAIN: u8 = 3;
pub const NOTIMP: u8 = 4;
pub const REFUSED: u8 = 5;

const HEADER: usize = 12;
const QR: u16 = 0x8000;
const AA: u16 = 0x0400;
const RD: u16 = 0x0100;
const RA: u16 = 0x0080;
const OPCODE: u16 = 0x7800;

/// A parsed query: its header fields, the question's name (lower case, no trailing
/// dot), type and class, and the raw question to echo back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    pub recursion_desired: bool,
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    question: Vec<u8>,
}

/// Why a message could not be answered as a query; `rcode` is what to reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub rcode: u8,
    pub reason: &'static str,
}

fn reject(rcode: u8, reason: &'static str) -> Rejected {
    Rejected { rcode, reason }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parses a standard query with exactly one question.
pub fn parse(msg: &[u8]) -> Result<Query, Rejected> {
    if msg.len() < HEADER {
        return Err(reject(FORMERR, "shorter than a header"));
    }
    let flags = u16_at(msg, 2).unwrap_or(0);
    if flags & QR != 0 {
        return Err(reject(FORMERR, "a response, not a query"));
    }
    if flags & OPCODE != 0 {
        return Err(reject(NOTIMP, "not a standard query"));
    }
    if u16_at(msg, 4) != Some(1) {
        return Err(reject(FORMERR, "not exactly one question"));
    }
    let mut at = HEADER;
    let mut labels: Vec<String> = Vec::new();
    let mut wire_len = 0usize;
    loop {
        let len = *msg.get(at).ok_or(reject(FORMERR, "truncated name"))? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            // Compression pointers (0xC0) have no place in a lone question.
            return Err(reject(FORMERR, "bad label length"));
        }
        let label = msg
            .get(at..at + len)
            .ok_or(reject(FORMERR, "truncated label"))?;
        wire_len += len + 1;
        if wire_len > 254 {
            return Err(reject(FORMERR, "name longer than 255 bytes"));
        }
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += len;
    }
    let qtype = u16_at(msg, at).ok_or(reject(FORMERR, "truncated question"))?;
    let qclass = u16_at(msg, at + 2).ok_or(reject(FORMERR, "truncated question"))?;
    at += 4;
    Ok(Query {
        id: u16_at(msg, 0).unwrap_or(0),
        recursion_desired: flags & RD != 0,
        name: labels.join("."),
        qtype,
        qclass,
        question: msg[HEADER..at].to_vec(),
    })
}

/// How many A records [`reply`] fits in a message of `limit` bytes.
pub fn a_records_within(q: &Query, limit: usize) -> usize {
    limit.saturating_sub(HEADER + q.question.len()) / 16
}

/// The reply to `q`: `rcode`, and an A record (name by pointer to the question) for
/// each address. Authoritative: the cluster's names are ours.
pub fn reply(q: &Query, rcode: u8, addrs: &[Ipv4Addr], ttl: u32) -> Vec<u8> {
    let mut flags = QR | AA | RA | u16::from(rcode & 0xf);
    if q.recursion_desired {
        flags |= RD;
    }
    let mut out = Vec::with_capacity(HEADER + q.question.len() + 16 * addrs.len());
    out.extend_from_slice(&q.id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&q.question);
    for a in addrs {
        out.extend_from_slice(&[0xc0, HEADER as u8]);
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&a.octets());
    }
    out
}

/// An error reply to a message that did not parse as a query: its id and the code,
/// nothing else (`None` if it is too short to carry an id, or is itself a response).
pub fn error_reply(msg: &[u8], rcode: u8) -> Option<Vec<u8>> {
    let id = u16_at(msg, 0)?;
    if u16_at(msg, 2).is_some_and(|f| f & QR != 0) {
        return None;
    }
    let flags = QR | RA | u16::from(rcode & 0xf);
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    Some(out)
}

#[cfg(test)]
pub(super) fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.split('.').filter(|l| !l.is_empty()) {
        m.push(l.len() as u8);
        m.extend_from_slice(l.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_round_trips_into_an_authoritative_answer() {
        let mut msg = query(0x1234, "Web.Default.svc.cluster.local.", TYPE_A);
        // An EDNS OPT record in the additional section is ignored.
        msg[11] = 1;
        msg.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]);
        let q = parse(&msg).unwrap();
        assert_eq!(q.name, "web.default.svc.cluster.local");
        assert_eq!((q.id, q.qtype, q.qclass), (0x1234, TYPE_A, CLASS_IN));
        let r = reply(&q, NOERROR, &[Ipv4Addr::new(10, 96, 0, 7)], 5);
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(u16_at(&r, 2), Some(QR | AA | RD | RA));
        assert_eq!((u16_at(&r, 4), u16_at(&r, 6)), (Some(1), Some(1)));
        assert_eq!(&r[r.len() - 4..], &[10, 96, 0, 7]);
        assert_eq!(
            &r[r.len() - 16..r.len() - 14],
            &[0xc0, 12],
            "name by pointer"
        );
    }

    #[test]
    fn malformed_messages_are_rejected_with_a_code() {
        assert_eq!(parse(&[0; 5]).unwrap_err().rcode, FORMERR);
        let mut two = query(1, "a.b", TYPE_A);
        two[5] = 2;
        assert_eq!(parse(&two).unwrap_err().rcode, FORMERR);
        let mut pointer = query(1, "a.b", TYPE_A);
        pointer[12] = 0xc0;
        assert_eq!(parse(&pointer).unwrap_err().rcode, FORMERR);
        let truncated = &query(1, "abc.def", TYPE_A)[..16];
        assert_eq!(parse(truncated).unwrap_err().rcode, FORMERR);
        let mut update = query(1, "a.b", TYPE_A);
        update[2] |= 0x28;
        assert_eq!(parse(&update).unwrap_err().rcode, NOTIMP);
        let err = error_reply(&update, NOTIMP).unwrap();
        assert_eq!(err.len(), 12);
        assert_eq!(u16_at(&err, 2).unwrap() & 0xf, u16::from(NOTIMP));
        let mut response = query(1, "a.b", TYPE_A);
        response[2] |= 0x80;
        assert_eq!(
            error_reply(&response, FORMERR),
            None,
            "never answer a response"
        );
    }
}
