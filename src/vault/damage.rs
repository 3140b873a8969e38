//! Which paths of a point have lost data: the one walk `check` and `repair` share, over
//! whatever says where blobs can be read ([`Blobs`]).

use std::collections::HashSet;

use crate::format::{Node, NodeKind, Tree};
use crate::store::BlobId;

/// Where a walk reads trees and learns whether data can be read.
pub trait Blobs {
    /// The tree `id`, or why it cannot be read.
    fn tree(&self, id: &BlobId) -> Result<Tree, String>;
    /// Why data blob `id` cannot be read, if it cannot.
    fn data_problem(&self, id: &BlobId) -> Option<String>;
}

/// One path whose data is lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// From the point's root, `/` first (bytes: names need not be UTF-8).
    pub path: Vec<u8>,
    /// A directory whose listing is lost (everything under it is unknown).
    pub dir: bool,
    pub why: String,
}

impl Loss {
    /// `LABEL:PATH: what is damaged: why`, the form `check` and `restore` print.
    pub fn line(&self, label: &str) -> String {
        let what = if self.dir {
            "directory listing is damaged"
        } else {
            "file data is damaged"
        };
        format!(
            "{label}:{}: {what}: {}",
            String::from_utf8_lossy(&self.path),
            self.why
        )
    }
}

/// A walk over points; `intact` remembers trees whose whole subtree was found intact, so points
/// sharing them are not walked twice.
#[derive(Default)]
pub struct Walk {
    intact: HashSet<BlobId>,
    pub trees: u64,
}

impl Walk {
    /// Every lost path under `root` (a point's or incoming tree's root node).
    pub fn losses(&mut self, blobs: &dyn Blobs, root: &Node) -> Vec<Loss> {
        let mut out = Vec::new();
        self.node(blobs, root, b"", &mut out);
        out
    }

    /// Returns true if everything under `node` is intact.
    fn node(&mut self, blobs: &dyn Blobs, node: &Node, path: &[u8], out: &mut Vec<Loss>) -> bool {
        let shown = || -> Vec<u8> {
            if path.is_empty() {
                b"/".to_vec()
            } else {
                path.to_vec()
            }
        };
        match node.kind {
            NodeKind::Dir => {
                let Some(id) = node.subtree else {
                    out.push(Loss {
                        path: shown(),
                        dir: true,
                        why: "directory without a tree".into(),
                    });
                    return false;
                };
                if self.intact.contains(&id) {
                    return true;
                }
                let listing = match blobs.tree(&id) {
                    Ok(t) => t,
                    Err(why) => {
                        out.push(Loss {
                            path: shown(),
                            dir: true,
                            why,
                        });
                        return false;
                    }
                };
                self.trees += 1;
                let mut ok = true;
                for child in &listing.nodes {
                    let mut p = path.to_vec();
                    p.push(b'/');
                    p.extend_from_slice(&child.name);
                    ok &= self.node(blobs, child, &p, out);
                }
                if ok {
                    self.intact.insert(id);
                }
                ok
            }
            NodeKind::File => match node.chunks.iter().find_map(|c| blobs.data_problem(&c.id)) {
                Some(why) => {
                    out.push(Loss {
                        path: shown(),
                        dir: false,
                        why,
                    });
                    false
                }
                None => true,
            },
            _ => true,
        }
    }
}
