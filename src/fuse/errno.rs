//! The only place where a view error becomes an errno. Policy:
//! - damaged, missing or unauthenticated stored data → `EIO` (the view logs the item, point
//!   and path);
//! - any change under `points/` or `.deleted/` → `EROFS`;
//! - a vault or staging area without room → `ENOSPC`;
//! - a name that does not exist → `ENOENT`; an xattr that does not exist → `ENODATA`; one that
//!   is not kept at all → `EOPNOTSUPP`;
//! - a name component over 255 bytes → `ENAMETOOLONG`, on every operation that takes a name;
//! - a local I/O error keeps its own errno (`EMFILE` stays `EMFILE`); one without an errno, a
//!   request that panicked, and any other failure of the vault layer → `EIO`.
//!
//! Never `ENOSYS` for a runtime failure: that would tell the kernel the operation is
//! unsupported for the rest of the mount.

use fuser::Errno;

use crate::view::ViewError;

/// Map a failure to the errno the kernel gets.
pub fn errno(e: &ViewError) -> Errno {
    match e {
        ViewError::NotFound => Errno::ENOENT,
        ViewError::ReadOnly => Errno::EROFS,
        ViewError::NoXattr => Errno::NO_XATTR,
        ViewError::XattrUnsupported => Errno::EOPNOTSUPP,
        ViewError::NotDir => Errno::ENOTDIR,
        ViewError::IsDir => Errno::EISDIR,
        ViewError::Invalid => Errno::EINVAL,
        ViewError::BadHandle => Errno::EBADF,
        ViewError::Exists => Errno::EEXIST,
        ViewError::NotEmpty => Errno::ENOTEMPTY,
        ViewError::NotPermitted => Errno::EPERM,
        ViewError::AccessDenied => Errno::EACCES,
        ViewError::CrossDevice => Errno::EXDEV,
        ViewError::NameTooLong => Errno::ENAMETOOLONG,
        ViewError::Busy => Errno::EBUSY,
        ViewError::NoSpace => Errno::ENOSPC,
        ViewError::Corrupt(_) => Errno::EIO,
        ViewError::Io { source, .. } => source
            .raw_os_error()
            .map(Errno::from_i32)
            .unwrap_or(Errno::EIO),
        ViewError::Vault(_) => Errno::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;
    use crate::vault::VaultError;

    fn of(e: impl Into<ViewError>) -> i32 {
        errno(&e.into()).code()
    }

    #[test]
    fn local_io_errors_keep_their_errno() {
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(of(VaultError::io("open", "/x", emfile)), libc::EMFILE);
        let eacces = std::io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(of(StoreError::io("open", "/p", eacces)), libc::EACCES);
        let enospc = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(of(VaultError::io("write", "/x", enospc)), libc::ENOSPC);
        let no_errno = std::io::Error::other("no errno");
        assert_eq!(
            of(ViewError::io("read", "staging file", no_errno)),
            libc::EIO
        );
    }

    #[test]
    fn damaged_data_is_eio_and_names_are_their_own() {
        let id = crate::store::BlobId([7; 32]);
        let pack = crate::store::PackId([1; 16]);
        let what = crate::store::Damaged::Blob { id, pack };
        let why = "fails authentication".to_string();
        assert_eq!(of(StoreError::Corrupt { what, why }), libc::EIO);
        assert_eq!(of(StoreError::MissingBlob(id)), libc::EIO);
        let key = crate::store::backend::Key::Pack(pack);
        assert!(matches!(
            ViewError::from(StoreError::Missing(key)),
            ViewError::Corrupt(_)
        ));
        assert_eq!(of(ViewError::NameTooLong), libc::ENAMETOOLONG);
        assert_eq!(of(VaultError::UnknownItem("x".into())), libc::ENOENT);
        assert_eq!(of(VaultError::HasPoints("x".into())), libc::EBUSY);
        assert_eq!(of(StoreError::NoSpace("disk".into())), libc::ENOSPC);
    }
}
