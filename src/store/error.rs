//! Errors of the store layer. Callers match on the variant: corruption and missing data are
//! distinct from I/O failures so the mount can map them to EIO and `check` can report them.

use std::io;
use std::path::PathBuf;

use super::{BlobId, PackId};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("blob {0} is not in the index")]
    MissingBlob(BlobId),
    #[error("pack {0} is missing")]
    MissingPack(PackId),
    #[error("pack {pack} is truncated ({detail})")]
    Truncated { pack: PackId, detail: String },
    #[error("blob {id} in pack {pack} failed authentication (corrupt or tampered)")]
    Corrupt { id: BlobId, pack: PackId },
    #[error("pack {pack} header is damaged: {detail}")]
    BadPackHeader { pack: PackId, detail: String },
    #[error("{0}")]
    Codec(String),
    #[error("index database: {0}")]
    Index(String),
    #[error("the vault is full or out of space: {0}")]
    NoSpace(String),
}

impl StoreError {
    /// An I/O error with the operation and path that failed; ENOSPC gets its own variant.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> StoreError {
        let path = path.into();
        if source.raw_os_error() == Some(libc::ENOSPC) {
            return StoreError::NoSpace(format!("{op} {}", path.display()));
        }
        StoreError::Io { op, path, source }
    }

    /// True when the error means stored data is damaged or gone (as opposed to a local failure).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StoreError::MissingBlob(_)
                | StoreError::MissingPack(_)
                | StoreError::Truncated { .. }
                | StoreError::Corrupt { .. }
                | StoreError::BadPackHeader { .. }
                | StoreError::Codec(_)
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
