//! The staging directory on disk: opened so that nobody else can steer it, and files in it
//! that have no name.
//!
//! `BASE/vaultfs-<vault id>` sits in a shared directory (`/var/tmp` by default) where another
//! user could have put something under that name first. So it is made with `mkdirat` and
//! opened with `O_NOFOLLOW | O_DIRECTORY` relative to BASE (a symlink there is refused, never
//! followed), must be owned by the daemon's user (refused otherwise), and is set to 0700
//! through its descriptor. Every later operation is relative to that descriptor. Files are
//! made with `O_TMPFILE` (no name ever exists, so nothing is left behind by a crash); where
//! the filesystem does not offer it (tmpfs before 3.11, some network filesystems) a file is
//! created under a random-free name (pid and counter) and unlinked at once. Entries found at
//! open are leftovers of that fallback from a killed daemon: ciphertext under a key that died
//! with it, removed.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// An open staging directory.
pub struct ScratchDir {
    fd: OwnedFd,
    next: AtomicU64,
}

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl ScratchDir {
    /// Make or open `base/name` safely and remove what an earlier daemon left in it.
    pub fn open(base: &Path, name: &str) -> io::Result<ScratchDir> {
        let base_c = cstr(base.as_os_str().as_bytes())?;
        let name_c = cstr(name.as_bytes())?;
        // SAFETY: plain syscalls on NUL-terminated strings; each returned descriptor is owned
        // by an OwnedFd at once.
        let base_fd = unsafe {
            OwnedFd::from_raw_fd(check(libc::open(
                base_c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            ))?)
        };
        // SAFETY: as above.
        let made = unsafe { libc::mkdirat(base_fd.as_raw_fd(), name_c.as_ptr(), 0o700) };
        if made < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(e);
            }
        }
        // SAFETY: as above.
        let fd = unsafe {
            OwnedFd::from_raw_fd(
                check(libc::openat(
                    base_fd.as_raw_fd(),
                    name_c.as_ptr(),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                ))
                .map_err(|e| {
                    if e.raw_os_error() == Some(libc::ELOOP)
                        || e.raw_os_error() == Some(libc::ENOTDIR)
                    {
                        io::Error::other(format!(
                            "{} is not a directory (a symlink or a file put there by someone \
                             else?); remove it",
                            base.join(name).display()
                        ))
                    } else {
                        e
                    }
                })?,
            )
        };
        // SAFETY: fstat fills a stat we own; geteuid has no preconditions.
        let (st, me) = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            check(libc::fstat(fd.as_raw_fd(), &mut st))?;
            (st, libc::geteuid())
        };
        if st.st_uid != me {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} belongs to uid {}, not to this user (uid {me}); remove it",
                    base.join(name).display(),
                    st.st_uid
                ),
            ));
        }
        // SAFETY: fchmod on a descriptor we own.
        check(unsafe { libc::fchmod(fd.as_raw_fd(), 0o700) })?;
        let dir = ScratchDir {
            fd,
            next: AtomicU64::new(0),
        };
        dir.remove_leftovers()?;
        Ok(dir)
    }

    fn remove_leftovers(&self) -> io::Result<()> {
        let listing = Path::new("/proc/self/fd").join(self.fd.as_raw_fd().to_string());
        for e in std::fs::read_dir(listing)? {
            let name = cstr(e?.file_name().as_bytes())?;
            // SAFETY: unlinkat relative to our descriptor; a subdirectory is left alone.
            unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), 0) };
        }
        Ok(())
    }

    /// A new empty file without a name, read-write, 0600.
    pub fn file(&self) -> io::Result<File> {
        let dot = cstr(b".")?;
        // SAFETY: openat relative to our descriptor; the result is owned at once.
        let r = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                dot.as_ptr(),
                libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if r >= 0 {
            // SAFETY: a fresh descriptor nobody else owns.
            return Ok(unsafe { File::from_raw_fd(r) });
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL) => self.named_file(),
            _ => Err(e),
        }
    }

    /// Without `O_TMPFILE`: create under a fresh name, unlink at once.
    fn named_file(&self) -> io::Result<File> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = cstr(format!("{}-{n}", std::process::id()).as_bytes())?;
        // SAFETY: openat/unlinkat relative to our descriptor; the result is owned at once.
        unsafe {
            let fd = check(libc::openat(
                self.fd.as_raw_fd(),
                name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_RDWR | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            ))?;
            let file = File::from_raw_fd(fd);
            check(libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), 0))?;
            Ok(file)
        }
    }
}
