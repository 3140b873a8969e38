//! Why a view operation failed, typed so that every door can answer precisely: the FUSE door
//! turns it into an errno (`fuse::errno`, the only place that does), a WebDAV door would turn
//! it into a status. Errors of the vault layer are sorted here, once.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::store::StoreError;
use crate::vault::VaultError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ViewError {
    #[error("no such entry")]
    NotFound,
    #[error("read-only")]
    ReadOnly,
    #[error("no such attribute")]
    NoXattr,
    /// The attribute is not kept here at all.
    #[error("attribute not supported")]
    XattrUnsupported,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("invalid argument")]
    Invalid,
    #[error("unknown handle")]
    BadHandle,
    #[error("already exists")]
    Exists,
    #[error("directory not empty")]
    NotEmpty,
    #[error("operation not permitted")]
    NotPermitted,
    /// The caller's role does not allow it (DESIGN.md §13).
    #[error("permission denied")]
    AccessDenied,
    #[error("not across items")]
    CrossDevice,
    #[error("name longer than 255 bytes")]
    NameTooLong,
    /// The entry is in use (an item that still has points).
    #[error("busy")]
    Busy,
    /// The vault's filesystem (or the staging area) has no room.
    #[error("no space left")]
    NoSpace,
    /// Stored data is damaged, missing or fails authentication; says what was hit.
    #[error("damaged data: {0}")]
    Corrupt(String),
    /// A local I/O error (staging files, the vault's disk): it keeps its errno.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: Arc<io::Error>,
    },
    /// Any other failure of the vault layer.
    #[error(transparent)]
    Vault(Arc<VaultError>),
}

pub type ViewResult<T> = Result<T, ViewError>;

impl ViewError {
    /// Log a failed read or load of `what` (never an item or file name: the log is plaintext;
    /// `check` names the files): damaged data is an EIO line the operator must act on,
    /// anything else a warning.
    pub(crate) fn log(&self, what: &str) {
        match self {
            ViewError::Corrupt(why) => tracing::error!("EIO: {what}: {why}"),
            e => tracing::warn!("{what}: {}", e.for_log()),
        }
    }

    /// The message without names, for `daemon.log` (see [`VaultError::for_log`]).
    pub fn for_log(&self) -> String {
        match self {
            ViewError::Vault(e) => e.for_log(),
            e => e.to_string(),
        }
    }

    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> ViewError {
        if source.raw_os_error() == Some(libc::ENOSPC) {
            return ViewError::NoSpace;
        }
        ViewError::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }
}

impl From<VaultError> for ViewError {
    fn from(e: VaultError) -> ViewError {
        match e {
            VaultError::UnknownItem(_)
            | VaultError::UnknownPoint { .. }
            | VaultError::NoPoints(_) => ViewError::NotFound,
            VaultError::BadItemName(_) | VaultError::BadPointName(_) => ViewError::Invalid,
            VaultError::HasPoints(_) => ViewError::Busy,
            VaultError::Denied(_) => ViewError::NotPermitted,
            VaultError::Io { op, path, source } => ViewError::io(op, path, source),
            VaultError::Store(e) => e.into(),
            e => ViewError::Vault(Arc::new(e)),
        }
    }
}

impl From<StoreError> for ViewError {
    fn from(e: StoreError) -> ViewError {
        match e {
            StoreError::NoSpace(_) => ViewError::NoSpace,
            StoreError::Io { op, path, source } => ViewError::io(op, path, source),
            e if e.is_damage() => ViewError::Corrupt(e.to_string()),
            e => ViewError::Vault(Arc::new(VaultError::Store(e))),
        }
    }
}
