//! Errors of the store layer. Callers match on the variant: damaged or missing data, local
//! failures (which keep their `io::Error`, so their errno), and limits are distinct, so the
//! mount can map them to the right errno and `check` can report damage.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::backend::{Holder, Key};
use super::{BlobId, PackId};
use crate::keys::KeyError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A local I/O failure: what was done, on what, and the OS error with its errno.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// ENOSPC where the vault writes (or the mount's own free-space floor).
    #[error("the vault is full or out of space: {0}")]
    NoSpace(String),
    /// Stored data is damaged or fails authentication (flipped, truncated, tampered, or sealed
    /// under another key). The one variant for bad stored bytes.
    #[error("{what} {why}")]
    Corrupt { what: Damaged, why: String },
    #[error("blob {0} is not in the index")]
    MissingBlob(BlobId),
    /// An object the index or the vault refers to is gone.
    #[error("{0} is missing")]
    Missing(Key),
    /// The index cannot be used as it is; `repair` rebuilds it from the packs.
    #[error("the index {dir} {problem}")]
    Index { dir: PathBuf, problem: IndexProblem },
    /// The index engine failed in a way that is neither I/O nor damage (it calls it a bug).
    #[error("index database: {0}")]
    Engine(String),
    #[error("{what} of {bytes} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        what: &'static str,
        bytes: u64,
        limit: u64,
    },
    /// Another process holds the vault's lock.
    #[error("vault is in use by {0}")]
    InUse(Holder),
    /// An object store failed or refused (unreachable, credentials, no bucket, lock lost).
    #[error(transparent)]
    Remote(super::backend::s3::RemoteError),
    /// Randomness (nonces, pack ids) could not be had.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// What stored thing is damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damaged {
    Blob {
        id: BlobId,
        pack: PackId,
    },
    /// A blob's plaintext, authenticated but not what its kind says (a tree that does not
    /// decode, a chunk of the wrong length).
    Content(BlobId),
    Object(Key),
    PackHeader(PackId),
    IndexEntry(BlobId),
    Index(PathBuf),
    /// A record (item, point, incoming, policy, a tree's listing, the config's parameters),
    /// named.
    Record(&'static str),
    Config,
}

impl fmt::Display for Damaged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damaged::Blob { id, pack } => write!(f, "blob {id} in pack {pack}"),
            Damaged::Content(id) => write!(f, "blob {id}"),
            Damaged::Object(key) => write!(f, "{key}"),
            Damaged::PackHeader(pack) => write!(f, "pack {pack} header"),
            Damaged::IndexEntry(id) => write!(f, "index entry of blob {id}"),
            Damaged::Index(dir) => write!(f, "the index {}", dir.display()),
            Damaged::Record(what) => f.write_str(what),
            Damaged::Config => f.write_str("vault config"),
        }
    }
}

/// Why the index database cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexProblem {
    Missing,
    /// It has no marker or another vault's: damaged, or copied from elsewhere.
    NotThisVault,
    /// `init` or `repair` would create it, but something is there.
    Exists,
}

impl fmt::Display for IndexProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IndexProblem::Missing => {
                "is missing; run `vaultfs repair` to rebuild it from the packs"
            }
            IndexProblem::NotThisVault => {
                "is damaged or belongs to another vault; run `vaultfs repair`"
            }
            IndexProblem::Exists => "already exists",
        })
    }
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

    pub fn corrupt(what: Damaged, why: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            what,
            why: why.into(),
        }
    }

    /// True when the error means stored data is damaged or gone (as opposed to a local failure).
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StoreError::MissingBlob(_) | StoreError::Missing(_) | StoreError::Corrupt { .. }
        )
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
