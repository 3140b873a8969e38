//! The synchronous half of the door: WebDAV paths to the view's inodes, listings with
//! attributes, and reads. Runs on tokio's blocking threads (`fs.rs` calls it through
//! `spawn_blocking`), so it may take the view's locks and load trees and chunks.
//!
//! What is served: `points/` and `versions/` (the read-only view of the mount, DESIGN.md §16);
//! `incoming/` and `.deleted/` are not. WebDAV has no symlinks: `latest` (a symlink above the
//! points naming a sibling) is followed, so it is served as the newest point; symlinks inside
//! points, fifos, sockets and devices are left out of listings and answer 404.

use std::sync::Arc;

use crate::view::ino::ROOT;
use crate::view::{Attr, Caller, Kind, Lookup, Stability, View, ViewError};

/// The names served at the root.
const TOP: [&[u8]; 2] = [b"points", b"versions"];
/// Symlinks followed in a row before a path is given up (`latest` needs one).
const SYMLINK_HOPS: usize = 4;

/// Why a WebDAV request on the tree failed, before the door turns it into a status.
#[derive(Debug)]
pub(super) enum TreeError {
    NotFound,
    Denied,
    View(ViewError),
}

impl From<ViewError> for TreeError {
    fn from(e: ViewError) -> TreeError {
        match e {
            ViewError::NotFound | ViewError::NotDir | ViewError::NameTooLong => TreeError::NotFound,
            ViewError::AccessDenied => TreeError::Denied,
            e => TreeError::View(e),
        }
    }
}

pub(super) type TreeResult<T> = Result<T, TreeError>;

/// References the view counted for the lookups of one request (the inodes stay known to the
/// view while it runs, as the kernel's references keep them for the mount); given back on drop.
pub(super) struct Held {
    view: Arc<View>,
    inos: Vec<u64>,
}

impl Held {
    fn new(view: &Arc<View>) -> Held {
        Held {
            view: view.clone(),
            inos: Vec::new(),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for ino in self.inos.drain(..) {
            self.view.forget(ino, 1);
        }
    }
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Held({} inodes)", self.inos.len())
    }
}

/// What the door does with an entry it met.
enum Served {
    Yes,
    /// A symlink above the points (`latest`): served as its target, a sibling name.
    Follow,
    Hidden,
}

fn served(a: &Attr) -> Served {
    match a.kind {
        Kind::File | Kind::Dir => Served::Yes,
        Kind::Symlink if a.stability != Stability::Immutable => Served::Follow,
        _ => Served::Hidden,
    }
}

/// One entry of a listing, with the attributes of what it serves.
pub(super) struct Listed {
    pub name: Vec<u8>,
    pub attr: Attr,
}

/// The view as WebDAV sees it.
#[derive(Clone)]
pub(super) struct Tree {
    view: Arc<View>,
}

impl Tree {
    pub(super) fn new(view: Arc<View>) -> Tree {
        Tree { view }
    }

    /// The entry at `path` (bytes, '/'-separated, already percent-decoded) for `who`, with the
    /// references that keep it known until they are dropped.
    pub(super) fn resolve(&self, who: Caller, path: &[u8]) -> TreeResult<(Attr, Held)> {
        let mut held = Held::new(&self.view);
        let mut attr = self.view.getattr(ROOT)?;
        for (depth, name) in path
            .split(|b| *b == b'/')
            .filter(|s| !s.is_empty())
            .enumerate()
        {
            if (depth == 0 && !TOP.contains(&name)) || attr.kind != Kind::Dir {
                return Err(TreeError::NotFound);
            }
            attr = self.step(who, attr.ino, name, &mut held)?;
        }
        Ok((attr, held))
    }

    /// Look `name` up in `dir`, following `latest`.
    fn step(&self, who: Caller, dir: u64, name: &[u8], held: &mut Held) -> TreeResult<Attr> {
        let mut name = name.to_vec();
        for _ in 0..SYMLINK_HOPS {
            if name == b"." || name == b".." || name.contains(&b'/') {
                return Err(TreeError::NotFound);
            }
            let a = match self.view.lookup_as(who, dir, &name)? {
                Lookup::Found(a) => a,
                Lookup::Absent(_) => return Err(TreeError::NotFound),
            };
            held.inos.push(a.ino);
            match served(&a) {
                Served::Yes => return Ok(a),
                Served::Hidden => return Err(TreeError::NotFound),
                Served::Follow => name = self.view.readlink(a.ino)?,
            }
        }
        Err(TreeError::NotFound)
    }

    /// The entries of directory `dir` that are served, with their attributes (`latest` with
    /// its target's), as `who` may see them. `held` keeps them known while the caller uses
    /// them.
    pub(super) fn list(&self, who: Caller, dir: &Attr, held: &mut Held) -> TreeResult<Vec<Listed>> {
        let opened = self.view.opendir_as(who, dir.ino)?;
        let mut raw = Vec::new();
        let listed = self
            .view
            .readdirplus(dir.ino, Some(opened.fh), 0, |e, _, a| {
                if !e.is_dot() {
                    raw.push((e.name.clone(), a.clone()));
                }
                false
            });
        self.view.release(opened.fh);
        // Every entry taken counts one reference, whether it is served or not.
        held.inos.extend(raw.iter().map(|(_, a)| a.ino));
        listed?;
        let mut out = Vec::with_capacity(raw.len());
        for (name, attr) in raw {
            if dir.ino == ROOT && !TOP.contains(&name.as_slice()) {
                continue;
            }
            let attr = match served(&attr) {
                Served::Yes => attr,
                Served::Hidden => continue,
                Served::Follow => match self.step(who, dir.ino, &name, held) {
                    Ok(a) => a,
                    // `latest` of an item whose newest point just went: leave it out.
                    Err(TreeError::NotFound) => continue,
                    Err(e) => return Err(e),
                },
            };
            out.push(Listed { name, attr });
        }
        Ok(out)
    }

    /// Open file `ino` for reading: a handle of the view, released by [`Tree::release`].
    pub(super) fn open(&self, ino: u64) -> TreeResult<u64> {
        Ok(self.view.open(ino, false, false)?.fh)
    }

    pub(super) fn read(&self, ino: u64, fh: u64, offset: u64, size: u32) -> TreeResult<Vec<u8>> {
        Ok(self.view.read(ino, Some(fh), offset, size)?)
    }

    pub(super) fn release(&self, fh: u64) {
        self.view.release(fh);
    }
}
