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
    // SAFETY: its pointers name live buffers of the sizes given, and the
    // kernel writes at most `data_size_out` bytes into `out`.
    unsafe { prog_test_run(&mut attr) }?;
    out.truncate(attr.data_size_out as usize);
    Ok(TestRun {
        retval: attr.retval,
        data: out,
        duration_ns: attr.duration,
    })
}

/// `BPF_F_TEST_XDP_LIVE_FRAMES`: frames the program returns `XDP_TX` or
/// `XDP_REDIRECT` for are really sent.
const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// `struct xdp_md`, the context an XDP test run takes.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

/// Runs the XDP program behind `prog` `repeat` times on copies of `frame`
/// in live-frames mode (Linux ≥ 5.18) as if received on `ifindex` (in the
/// calling thread's netns): a frame it returns `XDP_TX` for leaves by
/// `ifindex`, one it redirects leaves where it was redirected. The kernel
/// reuses the frames' pages without restoring their contents, so the
/// program must write what it sends. Returns when all have run.
pub fn live_frames(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
) -> Result<(), ProgRunError> {
    let len = u32::try_from(frame.len()).map_err(|_| ProgRunError::TooLarge(frame.len()))?;
    let ctx = XdpMd {
        data_end: len,
        ingress_ifindex: ifindex,
        ..XdpMd::default()
    };
    let mut attr = TestAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: len,
        data_in: frame.as_ptr() as u64,
        repeat,
        ctx_size_in: std::mem::size_of::<XdpMd>() as u32,
        ctx_in: &ctx as *const XdpMd as u64,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        ..TestAttr::default()
    };
    // SAFETY: `frame` and `ctx` outlive the call; nothing is written back
    // but `attr` itself.
    unsafe { prog_test_run(&mut attr) }
}

/// `bpf(BPF_PROG_TEST_RUN, attr)`.
///
/// # Safety
/// `attr` is a fully initialised `bpf_attr.test` (zeroed beyond the fields
/// set) whose pointers name live buffers of the sizes it gives.
unsafe fn prog_test_run(attr: &mut TestAttr) -> Result<(), ProgRunError> {
    // SAFETY: the caller's promise.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            attr as *mut TestAttr,
            std::mem::size_of::<TestAttr>() as u32,
        )
    };
    if rc < 0 {
        return Err(ProgRunError::Syscall {
            len: attr.data_size_in as usize,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}
