//! A safe wrapper around `bpf(BPF_PROG_TEST_RUN)`: run a loaded program on a
//! crafted packet without attaching it anywhere.
//!
//! aya 0.14 does not expose the command, so the `test` member of
//! `union bpf_attr` is laid out here by hand (include/uapi/linux/bpf.h).

use std::os::fd::{AsRawFd, BorrowedFd};

/// `BPF_PROG_TEST_RUN` command number.
const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// Room left for a program that grows the packet.
const OUT_HEADROOM: usize = 256;

/// The `test` member of `union bpf_attr`.
#[repr(C, align(8))]
#[derive(Default)]
struct TestAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    /// Explicit, so the kernel's "unused bytes are zero" check sees zeros.
    _pad: u32,
}
const _: () = assert!(std::mem::size_of::<TestAttr>() == 80);

/// What one `BPF_PROG_TEST_RUN` returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRun {
    /// The program's return value (for TC: `TC_ACT_*`).
    pub retval: u32,
    /// The packet as the program left it.
    pub data: Vec<u8>,
    /// Mean run time per repetition, in nanoseconds.
    pub duration_ns: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ProgRunError {
    #[error("packet of {0} bytes is too large for BPF_PROG_TEST_RUN")]
    TooLarge(usize),
    #[error("bpf(BPF_PROG_TEST_RUN) on a {len}-byte packet failed: {source}")]
    Syscall {
        len: usize,
        #[source]
        source: std::io::Error,
    },
}

impl ProgRunError {
    /// The errno of a failed syscall, if that is what failed.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Syscall { source, .. } => source.raw_os_error(),
            Self::TooLarge(_) => None,
        }
    }
}

/// Runs the program behind `prog` on `packet` (an Ethernet frame for TC and
/// XDP programs) `repeat` times (0 counts as 1). The kernel refuses frames
/// shorter than an Ethernet header with `EINVAL`.
pub fn test_run(prog: BorrowedFd<'_>, packet: &[u8], repeat: u32) -> Result<TestRun, ProgRunError> {
    let len_in = u32::try_from(packet.len()).map_err(|_| ProgRunError::TooLarge(packet.len()))?;
    let mut out = vec![0u8; packet.len() + OUT_HEADROOM];
    let mut attr = TestAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: len_in,
        data_size_out: out.len() as u32,
        data_in: packet.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat,
        ..TestAttr::default()
    };
    // SAFETY: `attr` is a fully initialised `bpf_attr.test` (zeroed beyond the
    // fields set), its pointers name live buffers of the sizes given, and the
    // kernel writes at most `data_size_out` bytes into `out`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestAttr,
            std::mem::size_of::<TestAttr>() as u32,
        )
    };
    if rc < 0 {
        return Err(ProgRunError::Syscall {
            len: packet.len(),
            source: std::io::Error::last_os_error(),
        });
    }
    out.truncate(attr.data_size_out as usize);
    Ok(TestRun {
        retval: attr.retval,
        data: out,
        duration_ns: attr.duration,
    })
}
