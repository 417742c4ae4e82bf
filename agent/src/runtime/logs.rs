//! Container logs: one file per container instance in the CRI format
//! Kubernetes reads (`<RFC3339Nano> <stdout|stderr> <F|P> <line>`), rotated
//! by size to `<path>.1` … `<path>.<max_files-1>`. Written by the shim, so
//! logging goes on while the agent restarts.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Which stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// An append-only CRI log file with size rotation.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    max_files: u32,
    line: Vec<u8>,
}

impl LogWriter {
    /// Opens `path` for appending (creating it and its directory).
    pub fn open(path: &Path, max_bytes: u64, max_files: u32) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes: max_bytes.max(1024),
            max_files: max_files.max(1),
            line: Vec::with_capacity(16 * 1024),
        })
    }

    /// Writes `chunk` of `stream` read at `now` (seconds, nanoseconds since
    /// the epoch): one record per complete line (`F`), and the trailing
    /// partial line as a `P` record.
    pub fn write_chunk(&mut self, stream: Stream, chunk: &[u8], now: (i64, u32)) -> io::Result<()> {
        let mut ts = [0u8; 32];
        let ts_len = rfc3339_nano(now.0, now.1, &mut ts);
        let mut rest = chunk;
        while !rest.is_empty() {
            let (line, full, next) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], true, &rest[i + 1..]),
                None => (rest, false, &rest[rest.len()..]),
            };
            self.line.clear();
            self.line.extend_from_slice(&ts[..ts_len]);
            self.line.push(b' ');
            self.line.extend_from_slice(stream.name().as_bytes());
            self.line
                .extend_from_slice(if full { b" F " } else { b" P " });
            self.line.extend_from_slice(line);
            self.line.push(b'\n');
            if self.size > 0 && self.size + self.line.len() as u64 > self.max_bytes {
                self.rotate()?;
            }
            self.file.write_all(&self.line)?;
            self.size += self.line.len() as u64;
            rest = next;
        }
        Ok(())
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.max_files <= 1 {
            self.file.set_len(0)?;
        } else {
            let _ = fs::remove_file(self.rotated(self.max_files - 1));
            for n in (1..self.max_files - 1).rev() {
                let _ = fs::rename(self.rotated(n), self.rotated(n + 1));
            }
            fs::rename(&self.path, self.rotated(1))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

/// Formats `secs.nanos` since the epoch as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`
/// into `out` without allocating; returns the length (30).
pub fn rfc3339_nano(secs: i64, nanos: u32, out: &mut [u8; 32]) -> usize {
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let mut n = 0;
    let mut put = |v: i64, width: u32, sep: u8| {
        for i in (0..width).rev() {
            out[n] = b'0' + ((v / 10i64.pow(i)) % 10) as u8;
            n += 1;
        }
        if sep != 0 {
            out[n] = sep;
            n += 1;
        }
    };
    put(y, 4, b'-');
    put(m, 2, b'-');
    put(d, 2, b'T');
    put(tod / 3600, 2, b':');
    put(tod / 60 % 60, 2, b':');
    put(tod % 60, 2, b'.');
    put(i64::from(nanos), 9, b'Z');
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps() {
        let mut b = [0u8; 32];
        let n = rfc3339_nano(0, 0, &mut b);
        assert_eq!(&b[..n], b"1970-01-01T00:00:00.000000000Z");
        let n = rfc3339_nano(1_709_210_096, 123_456_789, &mut b);
        assert_eq!(&b[..n], b"2024-02-29T12:34:56.123456789Z");
    }

    #[test]
    fn writes_cri_records_and_rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/0.log");
        let mut w = LogWriter::open(&path, 1024, 3).unwrap();
        w.write_chunk(Stream::Stdout, b"hello\nwor", (0, 5))
            .unwrap();
        w.write_chunk(Stream::Stderr, b"oops\n", (0, 6)).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "1970-01-01T00:00:00.000000005Z stdout F hello",
                "1970-01-01T00:00:00.000000005Z stdout P wor",
                "1970-01-01T00:00:00.000000006Z stderr F oops",
            ]
        );
        let big = vec![b'x'; 300];
        for _ in 0..12 {
            let mut chunk = big.clone();
            chunk.push(b'\n');
            w.write_chunk(Stream::Stdout, &chunk, (1, 0)).unwrap();
        }
        assert!(fs::metadata(&path).unwrap().len() <= 1024);
        assert!(path.with_file_name("0.log.1").exists());
        assert!(path.with_file_name("0.log.2").exists());
        assert!(
            !path.with_file_name("0.log.3").exists(),
            "max_files counts the live file"
        );
    }
}
