//! The live state of the incoming trees: inodes (files, directories, the rest), their data
//! and links, which items changed since their last save, and the bookkeeping every change
//! keeps (link counts, parents, staleness of saved trees).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::staging::Staged;
use crate::format::{ChunkRef, Node, NodeKind};
use crate::store::BlobId;
use crate::vault::{now_ns, tree};
use crate::view::error::{ViewError, ViewResult};
use crate::view::ino::INCOMING_BIT as BIT;
use crate::view::types::Caller;

pub(super) struct FileData {
    /// Current size (of the staging file, when there is one).
    pub(super) size: u64,
    /// The last committed content; equals the current one when `version == committed`.
    pub(super) chunks: Arc<Vec<ChunkRef>>,
    pub(super) committed_size: u64,
    pub(super) staged: Option<Arc<Staged>>,
    pub(super) version: u64,
    pub(super) committed: u64,
    /// The settle epoch the last commit finished in (see `Incoming::settle`).
    pub(super) committed_epoch: u64,
}

impl FileData {
    pub(super) fn new() -> FileData {
        FileData {
            size: 0,
            chunks: Arc::new(Vec::new()),
            committed_size: 0,
            staged: None,
            version: 0,
            committed: 0,
            committed_epoch: 0,
        }
    }

    pub(super) fn uncommitted(&self) -> bool {
        self.version != self.committed
    }
}

pub(super) struct DirData {
    /// Entries; `None` until loaded from `saved`.
    pub(super) children: Option<BTreeMap<Vec<u8>, u64>>,
    /// The saved tree, while it still describes the directory.
    pub(super) saved: Option<BlobId>,
    /// Entries that are directories (for `nlink`; counting them per getattr made rsync's
    /// create-then-stat-the-parent quadratic in the directory's size). `None` while not loaded
    /// from a tree that did not record its directories' link counts.
    pub(super) subdirs: Option<u32>,
}

pub(super) enum Data {
    File(FileData),
    Dir(DirData),
    Other,
}

pub(super) struct Inode {
    pub(super) item: Arc<str>,
    pub(super) kind: NodeKind,
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) mtime_ns: i64,
    pub(super) ctime_ns: i64,
    /// Kept while mounted only: points do not record access times.
    pub(super) atime_ns: i64,
    pub(super) rdev: u64,
    pub(super) target: Vec<u8>,
    pub(super) xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Directory entries naming it.
    pub(super) nlink: u32,
    /// The directories holding those entries (one per link).
    pub(super) parents: Vec<u64>,
    /// Identity of a hard-linked file inside saved trees.
    pub(super) link_group: u64,
    pub(super) lookups: u64,
    pub(super) open: u32,
    pub(super) data: Data,
}

impl Inode {
    pub(super) fn new(item: Arc<str>, kind: NodeKind, mode: u32, who: Caller) -> Inode {
        let now = now_ns();
        Inode {
            item,
            kind,
            mode: mode & 0o7777,
            uid: who.uid,
            gid: who.gid,
            mtime_ns: now,
            ctime_ns: now,
            atime_ns: now,
            rdev: 0,
            target: Vec::new(),
            xattrs: BTreeMap::new(),
            nlink: 1,
            parents: Vec::new(),
            link_group: 0,
            lookups: 0,
            open: 0,
            data: match kind {
                NodeKind::File => Data::File(FileData::new()),
                NodeKind::Dir => Data::Dir(DirData {
                    children: Some(BTreeMap::new()),
                    saved: None,
                    subdirs: Some(0),
                }),
                _ => Data::Other,
            },
        }
    }

    pub(super) fn from_node(item: Arc<str>, n: &Node) -> Inode {
        let data = match n.kind {
            NodeKind::File => {
                let size = n.chunks.iter().map(|c| c.len as u64).sum();
                Data::File(FileData {
                    size,
                    chunks: Arc::new(n.chunks.clone()),
                    committed_size: size,
                    ..FileData::new()
                })
            }
            NodeKind::Dir => Data::Dir(DirData {
                children: if n.subtree.is_some() {
                    None
                } else {
                    Some(BTreeMap::new())
                },
                saved: n.subtree,
                subdirs: if n.subtree.is_some() {
                    tree::dir_nlink_of(n).map(|l| l - 2)
                } else {
                    Some(0)
                },
            }),
            _ => Data::Other,
        };
        Inode {
            item,
            kind: n.kind,
            mode: n.mode & 0o7777,
            uid: n.uid,
            gid: n.gid,
            mtime_ns: n.mtime_ns,
            ctime_ns: n.ctime_ns.max(n.mtime_ns),
            atime_ns: n.mtime_ns,
            rdev: n.rdev,
            target: n.target.clone(),
            xattrs: n.xattrs.iter().cloned().collect(),
            // A hard-linked file counts the names its tree recorded, also those in
            // directories not loaded yet (loading them adds parents, not links).
            nlink: if n.link_group != 0 && n.kind != NodeKind::Dir {
                n.nlink.max(1)
            } else {
                1
            },
            parents: Vec::new(),
            link_group: n.link_group,
            lookups: 0,
            open: 0,
            data,
        }
    }

    pub(super) fn file(&self) -> ViewResult<&FileData> {
        match &self.data {
            Data::File(f) => Ok(f),
            Data::Dir(_) => Err(ViewError::IsDir),
            Data::Other => Err(ViewError::Invalid),
        }
    }

