//! Reading real CRI files written by the runtime's `LogWriter`.

use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::runtime::logs::{LogWriter, Stream};

async fn collect(mut rx: mpsc::Receiver<Vec<u8>>) -> String {
    let mut out = Vec::new();
    while let Some(c) = rx.recv().await {
        out.extend(c);
    }
    String::from_utf8(out).unwrap()
}

fn always() -> Arc<dyn Fn() -> bool + Send + Sync> {
    Arc::new(|| false)
}

/// A log with lines `l0`..`l{n-1}` at seconds 0..n, a partial joined line,
/// and stderr, rotated into several files.
fn sample(dir: &Path) -> PathBuf {
    let log = dir.join("c/0.log");
    let mut w = LogWriter::open(&log, 1024, 4).unwrap();
    for i in 0..40i64 {
        let text = format!("l{i} {}\n", "x".repeat(60));
        w.write_chunk(Stream::Stdout, text.as_bytes(), (i, 0))
            .unwrap();
    }
    w.write_chunk(Stream::Stdout, b"part-", (100, 0)).unwrap();
    w.write_chunk(Stream::Stdout, b"joined\n", (101, 0))
        .unwrap();
    w.write_chunk(Stream::Stderr, b"oops\n", (102, 5)).unwrap();
    log
}

#[test]
fn rotated_files_come_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let log = sample(dir.path());
    let f = files(&log);
    let names: Vec<String> = f
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["0.log.3", "0.log.2", "0.log.1", "0.log"]);
}

#[tokio::test]
async fn tail_timestamps_since_and_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = sample(dir.path());
    let tail = LogOptions {
        tail_lines: Some(3),
        ..LogOptions::default()
    };
    let out = collect(stream(log.clone(), tail, always())).await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("l39 "), "{out}");
    assert_eq!(&lines[1..], ["part-joined", "oops"]);

    let ts = LogOptions {
        tail_lines: Some(2),
        timestamps: true,
        ..LogOptions::default()
    };
    let out = collect(stream(log.clone(), ts, always())).await;
    assert_eq!(
        out,
        "1970-01-01T00:01:40Z part-joined\n1970-01-01T00:01:42.000000005Z oops\n"
    );

    let since = LogOptions {
        since: Some((101, 0)),
        ..LogOptions::default()
    };
    let out = collect(stream(log.clone(), since, always())).await;
    assert_eq!(out, "oops\n", "part-joined starts at 100");

    let limit = LogOptions {
        tail_lines: Some(2),
        limit_bytes: Some(7),
        ..LogOptions::default()
    };
    assert_eq!(
        collect(stream(log.clone(), limit, always())).await,
        "part-jo"
    );

    let all = collect(stream(log.clone(), LogOptions::default(), always())).await;
    let first = all.lines().next().unwrap();
    assert!(
        first.starts_with('l'),
        "oldest kept rotation first: {first}"
    );
    let n: Vec<u32> = all
        .lines()
        .filter_map(|l| l.split(' ').next()?.strip_prefix('l')?.parse().ok())
        .collect();
    assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "in order: {n:?}");
    assert_eq!(n.last(), Some(&39));
}

#[tokio::test]
async fn a_missing_log_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let out = collect(stream(
        dir.path().join("none.log"),
        LogOptions::default(),
        always(),
    ))
    .await;
    assert_eq!(out, "");
}

#[tokio::test]
async fn follow_reads_new_lines_across_rotations_until_the_container_ends() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c/0.log");
    let mut w = LogWriter::open(&log, 1024, 3).unwrap();
    w.write_chunk(Stream::Stdout, b"before\n", (1, 0)).unwrap();
    let running = Arc::new(AtomicBool::new(true));
    let r = running.clone();
    let opts = LogOptions {
        follow: true,
        ..LogOptions::default()
    };
    let mut rx = stream(
        log.clone(),
        opts,
        Arc::new(move || r.load(Ordering::SeqCst)),
    );
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, b"before\n");
    // Enough to rotate several times while being followed.
    let writer = tokio::task::spawn_blocking(move || {
        for i in 0..60 {
            let text = format!("n{i} {}\n", "y".repeat(50));
            w.write_chunk(Stream::Stdout, text.as_bytes(), (2 + i, 0))
                .unwrap();
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(30));
            }
        }
        w.write_chunk(Stream::Stdout, b"end", (99, 0)).unwrap();
    });
    writer.await.unwrap();
    let mut got = String::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !got.contains("n59 ") {
            got.push_str(&String::from_utf8(rx.recv().await.unwrap()).unwrap());
        }
    })
    .await
    .expect("followed lines arrive");
    running.store(false, Ordering::SeqCst);
    let rest = tokio::time::timeout(Duration::from_secs(10), collect(rx))
        .await
        .expect("the stream ends when the container has ended");
    got.push_str(&rest);
    assert!(
        got.ends_with("end"),
        "the trailing partial line is flushed at the end"
    );
    let n: Vec<u32> = got
        .lines()
        .filter_map(|l| l.split(' ').next()?.strip_prefix('n')?.parse().ok())
        .collect();
    // Rotation to 3 files keeps everything here, since we follow faster
    // than 2 KiB are written between polls in most runs; at least nothing
    // is duplicated or out of order.
    assert!(
        n.windows(2).all(|w| w[1] > w[0]),
        "in order, no duplicates: {n:?}"
    );
    assert_eq!(n.last(), Some(&59));
}

#[tokio::test]
async fn channel_framing_keeps_stdout_and_stderr_apart() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("c/0.log");
    let mut w = LogWriter::open(&log, 1 << 20, 3).unwrap();
    w.write_chunk(Stream::Stdout, b"one\ntwo\n", (1, 0))
        .unwrap();
    w.write_chunk(Stream::Stderr, b"oops\n", (2, 0)).unwrap();
    w.write_chunk(Stream::Stdout, b"three\n", (3, 0)).unwrap();
    drop(w);
    let opts = LogOptions {
        channels: true,
        ..LogOptions::default()
    };
    let mut rx = stream(log, opts, Arc::new(|| false));
    let mut chunks = Vec::new();
    while let Some(c) = rx.recv().await {
        chunks.push(c);
    }
    assert_eq!(
        chunks,
        [
            b"\x01one\ntwo\n".to_vec(),
            b"\x02oops\n".to_vec(),
            b"\x01three\n".to_vec()
        ]
    );
}
