//! The view: what a mounted vault shows, as a library with no FUSE in it. Doors (the FUSE
//! mount in `crate::fuse`, later a WebDAV server, and tests) call [`View`] with inode numbers,
//! names and handles, and get the view's own types back ([`Attr`], [`DirEntry`], [`ViewError`]).
//!
//! ```text
//! /                      root             points side (read-only)
//! ├── points/ITEM/POINT  recovery points  points side
//! │   └── ITEM/latest    newest point     points side
//! ├── .deleted/ITEM/...  soft-deleted     points side
//! └── incoming/ITEM/...  writable trees   incoming side
//! ```
//!
//! Routing happens here and only here: [`View`] sends each request to `points` (the read-only
//! side) or `incoming` (the writable side), by `side_of` for an inode itself and
//! `side_of_names_in` for the names in a directory. The two sides never import each other;
//! what they share (inode numbers, caches, chunk loading, the read-ahead pool, times, the
//! door's caches) lives beside them in this module.

use std::sync::Arc;

mod access;
mod cache;
mod chunks;
mod dirs;
mod error;
#[cfg(feature = "test-clock")]
mod fault;
mod incoming;
pub mod ino;
mod kernel;
mod points;
mod pool;
pub(crate) mod space;
pub mod time;
mod types;

pub use error::{ViewError, ViewResult};
pub use kernel::{KernelCache, NoKernelCache};
pub use types::{
    Attr, Caller, DirEntry, Kind, Lookup, NAME_MAX, Opened, RenameMode, SetAttr, Stability, StatFs,
    XattrSet,
};

use crate::vault::Vault;
use chunks::ChunkCache;
use dirs::Dirs;
use incoming::Incoming;
use ino::{DIR_HANDLE_BIT, INCOMING, INCOMING_BIT};
use kernel::Kernel;
use points::Points;

/// Trees get 1/TREE_CACHE_SHARE of the cache budget; the rest holds chunks.
const TREE_CACHE_SHARE: usize = 2;

/// The part of the view that answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Points,
    Incoming,
}

/// The side answering for inode `ino` itself: its attributes, content and xattrs.
/// `incoming/` itself stands among the listings above the points.
fn side_of(ino: u64) -> Side {
    if ino & INCOMING_BIT != 0 {
        Side::Incoming
    } else {
        Side::Points
    }
}

/// The side answering for the names inside directory `dir`: lookups, listings, and every
/// change to them. The names in `incoming/` are the items, whose trees are the incoming side's.
fn side_of_names_in(dir: u64) -> Side {
    if dir == INCOMING {
        Side::Incoming
    } else {
        side_of(dir)
    }
}

/// The handles of files and directories.
enum HandleOf {
    Points,
    Incoming,
    Dir,
}

fn handle_of(fh: u64) -> HandleOf {
    if fh & INCOMING_BIT != 0 {
        HandleOf::Incoming
    } else if fh & DIR_HANDLE_BIT != 0 {
        HandleOf::Dir
    } else {
        HandleOf::Points
    }
}

/// A name a request may take: at most [`NAME_MAX`] bytes, on every side and every operation.
fn name_ok(name: &[u8]) -> ViewResult<&[u8]> {
    if name.len() > NAME_MAX {
        return Err(ViewError::NameTooLong);
    }
    Ok(name)
}

pub struct View {
    points: Points,
    incoming: Arc<Incoming>,
    dirs: Dirs,
    kernel: Kernel,
    vault: Arc<Vault>,
    access: access::Access,
}

impl View {
    /// A view of `vault` with `cache_bytes` of tree and chunk caches; data written into
    /// `incoming/` waits in a directory under `staging_base`.
    pub fn new(
        vault: Arc<Vault>,
        cache_bytes: usize,
        staging_base: &std::path::Path,
    ) -> ViewResult<View> {
        let kernel = Kernel::default();
        let chunks = Arc::new(ChunkCache::new(
            cache_bytes - cache_bytes / TREE_CACHE_SHARE,
        ));
        let incoming = Incoming::new(vault.clone(), chunks.clone(), staging_base, kernel.clone())?;
        let points = Points::new(
            vault.clone(),
            cache_bytes / TREE_CACHE_SHARE,
            chunks,
            kernel.clone(),
        )?;
        Ok(View {
            points,
            incoming,
            dirs: Dirs::default(),
            kernel,
            vault,
            access: access::Access::default(),
        })
    }

    /// The caches of the door in front of this view (once, when the door is up).
    pub fn set_kernel_cache(&self, k: Arc<dyn KernelCache>) {
        self.kernel.set(k);
    }

    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    /// Store what waits in staging and save the incoming trees (before the view goes away).
    pub fn shutdown(&self) -> ViewResult<()> {
        Ok(self.incoming.shutdown()?)
    }

