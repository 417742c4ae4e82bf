//! Reading an instance's log with kubectl's options, once or following.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::cri::{format_rfc3339_nano, Decoder, Line, Timestamp};

/// How often a followed log is polled for new data.
const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// Bytes read per poll step.
const CHUNK: usize = 64 * 1024;

/// `kubectl logs` options, as the kubelet takes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<u64>,
    /// Prefix each line with its RFC3339Nano timestamp.
    pub timestamps: bool,
    /// Only lines at or after (from sinceSeconds or sinceTime).
    pub since: Option<Timestamp>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<u64>,
    /// Frame chunks for the channel protocols (`kubectl attach`): each chunk starts with
    /// its stream, 1 for stdout or 2 for stderr, and holds lines of that stream only.
    pub channels: bool,
}

/// The files of one instance's log, oldest first: `<log>.N` … `<log>.1`,
/// then `<log>` itself (present or not).
pub fn files(log: &Path) -> Vec<PathBuf> {
    let rotated = |n: u32| {
        let mut s = log.as_os_str().to_owned();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    };
    let mut out: Vec<PathBuf> = (1..).map(rotated).take_while(|p| p.exists()).collect();
    out.reverse();
    out.push(log.to_path_buf());
    out
}

/// The text of `line` as served.
fn render(line: &Line, timestamps: bool, out: &mut Vec<u8>) {
    if timestamps {
        out.extend_from_slice(format_rfc3339_nano(line.ts).as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(&line.text);
    if line.complete {
        out.push(b'\n');
    }
}

/// Applies since and the byte limit while rendering.
struct Sink {
    opts: LogOptions,
    sent: u64,
    tx: mpsc::Sender<Vec<u8>>,
}

impl Sink {
    /// Sends the lines; false once the limit is reached or the reader left.
    async fn send(&mut self, lines: &[Line]) -> bool {
        let since = self.opts.since;
        let shown = lines.iter().filter(|l| since.is_none_or(|s| l.ts >= s));
        if self.opts.channels {
            return self.send_framed(shown).await;
        }
        let mut out = Vec::new();
        for l in shown {
            render(l, self.opts.timestamps, &mut out);
        }
        if out.is_empty() {
            return true;
        }
        let mut more = true;
        if let Some(limit) = self.opts.limit_bytes {
            let left = limit.saturating_sub(self.sent) as usize;
            if out.len() >= left {
                out.truncate(left);
                more = false;
            }
        }
        self.sent += out.len() as u64;
        if !out.is_empty() && self.tx.send(out).await.is_err() {
            return false;
        }
        more
    }
}

impl Sink {
    /// One chunk per run of lines from the same stream, led by its channel byte.
    async fn send_framed<'a>(&mut self, lines: impl Iterator<Item = &'a Line>) -> bool {
        let mut chunk: Vec<u8> = Vec::new();
        for l in lines {
            let channel = if l.stderr { 2 } else { 1 };
            if chunk.first().is_some_and(|c| *c != channel)
                && self.tx.send(std::mem::take(&mut chunk)).await.is_err()
            {
                return false;
            }
            if chunk.is_empty() {
                chunk.push(channel);
            }
            render(l, self.opts.timestamps, &mut chunk);
        }
        chunk.is_empty() || self.tx.send(chunk).await.is_ok()
    }
}

/// Everything in `paths` as lines, and the live file left open at its end.
fn read_all(paths: &[PathBuf], dec: &mut Decoder) -> io::Result<(Vec<Line>, Option<File>)> {
    let mut lines = Vec::new();
    let mut live = None;
    for (i, p) in paths.iter().enumerate() {
        let mut f = match File::open(p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("open {}: {e}", p.display()),
                ))
            }
        };
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)
            .map_err(|e| io::Error::new(e.kind(), format!("read {}: {e}", p.display())))?;
        lines.extend(dec.feed(&bytes));
        if i + 1 == paths.len() {
            live = Some(f);
        }
    }
    Ok((lines, live))
}

/// Streams the log at `log` (the live file of one instance) into chunks.
/// With `follow`, keeps reading new records (across rotations) until
/// `running()` turns false and the file is drained, or the receiver is
/// dropped. Errors end the stream after being logged.
pub fn stream(
    log: PathBuf,
    opts: LogOptions,
    running: Arc<dyn Fn() -> bool + Send + Sync>,
) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        if let Err(e) = serve(&log, opts, running, tx).await {
            log::warn!("container log {}: {e}", log.display());
        }
    });
    rx
}

async fn serve(
    log: &Path,
    opts: LogOptions,
    running: Arc<dyn Fn() -> bool + Send + Sync>,
    tx: mpsc::Sender<Vec<u8>>,
) -> io::Result<()> {
    let paths = files(log);
    let (mut lines, mut live, mut dec) = tokio::task::spawn_blocking(move || {
        let mut dec = Decoder::new();
        read_all(&paths, &mut dec).map(|(l, f)| (l, f, dec))
    })
    .await
    .map_err(io::Error::other)??;
    if !opts.follow {
        lines.extend(dec.finish());
    }
    if let Some(n) = opts.tail_lines {
        let skip = lines.len().saturating_sub(n as usize);
        lines.drain(..skip);
    }
    let follow = opts.follow;
    let mut sink = Sink { opts, sent: 0, tx };
    if !sink.send(&lines).await || !follow {
        return Ok(());
    }
    let mut buf = vec![0u8; CHUNK];
    let mut pos = live
        .as_mut()
        .map(|f| f.stream_position())
        .transpose()?
        .unwrap_or(0);
    loop {
        let alive = running();
        // Drain what is there; then check for rotation.
        let mut got = false;
        if let Some(f) = live.as_mut() {
            if f.metadata()?.len() < pos {
                // Truncated in place (rotation with a single file).
                f.seek(SeekFrom::Start(0))?;
                pos = 0;
            }
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                got = true;
                pos += n as u64;
                let lines = dec.feed(&buf[..n]);
                if !sink.send(&lines).await {
                    return Ok(());
                }
            }
        }
        let current = std::fs::metadata(log).ok().map(|m| (m.dev(), m.ino()));
        let open = live
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| (m.dev(), m.ino()));
        if current.is_some() && current != open {
            // Rotated (or created): the old file is drained, switch.
            live = Some(File::open(log)?);
            pos = 0;
            continue;
        }
        if !got && !alive {
            let rest: Vec<Line> = dec.finish().into_iter().collect();
            sink.send(&rest).await;
            return Ok(());
        }
        if !got {
            tokio::select! {
                _ = tokio::time::sleep(FOLLOW_POLL) => {}
                _ = sink.tx.closed() => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests;
