//! The fuser adapter: each callback makes one call into [`VaultFs`] and sends one reply.
//! Errors become errnos only through [`errno::errno`].

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::view::incoming::{self, Incoming, Owner, SetAttr};
use crate::view::points::inodes::{self, Entry};
use crate::view::points::{DirEntry, VaultFs};
use errno::{FsError, FsResult, errno};

pub mod errno;

/// Entries inside a point never change: let the kernel keep them.
const TTL_IMMUTABLE: Duration = Duration::from_secs(3600);
/// Listings of items and points change when points are added or deleted.
const TTL_LISTING: Duration = Duration::from_secs(1);
/// Entries in incoming trees change only through this mount, that is through the kernel,
/// which updates its own caches (the one change it cannot see, a mode set by an ACL, is
/// notified). Fewer revalidations are fewer round trips per file an rsync writes.
const TTL_INCOMING: Duration = Duration::from_secs(30);
/// Largest read the kernel may send and read-ahead we ask for.
pub const MAX_READ_BYTES: u32 = 1 << 20;

pub struct FuseFs {
    fs: Arc<VaultFs>,
    /// The kernel opens directories without asking (OPENDIR answered ENOSYS once): readdirs
    /// come without a handle.
    no_opendir: bool,
}

impl FuseFs {
    pub fn new(fs: Arc<VaultFs>) -> FuseFs {
        FuseFs {
            fs,
            no_opendir: false,
        }
    }

    /// The listing a readdir reads: through its handle, or without one.
    fn listing(&self, ino: INodeNo, fh: FileHandle, offset: u64) -> FsResult<Arc<Vec<DirEntry>>> {
        if fh.0 == 0 {
            self.fs.listing(ino.0, offset)
        } else {
            self.fs.readdir(fh.0, offset)
        }
    }
}

fn ttl_for(ino: u64, kind_is_point_content: bool) -> Duration {
    if kind_is_point_content && ino > inodes::DELETED {
        TTL_IMMUTABLE
    } else {
        TTL_LISTING
    }
}

fn owner(req: &Request) -> Owner {
    Owner {
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn time_ns(t: TimeOrNow) -> i64 {
    let t = match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    };
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i64,
        Err(e) => -(e.duration().as_nanos() as i64),
    }
}

fn reply_entry(reply: ReplyEntry, r: FsResult<fuser::FileAttr>) {
    match r {
        Ok(attr) => reply.entry(&TTL_INCOMING, &attr, Generation(0)),
        Err(e) => reply.error(errno(&e)),
    }
}

