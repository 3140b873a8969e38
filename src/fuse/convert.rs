//! Between the view's types and fuser's: attributes, kinds, how long the kernel may cache
//! what (from the view's `Stability`), times, handles, and the replies several callbacks share.

use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Generation, INodeNo, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyXattr, Request, TimeOrNow,
};

use crate::view::time::to_ns;
use crate::view::{Attr, Caller, Kind, Stability};

/// Entries inside a point never change: let the kernel keep them.
pub(super) const TTL_IMMUTABLE: Duration = Duration::from_secs(3600);

/// Listings of items and points change when points are added or deleted.
pub(super) const TTL_CATALOG: Duration = Duration::from_secs(1);

/// Entries in incoming trees change only through this mount, that is through the kernel,
/// which updates its own caches (the one change it cannot see, a mode set by an ACL, is
/// notified). Fewer revalidations are fewer round trips per file an rsync writes.
pub(super) const TTL_LIVE: Duration = Duration::from_secs(30);

pub(super) fn ttl(s: Stability) -> Duration {
    match s {
        Stability::Immutable => TTL_IMMUTABLE,
        Stability::Catalog => TTL_CATALOG,
        Stability::Live => TTL_LIVE,
        Stability::Caller => Duration::ZERO,
    }
}

pub(super) fn file_type(k: Kind) -> FileType {
    match k {
        Kind::File => FileType::RegularFile,
        Kind::Dir => FileType::Directory,
        Kind::Symlink => FileType::Symlink,
        Kind::Fifo => FileType::NamedPipe,
        Kind::CharDevice => FileType::CharDevice,
        Kind::BlockDevice => FileType::BlockDevice,
        Kind::Socket => FileType::Socket,
    }
}

pub(super) fn file_attr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.blocks,
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.crtime,
        kind: file_type(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: 4096,
        flags: 0,
    }
}

pub(super) fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

pub(super) fn time_ns(t: TimeOrNow) -> i64 {
    match t {
        TimeOrNow::SpecificTime(t) => to_ns(t),
        TimeOrNow::Now => to_ns(SystemTime::now()),
    }
}

/// The handle of a readdir: none when the kernel opened the directory without asking.
pub(super) fn dir_handle(fh: FileHandle) -> Option<u64> {
    (fh.0 != 0).then_some(fh.0)
}

pub(super) fn reply_entry(reply: ReplyEntry, r: Result<Attr, Errno>) {
    match r {
        Ok(a) => reply.entry(&ttl(a.stability), &file_attr(&a), Generation(0)),
        Err(e) => reply.error(e),
    }
}

pub(super) fn reply_empty(reply: ReplyEmpty, r: Result<(), Errno>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

pub(super) fn reply_xattr(reply: ReplyXattr, size: u32, r: Result<Vec<u8>, Errno>) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(e),
    }
}

/// The attributes of a negative entry are not used; the kernel needs some.
pub(super) fn no_attr() -> FileAttr {
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: SystemTime::UNIX_EPOCH,
        mtime: SystemTime::UNIX_EPOCH,
        ctime: SystemTime::UNIX_EPOCH,
        crtime: SystemTime::UNIX_EPOCH,
        kind: FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

pub(super) fn reply_empty_dir(reply: ReplyDirectoryPlus, r: Result<(), Errno>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}
