//! Attributes of what the read-only side shows: the directories above the points (owned by
//! root, with the time the catalog last changed), `latest`, and the nodes of points.

use std::sync::atomic::Ordering;

use super::Points;
use super::inodes::Entry;
use crate::format::{Node, NodeKind};
use crate::vault::tree;
use crate::view::error::{ViewError, ViewResult};
use crate::view::time::to_time;
use crate::view::types::{Attr, Kind, Stability};

impl Points {
    pub(super) fn dir_attr(&self, ino: u64, mode: u16, nlink: u32) -> Attr {
        let changed = self.listings_changed_ns.load(Ordering::Relaxed);
        let mtime = if changed > 0 {
            to_time(changed).max(self.mounted_at)
        } else {
            self.mounted_at
        };
        Attr {
            ino,
            kind: Kind::Dir,
            size: 4096,
            blocks: 8,
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: self.mounted_at,
            perm: mode,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            stability: Stability::Catalog,
        }
    }

    pub(super) fn node_attr(&self, ino: u64, entry: &Entry, node: &Node) -> ViewResult<Attr> {
        let nlink = match node.kind {
            NodeKind::Dir if let Some(n) = tree::dir_nlink_of(node) => n,
            // Trees written before directories recorded it: count. A damaged listing gives EIO
            // when the directory is entered, not when it is listed.
            NodeKind::Dir => self
                .dir_tree(entry)
                .map(|(_, t)| 2 + t.nodes.iter().filter(|n| n.kind == NodeKind::Dir).count() as u32)
                .unwrap_or(1),
            _ => node.nlink.max(1),
        };
        let size = match node.kind {
            NodeKind::Dir => 4096,
            NodeKind::Symlink => node.target.len() as u64,
            _ => node.size,
        };
        let t = to_time(node.mtime_ns);
        Ok(Attr {
            ino,
            kind: node.kind.into(),
            size,
            blocks: size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: to_time(node.ctime_ns.max(node.mtime_ns)),
            crtime: t,
            perm: (node.mode & 0o7777) as u16,
            nlink,
            uid: node.uid,
            gid: node.gid,
            rdev: node.rdev as u32,
            // A point's own directory stands in its item's listing, which changes.
            stability: if matches!(entry, Entry::Node { .. }) {
                Stability::Immutable
            } else {
                Stability::Catalog
            },
        })
    }

    /// Attributes of a known inode.
    pub fn getattr(&self, ino: u64) -> ViewResult<Attr> {
        let entry = self.entry(ino)?;
        self.attr_of(ino, &entry)
    }

    pub(super) fn attr_of(&self, ino: u64, entry: &Entry) -> ViewResult<Attr> {
        match entry {
            Entry::Root => Ok(self.dir_attr(ino, 0o755, 5)),
            Entry::PointsDir | Entry::DeletedDir | Entry::IncomingDir | Entry::VersionsDir => {
                Ok(self.dir_attr(ino, 0o755, 2))
            }
            // Their subdirectories are not counted: 1 is "unknown" to find (as in incoming/).
            Entry::Versions { .. } => Ok(self.dir_attr(ino, 0o755, 1)),
            Entry::ItemDir { .. } => Ok(self.dir_attr(ino, 0o755, 2)),
            Entry::Latest { item } => {
                let target = self.latest_name(item)?.ok_or(ViewError::NotFound)?;
                let mut a = self.dir_attr(ino, 0o777, 1);
                a.kind = Kind::Symlink;
                a.size = target.len() as u64;
                a.blocks = 0;
                Ok(a)
            }
            Entry::PointDir { point } => self.node_attr(ino, entry, &point.root),
            Entry::Node { .. } => {
                let node = self.node(entry)?.ok_or(ViewError::NotFound)?;
                self.node_attr(ino, entry, &node)
            }
        }
    }

    pub(super) fn latest_name(&self, item: &str) -> ViewResult<Option<String>> {
        Ok(self.vault.points(Some(item), false)?.pop().map(|p| p.name))
    }

    pub fn readlink(&self, ino: u64) -> ViewResult<Vec<u8>> {
        let entry = self.entry(ino)?;
        if let Entry::Latest { item } = &entry {
            return Ok(self
                .latest_name(item)?
                .ok_or(ViewError::NotFound)?
                .into_bytes());
        }
        match self.node(&entry)? {
            Some(n) if n.kind == NodeKind::Symlink => Ok(n.target.clone()),
            _ => Err(ViewError::Invalid),
        }
    }
}