    /// An item's records changed (a point made, deleted, undeleted or purged, an item made or
    /// removed): the listings of items and of that item's points are stale. Doors keep
    /// listings of every directory, so they are told to drop them; entries they looked up keep
    /// their short lifetime.
    pub fn catalog_changed(&self, item: &str) {
        let stale = self.points.catalog_changed(item);
        self.dirs.forget(&stale);
        for ino in stale {
            self.kernel.get().invalidate(ino, true);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Names

    /// Look up `name` in `parent`; a found entry counts one reference (see [`View::forget`]).
    pub fn lookup(&self, parent: u64, name: &[u8]) -> ViewResult<Lookup> {
        let name = name_ok(name)?;
        let found = match side_of_names_in(parent) {
            Side::Points => self.points.lookup(parent, name),
            Side::Incoming => self.incoming.lookup(parent, name),
        };
        match found {
            Ok(attr) => Ok(Lookup::Found(attr)),
            Err(ViewError::NotFound) => Ok(Lookup::Absent(names_stability(parent))),
            Err(e) => Err(e),
        }
    }

    /// The door dropped `n` references to `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        match side_of(ino) {
            Side::Points => self.points.forget(ino, n),
            Side::Incoming => self.incoming.forget(ino, n),
        }
    }

    pub fn getattr(&self, ino: u64) -> ViewResult<Attr> {
        match side_of(ino) {
            Side::Points => self.points.getattr(ino),
            Side::Incoming => self.incoming.getattr(ino),
        }
    }

    pub fn setattr(&self, ino: u64, change: SetAttr) -> ViewResult<Attr> {
        match side_of(ino) {
            Side::Points => Err(ViewError::ReadOnly),
            Side::Incoming => self.incoming.setattr(ino, change),
        }
    }

    pub fn readlink(&self, ino: u64) -> ViewResult<Vec<u8>> {
        match side_of(ino) {
            Side::Points => self.points.readlink(ino),
            Side::Incoming => self.incoming.readlink(ino),
        }
    }

    /// Make a file, device, fifo or socket (`mode` carries the type bits).
    pub fn mknod(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        rdev: u32,
        who: Caller,
    ) -> ViewResult<Attr> {
        let name = name_ok(name)?;
        self.may_add(who, parent, name)?
            .mknod(parent, name, mode, rdev, who)
    }

    pub fn mkdir(&self, parent: u64, name: &[u8], mode: u32, who: Caller) -> ViewResult<Attr> {
        let name = name_ok(name)?;
        self.may_add(who, parent, name)?
            .mkdir(parent, name, mode, who)
    }

    pub fn symlink(
        &self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        who: Caller,
    ) -> ViewResult<Attr> {
        let name = name_ok(name)?;
        self.may_add(who, parent, name)?
            .symlink(parent, name, target, who)
    }

    /// Create and open a regular file.
    pub fn create(
        &self,
        parent: u64,
        name: &[u8],
        mode: u32,
        who: Caller,
    ) -> ViewResult<(Attr, Opened)> {
        let name = name_ok(name)?;
        let (attr, fh) = self
            .may_add(who, parent, name)?
            .create(parent, name, mode, who)?;
        let stability = attr.stability;
        Ok((attr, Opened { fh, stability }))
    }

    pub fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> ViewResult<Attr> {
        let newname = name_ok(newname)?;
        match (side_of(ino), side_of_names_in(newparent)) {
            (Side::Incoming, Side::Incoming) => self.incoming.link(ino, newparent, newname),
            (Side::Points, Side::Points) => Err(ViewError::ReadOnly),
            _ => Err(ViewError::CrossDevice),
        }
    }

    pub fn unlink(&self, parent: u64, name: &[u8]) -> ViewResult<()> {
        let name = name_ok(name)?;
        self.writable_names(parent)?.unlink(parent, name)
    }

