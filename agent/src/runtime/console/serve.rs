//! The shim's side of the console: a non-blocking listener, the attached clients, and
//! our end of the container's stdin, driven by the shim's poll loop
//! ([`Console::register`] before `poll`, [`Console::handle`] after). Input is buffered
//! up to [`MAX_PENDING`]; past that the clients are not read until the container
//! reads, so a client that sends faster than the container reads is pushed back on,
//! and the container's output keeps flowing meanwhile.

use std::io;
use std::os::fd::{IntoRawFd, RawFd};
use std::path::Path;

use super::frame::{Decoder, Frame};
use super::{short_path, Stdio, SOCKET};
use crate::runtime::sys;

/// Stdin bytes held while the container does not read.
const MAX_PENDING: usize = 256 * 1024;
/// Attach sessions at once; more are refused.
const MAX_CLIENTS: usize = 8;
/// ^D: the end of a terminal's input.
const EOT: u8 = 0x04;

#[derive(Debug, Clone, Copy)]
enum Slot {
    Listener,
    Input,
    Client(usize),
}

struct Client {
    fd: RawFd,
    decoder: Decoder,
}

pub struct Console {
    listener: RawFd,
    clients: Vec<Client>,
    /// Our end of the container's stdin (-1: none, or closed).
    input: RawFd,
    /// The terminal's master side, for resizes (-1: no terminal).
    master: RawFd,
    once: bool,
    pending: Vec<u8>,
    close_when_flushed: bool,
    registered: Vec<Slot>,
}

impl Console {
    /// Serves `input` (our end of stdin, -1 for none) and `master` (-1 without a terminal)
    /// on `dir/attach.sock`. Takes ownership of both descriptors.
    pub fn listen(dir: &Path, stdio: Stdio, input: RawFd, master: RawFd) -> io::Result<Self> {
        let (_dir_fd, path) = short_path(dir, SOCKET)?;
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path)?;
        listener.set_nonblocking(true)?;
        if input >= 0 {
            // SAFETY: fcntl on our own descriptor.
            let flags = unsafe { libc::fcntl(input, libc::F_GETFL) };
            // SAFETY: as above.
            unsafe { libc::fcntl(input, libc::F_SETFL, flags | libc::O_NONBLOCK) };
        }
        Ok(Self {
            listener: listener.into_raw_fd(),
            clients: Vec::new(),
            input,
            master,
            once: stdio.stdin_once,
            pending: Vec::new(),
            close_when_flushed: false,
            registered: Vec::new(),
        })
    }

    /// Appends the descriptors to wait on.
    pub fn register(&mut self, fds: &mut Vec<libc::pollfd>) {
        self.registered.clear();
        let mut add = |fd: RawFd, events: libc::c_short, slot: Slot| {
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            self.registered.push(slot);
        };
        add(self.listener, libc::POLLIN, Slot::Listener);
        if self.input >= 0 && !self.pending.is_empty() {
            add(self.input, libc::POLLOUT, Slot::Input);
        }
        // A full buffer: leave the clients unread (and unpolled: a hung-up one would
        // wake poll at once, again and again).
        let reading = self.pending.len() < MAX_PENDING;
        for (i, c) in self.clients.iter().enumerate() {
            add(
                if reading { c.fd } else { -1 },
                libc::POLLIN,
                Slot::Client(i),
            );
        }
    }

    /// Acts on what `poll` reported for the descriptors [`Self::register`] added.
    pub fn handle(&mut self, fds: &[libc::pollfd]) {
        let mut gone = Vec::new();
        let registered = std::mem::take(&mut self.registered);
        for (&slot, p) in registered.iter().zip(fds) {
            if p.revents == 0 {
                continue;
            }
            match slot {
                Slot::Listener => self.accept(),
                Slot::Input => self.flush(),
                Slot::Client(i) => {
                    if !self.read_client(i) {
                        gone.push(i);
                    }
                }
            }
        }
        self.registered = registered;
        for i in gone.into_iter().rev() {
            sys::close(self.clients.remove(i).fd);
            if self.once {
                self.close_when_flushed = true;
            }
        }
        if !self.pending.is_empty() {
            self.flush();
        }
        if self.close_when_flushed && self.pending.is_empty() && self.master < 0 {
            self.close_input();
        }
    }

    fn accept(&mut self) {
        loop {
            // SAFETY: accept4 with no peer address buffer.
            let fd = unsafe {
                libc::accept4(
                    self.listener,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                return;
            }
            if self.clients.len() >= MAX_CLIENTS {
                sys::close(fd);
                continue;
            }
            self.clients.push(Client {
                fd,
                decoder: Decoder::default(),
            });
        }
    }

    /// Reads client `i`; false once it is gone (closed, failed or malformed).
    fn read_client(&mut self, i: usize) -> bool {
        let mut buf = [0u8; 16 * 1024];
        let n = match sys::read(self.clients[i].fd, &mut buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) => return e.kind() == io::ErrorKind::WouldBlock,
        };
        self.clients[i].decoder.push(&buf[..n]);
        loop {
            match self.clients[i].decoder.next_frame() {
                Ok(Some(f)) => self.apply(f),
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }

    fn apply(&mut self, f: Frame) {
        match f {
            Frame::Stdin(b) if self.input >= 0 => self.pending.extend_from_slice(&b),
            Frame::Stdin(_) => {}
            // A terminal ends its input with ^D; a pipe closes (only with stdinOnce:
            // otherwise the next attach may still write).
            Frame::CloseStdin if self.master >= 0 => {
                if self.input >= 0 {
                    self.pending.push(EOT);
                }
            }
            Frame::CloseStdin => {
                if self.once {
                    self.close_when_flushed = true;
                }
            }
            Frame::Resize { cols, rows } if self.master >= 0 => {
                let ws = libc::winsize {
                    ws_row: rows,
                    ws_col: cols,
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
                unsafe { libc::ioctl(self.master, libc::TIOCSWINSZ, &ws) };
            }
            Frame::Resize { .. } => {}
        }
    }

    fn flush(&mut self) {
        if self.input < 0 {
            self.pending.clear();
            return;
        }
        while !self.pending.is_empty() {
            // SAFETY: pending is valid for its length.
            let n = unsafe {
                libc::write(self.input, self.pending.as_ptr().cast(), self.pending.len())
            };
            if n >= 0 {
                self.pending.drain(..n as usize);
                continue;
            }
            match io::Error::last_os_error().kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock => return,
                // The container closed its stdin or ended.
                _ => {
                    self.close_input();
                    return;
                }
            }
        }
    }

    fn close_input(&mut self) {
        if self.input >= 0 {
            sys::close(self.input);
            self.input = -1;
        }
        self.pending.clear();
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        for c in &self.clients {
            sys::close(c.fd);
        }
        for fd in [self.listener, self.input, self.master] {
            if fd >= 0 {
                sys::close(fd);
            }
        }
    }
}
