//! Figures of a set of points (`vaultfs stats`): what restoring them would write (logical
//! size), what they reference once (unique chunks), and what that costs in the packs (stored
//! size), hence the dedup and compression ratios. Each distinct tree is read once, its figures
//! remembered by tree id, so the points of an item, which share most trees, cost little more
//! than one of them.

use std::collections::{HashMap, HashSet};

use crate::format::{NodeKind, PointRecord};
use crate::store::{BlobId, Store};

use super::Result;
use super::tree;

/// The figures of some points.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub points: u64,
    /// Regular files, summed over the points (a file in two points counts twice; each hard
    /// link counts).
    pub files: u64,
    pub dirs: u64,
    /// Bytes of regular files, summed over the points: what restoring all of them writes.
    pub logical_bytes: u64,
    /// Distinct data chunks referenced, and their plaintext bytes.
    pub chunks: u64,
    pub unique_bytes: u64,
    /// Sealed (compressed, encrypted) bytes of those chunks in the packs.
    pub stored_data_bytes: u64,
    /// Distinct trees referenced, and their sealed bytes in the packs.
    pub trees: u64,
    pub stored_tree_bytes: u64,
}

impl Stats {
    /// Logical bytes per unique byte (1.0 with nothing stored).
    pub fn dedup_ratio(&self) -> f64 {
        ratio(self.logical_bytes, self.unique_bytes)
    }

    /// Unique plaintext bytes per stored byte.
    pub fn compression_ratio(&self) -> f64 {
        ratio(self.unique_bytes, self.stored_data_bytes)
    }

    pub fn stored_bytes(&self) -> u64 {
        self.stored_data_bytes + self.stored_tree_bytes
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// Per-tree totals: (files, dirs, bytes) below it.
type Totals = (u64, u64, u64);

/// Figures of `points`.
pub fn stats(store: &Store, points: &[PointRecord]) -> Result<Stats> {
    stats_each(store, points, |_, _| {})
}

/// Figures of `points`, and `after(point, figures so far)` after each point: the running
/// totals of the points up to it (the report's storage growth).
pub fn stats_each(
    store: &Store,
    points: &[PointRecord],
    mut after: impl FnMut(&PointRecord, &Stats),
) -> Result<Stats> {
    let mut w = Walker {
        store,
        seen_trees: HashMap::new(),
        seen_chunks: HashSet::new(),
        out: Stats::default(),
    };
    for p in points {
        w.out.points += 1;
        if let Some(id) = p.root.subtree {
            let (files, dirs, bytes) = w.tree(id)?;
            w.out.files += files;
            w.out.dirs += dirs;
            w.out.logical_bytes += bytes;
        }
        after(p, &w.out);
    }
    Ok(w.out)
}

struct Walker<'a> {
    store: &'a Store,
    seen_trees: HashMap<BlobId, Totals>,
    seen_chunks: HashSet<BlobId>,
    out: Stats,
}

impl Walker<'_> {
    fn stored_len(&self, id: &BlobId) -> Result<u64> {
        Ok(self.store.index().get(id)?.map_or(0, |l| u64::from(l.len)))
    }

    fn tree(&mut self, id: BlobId) -> Result<Totals> {
        if let Some(t) = self.seen_trees.get(&id) {
            return Ok(*t);
        }
        self.out.trees += 1;
        self.out.stored_tree_bytes += self.stored_len(&id)?;
        let mut totals = (0, 0, 0);
        for node in tree::load(self.store, &id)?.nodes {
            match node.kind {
                NodeKind::File => {
                    totals.0 += 1;
                    totals.2 += node.size;
                    for c in &node.chunks {
                        if self.seen_chunks.insert(c.id) {
                            self.out.chunks += 1;
                            self.out.unique_bytes += u64::from(c.len);
                            self.out.stored_data_bytes += self.stored_len(&c.id)?;
                        }
                    }
                }
                NodeKind::Dir => {
                    totals.1 += 1;
                    if let Some(sub) = node.subtree {
                        let (f, d, b) = self.tree(sub)?;
                        totals = (totals.0 + f, totals.1 + d, totals.2 + b);
                    }
                }
                _ => {}
            }
        }
        self.seen_trees.insert(id, totals);
        Ok(totals)
    }
}