    pub(super) fn file_mut(&mut self) -> ViewResult<&mut FileData> {
        match &mut self.data {
            Data::File(f) => Ok(f),
            Data::Dir(_) => Err(ViewError::IsDir),
            Data::Other => Err(ViewError::Invalid),
        }
    }

    pub(super) fn touch(&mut self) {
        let now = now_ns();
        self.mtime_ns = now;
        self.ctime_ns = now;
    }
}

#[derive(Default)]
pub(super) struct State {
    pub(super) nodes: HashMap<u64, Inode>,
    pub(super) next: u64,
    /// Item name → its root directory's inode.
    pub(super) roots: BTreeMap<String, u64>,
    /// (item, link group) → inode, for hard links met while loading trees.
    pub(super) links: HashMap<(Arc<str>, u64), u64>,
    /// Items changed since their last save, with a change counter (a save clears an item only
    /// if nothing changed while it ran).
    pub(super) dirty: HashMap<Arc<str>, u64>,
    pub(super) changes: u64,
    /// Inodes with a staging file.
    pub(super) staged: HashSet<u64>,
    /// Revision of each item's newest saved record.
    pub(super) revisions: HashMap<Arc<str>, u64>,
}

impl State {
    pub(super) fn get(&self, ino: u64) -> ViewResult<&Inode> {
        self.nodes.get(&ino).ok_or(ViewError::NotFound)
    }

    pub(super) fn get_mut(&mut self, ino: u64) -> ViewResult<&mut Inode> {
        self.nodes.get_mut(&ino).ok_or(ViewError::NotFound)
    }

    pub(super) fn alloc(&mut self, inode: Inode) -> u64 {
        self.next += 1;
        let ino = BIT | self.next;
        self.nodes.insert(ino, inode);
        ino
    }

    /// Something about `ino` changed: the trees of every directory above it are stale.
    pub(super) fn mark_dirty(&mut self, ino: u64) {
        let Some(inode) = self.nodes.get(&ino) else {
            return;
        };
        self.changes += 1;
        self.dirty.insert(inode.item.clone(), self.changes);
        let mut todo = inode.parents.clone();
        while let Some(p) = todo.pop() {
            let Some(dir) = self.nodes.get_mut(&p) else {
                continue;
            };
            if let Data::Dir(d) = &mut dir.data
                && d.saved.take().is_some()
            {
                todo.extend(dir.parents.iter().copied());
            }
        }
    }

    /// The entries of directory `dir` changed: its own tree is stale, and so are those above.
    pub(super) fn dir_changed(&mut self, dir: u64) {
        if let Some(i) = self.nodes.get_mut(&dir) {
            i.touch();
            if let Data::Dir(d) = &mut i.data {
                d.saved = None;
            }
        }
        self.mark_dirty(dir);
    }

    /// Drop an inode nothing refers to any more (its staging file goes with it).
    pub(super) fn maybe_drop(&mut self, ino: u64) {
        let gone = self
            .nodes
            .get(&ino)
            .is_some_and(|i| i.nlink == 0 && i.lookups == 0 && i.open == 0);
        if gone {
            self.nodes.remove(&ino);
            self.staged.remove(&ino);
        }
    }

    pub(super) fn children(&self, dir: u64) -> ViewResult<&BTreeMap<Vec<u8>, u64>> {
        match &self.get(dir)?.data {
            Data::Dir(DirData {
                children: Some(c), ..
            }) => Ok(c),
            Data::Dir(_) => Err(ViewError::Corrupt("directory not loaded".into())),
            _ => Err(ViewError::NotDir),
        }
    }

    pub(super) fn children_mut(&mut self, dir: u64) -> ViewResult<&mut BTreeMap<Vec<u8>, u64>> {
        match &mut self.get_mut(dir)?.data {
            Data::Dir(DirData {
                children: Some(c), ..
            }) => Ok(c),
            Data::Dir(_) => Err(ViewError::Corrupt("directory not loaded".into())),
            _ => Err(ViewError::NotDir),
        }
    }

    /// One directory entry more (`delta` 1) or less (-1) in `dir` is a directory.
    pub(super) fn count_subdir(&mut self, dir: u64, delta: i32) {
        if let Some(i) = self.nodes.get_mut(&dir)
            && let Data::Dir(d) = &mut i.data
        {
            d.subdirs = d.subdirs.map(|n| n.saturating_add_signed(delta));
        }
    }

    /// Remove the entry `name` of `dir` that names `child`.
    pub(super) fn unlink_entry(&mut self, dir: u64, name: &[u8], child: u64) -> ViewResult<()> {
        self.children_mut(dir)?.remove(name);
        if self.get(child)?.kind == NodeKind::Dir {
            self.count_subdir(dir, -1);
        }
        let c = self.get_mut(child)?;
        c.nlink = c.nlink.saturating_sub(1);
        if let Some(i) = c.parents.iter().position(|p| *p == dir) {
            c.parents.remove(i);
        }
        c.ctime_ns = now_ns();
        let still_linked = c.nlink > 0;
        self.dir_changed(dir);
        if still_linked {
            self.mark_dirty(child);
        }
        self.maybe_drop(child);
        Ok(())
    }
}
