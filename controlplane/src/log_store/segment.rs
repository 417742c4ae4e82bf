//! Segment files: `<dir>/<seq as 16 hex digits>.wal`, written front to back and never
//! rewritten. A new one is preallocated (`fallocate`) so appends do not grow the file: an
//! `fdatasync` then has no file size to persist, and the unwritten tail reads as zeros, which
//! is how the end of a segment is found. The set of open segments is shared with readers,
//! which `pread` purged-from-cache entries out of them.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const SUFFIX: &str = ".wal";

/// Where a record's payload is on disk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Loc {
    pub seq: u64,
    pub offset: u64,
    pub len: u32,
}

pub(super) fn path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}{SUFFIX}"))
}

/// The segments in `dir`, oldest first (other files are left alone).
pub(super) fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for item in std::fs::read_dir(dir)? {
        let name = item?.file_name();
        let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
            continue;
        };
        if let (16, Ok(seq)) = (hex.len(), u64::from_str_radix(hex, 16)) {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Creates segment `seq`, preallocated to `bytes`, with its directory entry durable.
pub(super) fn create(dir: &Path, seq: u64, bytes: u64) -> io::Result<File> {
    let p = path(dir, seq);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&p)?;
    preallocate(&file, bytes)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(file)
}

pub(super) fn open(dir: &Path, seq: u64) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path(dir, seq))
}

/// Reserves `bytes` of zeros. A file system without `fallocate` gets a sparse file of that
/// size instead (same zeros, allocated on write).
fn preallocate(file: &File, bytes: u64) -> io::Result<()> {
    // SAFETY: a plain syscall on an open descriptor owned by `file`.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, bytes as libc::off_t) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => file.set_len(bytes),
        _ => Err(err),
    }
}

/// Makes the directory's entries (a created or removed segment) durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The open segments, shared by the writer (which adds and removes them) and readers.
#[derive(Default)]
pub(super) struct Segments {
    files: Mutex<BTreeMap<u64, Arc<File>>>,
}

impl Segments {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<File>>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn insert(&self, seq: u64, file: Arc<File>) {
        self.lock().insert(seq, file);
    }

    pub(super) fn get(&self, seq: u64) -> Option<Arc<File>> {
        self.lock().get(&seq).cloned()
    }

    pub(super) fn remove(&self, seq: u64) {
        self.lock().remove(&seq);
    }

    /// The payload at `loc`.
    pub(super) fn read(&self, loc: Loc) -> io::Result<Vec<u8>> {
        let file = self.get(loc.seq).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("log segment {:016x} is gone", loc.seq),
            )
        })?;
        let mut buf = vec![0; loc.len as usize];
        file.read_exact_at(&mut buf, loc.offset)?;
        Ok(buf)
    }
}
