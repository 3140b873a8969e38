//! The FUSE door: each callback makes one call into the [`View`] and sends one reply. What is
//! FUSE's own lives here: the kernel's capabilities, how long it may cache what (from the
//! view's [`Stability`]), open flags, and errnos (only through [`errno::errno`]).
//!
//! Every call into the view is guarded: a panic (a bug) answers that one request `EIO`, and
//! the worker thread goes on serving; the view's locks do not poison, so the next request finds
//! them free.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::view::time::to_ns;
use crate::view::{Lookup, NAME_MAX, RenameMode, SetAttr, Stability, View, ViewResult, XattrSet};

mod convert;
pub mod errno;
mod session;

use convert::{
    TTL_LIVE, caller, dir_handle, file_attr, file_type, no_attr, reply_empty, reply_empty_dir,
    reply_entry, reply_xattr, time_ns, ttl,
};

pub use session::{FuseSession, IoUringMode, Unmounter, io_uring_offered, raise_readahead};

/// Largest read the kernel may send and read-ahead we ask for.
pub const MAX_READ_BYTES: u32 = 1 << 20;

/// The FUSE requests this process has received since it started, by opcode, as one line
/// (`LOOKUP=3 GETATTR=1 ...`); the counts are exact, so tests hold the door to them.
pub fn requests_line() -> String {
    let counts = fuser::request_counts();
    if counts.is_empty() {
        return "none".into();
    }
    let words: Vec<String> = counts.iter().map(|(op, n)| format!("{op}={n}")).collect();
    words.join(" ")
}

/// Add to a tracing filter: fuser warns about every operation it answers ENOSYS for
/// (copy_file_range, say), and the kernel falls back by itself, so these are not worth a log
/// line each.
pub fn quiet_log(directives: &mut String) {
    if !directives.contains("fuser") {
        directives.push_str(",fuser=error");
    }
}

pub struct FuseFs {
    view: Arc<View>,
    /// The kernel opens directories without asking (OPENDIR answered ENOSYS once): readdirs
    /// come without a handle.
    no_opendir: bool,
}

impl FuseFs {
    pub fn new(view: Arc<View>) -> FuseFs {
        FuseFs {
            view,
            no_opendir: false,
        }
    }
}

/// One call into the view, guarded: a panic in it answers `EIO`.
fn call<T>(f: impl FnOnce() -> ViewResult<T>) -> Result<T, Errno> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(|e| errno::errno(&e)),
        Err(_) => Err(Errno::EIO),
    }
}

/// A call into the view that answers nothing (forget, release); a panic in it is logged by the
/// panic hook and otherwise ignored.
fn call_quietly(f: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(f));
}

