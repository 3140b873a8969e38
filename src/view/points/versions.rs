//! `versions/ITEM/PATH/`: the history of one path across an item's live points, built when a
//! directory of it is first looked at.
//!
//! For a file (anything but a directory) at PATH, the directory lists one entry per distinct
//! version, named by the first point that has it plus the file's own extension
//! (`2026-11-23T23-10-05Z.txt`), oldest first; a version is an entry of that point (an
//! `Entry::Node`), so attributes, reads and xattrs are the point's. A new version starts where
//! content (chunks, symlink target, device) or metadata (type, mode, owner, group, mtime,
//! xattrs) differs from the previous version; a path that disappears and comes back unchanged
//! is the same version. For a directory at PATH, the same directory also lists every name
//! found under PATH in any point, each again a `versions/` directory.
//!
//! Memory: nothing per point is kept. Walking PATH through each point stops at the first
//! directory whose tree is the previous point's (then PATH is too), so 1,000 points sharing
//! most trees cost a few tree lookups each, through the mount's bounded tree cache. Built
//! histories are kept in an LRU bounded by bytes and dropped when the catalog changes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Points;
use super::inodes::{self, Entry, PointCtx};
use crate::format::{Node, NodeKind, PointRecord};
use crate::store::BlobId;
use crate::vault::diff;
use crate::view::cache::WeightedCache;
use crate::view::error::{ViewError, ViewResult};
use crate::view::ino::VERSIONS;
use crate::view::types::{DirEntry, Kind};

/// Bytes of built histories kept.
pub(super) const HISTORY_CACHE_BYTES: usize = 4 << 20;

/// Histories by (catalog generation, directory inode).
pub(super) type HistoryCache = WeightedCache<(u64, u64), History, ViewError>;

/// (catalog generation, item, its live points): one item's histories are built one after
/// another, and decrypting 1,000 point records each time was most of a build.
pub(super) type PointList = parking_lot::Mutex<Option<(u64, Arc<str>, Arc<Vec<PointRecord>>)>>;

/// What `versions/ITEM/PATH/` lists.
pub(super) struct History {
    /// Names under PATH in the points where it is a directory, sorted.
    children: BTreeSet<Vec<u8>>,
    /// Versions of PATH where it is not a directory, oldest first.
    versions: Vec<Version>,
}

struct Version {
    name: Vec<u8>,
    point: Arc<PointCtx>,
    /// The listing holding the version, and its index there.
    tree: BlobId,
    idx: u32,
    kind: Kind,
}

fn weight(h: &History) -> usize {
    let names: usize = h.children.iter().map(|n| n.len() + 48).sum();
    let versions: usize = h.versions.iter().map(|v| v.name.len() + 128).sum();
    names + versions + 64
}

/// `NAME.EXT` → `.EXT` (none for names without a dot or starting with their only one).
fn extension(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|b| *b == b'.') {
        Some(i) if i > 0 && i + 1 < name.len() => &name[i..],
        _ => b"",
    }
}

/// Whether `b` is another version than `a` (what `vaultfs diff` calls a change).
fn differs(a: &Node, b: &Node) -> bool {
    a.kind != b.kind || diff::content_differs(a, b) || diff::metadata_differs(a, b)
}

/// `path` + `/` + `name` (no leading slash).
fn child_path(path: &[u8], name: &[u8]) -> Arc<[u8]> {
    let mut p = path.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p.into()
}

/// Where PATH is in one point.
enum Found {
    Dir(BlobId),
    Other { tree: BlobId, idx: u32 },
    Absent,
}

impl Points {
    /// Inode of `versions/ITEM/PATH` (`path` without a leading slash; empty for the item).
    pub(super) fn versions_ino(item: &str, path: &[u8]) -> u64 {
        inodes::derive(&[b"versions", item.as_bytes(), path])
    }

    fn history(&self, ino: u64, item: &str, path: &[u8]) -> ViewResult<Arc<History>> {
        let generation = self.catalog_generation.load(Ordering::Relaxed);
        self.histories
            .get_or_load(&(generation, ino), weight, || self.build(item, path))
    }

    /// The live points of `item`, oldest first, read once per catalog generation.
    fn item_points(&self, item: &str) -> ViewResult<Arc<Vec<PointRecord>>> {
        let generation = self.catalog_generation.load(Ordering::Relaxed);
        if let Some((g, i, pts)) = &*self.history_points.lock()
            && *g == generation
            && &**i == item
        {
            return Ok(pts.clone());
        }
        let pts = Arc::new(self.vault.points(Some(item), false)?);
        *self.history_points.lock() = Some((generation, item.into(), pts.clone()));
        Ok(pts)
    }

