//! Exclusive access to a vault: a POSIX record lock on `VAULT/lock`.
//!
//! sled allows one process per database; taking our own lock first turns a second opener's
//! failure into "vault is in use by pid N" (F_GETLK names the holder) before anything is read or
//! written. The lock file's content never changes, so a failed open leaves the vault untouched.
//! The lock dies with the process, also on kill -9.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use super::{Result, VaultError};

pub const LOCK_FILE: &str = "lock";

pub struct VaultLock {
    _file: File,
}

impl VaultLock {
    pub fn acquire(vault_dir: &Path) -> Result<VaultLock> {
        let path = vault_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| VaultError::io("open", &path, e))?;
        let mut fl = whole_file_write_lock();
        // SAFETY: fcntl with F_SETLK on a valid fd and a fully initialised flock struct.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &fl) } == 0 {
            return Ok(VaultLock { _file: file });
        }
        let err = std::io::Error::last_os_error();
        if !matches!(err.raw_os_error(), Some(libc::EACCES) | Some(libc::EAGAIN)) {
            return Err(VaultError::io("lock", &path, err));
        }
        // SAFETY: as above; F_GETLK fills `fl` with the conflicting lock.
        let pid = if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) } == 0 {
            fl.l_pid as i64
        } else {
            -1
        };
        Err(VaultError::InUse(pid))
    }
}

/// The pid holding the lock of the vault at `vault_dir`, if any (without taking it).
pub fn holder(vault_dir: &Path) -> Option<i64> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(vault_dir.join(LOCK_FILE))
        .ok()?;
    let mut fl = whole_file_write_lock();
    // SAFETY: F_GETLK fills `fl` with a conflicting lock, or sets l_type to F_UNLCK.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut fl) } != 0 {
        return None;
    }
    (i32::from(fl.l_type) != libc::F_UNLCK).then_some(fl.l_pid as i64)
}

fn whole_file_write_lock() -> libc::flock {
    // SAFETY: flock is plain old data; all-zero is a valid value that we then fill in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as _;
    fl.l_whence = libc::SEEK_SET as _;
    fl.l_start = 0;
    fl.l_len = 0;
    fl
}
