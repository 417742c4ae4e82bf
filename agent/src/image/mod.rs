//! The node-local image store: content-addressed, under `<state>/images`.
//!
//! ```text
//! images/
//!   layers/<diff-id hex>/                 one unpacked layer (overlay lowerdir)
//!   layers/<diff-id hex>.whiteouts.json   its whiteouts, for the copy fallback
//!   records/<image-id hex>.json           ImageRecord (config, layers, tags)
//!   tags.json                             normalized reference → image id
//!   init/<image-id hex>/                  mount points the image lacks (init_layer.rs)
//!   rootfs/<container id>/{upper,work,merged}
//!   tmp/                                  imports in progress
//! ```
//!
//! Images come in through [`ImageStore::import`] (an OCI layout or a
//! `docker save` archive). A registry puller slots in through
//! [`ImageStore::import_plan`] with its own [`ImageSource`].

mod archive;
pub mod build;
mod config;
mod error;
mod init_layer;
pub mod layer;
mod reference;
mod rootfs;
mod store;

pub use archive::{DirSource, ImagePlan, ImageSource, LayerRef};
pub use config::ImageConfig;
pub use error::ImageError;
pub use reference::{digest_hex, Reference};
pub use rootfs::{Rootfs, RootfsMode};
pub use store::{ImageRecord, ImageStore};

#[cfg(test)]
mod tests;
