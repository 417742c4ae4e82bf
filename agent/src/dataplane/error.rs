//! Errors of the data-plane side, each naming what failed and on what.

use std::io;
use std::path::PathBuf;

use aya::maps::MapError;
use aya::pin::PinError;
use aya::programs::ProgramError;

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("BPF object not built: run `cargo xtask build` (then rebuild the agent)")]
    ObjectNotBuilt,
    #[error("mounting bpffs at {path}: {source}")]
    MountBpffs {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not on a bpf filesystem")]
    NotBpffs { path: PathBuf },
    #[error("creating directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("removing {path}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("loading the BPF object (maps pinned under {pin_dir}): {source}")]
    Load {
        pin_dir: PathBuf,
        #[source]
        source: Box<aya::EbpfError>,
    },
    #[error("no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")]
    NoCgroup2,
    #[error("program {name} not found in the BPF object")]
    ProgramMissing { name: &'static str },
    #[error("program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("map {name} at {path}: {source}")]
    Map {
        name: &'static str,
        path: PathBuf,
        #[source]
        source: MapError,
    },
    #[error(
        "pinned map {path} does not match this agent's layout ({detail}); \
         remove it with `skiff agent --node-name <node> --teardown`"
    )]
    MapLayout { path: PathBuf, detail: String },
    #[error("attaching to {iface}: {source}")]
    Attach {
        iface: String,
        #[source]
        source: ProgramError,
    },
    #[error("attaching to {iface}: adding the clsact qdisc: {source}")]
    Clsact {
        iface: String,
        #[source]
        source: aya::programs::tc::TcError,
    },
    #[error("link of {iface}: {source}")]
    Link {
        iface: String,
        #[source]
        source: aya::programs::links::LinkError,
    },
    #[error("pinning the link of {iface} at {path}: {source}")]
    PinLink {
        iface: String,
        path: PathBuf,
        #[source]
        source: PinError,
    },
    #[error("detaching from {iface}: {source}")]
    Detach {
        iface: String,
        #[source]
        source: aya::programs::tc::TcError,
    },
    #[error("interface {iface} not found")]
    NoInterface { iface: String },
    #[error(
        "no external interface for NodePort: no default route and no --node-ip; \
         pass --external-iface"
    )]
    NoExternalInterface,
    #[error("listing network interfaces: {0}")]
    ListInterfaces(#[source] io::Error),
    #[error("rtnetlink: {what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    MapOp(#[from] crate::proxy::MapOpError),
}
