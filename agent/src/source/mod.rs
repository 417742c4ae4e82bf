//! Where Services and EndpointSlices come from.
//!
//! A directory of manifests ([`ManifestDir`]) or the control plane's
//! `WatchServices` stream ([`ControlPlaneSource`]), behind one trait.

mod controlplane;
mod manifests;

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

pub use controlplane::ControlPlaneSource;
pub use manifests::ManifestDir;

/// Every Service and EndpointSlice the source knows, at one point in time.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub services: Vec<Service>,
    pub slices: Vec<EndpointSlice>,
}

/// A source of Services and EndpointSlices.
pub trait ServiceSource {
    /// A full new snapshot if anything changed since the last call, `None`
    /// if nothing did. An error leaves the caller's last good snapshot in
    /// force; the source reports it once per change.
    fn poll(&mut self) -> Result<Option<Snapshot>, SourceError>;
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: document {doc}: {source}")]
    Parse {
        path: PathBuf,
        /// 1-based index of the YAML document in the file.
        doc: usize,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("control plane at {addr}: {message}")]
    ControlPlane { addr: String, message: String },
}
