//! Local filesystem metadata: what `backup` reads from a source entry (lstat, xattrs) and what
//! `restore` puts back (owner, mode, times with ns, xattrs, special files). Never follows symlinks.

use std::ffi::CString;
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::format::{Node, NodeKind};

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// A node for `name` from its lstat result; chunks, subtree, target and xattrs are filled by the caller.
pub fn node_from_metadata(name: Vec<u8>, md: &Metadata) -> Node {
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_char_device() {
        NodeKind::CharDevice
    } else if ft.is_block_device() {
        NodeKind::BlockDevice
    } else if ft.is_socket() {
        NodeKind::Socket
    } else {
        NodeKind::File
    };
    let linked = kind != NodeKind::Dir && md.nlink() > 1;
    Node {
        name,
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        mtime_ns: ns(md.mtime(), md.mtime_nsec()),
        size: if kind == NodeKind::File || kind == NodeKind::Symlink {
            md.size()
        } else {
            0
        },
        chunks: Vec::new(),
        subtree: None,
        target: Vec::new(),
        xattrs: Vec::new(),
        link_group: if linked {
            link_group(md.dev(), md.ino())
        } else {
            0
        },
        nlink: if linked { md.nlink() as u32 } else { 1 },
        rdev: if matches!(kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
            md.rdev()
        } else {
            0
        },
        src_ino: md.ino(),
        ctime_ns: ns(md.ctime(), md.ctime_nsec()),
    }
}

/// Seconds and nanoseconds as one i64 of ns, saturating (i64 ns covers 1678-2262).
fn ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// A stable non-zero id for one source inode.
fn link_group(dev: u64, ino: u64) -> u64 {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&dev.to_le_bytes());
    b[8..].copy_from_slice(&ino.to_le_bytes());
    let h = blake3::hash(&b);
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes")) | 1
}

/// Extended attributes of `path` (not following symlinks), sorted by name.
pub fn read_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let c = cpath(path)?;
    let names = read_growing(|buf, len| unsafe {
        // SAFETY: buf points to `len` writable bytes (or is null with len 0).
        libc::llistxattr(c.as_ptr(), buf as *mut libc::c_char, len)
    })?;
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        let value = match read_growing(|buf, len| unsafe {
            // SAFETY: as above; both strings are NUL-terminated.
            libc::lgetxattr(c.as_ptr(), cname.as_ptr(), buf as *mut libc::c_void, len)
        }) {
            Ok(v) => v,
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => continue,
            Err(e) => return Err(e),
        };
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}

/// Call a size-probing libc getter until the buffer is big enough.
fn read_growing(mut call: impl FnMut(*mut u8, usize) -> isize) -> io::Result<Vec<u8>> {
    loop {
        let need = call(std::ptr::null_mut(), 0);
        if need < 0 {
            let e = io::Error::last_os_error();
            if matches!(e.raw_os_error(), Some(libc::ENOTSUP)) {
                return Ok(Vec::new());
            }
            return Err(e);
        }
        let mut buf = vec![0u8; need as usize];
        let got = call(buf.as_mut_ptr(), buf.len());
        if got >= 0 {
            buf.truncate(got as usize);
            return Ok(buf);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ERANGE) {
            return Err(e);
        }
    }
}

/// Create a fifo, device node or socket node at `path`.
pub fn make_special(path: &Path, node: &Node) -> io::Result<()> {
    let c = cpath(path)?;
    let fmt = match node.kind {
        NodeKind::Fifo => libc::S_IFIFO,
        NodeKind::CharDevice => libc::S_IFCHR,
        NodeKind::BlockDevice => libc::S_IFBLK,
        NodeKind::Socket => libc::S_IFSOCK,
        _ => return Err(io::Error::from(io::ErrorKind::InvalidInput)),
    };
    // SAFETY: valid NUL-terminated path; mknod has no memory effects.
    if unsafe {
        libc::mknod(
            c.as_ptr(),
            fmt | (node.mode & 0o7777),
            node.rdev as libc::dev_t,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Put back xattrs, owner, mode and mtime (in that order: chown clears set-id bits, and any
/// change after utimens would move mtime). Owner changes fail for non-root; that is ignored.
pub fn apply(path: &Path, node: &Node) -> io::Result<()> {
    let c = cpath(path)?;
    for (name, value) in &node.xattrs {
        let cname = CString::new(name.as_slice())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        // SAFETY: valid C strings and a value slice of the given length.
        let r = unsafe {
            libc::lsetxattr(
                c.as_ptr(),
                cname.as_ptr(),
                value.as_ptr() as *const libc::c_void,
                value.len(),
                0,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOTSUP) {
                return Err(e);
            }
        }
    }
    // SAFETY: valid C string.
    let r = unsafe { libc::lchown(c.as_ptr(), node.uid, node.gid) };
    if r != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EPERM) {
            return Err(e);
        }
    }
    if node.kind != NodeKind::Symlink {
        // SAFETY: valid C string.
        if unsafe { libc::chmod(c.as_ptr(), node.mode as libc::mode_t) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    set_mtime(&c, node.mtime_ns)
}

fn set_mtime(c: &CString, mtime_ns: i64) -> io::Result<()> {
    let ts = libc::timespec {
        tv_sec: mtime_ns.div_euclid(1_000_000_000),
        tv_nsec: mtime_ns.rem_euclid(1_000_000_000),
    };
    let times = [ts, ts];
    // SAFETY: valid C string and a two-element timespec array.
    if unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
