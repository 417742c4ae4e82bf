//! DNS messages (RFC 1035), only as much as the node's cluster DNS needs: one question
//! in; A answers (behind a CNAME for an ExternalName Service), SRV answers (RFC 2782) with
//! their targets' addresses, an empty answer or an error code out; and the A records of an
//! upstream resolver's answer.

use std::net::Ipv4Addr;

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_SRV: u16 = 33;
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
        push_a(&mut out, HEADER as u16, ttl, *a);
    }
    out
}

/// An A record of the name at offset `name_at` (a compression pointer).
fn push_a(out: &mut Vec<u8>, name_at: u16, ttl: u32, addr: Ipv4Addr) {
    out.extend_from_slice(&(0xc000 | name_at).to_be_bytes());
    out.extend_from_slice(&TYPE_A.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&4u16.to_be_bytes());
    out.extend_from_slice(&addr.octets());
}

/// `name` in wire form: length-prefixed labels, then the root.
fn encode_name(name: &str, out: &mut Vec<u8>) {
    for l in name.split('.').filter(|l| !l.is_empty()) {
        let l = &l.as_bytes()[..l.len().min(63)];
        out.push(l.len() as u8);
        out.extend_from_slice(l);
    }
    out.push(0);
}

/// How many A records [`reply_alias`] to `target` fits in a message of `limit` bytes.
pub fn alias_records_within(q: &Query, target: &str, limit: usize) -> usize {
    let mut name = Vec::new();
    encode_name(target, &mut name);
    // The CNAME: pointer, type, class, TTL, length, then the name.
    a_records_within(q, limit.saturating_sub(12 + name.len()))
}

/// The reply to `q` for an alias (an ExternalName Service): a CNAME to `target`, then an
/// A record of `target` (by pointer to the CNAME's data) for each address.
pub fn reply_alias(q: &Query, target: &str, addrs: &[Ipv4Addr], ttl: u32) -> Vec<u8> {
    let mut out = reply(q, NOERROR, &[], ttl);
    out[6..8].copy_from_slice(&(1 + addrs.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0xc0, HEADER as u8]);
    out.extend_from_slice(&TYPE_CNAME.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    let mut name = Vec::new();
    encode_name(target, &mut name);
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    let at = out.len() as u16;
    out.extend_from_slice(&name);
    for a in addrs {
        push_a(&mut out, at, ttl, *a);
    }
    out
}

/// The reply to `q` with SRV records — `(port, target, target's address)`, priority 0,
/// weights sharing 100 — and each target's A record in the additional section, as many as
/// fit `limit` bytes (the rest left off, as [`reply`] does).
pub fn reply_srv(q: &Query, records: &[(u16, &str, Ipv4Addr)], ttl: u32, limit: usize) -> Vec<u8> {
    let mut out = reply(q, NOERROR, &[], ttl);
    let weight = u16::try_from(100 / records.len().max(1))
        .unwrap_or(1)
        .max(1);
    // Targets written so far: name, where its name is, its address.
    let mut targets: Vec<(&str, u16, Ipv4Addr)> = Vec::new();
    let mut answers = 0u16;
    for &(port, target, addr) in records {
        let mut name = Vec::new();
        encode_name(target, &mut name);
        let known = targets.iter().any(|t| t.0 == target);
        let extra = if known { 0 } else { 16 };
        let size = 12 + 6 + name.len();
        let additional = 16 * targets.len();
        if out.len() + size + additional + extra > limit {
            break;
        }
        out.extend_from_slice(&[0xc0, HEADER as u8]);
        out.extend_from_slice(&TYPE_SRV.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl.to_be_bytes());
        out.extend_from_slice(&((6 + name.len()) as u16).to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&weight.to_be_bytes());
        out.extend_from_slice(&port.to_be_bytes());
        let at = out.len() as u16;
        out.extend_from_slice(&name);
        if !known {
            targets.push((target, at, addr));
        }
        answers += 1;
    }
    for &(_, at, addr) in &targets {
        push_a(&mut out, at, ttl, addr);
    }
    out[6..8].copy_from_slice(&answers.to_be_bytes());
    out[10..12].copy_from_slice(&(targets.len() as u16).to_be_bytes());
    out
}

/// A recursive query for `name`'s records of `qtype`.
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = id.to_be_bytes().to_vec();
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    encode_name(name, &mut m);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    m
}

/// The offset after the (possibly compressed) name at `at`.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l if l <= 63 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
}

/// The addresses of the A records in the answer section of `msg`, a response without
/// error (empty for anything else, or a message that does not parse).
pub fn answer_addrs(msg: &[u8]) -> Vec<Ipv4Addr> {
    let mut addrs = Vec::new();
    let (Some(flags), Some(qd), Some(an)) = (u16_at(msg, 2), u16_at(msg, 4), u16_at(msg, 6)) else {
        return addrs;
    };
    if flags & QR == 0 || flags & 0xf != u16::from(NOERROR) {
        return addrs;
    }
    let mut at = HEADER;
    for _ in 0..qd {
        match skip_name(msg, at) {
            Some(next) => at = next + 4,
            None => return addrs,
        }
    }
    for _ in 0..an {
        let Some(next) = skip_name(msg, at) else {
            break;
        };
        let (Some(rtype), Some(rdlen)) = (u16_at(msg, next), u16_at(msg, next + 8)) else {
            break;
        };
        let data = next + 10;
        let Some(rdata) = msg.get(data..data + usize::from(rdlen)) else {
            break;
        };
        if rtype == TYPE_A && rdata.len() == 4 {
            addrs.push(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]));
        }
        at = data + usize::from(rdlen);
    }
    addrs
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
    fn an_alias_answers_a_cname_then_the_targets_addresses() {
        let q = parse(&query(7, "db.default.svc.cluster.local", TYPE_A)).unwrap();
        let r = reply_alias(&q, "db.example.org", &[Ipv4Addr::new(192, 0, 2, 9)], 5);
        assert_eq!(u16_at(&r, 6), Some(2), "CNAME and A");
        assert_eq!(
            answer_addrs(&r),
            [Ipv4Addr::new(192, 0, 2, 9)],
            "our own answer parses back, compressed names and all"
        );
        let cname = HEADER + q.question.len();
        assert_eq!(u16_at(&r, cname + 2), Some(TYPE_CNAME));
        let target = cname + 12;
        assert_eq!(&r[target..target + 4], b"\x02db\x07");
        assert_eq!(u16_at(&r, r.len() - 16), Some(0xc000 | target as u16));
        // An upstream's error or a query carries no addresses.
        let mut err = r.clone();
        err[3] |= NXDOMAIN;
        assert!(answer_addrs(&err).is_empty());
        assert!(answer_addrs(&query(1, "a.b", TYPE_A)).is_empty());
        assert!(
            answer_addrs(&r[..r.len() - 3]).is_empty(),
            "a truncated record is left out"
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
