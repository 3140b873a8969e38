//! Inode numbers and the table of inodes the kernel knows about.
//!
//! Numbers are derived, not allocated: a node's number is a hash of its parent's number and its
//! name (hard-linked files: of the point and the link group), so they are stable for the life of
//! the mount (and across remounts), `readdir` can name entries without registering them, and
//! hard links share one inode. The table holds only what the kernel has looked up and not yet
//! forgotten, so its size follows the kernel's inode cache, not the vault's size.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::format::Node;
use crate::store::BlobId;
use crate::view::ino::{DELETED, INCOMING, POINTS, ROOT, VERSIONS};
/// Derived numbers are at least this, so they never collide with the fixed ones.
const FIRST_DERIVED: u64 = 1 << 10;

/// Which top-level area an item directory is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Points,
    Deleted,
    Incoming,
}

/// A point as the mount shows it.
#[derive(Debug)]
pub struct PointCtx {
    pub item: String,
    pub name: String,
    pub ino: u64,
    /// The source directory's own metadata; `root.subtree` is the top tree.
    pub root: Node,
}

/// What an inode is.
#[derive(Debug, Clone)]
pub enum Entry {
    Root,
    PointsDir,
    IncomingDir,
    DeletedDir,
    ItemDir {
        area: Area,
        item: Arc<str>,
    },
    PointDir {
        point: Arc<PointCtx>,
    },
    Latest {
        item: Arc<str>,
    },
    /// `versions/`, listing the items.
    VersionsDir,
    /// `versions/ITEM/PATH` (`path` without a leading slash, empty for the item's own).
    Versions {
        item: Arc<str>,
        path: Arc<[u8]>,
    },
    /// An entry inside a point: node `idx` of tree `tree` (its directory's listing). The tree
    /// is fetched through the mount's bounded tree cache when needed, so the table pins no
    /// trees: after a `find` the kernel holds every inode of a point, and pinned trees were
    /// the whole point's metadata in memory.
    Node {
        point: Arc<PointCtx>,
        tree: BlobId,
        idx: u32,
        parent: u64,
    },
}

pub(crate) fn derive(parts: &[&[u8]]) -> u64 {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let v = u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"));
    (v >> 1).max(FIRST_DERIVED)
}

pub fn item_dir_ino(area: Area, item: &str) -> u64 {
    derive(&[b"item", &[area as u8], item.as_bytes()])
}

pub fn point_dir_ino(item: &str, point: &str) -> u64 {
    derive(&[b"point", item.as_bytes(), point.as_bytes()])
}

/// `latest` gets a new number whenever its target changes: the kernel keeps symlink targets
/// (FUSE_CACHE_SYMLINKS) per inode and is never told they changed.
pub fn latest_ino(item: &str, target: &str) -> u64 {
    derive(&[b"latest", item.as_bytes(), target.as_bytes()])
}

/// Number of `node` found under directory `parent` of point `point_ino`.
pub fn node_ino(point_ino: u64, parent: u64, node: &Node) -> u64 {
    if node.link_group != 0 {
        derive(&[
            b"link",
            &point_ino.to_le_bytes(),
            &node.link_group.to_le_bytes(),
        ])
    } else {
        derive(&[b"node", &parent.to_le_bytes(), &node.name])
    }
}

/// Looked-up inodes with their kernel lookup counts.
pub struct InodeTable {
    map: Mutex<HashMap<u64, Slot>>,
    /// Signalled when a push ends.
    pushed: Condvar,
}

struct Slot {
    entry: Entry,
    lookups: u64,
    push: Push,
}

/// Whether a file's content was pushed into the kernel's page cache (see `points::read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Not yet.
    No,
    /// Queued on the read-ahead pool.
    Queued,
    /// Being pushed (by the read-ahead pool or an open); opens wait for it.
    Pushing,
    /// Done (or given up: the file is then read through READ).
    Done,
}

impl Default for InodeTable {
    fn default() -> Self {
        let mut map = HashMap::new();
        for (ino, entry) in [
            (ROOT, Entry::Root),
            (POINTS, Entry::PointsDir),
            (INCOMING, Entry::IncomingDir),
            (DELETED, Entry::DeletedDir),
            (VERSIONS, Entry::VersionsDir),
        ] {
            let lookups = u64::MAX / 2;
            map.insert(
                ino,
                Slot {
                    entry,
                    lookups,
                    push: Push::No,
                },
            );
        }
        InodeTable {
            map: Mutex::new(map),
            pushed: Condvar::new(),
        }
    }
}

impl InodeTable {
    pub fn get(&self, ino: u64) -> Option<Entry> {
        self.map.lock().get(&ino).map(|s| s.entry.clone())
    }

    /// Record one kernel lookup of `ino`.
    pub fn remember(&self, ino: u64, entry: Entry) {
        let mut map = self.map.lock();
        let slot = map.entry(ino).or_insert(Slot {
            entry,
            lookups: 0,
            push: Push::No,
        });
        slot.lookups = slot.lookups.saturating_add(1);
    }

    /// The kernel dropped `n` lookups of `ino`.
    /// Drop `n` kernel references to `ino`; true if that was the last.
    pub fn forget(&self, ino: u64, n: u64) -> bool {
        let mut map = self.map.lock();
        if let Some(slot) = map.get_mut(&ino) {
            slot.lookups = slot.lookups.saturating_sub(n);
            if slot.lookups == 0 {
                map.remove(&ino);
                return true;
            }
        }
        false
    }

    /// Move `ino`'s push state from one of `from` to `to`; false if the kernel does not know
    /// the inode or its state is not in `from`. The state lives as long as the kernel's inode,
    /// and so do the pages pushed to it.
    pub fn advance_push(&self, ino: u64, from: &[Push], to: Push) -> bool {
        let mut map = self.map.lock();
        match map.get_mut(&ino) {
            Some(slot) if from.contains(&slot.push) => {
                slot.push = to;
                true
            }
            _ => false,
        }
    }

    /// A push of `ino` ended (see [`InodeTable::advance_push`]); wake who waits for it.
    pub fn finish_push(&self, ino: u64) {
        self.advance_push(ino, &[Push::Pushing], Push::Done);
        self.pushed.notify_all();
    }

    /// Wait, at most `limit`, while `ino` is being pushed: an open must not return while its
    /// pages are being filled, or its reader's READ would hold pages the push waits for.
    pub fn wait_push(&self, ino: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut map = self.map.lock();
        while map.get(&ino).is_some_and(|s| s.push == Push::Pushing) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            self.pushed.wait_for(&mut map, left);
        }
    }

    /// Test builds: panic while holding the table's lock if `name` is the fault's
    /// (`view::fault`).
    #[cfg(feature = "test-clock")]
    pub fn fault_on(&self, name: &[u8]) {
        let _held = self.map.lock();
        crate::view::fault::panic_if_named(name);
    }
}
