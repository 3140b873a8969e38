//! Trees of points through the bounded tree cache: a directory's listing is decoded once, the
//! trees of its subdirectories are fetched ahead, and a node is named by (tree, index) so the
//! inode table pins no trees.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use super::Points;
use super::inodes::{Entry, PointCtx};
use super::point_of;
use super::xattrs::LABEL_XATTRS;
use crate::format::{ChunkRef, Node, NodeKind, Tree};
use crate::store::BlobId;
use crate::vault::{Vault, tree};
use crate::view::cache::WeightedCache;
use crate::view::error::{ViewError, ViewResult};

/// Subdirectory trees fetched ahead when a directory's tree is first loaded.
const READAHEAD_TREES: usize = 16;

pub(super) type TreeCache = WeightedCache<BlobId, Tree, ViewError>;

/// A node of a point, holding the tree it lives in while in use.
pub(super) enum NodeRef {
    InTree(Arc<Tree>, usize),
    Root(Arc<PointCtx>),
}

impl std::ops::Deref for NodeRef {
    type Target = Node;
    fn deref(&self) -> &Node {
        match self {
            NodeRef::InTree(tree, idx) => &tree.nodes[*idx],
            NodeRef::Root(point) => &point.root,
        }
    }
}

/// Bytes a decoded tree holds on the heap, allocator overhead included (the cache budget is
/// meant as memory, and small allocations cost more than their length).
pub(super) fn tree_weight(t: &Tree) -> usize {
    pub(super) fn alloc(bytes: usize) -> usize {
        if bytes == 0 {
            0
        } else {
            bytes.next_multiple_of(16) + 16
        }
    }
    let nodes: usize = t
        .nodes
        .iter()
        .map(|n| {
            alloc(n.name.capacity())
                + alloc(n.chunks.capacity() * std::mem::size_of::<ChunkRef>())
                + alloc(n.target.capacity())
                + alloc(n.xattrs.capacity() * std::mem::size_of::<(Vec<u8>, Vec<u8>)>())
                + n.xattrs
                    .iter()
                    .map(|(k, v)| alloc(k.capacity()) + alloc(v.capacity()))
                    .sum::<usize>()
        })
        .sum();
    alloc(t.nodes.capacity() * std::mem::size_of::<Node>()) + nodes + 64
}

impl Points {
    pub(super) fn tree(&self, id: &BlobId) -> ViewResult<Arc<Tree>> {
        let cached = self.trees.contains(id);
        let tree = self.trees.get_or_load(id, tree_weight, || {
            load_tree(&self.vault, id, &self.labels_seen)
        })?;
        if !cached {
            // Whoever lists a directory (find, ls -R, tar, rsync) enters its subdirectories
            // next: fetch their trees while this one is being answered.
            let subdirs = tree
                .nodes
                .iter()
                .filter(|n| n.kind == NodeKind::Dir)
                .filter_map(|n| n.subtree)
                .filter(|id| !self.trees.contains(id))
                .take(READAHEAD_TREES);
            for sub in subdirs {
                let (trees, vault) = (self.trees.clone(), self.vault.clone());
                let seen = self.labels_seen.clone();
                self.prefetcher.spawn(move || {
                    let _ = trees.get_or_load(&sub, tree_weight, || load_tree(&vault, &sub, &seen));
                });
            }
        }
        Ok(tree)
    }

    /// The tree node of a `Node` entry or the root node of a point directory; `None` for the
    /// listings above the points.
    pub(super) fn node(&self, entry: &Entry) -> ViewResult<Option<NodeRef>> {
        match entry {
            Entry::Node { tree, idx, .. } => {
                let t = self.tree(tree).inspect_err(|e| self.log_damage(entry, e))?;
                if *idx as usize >= t.nodes.len() {
                    return Err(ViewError::Corrupt(format!(
                        "tree {tree} has no entry {idx}"
                    )));
                }
                Ok(Some(NodeRef::InTree(t, *idx as usize)))
            }
            Entry::PointDir { point } => Ok(Some(NodeRef::Root(point.clone()))),
            _ => Ok(None),
        }
    }

    /// The tree listing a directory entry (a point root or a directory inside a point), and
    /// its id.
    pub(super) fn dir_tree(&self, entry: &Entry) -> ViewResult<(BlobId, Arc<Tree>)> {
        let node = self.node(entry)?.ok_or(ViewError::NotDir)?;
        if node.kind != NodeKind::Dir {
            return Err(ViewError::NotDir);
        }
        let id = node
            .subtree
            .ok_or_else(|| ViewError::Corrupt("directory without a tree".into()))?;
        let tree = self.tree(&id).inspect_err(|e| self.log_damage(entry, e))?;
        Ok((id, tree))
    }

    pub(super) fn log_damage(&self, entry: &Entry, e: &ViewError) {
        if let Some(point) = point_of(entry) {
            damaged(&self.vault, point, e);
        }
    }
}

/// A read of `point` failed with `e`: log it, and when the data is damaged raise the
/// vault's corruption alert (the one `check` raises; once, until a check passes).
pub(super) fn damaged(vault: &Arc<Vault>, point: &PointCtx, e: &ViewError) {
    e.log(&format!(
        "a file of point {} (`vaultfs check` names it)",
        point.name
    ));
    if let ViewError::Corrupt(why) = e {
        vault.raise_read_corruption(&point.item, &point.name, why);
    }
}

/// Load and decode a tree, noting which of [`LABEL_XATTRS`] its nodes carry.
pub(super) fn load_tree(vault: &Vault, id: &BlobId, seen: &AtomicU8) -> ViewResult<Tree> {
    let tree = tree::load(vault.store(), id)?;
    let mut bits = 0u8;
    for (k, _) in tree.nodes.iter().flat_map(|n| n.xattrs.iter()) {
        if let Some((_, bit)) = LABEL_XATTRS.iter().find(|(l, _)| *l == k.as_slice()) {
            bits |= bit;
        }
    }
    if bits != 0 {
        seen.fetch_or(bits, Ordering::Relaxed);
    }
    Ok(tree)
}
