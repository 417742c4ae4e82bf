//! Unit tests of the proxy library (no root, no BPF).

mod diff;
mod external;
pub(crate) mod fixtures;
mod gc;
mod latency;
mod snat_gc;
mod translate;
