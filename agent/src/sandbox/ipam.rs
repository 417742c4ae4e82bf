//! Pod IP allocation from the node's pod CIDR, persisted on disk.
//!
//! One file per allocated address, `<dir>/<ip>`, holding the owner's pod uid
//! (the scheme of the CNI `host-local` plugin). A file is created with
//! `O_EXCL`, so two allocators (two processes) can never get the same
//! address, and an agent restart finds every live address taken. There is no
//! fsync: what a machine crash could lose is only ever the address of a pod
//! that the crash killed too (its network namespace is gone with the boot),
//! and that pod gets a new sandbox and address anyway. The allocator keeps
//! the directory's contents in memory after one read, so an allocation costs
//! one file create whatever the number of pods; an address another process
//! took shows up as a failed `O_EXCL` create, which rereads the directory.
//! `last` remembers the last address handed out: allocation continues after
//! it, so a just-released address is not reused at once (stale conntrack
//! entries, endpoints not yet updated). The network address, the first
//! address (reserved for a gateway) and the broadcast address are never
//! handed out.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::cidr::Ipv4Cidr;

/// Where the last handed-out address is remembered.
const LAST: &str = "last";

#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("pod CIDR {cidr} is exhausted: all {usable} usable addresses are allocated")]
    Exhausted { cidr: Ipv4Cidr, usable: u64 },
    #[error("pod CIDR {0} is too small: it needs at least 4 addresses")]
    TooSmall(Ipv4Cidr),
    #[error("IPAM: {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> IpamError {
    let path = path.to_owned();
    move |source| IpamError::Io { what, path, source }
}

enum Claim {
    Ours,
    Held(String),
}

/// The allocator of one pod CIDR.
#[derive(Debug)]
pub struct Ipam {
    cidr: Ipv4Cidr,
    dir: PathBuf,
    /// Serialises this process's allocations (files serialise processes) and
    /// holds the directory's contents once read: address → owner.
    known: Mutex<Option<BTreeMap<Ipv4Addr, String>>>,
}

impl Ipam {
    /// Opens (creating if needed) the store for `cidr` under `state_dir`:
    /// `<state_dir>/<network>_<prefix>/`.
    pub fn open(state_dir: &Path, cidr: Ipv4Cidr) -> Result<Self, IpamError> {
        if cidr.size() < 4 {
            return Err(IpamError::TooSmall(cidr));
        }
        let dir = state_dir.join(format!("{}_{}", cidr.network(), cidr.prefix()));
        std::fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        Ok(Self {
            cidr,
            dir,
            known: Mutex::new(None),
        })
    }

    pub fn cidr(&self) -> Ipv4Cidr {
        self.cidr
    }

    /// The address reserved for a gateway (first after the network address).
    pub fn gateway(&self) -> Ipv4Addr {
        self.cidr.nth(1).expect("cidr has at least 4 addresses")
    }

    /// Addresses that may be handed out.
    pub fn usable(&self) -> u64 {
        self.cidr.size() - 3
    }

