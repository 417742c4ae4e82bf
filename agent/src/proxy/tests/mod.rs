//! Unit tests of the proxy library (no root, no BPF).

mod diff;
pub(crate) mod fixtures;
mod gc;
mod translate;
