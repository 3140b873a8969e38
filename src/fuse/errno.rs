//! The only place where a failure becomes an errno. Policy:
//! - damaged or missing stored data (authentication failure, missing blob or pack, truncated
//!   pack) → `EIO`, and the caller logs the item, point and path;
//! - any change under `points/` or `.deleted/` → `EROFS`;
//! - a vault or staging area without room → `ENOSPC`;
//! - a name that does not exist → `ENOENT`; an xattr that does not exist → `ENODATA`;
//! - a local I/O error keeps its own errno (e.g. `ENOSPC`); anything else → `EIO`.
//!
//! Never `ENOSYS` for a runtime failure: that would tell the kernel the operation is
//! unsupported for the rest of the mount.

use fuser::Errno;

use crate::store::StoreError;
use crate::vault::VaultError;

/// Why a filesystem operation failed, before it becomes an errno.
#[derive(Debug)]
pub enum FsError {
    NotFound,
    ReadOnly,
    NoXattr,
    /// The attribute is not kept here at all (EOPNOTSUPP).
    Unsupported,
    Range,
    NotDir,
    IsDir,
    Invalid,
    BadHandle,
    Exists,
    NotEmpty,
    NotPermitted,
    CrossDevice,
    /// Damaged or missing data; the message names what was hit.
    Damaged(String),
    Vault(VaultError),
}

impl From<VaultError> for FsError {
    fn from(e: VaultError) -> Self {
        FsError::Vault(e)
    }
}

impl From<StoreError> for FsError {
    fn from(e: StoreError) -> Self {
        FsError::Vault(VaultError::Store(e))
    }
}

pub type FsResult<T> = Result<T, FsError>;

/// Map a failure to the errno the kernel gets.
pub fn errno(e: &FsError) -> Errno {
    match e {
        FsError::NotFound => Errno::ENOENT,
        FsError::ReadOnly => Errno::EROFS,
        FsError::NoXattr => Errno::NO_XATTR,
        FsError::Unsupported => Errno::EOPNOTSUPP,
        FsError::Range => Errno::ERANGE,
        FsError::NotDir => Errno::ENOTDIR,
        FsError::IsDir => Errno::EISDIR,
        FsError::Invalid => Errno::EINVAL,
        FsError::BadHandle => Errno::EBADF,
        FsError::Exists => Errno::EEXIST,
        FsError::NotEmpty => Errno::ENOTEMPTY,
        FsError::NotPermitted => Errno::EPERM,
        FsError::CrossDevice => Errno::EXDEV,
        FsError::Damaged(_) => Errno::EIO,
        FsError::Vault(v) => vault_errno(v),
    }
}

fn vault_errno(e: &VaultError) -> Errno {
    match e {
        VaultError::UnknownItem(_) | VaultError::UnknownPoint { .. } | VaultError::NoPoints(_) => {
            Errno::ENOENT
        }
        VaultError::BadItemName(_) | VaultError::BadPointName(_) => Errno::EINVAL,
        VaultError::HasPoints(_) => Errno::EBUSY,
        VaultError::Io { source, .. } => source
            .raw_os_error()
            .map(Errno::from_i32)
            .unwrap_or(Errno::EIO),
        VaultError::Store(StoreError::NoSpace(_)) => Errno::ENOSPC,
        VaultError::Store(StoreError::Io { source, .. }) => source
            .raw_os_error()
            .map(Errno::from_i32)
            .unwrap_or(Errno::EIO),
        _ => Errno::EIO,
    }
}
