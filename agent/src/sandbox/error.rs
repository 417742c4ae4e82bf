//! What can go wrong setting up or tearing down a pod's network.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::ipam::IpamError;

/// An error of the sandbox API; each variant says what failed and on what.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A netlink request failed (`op` names the request and its object).
    #[error("netlink: {op}: {source}")]
    Netlink {
        op: String,
        #[source]
        source: std::io::Error,
    },
    /// A file or mount operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Entering, creating or binding a network namespace failed.
    #[error("netns {}: {what}: {source}", path.display())]
    Netns {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// Pod uids name files and links; only `[A-Za-z0-9._-]` is accepted.
    #[error("invalid pod uid {0:?}: want 1-128 chars of [A-Za-z0-9._-]")]
    InvalidUid(String),
    #[error("invalid sandbox config: {0}")]
    Config(String),
    /// The MTU comes from the interface holding the node address.
    #[error("no interface of this netns holds the node address {0}")]
    NoUplink(Ipv4Addr),
    /// A host-side veth name is taken by a link that is not this pod's.
    #[error("link {ifname} exists but belongs to {owner:?}, not pod {uid}")]
    NameClash {
        ifname: String,
        owner: Option<String>,
        uid: String,
    },
    /// Re-adopting a sandbox found a piece missing.
    #[error("sandbox of pod {uid} is incomplete: {what}")]
    Incomplete { uid: String, what: String },
}

impl SandboxError {
    pub(crate) fn netlink(op: impl Into<String>, source: std::io::Error) -> Self {
        Self::Netlink {
            op: op.into(),
            source,
        }
    }

    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
