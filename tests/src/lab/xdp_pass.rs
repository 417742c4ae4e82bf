//! A one-instruction `XDP_PASS` program, loaded with raw `bpf(2)` calls and
//! attached through a BPF link, for veth peers that must receive frames
//! another veth's XDP program sends with `XDP_TX`: the kernel schedules the
//! receiving veth's NAPI for such frames only when it has an XDP program.

use std::os::fd::{FromRawFd, OwnedFd};

use super::{LabError, Netns};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;

#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    _rest: [u64; 12],
}

#[repr(C)]
#[derive(Default)]
struct LinkCreate {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
    _rest: [u64; 8],
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<OwnedFd> {
    // SAFETY: `attr` is a zero-padded bpf_attr prefix of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as u32,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new fd the kernel just returned to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Attaches `XDP_PASS` to `ifname` in `netns`; the link lives as long as
/// the returned fd (or the interface).
pub fn attach(netns: &Netns, ifname: &str) -> Result<OwnedFd, LabError> {
    // r0 = XDP_PASS (2); exit
    let insns: [u64; 2] = [0x0000_0002_0000_00b7, 0x0000_0000_0000_0095];
    let license = b"GPL\0";
    let name = ifname.to_owned();
    let res = netns.run(move || {
        let mut load = ProgLoad {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: 2,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            ..ProgLoad::default()
        };
        let prog = bpf(BPF_PROG_LOAD, &mut load)?;
        let cname = std::ffi::CString::new(name.clone()).map_err(std::io::Error::other)?;
        // SAFETY: a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(std::io::Error::last_os_error());
        }
        use std::os::fd::AsRawFd;
        let mut link = LinkCreate {
            prog_fd: prog.as_raw_fd() as u32,
            target_ifindex: ifindex,
            attach_type: BPF_XDP,
            ..LinkCreate::default()
        };
        bpf(BPF_LINK_CREATE, &mut link)
    })?;
    res.map_err(|source| LabError::Io {
        what: "attaching XDP_PASS to",
        path: ifname.into(),
        source,
    })
}