impl Filesystem for FuseFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_readahead(MAX_READ_BYTES);
        let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS);
        // Attributes with the listing: `ls -l` and `find -type` need no lookup per entry.
        let _ = config
            .add_capabilities(InitFlags::FUSE_DO_READDIRPLUS | InitFlags::FUSE_READDIRPLUS_AUTO);
        // A symlink's target never changes (incoming replaces the inode on rename), so the
        // kernel may keep it: `ls -l` and path walks through links then ask only once.
        let _ = config.add_capabilities(InitFlags::FUSE_CACHE_SYMLINKS);
        // Directories open without a round trip (OPENDIR and RELEASEDIR were two of the four
        // requests per directory of a cold `find`); the kernel then keeps every listing, and
        // the daemon tells it when one of items or points changes (`View::catalog_changed`).
        // Not when roles are enforced: the kernel would keep one listing of items for everyone.
        self.no_opendir = !self.view.enforces_roles()
            && config
                .add_capabilities(InitFlags::FUSE_NO_OPENDIR_SUPPORT)
                .is_ok();
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let who = caller(req);
        match call(|| self.view.lookup_as(who, parent.0, name.as_bytes())) {
            Ok(Lookup::Found(a)) => reply.entry(&ttl(a.stability), &file_attr(&a), Generation(0)),
            // Inside an incoming tree a name appears only through the kernel: let it cache the
            // absence (node id 0), so rsync's lstat-then-create costs one lookup, not two.
            Ok(Lookup::Absent(Stability::Live)) => {
                reply.entry(&TTL_LIVE, &no_attr(), Generation(0))
            }
            Ok(Lookup::Absent(_)) => reply.error(Errno::ENOENT),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        call_quietly(|| self.view.forget(ino.0, nlookup));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match call(|| self.view.getattr(ino.0)) {
            Ok(a) => reply.attr(&ttl(a.stability), &file_attr(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let change = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime_ns: atime.map(time_ns),
            mtime_ns: mtime.map(time_ns),
            ctime_ns: ctime.map(to_ns),
        };
        let who = caller(req);
        let r = call(|| {
            self.view.may_change(who, ino.0, None)?;
            self.view.setattr(ino.0, change)
        });
        match r {
            Ok(a) => reply.attr(&ttl(a.stability), &file_attr(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match call(|| self.view.readlink(ino.0)) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        // The kernel applies the umask already unless told not to (FUSE_DONT_MASK); doing it
        // again is harmless and keeps this right if that changes.
        let mode = mode & !umask;
        let r = call(|| {
            self.view
                .mknod(parent.0, name.as_bytes(), mode, rdev, caller(req))
        });
        reply_entry(reply, r);
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let mode = mode & !umask;
        let r = call(|| {
            self.view
                .mkdir(parent.0, name.as_bytes(), mode, caller(req))
        });
        reply_entry(reply, r);
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (who, name) = (caller(req), name.as_bytes());
        let r = call(|| {
            self.view.may_change(who, parent.0, Some(name))?;
            self.view.unlink(parent.0, name)
        });
        reply_empty(reply, r);
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (who, name) = (caller(req), name.as_bytes());
        let r = call(|| {
            self.view.may_change(who, parent.0, Some(name))?;
            self.view.rmdir(parent.0, name)
        });
        reply_empty(reply, r);
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let target = target.as_os_str().as_bytes();
        let r = call(|| {
            self.view
                .symlink(parent.0, name.as_bytes(), target, caller(req))
        });
        reply_entry(reply, r);
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mode = if flags.is_empty() {
            RenameMode::Replace
        } else if flags == RenameFlags::RENAME_NOREPLACE {
            RenameMode::NoReplace
        } else {
            RenameMode::Other
        };
        let caller = caller(req);
        let r = call(|| {
            self.view.rename_as(
                caller,
                parent.0,
                name.as_bytes(),
                newparent.0,
                newname.as_bytes(),
                mode,
            )
        });
        reply_empty(reply, r);
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let (who, newname) = (caller(req), newname.as_bytes());
        let r = call(|| {
            self.view.may_change(who, newparent.0, Some(newname))?;
            self.view.link(ino.0, newparent.0, newname)
        });
        reply_entry(reply, r);
    }

    /// Zero-message open: ENOSYS makes the kernel stop sending OPEN and RELEASE for the whole
    /// connection (two round trips less per file; DESIGN.md §6.1). Reads and writes are then
    /// keyed by inode, and a file is complete when its times are set, when it is fsynced, or
    /// when it has been quiet a moment (`view::incoming`). The kernel then keeps a file's pages
    /// across opens, which is right here: points never change, and incoming files change only
    /// through this kernel, which updates its own cache.
    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.error(Errno::ENOSYS);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let fh = (fh.0 != 0).then_some(fh.0);
        match call(|| self.view.read(ino.0, fh, offset, size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let who = caller(req);
        let r = call(|| {
            self.view.may_change(who, ino.0, None)?;
            self.view.write(ino.0, offset, data)
        });
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing is ever buffered for a close to flush: ENOSYS tells the kernel to stop
        // sending FLUSH (one round trip less per file closed). Not an error path.
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        call_quietly(|| self.view.release(fh.0));
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, call(|| self.view.fsync(ino.0)));
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply_empty(reply, call(|| self.view.fsyncdir(ino.0)));
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.no_opendir {
            // Once: the kernel stops sending OPENDIR for the rest of the connection.
            return reply.error(Errno::ENOSYS);
        }
        match call(|| self.view.opendir_as(caller(req), ino.0)) {
            // A directory inside a point never changes: the kernel may keep its listing and
            // answer later readdirs itself.
            Ok(o) if o.stability == Stability::Immutable => reply.opened(
                FileHandle(o.fh),
                FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR,
            ),
            // A listing that depends on who asks is read afresh by every opener.
            Ok(o) if o.stability == Stability::Caller => {
                reply.opened(FileHandle(o.fh), FopenFlags::empty())
            }
            Ok(o) => reply.opened(FileHandle(o.fh), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match call(|| self.view.readdir(ino.0, dir_handle(fh), offset)) {
            Ok(list) => {
                for (i, e) in list.iter().enumerate().skip(offset as usize) {
                    let name = OsStr::from_bytes(&e.name);
                    if reply.add(INodeNo(e.ino), (i + 1) as u64, file_type(e.kind), name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let r = call(|| {
            self.view
                .readdirplus(ino.0, dir_handle(fh), offset, |e, next, a| {
                    reply.add(
                        INodeNo(e.ino),
                        next,
                        OsStr::from_bytes(&e.name),
                        &ttl(a.stability),
                        &file_attr(a),
                        Generation(0),
                    )
                })
        });
        reply_empty_dir(reply, r);
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        call_quietly(|| self.view.release(fh.0));
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match call(|| self.view.statfs()) {
            Ok(s) => reply.statfs(
                s.blocks,
                s.free,
                s.free,
                1 << 32,
                1 << 31,
                s.block_size,
                NAME_MAX as u32,
                s.block_size,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let how = if flags & libc::XATTR_CREATE != 0 {
            XattrSet::Create
        } else if flags & libc::XATTR_REPLACE != 0 {
            XattrSet::Replace
        } else {
            XattrSet::Any
        };
        let who = caller(req);
        let r = call(|| {
            self.view.may_change(who, ino.0, None)?;
            self.view.setxattr(ino.0, name.as_bytes(), value, how)
        });
        reply_empty(reply, r);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let r = call(|| self.view.getxattr(ino.0, name.as_bytes()));
        reply_xattr(reply, size, r);
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        reply_xattr(reply, size, call(|| self.view.listxattr(ino.0)));
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let who = caller(req);
        let r = call(|| {
            self.view.may_change(who, ino.0, None)?;
            self.view.removexattr(ino.0, name.as_bytes())
        });
        reply_empty(reply, r);
    }

    /// Sent only for access(2) and chdir (no `default_permissions`): modes are not checked,
    /// a role may refuse writing.
    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if !mask.contains(AccessFlags::W_OK) {
            return reply.ok();
        }
        let who = caller(req);
        reply_empty(reply, call(|| self.view.may_write(who, ino.0)));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mode = mode & !umask;
        let r = call(|| {
            self.view
                .create(parent.0, name.as_bytes(), mode, caller(req))
        });
        match r {
            // Without OPEN no RELEASE comes for a created file either: the view's handle is let
            // go at once, and the file's reads and writes are keyed by inode.
            Ok((a, o)) => {
                call_quietly(|| self.view.release(o.fh));
                reply.created(
                    &ttl(a.stability),
                    &file_attr(&a),
                    Generation(0),
                    FileHandle(0),
                    FopenFlags::empty(),
                )
            }
            Err(e) => reply.error(e),
        }
    }
}