    /// Every allocation: address → owner.
    pub fn allocations(&self) -> Result<BTreeMap<Ipv4Addr, String>, IpamError> {
        let entries = std::fs::read_dir(&self.dir).map_err(io_err("listing", &self.dir))?;
        let mut out = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(io_err("listing", &self.dir))?;
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let path = entry.path();
            match std::fs::read_to_string(&path) {
                Ok(owner) => {
                    out.insert(ip, owner.trim().to_owned());
                }
                // Released meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("reading", &path)(e)),
            }
        }
        Ok(out)
    }

    /// The address `owner` holds, if any.
    pub fn lookup(&self, owner: &str) -> Result<Option<Ipv4Addr>, IpamError> {
        Ok(self
            .allocations()?
            .into_iter()
            .find_map(|(ip, o)| (o == owner).then_some(ip)))
    }

    /// An address for `owner`: the one it already holds, else the next free
    /// one after the last handed out.
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr, IpamError> {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ip) = self.find_owned(&mut known, owner)? {
            return Ok(ip);
        }
        let first = 2;
        let last = self.cidr.size() - 2;
        let start = self
            .read_last()
            .and_then(|ip| self.cidr.offset(ip))
            .filter(|o| (first..=last).contains(o))
            .map_or(first, |o| if o == last { first } else { o + 1 });
        // A second pass after rereading the directory: what another process
        // released since the first read is free again.
        for pass in 0..2 {
            if pass == 1 {
                *known = None;
            }
            let taken = self.view(&mut known)?;
            for i in 0..self.usable() {
                let off = first + (start - first + i) % self.usable();
                let ip = self.cidr.nth(off).expect("offset inside the cidr");
                if taken.contains_key(&ip) {
                    continue;
                }
                match self.claim(ip, owner)? {
                    Claim::Ours => {
                        taken.insert(ip, owner.to_owned());
                        self.write_last(ip)?;
                        return Ok(ip);
                    }
                    // Another process took it since the directory was read.
                    Claim::Held(by) => {
                        taken.insert(ip, by);
                    }
                }
            }
        }
        Err(IpamError::Exhausted {
            cidr: self.cidr,
            usable: self.usable(),
        })
    }

    /// The cached view of the directory, read on first use.
    fn view<'a>(
        &self,
        known: &'a mut Option<BTreeMap<Ipv4Addr, String>>,
    ) -> Result<&'a mut BTreeMap<Ipv4Addr, String>, IpamError> {
        if known.is_none() {
            *known = Some(self.allocations()?);
        }
        Ok(known.as_mut().expect("just filled"))
    }

    fn find_owned(
        &self,
        known: &mut Option<BTreeMap<Ipv4Addr, String>>,
        owner: &str,
    ) -> Result<Option<Ipv4Addr>, IpamError> {
        Ok(self
            .view(known)?
            .iter()
            .find_map(|(ip, o)| (o == owner).then_some(*ip)))
    }

    /// Releases what `owner` holds; returns the addresses freed (none if it
    /// held nothing, so a second release is harmless).
    pub fn release(&self, owner: &str) -> Result<Vec<Ipv4Addr>, IpamError> {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        // From the directory itself: another process may hold files for `owner`.
        *known = None;
        let view = self.view(&mut known)?;
        let mut freed = Vec::new();
        for (ip, o) in view.iter() {
            if o != owner {
                continue;
            }
            let path = self.dir.join(ip.to_string());
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_err("removing", &path)(e))
                }
                _ => freed.push(*ip),
            }
        }
        for ip in &freed {
            view.remove(ip);
        }
        Ok(freed)
    }

    /// Creates `<dir>/<ip>` exclusively, or says who holds it.
    fn claim(&self, ip: Ipv4Addr, owner: &str) -> Result<Claim, IpamError> {
        let path = self.dir.join(ip.to_string());
        let mut file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let by = std::fs::read_to_string(&path).unwrap_or_default();
                return Ok(Claim::Held(by.trim().to_owned()));
            }
            Err(e) => return Err(io_err("creating", &path)(e)),
        };
        if let Err(e) = writeln!(file, "{owner}") {
            let _ = std::fs::remove_file(&path);
            return Err(io_err("writing", &path)(e));
        }
        Ok(Claim::Ours)
    }

    fn read_last(&self) -> Option<Ipv4Addr> {
        std::fs::read_to_string(self.dir.join(LAST))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// A best-effort hint, overwritten in place at a fixed width: no file is
    /// created or truncated (a freed block costs a discard on some mounts) per
    /// allocation, and a torn or lost hint only moves where the next search
    /// starts.
    fn write_last(&self, ip: Ipv4Addr) -> Result<(), IpamError> {
        use std::os::unix::fs::FileExt;
        let path = self.dir.join(LAST);
        let line = format!("{:<15}\n", ip.to_string());
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .and_then(|f| f.write_all_at(line.as_bytes(), 0))
            .map_err(io_err("writing", &path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(dir: &Path, cidr: &str) -> Ipam {
        Ipam::open(dir, cidr.parse().unwrap()).unwrap()
    }

    #[test]
    fn skips_network_gateway_and_broadcast_and_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = ipam(tmp.path(), "10.244.1.0/24");
        assert_eq!(ipam.gateway(), Ipv4Addr::new(10, 244, 1, 1));
        let a = ipam.allocate("pod-a").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 244, 1, 2));
        assert_eq!(ipam.allocate("pod-a").unwrap(), a, "same owner, same ip");
        let b = ipam.allocate("pod-b").unwrap();
        assert_eq!(b, Ipv4Addr::new(10, 244, 1, 3));
        assert_eq!(ipam.lookup("pod-b").unwrap(), Some(b));
        assert_eq!(ipam.lookup("nobody").unwrap(), None);
    }

    #[test]
    fn exhaustion_is_a_clear_error_and_release_frees() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = ipam(tmp.path(), "10.0.0.0/29");
        let got: Vec<_> = (0..5)
            .map(|i| ipam.allocate(&format!("p{i}")).unwrap())
            .collect();
        let last: Vec<u8> = got.iter().map(|ip| ip.octets()[3]).collect();
        assert_eq!(last, [2, 3, 4, 5, 6], ".0, .1 and .7 are never handed out");
        let err = ipam.allocate("one-too-many").unwrap_err();
        assert!(
            matches!(err, IpamError::Exhausted { usable: 5, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("10.0.0.0/29 is exhausted"),
            "{err}"
        );

        assert_eq!(ipam.release("p1").unwrap(), vec![got[1]]);
        assert!(ipam.release("p1").unwrap().is_empty(), "second release");
        assert_eq!(ipam.allocate("late").unwrap(), got[1]);
    }

    #[test]
    fn released_addresses_are_not_reused_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = ipam(tmp.path(), "10.0.0.0/24");
        let a = ipam.allocate("a").unwrap();
        ipam.release("a").unwrap();
        let b = ipam.allocate("b").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_reload_keeps_every_live_allocation() {
        let tmp = tempfile::tempdir().unwrap();
        let first = ipam(tmp.path(), "10.244.0.0/24");
        let ips: Vec<_> = (0..10)
            .map(|i| first.allocate(&format!("pod-{i}")).unwrap())
            .collect();
        first.release("pod-3").unwrap();
        drop(first);

        let again = ipam(tmp.path(), "10.244.0.0/24");
        let live = again.allocations().unwrap();
        assert_eq!(live.len(), 9);
        assert_eq!(again.lookup("pod-7").unwrap(), Some(ips[7]));
        let fresh = again.allocate("new").unwrap();
        assert!(!live.contains_key(&fresh), "{fresh} handed out twice");
        assert_eq!(
            fresh,
            Ipv4Addr::new(10, 244, 0, 12),
            "continues after the last"
        );
        // Another CIDR has its own store.
        let other = ipam(tmp.path(), "10.244.1.0/24");
        assert!(other.allocations().unwrap().is_empty());
    }

    #[test]
    fn concurrent_allocations_get_distinct_addresses() {
        let tmp = tempfile::tempdir().unwrap();
        let ipam = ipam(tmp.path(), "10.244.0.0/24");
        let ips: Vec<Ipv4Addr> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..32)
                .map(|i| {
                    let ipam = &ipam;
                    s.spawn(move || ipam.allocate(&format!("pod-{i}")).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let distinct: std::collections::BTreeSet<_> = ips.iter().collect();
        assert_eq!(distinct.len(), 32, "{ips:?}");
        let live = ipam.allocations().unwrap();
        for (i, ip) in ips.iter().enumerate() {
            assert_eq!(live.get(ip), Some(&format!("pod-{i}")));
        }
    }

    #[test]
    fn two_allocators_on_one_directory_never_share_an_address() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (
            ipam(tmp.path(), "10.0.0.0/29"),
            ipam(tmp.path(), "10.0.0.0/29"),
        );
        assert_eq!(b.allocate("p0").unwrap(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(a.allocate("p1").unwrap(), Ipv4Addr::new(10, 0, 0, 3));
        // b's view predates p1; point its search at p1's address.
        std::fs::write(tmp.path().join("10.0.0.0_29").join(LAST), "10.0.0.2\n").unwrap();
        assert_eq!(b.allocate("p2").unwrap(), Ipv4Addr::new(10, 0, 0, 4));
        assert_eq!(
            b.allocate("p1").unwrap(),
            Ipv4Addr::new(10, 0, 0, 3),
            "p1's own"
        );
        // What a releases, b hands out again once the rest is full.
        for p in ["p3", "p4"] {
            b.allocate(p).unwrap();
        }
        assert_eq!(a.release("p0").unwrap(), vec![Ipv4Addr::new(10, 0, 0, 2)]);
        assert_eq!(b.allocate("p5").unwrap(), Ipv4Addr::new(10, 0, 0, 2));
    }

    #[test]
    fn tiny_cidrs_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Ipam::open(tmp.path(), "10.0.0.0/31".parse().unwrap()).unwrap_err();
        assert!(matches!(err, IpamError::TooSmall(_)), "{err}");
    }
}