    fn build(&self, item: &str, path: &[u8]) -> ViewResult<History> {
        let comps: Vec<&[u8]> = path
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        let mut h = History {
            children: BTreeSet::new(),
            versions: Vec::new(),
        };
        let mut last: Option<Node> = None;
        let mut listed: Option<BlobId> = None;
        // The directories on PATH in the previous point: where a point has the same one, the
        // rest of PATH is the same too.
        let mut prev: Vec<BlobId> = Vec::new();
        'points: for rec in self.item_points(item)?.iter() {
            let Some(mut dir) = rec.root.subtree else {
                continue;
            };
            let mut chain = Vec::with_capacity(comps.len() + 1);
            let mut found = Found::Dir(dir);
            for (i, comp) in comps.iter().enumerate() {
                if prev.get(i) == Some(&dir) {
                    continue 'points;
                }
                chain.push(dir);
                let tree = self.tree(&dir)?;
                found = match tree.nodes.binary_search_by(|n| n.name.as_slice().cmp(comp)) {
                    Err(_) => Found::Absent,
                    Ok(idx) => match &tree.nodes[idx] {
                        n if n.kind == NodeKind::Dir => match n.subtree {
                            Some(sub) => Found::Dir(sub),
                            None => Found::Absent,
                        },
                        _ if i + 1 < comps.len() => Found::Absent,
                        _ => Found::Other {
                            tree: dir,
                            idx: idx as u32,
                        },
                    },
                };
                match found {
                    Found::Dir(sub) => dir = sub,
                    _ => break,
                }
            }
            if let Found::Dir(d) = found {
                if prev.get(comps.len()) == Some(&d) {
                    continue;
                }
                chain.push(d);
            }
            prev = chain;
            match found {
                Found::Dir(d) if listed != Some(d) => {
                    listed = Some(d);
                    for n in &self.tree(&d)?.nodes {
                        if !h.children.contains(&n.name) {
                            h.children.insert(n.name.clone());
                        }
                    }
                }
                Found::Other { tree, idx } => {
                    let t = self.tree(&tree)?;
                    let node = &t.nodes[idx as usize];
                    if last.as_ref().is_none_or(|l| differs(l, node)) {
                        let mut name = rec.name.clone().into_bytes();
                        name.extend_from_slice(extension(&node.name));
                        h.versions.push(Version {
                            name,
                            point: Self::point_ctx(rec.clone()),
                            tree,
                            idx,
                            kind: node.kind.into(),
                        });
                        last = Some(node.clone());
                    }
                }
                _ => {}
            }
        }
        Ok(h)
    }

    /// The listing of `versions/ITEM/PATH` (after "." and ".." from the caller).
    pub(super) fn versions_list(
        &self,
        ino: u64,
        item: &str,
        path: &[u8],
        list: &mut Vec<DirEntry>,
    ) -> ViewResult<()> {
        let h = self.history(ino, item, path)?;
        for name in &h.children {
            list.push(DirEntry {
                ino: Self::versions_ino(item, &child_path(path, name)),
                kind: Kind::Dir,
                name: name.clone(),
            });
        }
        for v in &h.versions {
            list.push(DirEntry {
                ino: inodes::derive(&[b"version", &ino.to_le_bytes(), &v.name]),
                kind: v.kind,
                name: v.name.clone(),
            });
        }
        Ok(())
    }

    /// `name` in `versions/ITEM/PATH` (inode `ino`).
    pub(super) fn versions_find(
        &self,
        ino: u64,
        item: &Arc<str>,
        path: &[u8],
        name: &[u8],
    ) -> ViewResult<(u64, Entry)> {
        let h = self.history(ino, item, path)?;
        if let Some(v) = h.versions.iter().find(|v| v.name == name) {
            let entry = Entry::Node {
                point: v.point.clone(),
                tree: v.tree,
                idx: v.idx,
                parent: ino,
            };
            return Ok((
                inodes::derive(&[b"version", &ino.to_le_bytes(), name]),
                entry,
            ));
        }
        if h.children.contains(name) {
            let path = child_path(path, name);
            let ino = Self::versions_ino(item, &path);
            return Ok((
                ino,
                Entry::Versions {
                    item: item.clone(),
                    path,
                },
            ));
        }
        Err(ViewError::NotFound)
    }

    /// The parent of `versions/ITEM/PATH`.
    pub(super) fn versions_parent(item: &str, path: &[u8]) -> u64 {
        match path.iter().rposition(|b| *b == b'/') {
            Some(i) => Self::versions_ino(item, &path[..i]),
            None if path.is_empty() => VERSIONS,
            None => Self::versions_ino(item, b""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_keeps_the_files_extension() {
        assert_eq!(extension(b"report.pdf"), b".pdf");
        assert_eq!(extension(b"a.tar.gz"), b".gz");
        assert_eq!(extension(b".bashrc"), b"");
        assert_eq!(extension(b"Makefile"), b"");
        assert_eq!(extension(b"odd."), b"");
    }

    #[test]
    fn parents_of_version_directories() {
        assert_eq!(Points::versions_parent("web", b""), VERSIONS);
        assert_eq!(
            Points::versions_parent("web", b"etc"),
            Points::versions_ino("web", b"")
        );
        assert_eq!(
            Points::versions_parent("web", b"etc/nginx"),
            Points::versions_ino("web", b"etc")
        );
    }
}
