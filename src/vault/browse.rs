//! A point read as paths, for `ls` and `find`: walking a subtree in name order and matching
//! names against a glob. Trees are loaded one directory at a time as the walk reaches them, so
//! nothing holds a whole point; paths are bytes (names need not be UTF-8), `/`-joined, starting
//! with `/` at the point's root, as restic prints them.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

use crate::format::{Node, NodeKind, PointRecord};
use crate::store::{BlobId, Store};

use super::tree;
use super::{Result, VaultError};

/// `parent/name` (the root's path is empty, so its children read `/name`).
pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    p.extend_from_slice(parent);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// Visit the entries below the directory `dir` (whose path is `path`) in name order, each
/// directory before its entries; only the children unless `recursive`.
pub fn walk(
    store: &Store,
    dir: &Node,
    path: &[u8],
    recursive: bool,
    visit: &mut dyn FnMut(&[u8], &Node) -> Result<()>,
) -> Result<()> {
    let Some(id) = dir.subtree.filter(|_| dir.kind == NodeKind::Dir) else {
        return Ok(());
    };
    for node in tree::load(store, &id)?.nodes {
        let p = join(path, &node.name);
        visit(&p, &node)?;
        if recursive && node.kind == NodeKind::Dir {
            walk(store, &node, &p, true, visit)?;
        }
    }
    Ok(())
}

/// The node at `sub` in `point` (its root for an empty path), or `NotInPoint`.
pub fn node_at(store: &Store, point: &PointRecord, sub: &Path) -> Result<Node> {
    let root = point
        .root
        .subtree
        .ok_or(VaultError::Internal("a point without a tree"))?;
    tree::find(store, root, sub)?.ok_or_else(|| VaultError::NotInPoint {
        path: sub.to_path_buf(),
        item: point.item.clone(),
        point: point.name.clone(),
    })
}

/// The path of `sub` as the walk prints it (`""` for the root, else `/a/b`).
pub fn path_of(sub: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for c in sub.components() {
        if let std::path::Component::Normal(n) = c {
            out = join(&out, n.as_bytes());
        }
    }
    out
}

/// `ls`: the entries below `sub` if it is a directory (all of them if `recursive`), else the
/// entry itself.
pub fn list(
    store: &Store,
    point: &PointRecord,
    sub: &Path,
    recursive: bool,
) -> Result<Vec<(Vec<u8>, Node)>> {
    let node = node_at(store, point, sub)?;
    let path = path_of(sub);
    if node.kind != NodeKind::Dir {
        return Ok(vec![(path, node)]);
    }
    let mut out = Vec::new();
    walk(store, &node, &path, recursive, &mut |p, n| {
        out.push((p.to_vec(), n.clone()));
        Ok(())
    })?;
    Ok(out)
}

/// A `find` pattern: a glob matched against an entry's name, or against its whole path from
/// the point's root when the pattern holds a `/` (then `*` stays within one name and `**`
/// crosses directories).
pub struct Pattern {
    glob: GlobMatcher,
    whole_path: bool,
}

impl Pattern {
    pub fn new(pattern: &str, ignore_case: bool) -> Result<Pattern> {
        let whole_path = pattern.contains('/');
        // A whole-path pattern is anchored at the root: `etc/*.conf` means `/etc/*.conf`.
        let text = if whole_path && !pattern.starts_with('/') {
            format!("/{pattern}")
        } else {
            pattern.to_string()
        };
        let glob = GlobBuilder::new(&text)
            .case_insensitive(ignore_case)
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| VaultError::BadPattern {
                pattern: pattern.into(),
                why: e.kind().to_string(),
            })?;
        Ok(Pattern {
            glob: glob.compile_matcher(),
            whole_path,
        })
    }

    /// Whether the entry at `path` (named `name`) matches.
    pub fn matches(&self, path: &[u8], name: &[u8]) -> bool {
        let subject = if self.whole_path { path } else { name };
        // Non-UTF-8 names are matched byte for byte where the glob is ASCII.
        self.glob
            .is_match(Path::new(std::ffi::OsStr::from_bytes(subject)))
    }

    /// Whether a match depends on where a subtree sits (then a subtree without matches at one
    /// path may have some at another).
    fn by_path(&self) -> bool {
        self.whole_path
    }
}

/// Finds matches in many points, remembering subtrees that hold none: points of one item
/// share most of their trees, so a search of many points loads each distinct tree once.
#[derive(Default)]
pub struct Finder {
    /// (subtree, its path when the pattern depends on it) known to hold no match.
    barren: HashSet<(BlobId, Vec<u8>)>,
}

impl Finder {
    /// Entries of `point` matching `pattern`, in walk order.
    pub fn find(
        &mut self,
        store: &Store,
        point: &PointRecord,
        pattern: &Pattern,
    ) -> Result<Vec<(Vec<u8>, Node)>> {
        let mut out = Vec::new();
        self.find_in(store, &point.root, &[], pattern, &mut out)?;
        Ok(out)
    }

    fn find_in(
        &mut self,
        store: &Store,
        dir: &Node,
        path: &[u8],
        pattern: &Pattern,
        out: &mut Vec<(Vec<u8>, Node)>,
    ) -> Result<()> {
        let Some(id) = dir.subtree.filter(|_| dir.kind == NodeKind::Dir) else {
            return Ok(());
        };
        let key = (
            id,
            if pattern.by_path() {
                path.to_vec()
            } else {
                Vec::new()
            },
        );
        if self.barren.contains(&key) {
            return Ok(());
        }
        let before = out.len();
        for node in tree::load(store, &id)?.nodes {
            let p = join(path, &node.name);
            if pattern.matches(&p, &node.name) {
                out.push((p.clone(), node.clone()));
            }
            if node.kind == NodeKind::Dir {
                self.find_in(store, &node, &p, pattern, out)?;
            }
        }
        if out.len() == before {
            self.barren.insert(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_without_a_slash_matches_names_one_with_a_slash_whole_paths() {
        let p = Pattern::new("*.txt", false).unwrap();
        assert!(p.matches(b"/a/b/x.txt", b"x.txt"));
        assert!(!p.matches(b"/a/x.txt/y", b"y"));
        let p = Pattern::new("a/*.txt", false).unwrap();
        assert!(p.matches(b"/a/x.txt", b"x.txt"));
        assert!(!p.matches(b"/a/b/x.txt", b"x.txt"), "* stays in one name");
        let p = Pattern::new("/a/**/x.txt", false).unwrap();
        assert!(p.matches(b"/a/b/c/x.txt", b"x.txt"));
    }

    #[test]
    fn case_is_ignored_only_when_asked() {
        assert!(
            !Pattern::new("*.JPG", false)
                .unwrap()
                .matches(b"/p.jpg", b"p.jpg")
        );
        assert!(
            Pattern::new("*.JPG", true)
                .unwrap()
                .matches(b"/p.jpg", b"p.jpg")
        );
    }

    #[test]
    fn a_bad_pattern_is_an_error_naming_it() {
        let e = Pattern::new("a[", false).err().expect("refused");
        assert!(e.to_string().contains("\"a[\""), "{e}");
    }

    #[test]
    fn paths_join_from_the_root() {
        assert_eq!(join(b"", b"a"), b"/a");
        assert_eq!(path_of(Path::new("./a/b/")), b"/a/b");
        assert_eq!(path_of(Path::new("")), b"");
    }
}
