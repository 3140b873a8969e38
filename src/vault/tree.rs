//! Tree objects: loading and storing directory listings, and finding a path inside a point.

use std::path::{Component, Path};

use crate::format::{self, Node, NodeKind, Tree};
use crate::store::{BlobId, BlobKind, Damaged, Store};

use super::{Result, VaultError};

/// Load and decode the tree blob `id`.
pub fn load(store: &Store, id: &BlobId) -> Result<Tree> {
    let plain = store.get(BlobKind::Tree, id)?;
    format::decode(&plain, "tree")
        .map_err(|e| VaultError::corrupt(Damaged::Content(*id), e.to_string()))
}

/// Store a tree (sorted by name) and return its id; identical listings share one blob.
pub fn save(store: &Store, tree: &Tree) -> Result<BlobId> {
    debug_assert!(tree.nodes.windows(2).all(|w| w[0].name < w[1].name));
    Ok(store.put(BlobKind::Tree, &format::encode(tree))?)
}

/// Find a node by name in a sorted tree.
pub fn lookup<'a>(tree: &'a Tree, name: &[u8]) -> Option<&'a Node> {
    tree.nodes
        .binary_search_by(|n| n.name.as_slice().cmp(name))
        .ok()
        .map(|i| &tree.nodes[i])
}

/// The link count a directory listing `tree` shows: itself, its "." and each subdirectory's
/// "..". Trees record it in their directories' `nlink`, so listing a directory does not load
/// every subdirectory's tree to count (trees written before hold 1: see [`dir_nlink_of`]).
pub fn dir_nlink(tree: &Tree) -> u32 {
    2 + tree
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Dir)
        .count() as u32
}

/// The recorded link count of a directory node, if its tree recorded one.
pub fn dir_nlink_of(node: &Node) -> Option<u32> {
    (node.kind == NodeKind::Dir && node.nlink >= 2).then_some(node.nlink)
}

/// A synthetic directory node standing for a point's root.
pub fn root_node(root: BlobId) -> Node {
    Node {
        name: Vec::new(),
        kind: NodeKind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        mtime_ns: 0,
        size: 0,
        chunks: Vec::new(),
        subtree: Some(root),
        target: Vec::new(),
        xattrs: Vec::new(),
        link_group: 0,
        nlink: 1,
        rdev: 0,
        src_ino: 0,
        ctime_ns: 0,
    }
}

/// Resolve a relative path (e.g. `--path etc/passwd`) from a point's root tree.
/// Returns `None` if some component does not exist.
pub fn find(store: &Store, root: BlobId, sub: &Path) -> Result<Option<Node>> {
    let mut node = root_node(root);
    for comp in sub.components() {
        let name = match comp {
            Component::Normal(n) => n,
            Component::CurDir | Component::RootDir => continue,
            _ => return Err(VaultError::PathEscapes(sub.to_path_buf())),
        };
        let Some(subtree) = node.subtree.filter(|_| node.kind == NodeKind::Dir) else {
            return Ok(None);
        };
        let tree = load(store, &subtree)?;
        match lookup(&tree, std::os::unix::ffi::OsStrExt::as_bytes(name)) {
            Some(n) => node = n.clone(),
            None => return Ok(None),
        }
    }
    Ok(Some(node))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, kind: NodeKind) -> Node {
        let mut n = root_node(BlobId([0; 32]));
        (n.name, n.kind) = (name.as_bytes().to_vec(), kind);
        n
    }

    #[test]
    fn directories_count_themselves_their_dot_and_each_subdirectory() {
        let tree = Tree {
            nodes: vec![
                node("a", NodeKind::Dir),
                node("b", NodeKind::File),
                node("c", NodeKind::Dir),
                node("d", NodeKind::Symlink),
            ],
        };
        assert_eq!(dir_nlink(&tree), 4);
        assert_eq!(dir_nlink(&Tree { nodes: Vec::new() }), 2);
    }

    #[test]
    fn a_link_count_below_two_on_a_directory_means_not_recorded() {
        let mut dir = node("a", NodeKind::Dir);
        assert_eq!(dir_nlink_of(&dir), None, "trees written before record 1");
        dir.nlink = 5;
        assert_eq!(dir_nlink_of(&dir), Some(5));
        let mut file = node("f", NodeKind::File);
        file.nlink = 3;
        assert_eq!(
            dir_nlink_of(&file),
            None,
            "a file's count is its hard links"
        );
    }
}
