//! The BPF side of the agent (needs root): bpffs, loading, attaching,
//! reading counters, teardown.
//!
//! Reading the maps of a running (or stopped) agent, e.g. from tests:
//!
//! ```no_run
//! use skiff_agent::dataplane::{PinDirs, PinnedMaps};
//! use skiff_agent::proxy::KvMap;
//! let dirs = PinDirs::new("/sys/fs/bpf/skiff".as_ref(), "node-a");
//! let maps = PinnedMaps::open(&dirs)?;
//! let services = maps.services.entries()?;
//! let stats = maps.stats()?;
//! println!("{} entries; {stats}", services.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod array;
pub mod attach;
pub mod bpffs;
pub mod endpoints;
mod error;
pub mod external;
pub mod loader;
pub mod maps;
pub mod netif;
pub mod sock;
pub mod stats;
pub mod teardown;

pub use attach::{AttachReport, Attacher, TcMode};
pub use bpffs::PinDirs;
pub use endpoints::EndpointReport;
pub use error::DataplaneError;
pub use external::{NodePortAttach, NodePortMode};
pub use loader::{Hook, LoadOptions, Loaded, MapSizes, POD_HOOKS};
pub use maps::{PinnedHash, PinnedMaps};
pub use stats::{read_stats, Stats};
pub use teardown::{teardown, TeardownReport};

/// A loaded, attachable data path for one node.
pub struct Dataplane {
    pub loaded: Loaded,
    pub attacher: Attacher,
    pub maps: PinnedMaps,
}

impl Dataplane {
    /// Loads the object (maps created or reused from their pins) and opens
    /// the maps; attaches nothing yet (see [`Dataplane::sync_links`]).
    pub fn start(opts: &LoadOptions, prefix: &str, mode: TcMode) -> Result<Self, DataplaneError> {
        let loaded = loader::load(opts)?;
        let maps = PinnedMaps::open(&opts.dirs)?;
        let attacher = Attacher::new(opts.dirs.clone(), prefix, mode);
        Ok(Self {
            loaded,
            attacher,
            maps,
        })
    }

    /// Attaches to new pod veths, forgets vanished ones.
    pub fn sync_links(&mut self) -> Result<AttachReport, DataplaneError> {
        self.attacher.sync(&mut self.loaded)
    }

    /// Brings `LOCAL_ENDPOINTS` in line with the pods this node routes to
    /// its pod veths (see [`endpoints`]).
    pub fn sync_endpoints(&mut self) -> Result<EndpointReport, DataplaneError> {
        endpoints::sync(
            &mut self.maps.local_endpoints,
            &mut self.maps.local_prefix,
            self.attacher.prefix(),
        )
    }

    /// The kernel id of the loaded classifier `name`.
    pub fn program_id(&mut self, name: &'static str) -> Option<u32> {
        let prog = self.loaded.program(name).ok()?;
        prog.info().ok().map(|i| i.id())
    }
}
