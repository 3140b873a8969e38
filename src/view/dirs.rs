//! Directory listings for both sides: a listing is taken when a directory is opened (inside a
//! point, at its first read, since doors keep those and may never read them again), so one
//! pass of a reader sees one listing even while the directory changes.
//!
//! Doors that open directories without a handle (the FUSE door with FUSE_NO_OPENDIR_SUPPORT)
//! read "handle-less" listings: taken when a reader starts at offset 0 and kept until it gets
//! to the end (two readers starting at once share the newer one).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::error::{ViewError, ViewResult};
use super::ino::DIR_HANDLE_BIT;
use super::points::inodes::Entry;
use super::types::{Attr, Caller, DirEntry, Opened, Stability};
use super::{Side, View, side_of_names_in};

/// Handle-less listings kept at most, and entries in them: a reader that stops early leaves
/// its listing behind.
const LISTINGS_MAX: usize = 256;
const LISTED_ENTRIES_MAX: usize = 256 * 1024;

type Listing = Arc<Vec<DirEntry>>;

#[derive(Default)]
pub(super) struct Dirs {
    handles: Mutex<HashMap<u64, Arc<DirHandle>>>,
    next: AtomicU64,
    /// Listings being read without a handle, by directory.
    unhandled: Mutex<HashMap<u64, Listing>>,
}

struct DirHandle {
    ino: u64,
    /// `None` until the first read, for directories inside points.
    list: Mutex<Option<Listing>>,
}

impl Dirs {
    fn open(&self, ino: u64, list: Option<Vec<DirEntry>>) -> u64 {
        let fh = DIR_HANDLE_BIT | self.next.fetch_add(1, Ordering::Relaxed);
        let handle = DirHandle {
            ino,
            list: Mutex::new(list.map(Arc::new)),
        };
        self.handles.lock().insert(fh, Arc::new(handle));
        fh
    }

    pub(super) fn release(&self, fh: u64) {
        self.handles.lock().remove(&fh);
    }

    /// Drop the handle-less listings of `inos` (they changed).
    pub(super) fn forget(&self, inos: &[u64]) {
        let mut kept = self.unhandled.lock();
        for ino in inos {
            kept.remove(ino);
        }
    }
}

/// What a readdirplus entry registers once the door took it.
enum Taken {
    Points(Entry),
    Incoming,
    Nothing,
}

impl View {
    /// Open directory `ino`.
    pub fn opendir(&self, ino: u64) -> ViewResult<Opened> {
        self.open_listing(None, ino)
    }

    /// Open directory `ino` on behalf of `who`: a listing of items shows those it has a role
    /// on, and the door may not keep it.
    pub fn opendir_as(&self, who: Caller, ino: u64) -> ViewResult<Opened> {
        self.open_listing(Some(who), ino)
    }

    fn open_listing(&self, who: Option<Caller>, ino: u64) -> ViewResult<Opened> {
        let (mut list, mut stability) = match side_of_names_in(ino) {
            Side::Incoming => (Some(self.incoming.list(ino)?), Stability::Live),
            Side::Points => self.points.opendir(ino)?,
        };
        if let Some(who) = who {
            list = list.map(|l| self.visible(who, ino, l));
            stability = self.names_for(ino, stability);
        }
        let fh = self.dirs.open(ino, list);
        Ok(Opened { fh, stability })
    }

    /// The whole listing of directory `ino`, "." and ".." first; the door reads it from
    /// `offset`. Through the handle `fh`, or without one (`None`).
    pub fn readdir(&self, ino: u64, fh: Option<u64>, offset: u64) -> ViewResult<Listing> {
        // Handle-less listings are shared by every reader: not for the listings of items
        // filtered by role (the FUSE door then opens every directory).
        if fh.is_none() && self.enforces_roles() && super::access::lists_items(ino) {
            return Err(ViewError::BadHandle);
        }
        let list = match fh {
            Some(fh) => self.handle_listing(fh)?,
            None => self.unhandled_listing(ino, offset)?,
        };
        if fh.is_none() && offset as usize >= list.len() {
            self.dirs.unhandled.lock().remove(&ino);
        }
        Ok(list)
    }

    /// Like [`View::readdir`], with each entry's attributes: `add(entry, next offset, attr)`
    /// is called from `offset` on until it returns true (the door's buffer is full). Entries
    /// it took count one reference each, as a lookup would ("." and ".." excepted).
    pub fn readdirplus(
        &self,
        ino: u64,
        fh: Option<u64>,
        offset: u64,
        mut add: impl FnMut(&DirEntry, u64, &Attr) -> bool,
    ) -> ViewResult<()> {
        let list = self.readdir(ino, fh, offset)?;
        let side = side_of_names_in(ino);
        // Inside a point, entry i of the listing is node i - 2 of the directory's tree.
        let ctx = match side {
            Side::Points => self.points.listing_context(ino),
            Side::Incoming => None,
        };
        for (i, e) in list.iter().enumerate().skip(offset as usize) {
            let (taken, attr) = if e.is_dot() {
                // ".." may name an inode the door never looked up (a deleted point entered
                // straight from .deleted/): its own attributes stand in.
                let attr = self.getattr(e.ino).or_else(|_| self.getattr(ino))?;
                (Taken::Nothing, attr)
            } else if let Some(ctx) = ctx.as_ref().filter(|_| i >= 2) {
                let (entry, attr) = self.points.peek_listed(ctx, ino, e.ino, i - 2)?;
                (Taken::Points(entry), attr)
            } else {
                match side {
                    Side::Points => {
                        let (entry, attr) = self.points.peek(ino, &e.name)?;
                        (Taken::Points(entry), attr)
                    }
                    Side::Incoming => (Taken::Incoming, self.incoming.peek(ino, &e.name)?),
                }
            };
            let attr = Attr {
                stability: if e.is_dot() {
                    attr.stability
                } else {
                    self.names_for(ino, attr.stability)
                },
                ..attr
            };
            if add(e, (i + 1) as u64, &attr) {
                break;
            }
            match taken {
                Taken::Points(entry) => self.points.remember(e.ino, entry),
                Taken::Incoming => self.incoming.remember(e.ino),
                Taken::Nothing => {}
            }
        }
        Ok(())
    }

    fn handle_listing(&self, fh: u64) -> ViewResult<Listing> {
        let handle = self
            .dirs
            .handles
            .lock()
            .get(&fh)
            .cloned()
            .ok_or(ViewError::BadHandle)?;
        let mut list = handle.list.lock();
        if let Some(l) = list.as_ref() {
            return Ok(l.clone());
        }
        let l = Arc::new(self.points.list(handle.ino)?);
        *list = Some(l.clone());
        Ok(l)
    }

    /// The listing a reader without a handle reads: taken at offset 0, kept until its end.
    fn unhandled_listing(&self, ino: u64, offset: u64) -> ViewResult<Listing> {
        if offset > 0
            && let Some(list) = self.dirs.unhandled.lock().get(&ino)
        {
            return Ok(list.clone());
        }
        let list = Arc::new(match side_of_names_in(ino) {
            Side::Incoming => self.incoming.list(ino)?,
            Side::Points => match self.points.opendir(ino)? {
                (Some(list), _) => list,
                (None, _) => self.points.list(ino)?,
            },
        });
        let mut kept = self.dirs.unhandled.lock();
        if kept.len() >= LISTINGS_MAX
            || kept.values().map(|l| l.len()).sum::<usize>() >= LISTED_ENTRIES_MAX
        {
            kept.clear();
        }
        kept.insert(ino, list.clone());
        Ok(list)
    }
}
