//! What can go wrong in the image store, with what failed and on what.

use std::path::PathBuf;

/// An image store error.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image reference {reference:?}: {reason}")]
    BadReference { reference: String, reason: String },
    #[error("archive {path}: {reason}")]
    BadArchive { path: PathBuf, reason: String },
    #[error("{what}: digest {actual} does not match the expected {expected}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("layer {locator}: unsupported media type {media_type:?}")]
    UnsupportedMediaType { locator: String, media_type: String },
    #[error(
        "image {reference:?} is not in the node's image store {store}; import it with \
         `skiff image import <archive>` (or `cargo xtask images` for the test images)"
    )]
    NotFound { reference: String, store: PathBuf },
    #[error("{what} {path}: {reason}")]
    Corrupt {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
}

impl ImageError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
    }

    pub(crate) fn archive(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::BadArchive {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
