//! The CRI log format: `<RFC3339Nano> <stdout|stderr> <F|P> <text>\n`,
//! one record per line; `P` records are parts of a line continued by the
//! next record of the same stream.

/// Seconds and nanoseconds since the epoch.
pub type Timestamp = (i64, u32);

/// One log line as users see it (partial records joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The timestamp of its first record.
    pub ts: Timestamp,
    pub stderr: bool,
    /// Without the trailing newline.
    pub text: Vec<u8>,
    /// False for a trailing partial line (no newline written yet).
    pub complete: bool,
}

/// One parsed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub ts: Timestamp,
    pub stderr: bool,
    pub partial: bool,
    pub text: &'a [u8],
}

/// Parses one record (without its newline); `None` if malformed.
pub fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let ts = parse_rfc3339(std::str::from_utf8(parts.next()?).ok()?)?;
    let stderr = match parts.next()? {
        b"stdout" => false,
        b"stderr" => true,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"F" => false,
        b"P" => true,
        _ => return None,
    };
    Some(Record {
        ts,
        stderr,
        partial,
        text: parts.next().unwrap_or(b""),
    })
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses RFC 3339 (`2024-02-29T12:34:56.123Z`, `…+02:00`).
pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..9 {
            nanos *= 10;
        }
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset;
    Some((secs, nanos))
}

/// Go's `time.RFC3339Nano` in UTC (trailing zeros of the fraction trimmed),
/// as the kubelet prefixes lines with `timestamps=true`.
pub fn format_rfc3339_nano(ts: Timestamp) -> String {
    let mut buf = [0u8; 32];
    let n = crate::runtime::logs::rfc3339_nano(ts.0, ts.1, &mut buf);
    let full = String::from_utf8_lossy(&buf[..n]).into_owned();
    // `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`
    let (base, frac) = full.split_at(19);
    let digits = frac[1..10].trim_end_matches('0');
    if digits.is_empty() {
        format!("{base}Z")
    } else {
        format!("{base}.{digits}Z")
    }
}

/// Turns a byte stream of records into lines: keeps an incomplete record
/// and a pending partial line between calls.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    pending: Option<Line>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the lines they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Line> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(i) = self.buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + i;
            if let Some(r) = parse_record(&self.buf[start..end]) {
                let line = match self.pending.take() {
                    Some(mut p) if p.stderr == r.stderr => {
                        p.text.extend_from_slice(r.text);
                        p
                    }
                    other => {
                        out.extend(other);
                        Line {
                            ts: r.ts,
                            stderr: r.stderr,
                            text: r.text.to_vec(),
                            complete: false,
                        }
                    }
                };
                if r.partial {
                    self.pending = Some(line);
                } else {
                    out.push(Line {
                        complete: true,
                        ..line
                    });
                }
            }
            start = end + 1;
        }
        self.buf.drain(..start);
        out
    }

    /// The partial line held back, if any (at the end of a finished log).
    pub fn finish(&mut self) -> Option<Line> {
        self.pending.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_records() {
        let r = parse_record(b"2024-02-29T12:34:56.123456789Z stderr P a b c").unwrap();
        assert_eq!(r.ts, (1_709_210_096, 123_456_789));
        assert!(r.stderr && r.partial);
        assert_eq!(r.text, b"a b c");
        assert_eq!(
            parse_record(b"1970-01-01T00:00:00Z stdout F ")
                .unwrap()
                .text,
            b""
        );
        assert!(parse_record(b"garbage").is_none());
        assert!(parse_record(b"1970-01-01T00:00:00Z stdin F x").is_none());
    }

    #[test]
    fn parses_and_formats_rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(
            parse_rfc3339("1970-01-01T02:00:00.5+02:00"),
            Some((0, 500_000_000))
        );
        assert_eq!(
            parse_rfc3339("2000-03-01T00:00:00-01:30"),
            Some((951_874_200, 0))
        );
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("2024-01-01T00:00:00"), None);
        assert_eq!(format_rfc3339_nano((0, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339_nano((0, 120_000_000)),
            "1970-01-01T00:00:00.12Z"
        );
        let ts = (1_709_210_096, 123_456_789);
        assert_eq!(parse_rfc3339(&format_rfc3339_nano(ts)), Some(ts));
    }

    #[test]
    fn joins_partial_records_across_feeds() {
        let mut d = Decoder::new();
        let lines = d.feed(b"1970-01-01T00:00:01Z stdout P hel");
        assert!(lines.is_empty(), "no newline yet");
        let lines =
            d.feed(b"\n1970-01-01T00:00:02Z stdout F lo\n1970-01-01T00:00:03Z stderr F e\n");
        assert_eq!(
            lines,
            [
                Line {
                    ts: (1, 0),
                    stderr: false,
                    text: b"hello".to_vec(),
                    complete: true
                },
                Line {
                    ts: (3, 0),
                    stderr: true,
                    text: b"e".to_vec(),
                    complete: true
                },
            ]
        );
        d.feed(b"1970-01-01T00:00:04Z stdout P tail\n");
        assert_eq!(
            d.finish().map(|l| (l.text, l.complete)),
            Some((b"tail".to_vec(), false))
        );
    }
}
