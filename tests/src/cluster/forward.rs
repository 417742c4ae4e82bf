//! Port forwarding from the host's loopback into a lab: a listener on `127.0.0.1:<port>`
//! in the caller's netns whose connections are opened from inside a lab netns, so a
//! browser or kubectl on the host reaches the cluster while every packet stays on
//! loopback or inside the lab (nothing is routed from the host into it).

use std::io::copy;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::lab::Netns;

/// A running forward; dropping it stops accepting (open connections finish).
pub struct Forward {
    local: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Forward {
    /// Forward `local` to `target`, connecting from inside `netns`.
    pub fn start(local: SocketAddr, netns: &Netns, target: SocketAddr) -> Result<Forward> {
        let listener = TcpListener::bind(local).with_context(|| format!("listening on {local}"))?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let netns_file = std::fs::File::open(netns.path())
            .with_context(|| format!("opening {}", netns.path().display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        match connect_in(&netns_file, target) {
                            Ok(upstream) => splice(client, upstream),
                            Err(e) => eprintln!("forward {local} → {target}: {e}"),
                        }
                    }
                    // Non-blocking accept: poll the stop flag a few times a second.
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(e) => eprintln!("forward {local}: accept: {e}"),
                }
            }
        });
        Ok(Forward { local, stop })
    }

    pub fn local(&self) -> SocketAddr {
        self.local
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A TCP connection opened from a thread that joined `netns` (the socket stays there).
fn connect_in(netns: &std::fs::File, target: SocketAddr) -> std::io::Result<TcpStream> {
    use std::os::fd::AsRawFd;
    let fd = netns.as_raw_fd();
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a netns fd this thread owns a borrow of; only this thread moves.
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            TcpStream::connect_timeout(&target, Duration::from_secs(5))
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("connect thread panicked")))
    })
}

/// Copy both ways until either side closes.
fn splice(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let (mut from, mut to) = (a, b2);
        let _ = copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        let (mut from, mut to) = (b, a2);
        let _ = copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}