    pub fn rmdir(&self, parent: u64, name: &[u8]) -> ViewResult<()> {
        let name = name_ok(name)?;
        self.writable_names(parent)?.rmdir(parent, name)
    }

    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        mode: RenameMode,
    ) -> ViewResult<()> {
        // SAFETY: geteuid/getegid have no preconditions.
        let me = Caller {
            uid: unsafe { libc::geteuid() },
            gid: unsafe { libc::getegid() },
        };
        self.rename_as(me, parent, name, newparent, newname, mode)
    }

    /// [`View::rename`] on behalf of `caller` (a soft delete by `mv` is audited as theirs).
    pub fn rename_as(
        &self,
        caller: Caller,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
        mode: RenameMode,
    ) -> ViewResult<()> {
        let (name, newname) = (name_ok(name)?, name_ok(newname)?);
        match (side_of_names_in(parent), side_of_names_in(newparent), mode) {
            (Side::Incoming, Side::Incoming, RenameMode::Other) => Err(ViewError::Invalid),
            (Side::Incoming, Side::Incoming, _) => {
                self.may_change(caller, parent, Some(name))?;
                self.may_change(caller, newparent, Some(newname))?;
                self.incoming.rename(
                    parent,
                    name,
                    newparent,
                    newname,
                    mode == RenameMode::NoReplace,
                )
            }
            // Moving a point never replaces anything, so NOREPLACE (what mv asks for) is fine.
            (Side::Points, Side::Points, RenameMode::Other) => Err(ViewError::ReadOnly),
            (Side::Points, Side::Points, _) => {
                let may = |item: &str| {
                    self.access
                        .rights(&self.vault, caller)
                        .is_none_or(|r| r.may(access::Level::Contribute, item))
                };
                self.points
                    .rename(caller, may, parent, name, newparent, newname)
            }
            _ => Err(ViewError::CrossDevice),
        }
    }

    /// The incoming side, if the names in `dir` are its and `who` may add `name` there.
    fn may_add(&self, who: Caller, dir: u64, name: &[u8]) -> ViewResult<&Incoming> {
        let names = self.writable_names(dir)?;
        self.may_change(who, dir, Some(name))?;
        Ok(names)
    }

    /// The incoming side, if the names in `dir` are its; nothing else takes changes.
    fn writable_names(&self, dir: u64) -> ViewResult<&Incoming> {
        match side_of_names_in(dir) {
            Side::Incoming => Ok(&self.incoming),
            Side::Points => Err(ViewError::ReadOnly),
        }
    }

    // -----------------------------------------------------------------------------------------
    // Content

    /// Open a file; `truncate` empties it first (incoming only).
    pub fn open(&self, ino: u64, write: bool, truncate: bool) -> ViewResult<Opened> {
        match side_of(ino) {
            Side::Points => Ok(Opened {
                fh: self.points.open(ino, write || truncate)?,
                stability: Stability::Immutable,
            }),
            Side::Incoming => Ok(Opened {
                fh: self.incoming.open(ino, truncate)?,
                stability: Stability::Live,
            }),
        }
    }

    /// Read file `ino`, through handle `fh` if it was opened with one (the FUSE door opens
    /// files without asking the view, so its reads carry none).
    pub fn read(&self, ino: u64, fh: Option<u64>, offset: u64, size: u32) -> ViewResult<Vec<u8>> {
        if fh.is_some_and(|fh| matches!(handle_of(fh), HandleOf::Dir)) {
            return Err(ViewError::IsDir);
        }
        match side_of(ino) {
            Side::Points => self.points.read(ino, fh, offset, size),
            Side::Incoming => self.incoming.read(ino, offset, size),
        }
    }

    /// Write into file `ino` (keyed by inode: the FUSE door opens files without a handle).
    pub fn write(&self, ino: u64, offset: u64, data: &[u8]) -> ViewResult<u32> {
        match side_of(ino) {
            Side::Points => Err(ViewError::ReadOnly),
            Side::Incoming => self.incoming.write(ino, offset, data),
        }
    }

    /// The door closed handle `fh` (of a file or a directory).
    pub fn release(&self, fh: u64) {
        match handle_of(fh) {
            HandleOf::Points => self.points.release(fh),
            HandleOf::Incoming => self.incoming.release(fh),
            HandleOf::Dir => self.dirs.release(fh),
        }
    }

    /// Make a file's content durable (points are already), then save the incoming trees.
    pub fn fsync(&self, ino: u64) -> ViewResult<()> {
        match side_of(ino) {
            Side::Points => Ok(()),
            Side::Incoming => self.incoming.fsync(Some(ino)),
        }
    }

    /// Make a directory's listing durable (points are already).
    pub fn fsyncdir(&self, ino: u64) -> ViewResult<()> {
        match side_of_names_in(ino) {
            Side::Points => Ok(()),
            Side::Incoming => self.incoming.fsync(None),
        }
    }

    pub fn statfs(&self) -> ViewResult<StatFs> {
        self.points.statfs()
    }

    // -----------------------------------------------------------------------------------------
    // Extended attributes

    pub fn getxattr(&self, ino: u64, name: &[u8]) -> ViewResult<Vec<u8>> {
        match side_of(ino) {
            Side::Points => self.points.getxattr(ino, name),
            Side::Incoming => self.incoming.getxattr(ino, name),
        }
    }

    /// NUL-terminated names, as listxattr(2) returns them.
    pub fn listxattr(&self, ino: u64) -> ViewResult<Vec<u8>> {
        match side_of(ino) {
            Side::Points => self.points.listxattr(ino),
            Side::Incoming => self.incoming.listxattr(ino),
        }
    }

    pub fn setxattr(&self, ino: u64, name: &[u8], value: &[u8], how: XattrSet) -> ViewResult<()> {
        match side_of(ino) {
            Side::Points => Err(ViewError::ReadOnly),
            Side::Incoming => self.incoming.setxattr(ino, name, value, how),
        }
    }

    pub fn removexattr(&self, ino: u64, name: &[u8]) -> ViewResult<()> {
        match side_of(ino) {
            Side::Points => Err(ViewError::ReadOnly),
            Side::Incoming => self.incoming.removexattr(ino, name),
        }
    }
}

/// How long the absence of a name in `dir` stays true: inside an incoming tree, until the view
/// itself changes it; elsewhere it may change with the catalog.
fn names_stability(dir: u64) -> Stability {
    match side_of(dir) {
        Side::Incoming => Stability::Live,
        Side::Points => Stability::Catalog,
    }
}
