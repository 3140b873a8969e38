//! Comparing two points (`vaultfs diff`): what was added, removed or changed, walking both
//! trees together and skipping every subtree the two share (same tree id: same listing, same
//! metadata, same contents below), so a diff of two nearby points loads only what changed.

use std::path::Path;

use crate::format::{Node, NodeKind, PointRecord};
use crate::store::Store;

use super::browse::{self, join, walk};
use super::tree;
use super::{Result, VaultError};

/// One difference. A changed entry has both nodes; an added one only `after`, a removed one
/// only `before`. An entry whose kind changed (a file became a directory) is removed and added.
#[derive(Debug, Clone)]
pub struct Change {
    pub path: Vec<u8>,
    pub before: Option<Node>,
    pub after: Option<Node>,
    /// Contents differ: a file's chunks, a symlink's target, a device's number.
    pub content: bool,
    /// Metadata differ: mode, owner, group, mtime (not of directories), xattrs.
    pub metadata: bool,
}

impl Change {
    pub fn word(&self) -> &'static str {
        match (&self.before, &self.after) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "changed",
        }
    }
}

/// Differences between points `a` and `b` at `sub` (their roots for an empty path), in
/// path order. `sub` may be missing from one of them (then all of it is added or removed), not
/// from both.
pub fn diff(store: &Store, a: &PointRecord, b: &PointRecord, sub: &Path) -> Result<Vec<Change>> {
    let at = |p: &PointRecord| match browse::node_at(store, p, sub) {
        Ok(n) => Ok(Some(n)),
        Err(VaultError::NotInPoint { .. }) => Ok(None),
        Err(e) => Err(e),
    };
    let (l, r) = (at(a)?, at(b)?);
    let path = browse::path_of(sub);
    let mut out = Vec::new();
    match (l, r) {
        (None, None) => {
            return Err(VaultError::NotInPoint {
                path: sub.to_path_buf(),
                item: a.item.clone(),
                point: format!("{} nor in {}", a.name, b.name),
            });
        }
        (Some(l), None) => all_of(store, &l, &path, false, &mut out)?,
        (None, Some(r)) => all_of(store, &r, &path, true, &mut out)?,
        (Some(l), Some(r)) if l.kind == NodeKind::Dir && r.kind == NodeKind::Dir => {
            compare(store, &l, &r, &path, &mut out)?
        }
        (Some(l), Some(r)) => pair(store, &l, &r, path, &mut out)?,
    }
    Ok(out)
}

/// `node` and, for a directory, every entry below it, as added (or removed).
fn all_of(
    store: &Store,
    node: &Node,
    path: &[u8],
    added: bool,
    out: &mut Vec<Change>,
) -> Result<()> {
    let one = |p: &[u8], n: &Node| Change {
        path: p.to_vec(),
        before: (!added).then(|| n.clone()),
        after: added.then(|| n.clone()),
        content: false,
        metadata: false,
    };
    out.push(one(path, node));
    if node.kind == NodeKind::Dir {
        walk(store, node, path, true, &mut |p, n| {
            out.push(one(p, n));
            Ok(())
        })?;
    }
    Ok(())
}

fn compare(store: &Store, a: &Node, b: &Node, path: &[u8], out: &mut Vec<Change>) -> Result<()> {
    if a.subtree == b.subtree {
        return Ok(());
    }
    let load = |n: &Node| -> Result<Vec<Node>> {
        match n.subtree {
            Some(id) => Ok(tree::load(store, &id)?.nodes),
            None => Ok(Vec::new()),
        }
    };
    let (left, right) = (load(a)?, load(b)?);
    let (mut i, mut j) = (0, 0);
    while i < left.len() || j < right.len() {
        let order = match (left.get(i), right.get(j)) {
            (Some(l), Some(r)) => l.name.cmp(&r.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                all_of(store, &left[i], &join(path, &left[i].name), false, out)?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                all_of(store, &right[j], &join(path, &right[j].name), true, out)?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                pair(store, &left[i], &right[j], join(path, &left[i].name), out)?;
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

/// One name present on both sides.
fn pair(store: &Store, l: &Node, r: &Node, p: Vec<u8>, out: &mut Vec<Change>) -> Result<()> {
    if l.kind != r.kind {
        all_of(store, l, &p, false, out)?;
        return all_of(store, r, &p, true, out);
    }
    let content = l.kind != NodeKind::Dir && content_differs(l, r);
    let metadata = metadata_differs(l, r);
    if content || metadata {
        out.push(Change {
            path: p.clone(),
            before: Some(l.clone()),
            after: Some(r.clone()),
            content,
            metadata,
        });
    }
    if l.kind == NodeKind::Dir {
        compare(store, l, r, &p, out)?;
    }
    Ok(())
}

pub fn content_differs(a: &Node, b: &Node) -> bool {
    a.size != b.size
        || a.target != b.target
        || a.rdev != b.rdev
        || a.chunks
            .iter()
            .map(|c| c.id)
            .ne(b.chunks.iter().map(|c| c.id))
}

/// A directory's mtime follows its entries, which are reported themselves: it is left out.
pub fn metadata_differs(a: &Node, b: &Node) -> bool {
    a.mode != b.mode
        || a.uid != b.uid
        || a.gid != b.gid
        || a.xattrs != b.xattrs
        || (a.kind != NodeKind::Dir && a.mtime_ns != b.mtime_ns)
}