fn reply_empty(reply: ReplyEmpty, r: FsResult<()>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

impl FuseFs {
    /// The incoming trees, if `ino` is theirs; writes anywhere else are refused.
    fn writable(&self, ino: u64) -> FsResult<&Incoming> {
        if incoming::owns(ino) {
            Ok(self.fs.incoming())
        } else {
            Err(FsError::ReadOnly)
        }
    }

    fn ttl(&self, ino: u64) -> Duration {
        if ino & incoming::BIT != 0 {
            return TTL_INCOMING;
        }
        let immutable = matches!(self.fs_entry_kind(ino), Some(true));
        ttl_for(ino, immutable)
    }

    fn fs_entry_kind(&self, ino: u64) -> Option<bool> {
        self.fs.is_point_content(ino)
    }
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
        // the daemon tells it when one of items or points changes (`VaultFs::catalog_changed`).
        self.no_opendir = config
            .add_capabilities(InitFlags::FUSE_NO_OPENDIR_SUPPORT)
            .is_ok();
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.fs.lookup(parent.0, name) {
            Ok(attr) => reply.entry(&self.ttl(attr.ino.0), &attr, Generation(0)),
            // Inside an incoming tree a name appears only through the kernel: let it cache the
            // absence (node id 0), so rsync's lstat-then-create costs one lookup, not two.
            Err(FsError::NotFound) if parent.0 & incoming::BIT != 0 => {
                let mut attr = self.fs.getattr(parent.0).unwrap_or_else(|_| empty_attr());
                attr.ino = INodeNo(0);
                reply.entry(&TTL_INCOMING, &attr, Generation(0))
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.fs.getattr(ino.0) {
            Ok(attr) => reply.attr(&self.ttl(ino.0), &attr),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
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
            ctime_ns: ctime.map(|t| time_ns(TimeOrNow::SpecificTime(t))),
        };
        match self
            .writable(ino.0)
            .and_then(|inc| inc.setattr(ino.0, change))
        {
            Ok(attr) => reply.attr(&TTL_INCOMING, &attr),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.fs.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno(&e)),
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
        let r = self
            .writable(parent.0)
            .and_then(|inc| inc.mknod(parent.0, name, mode, rdev, owner(req)));
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
        let r = self
            .writable(parent.0)
            .and_then(|inc| inc.mkdir(parent.0, name, mode, owner(req)));
        reply_entry(reply, r);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self
            .writable(parent.0)
            .and_then(|inc| inc.unlink(parent.0, name));
        reply_empty(reply, r);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self
            .writable(parent.0)
            .and_then(|inc| inc.rmdir(parent.0, name));
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
        let target = std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str());
        let r = self
            .writable(parent.0)
            .and_then(|inc| inc.symlink(parent.0, name, target, owner(req)));
        reply_entry(reply, r);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let into = (incoming::owns(parent.0), incoming::owns(newparent.0));
        if into != (false, false) {
            let r = if into != (true, true) {
                Err(FsError::CrossDevice)
            } else if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
                Err(FsError::Invalid)
            } else {
                self.fs
                    .incoming()
                    .rename(parent.0, name, newparent.0, newname, noreplace)
            };
            return reply_empty(reply, r);
        }
        // Moving a point never replaces anything, so NOREPLACE (what mv asks for) is fine.
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            return reply.error(errno(&FsError::ReadOnly));
        }
        match self.fs.rename(parent.0, name, newparent.0, newname) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let r = match (incoming::owns(ino.0), incoming::owns(newparent.0)) {
            (true, true) => self.fs.incoming().link(ino.0, newparent.0, newname),
            (false, false) => Err(FsError::ReadOnly),
            _ => Err(FsError::CrossDevice),
        };
        reply_entry(reply, r);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY || flags.0 & libc::O_TRUNC != 0;
        let truncate = flags.0 & libc::O_TRUNC != 0;
        // Points never change: keep their pages. Incoming files change only through this
        // mount, but keep-cache would also keep pages across a truncate by another handle.
        let keep = if incoming::owns(ino.0) {
            FopenFlags::empty()
        } else {
            FopenFlags::FOPEN_KEEP_CACHE
        };
        match self.fs.open(ino.0, write, truncate) {
            Ok(fh) => reply.opened(FileHandle(fh), keep),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.fs.read(fh.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let r = self
            .writable(ino.0)
            .and_then(|inc| inc.write(fh.0, offset, data));
        match r {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(&e)),
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
        self.fs.release(fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Points are durable already; an incoming file is stored and its tree saved.
        let r = if incoming::owns(ino.0) {
            self.fs.incoming().fsync(Some(fh.0))
        } else {
            Ok(())
        };
        reply_empty(reply, r);
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let r = if incoming::owns(ino.0) {
            self.fs.incoming().fsync(None)
        } else {
            Ok(())
        };
        reply_empty(reply, r);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.no_opendir {
            // Once: the kernel stops sending OPENDIR for the rest of the connection.
            return reply.error(Errno::ENOSYS);
        }
        match self.fs.opendir(ino.0) {
            Ok(fh) => {
                // A directory inside a point never changes: the kernel may keep its listing
                // and answer later readdirs itself.
                let flags = if self.fs.is_point_content(ino.0) == Some(true) {
                    FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR
                } else {
                    FopenFlags::FOPEN_KEEP_CACHE
                };
                reply.opened(FileHandle(fh), flags)
            }
            Err(e) => reply.error(errno(&e)),
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
        match self.listing(ino, fh, offset) {
            Ok(list) => {
                if offset as usize >= list.len() && fh.0 == 0 {
                    self.fs.listing_done(ino.0);
                }
                for (i, e) in list.iter().enumerate().skip(offset as usize) {
                    if reply.add(
                        INodeNo(e.ino),
                        (i + 1) as u64,
                        e.kind,
                        OsStr::from_bytes_compat(&e.name),
                    ) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(errno(&e)),
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
        let list = match self.listing(ino, fh, offset) {
            Ok(list) => list,
            Err(e) => return reply.error(errno(&e)),
        };
        if offset as usize >= list.len() && fh.0 == 0 {
            self.fs.listing_done(ino.0);
        }
        // Inside a point, entry i of the listing is node i - 2 of the directory's tree.
        let ctx = self.fs.listing_context(ino.0);
        for (i, e) in list.iter().enumerate().skip(offset as usize) {
            let name = OsStr::from_bytes_compat(&e.name);
            // The kernel takes no reference for "." and "..": never register them.
            let dot = e.name == b"." || e.name == b"..";
            let found = if let Some(ctx) = ctx.as_ref().filter(|_| !dot && i >= 2) {
                self.fs
                    .peek_listed(ctx, ino.0, e.ino, i - 2)
                    .map(|(entry, a)| (Some(entry), a))
            } else if dot {
                // ".." may name an inode the kernel never looked up (a deleted point entered
                // straight from .deleted/): its own attributes stand in.
                self.fs
                    .getattr(e.ino)
                    .or_else(|_| self.fs.getattr(ino.0))
                    .map(|a| (None, a))
            } else {
                self.fs
                    .peek(ino.0, &e.name)
                    .map(|(entry, a)| (Some(entry), a))
            };
            let (entry, attr) = match found {
                Ok(x) => x,
                Err(err) => return reply.error(errno(&err)),
            };
            let ttl = if matches!(entry, Some(Some(Entry::Node { .. }))) {
                TTL_IMMUTABLE
            } else if e.ino & incoming::BIT != 0 {
                TTL_INCOMING
            } else {
                TTL_LISTING
            };
            if reply.add(
                INodeNo(e.ino),
                (i + 1) as u64,
                name,
                &ttl,
                &attr,
                Generation(0),
            ) {
                break;
            }
            if let Some(entry) = entry {
                self.fs.remember(e.ino, entry);
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.release(fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match self.fs.statfs() {
            Ok((blocks, free, bsize)) => {
                reply.statfs(blocks, free, free, 1 << 32, 1 << 31, bsize, 255, bsize)
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let r = self
            .writable(ino.0)
            .and_then(|inc| inc.setxattr(ino.0, name, value, flags));
        reply_empty(reply, r);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        match self.fs.getxattr(ino.0, name) {
            Ok(v) => reply_xattr(reply, size, &v),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        match self.fs.listxattr(ino.0) {
            Ok(v) => reply_xattr(reply, size, &v),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let r = self
            .writable(ino.0)
            .and_then(|inc| inc.removexattr(ino.0, name));
        reply_empty(reply, r);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        reply.ok();
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
        let r = self
            .writable(parent.0)
            .and_then(|inc| inc.create(parent.0, name, mode, owner(req)));
        match r {
            Ok((attr, fh)) => reply.created(
                &TTL_INCOMING,
                &attr,
                Generation(0),
                FileHandle(fh),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }
}

fn empty_attr() -> fuser::FileAttr {
    fuser::FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: SystemTime::UNIX_EPOCH,
        mtime: SystemTime::UNIX_EPOCH,
        ctime: SystemTime::UNIX_EPOCH,
        crtime: SystemTime::UNIX_EPOCH,
        kind: fuser::FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn reply_xattr(reply: ReplyXattr, size: u32, v: &[u8]) {
    if size == 0 {
        reply.size(v.len() as u32);
    } else if v.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(v);
    }
}

/// `OsStr` from raw bytes (Unix names are bytes).
trait FromBytesCompat {
    fn from_bytes_compat(b: &[u8]) -> &OsStr;
}

impl FromBytesCompat for OsStr {
    fn from_bytes_compat(b: &[u8]) -> &OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(b)
    }
}
