//! The vault side of `incoming/ITEM/`: items made by `mkdir`, the saved incoming records, and
//! `snapshot`, which turns an item's incoming tree into a point.
//!
//! The live, writable tree belongs to the mount daemon (`mount::incoming`). It registers itself
//! here ([`LiveIncoming`]), so `Vault::snapshot` works the same from the CLI, through the
//! control socket, or without a mount (then from the newest saved record).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use crate::format::{IncomingRecord, ItemRecord, MetaRecord, NodeKind, PointOrigin, PointRecord};
use crate::store::BlobId;

use super::{Result, Vault, VaultError, names, now_ns};

/// What the mount daemon's live incoming trees offer the vault.
pub trait LiveIncoming: Send + Sync {
    /// Freeze `incoming/ITEM` into a new point from `origin`.
    fn snapshot(&self, item: &str, origin: PointOrigin) -> Result<PointRecord>;
    /// Save every changed incoming tree now (gc marks from the saved records).
    fn save(&self) -> Result<()>;
}

/// Files, directories and bytes under a tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
}

impl Totals {
    pub fn add(&mut self, o: Totals) {
        self.files += o.files;
        self.dirs += o.dirs;
        self.bytes += o.bytes;
    }

    pub fn as_tuple(&self) -> (u64, u64, u64) {
        (self.files, self.dirs, self.bytes)
    }
}

impl Vault {
    /// Register the mount daemon's live incoming trees (once per process).
    pub fn set_live_incoming(&self, live: Weak<dyn LiveIncoming>) {
        let _ = self.live.set(live);
    }

    pub fn live_incoming(&self) -> Option<Arc<dyn LiveIncoming>> {
        self.live.get().and_then(|w| w.upgrade())
    }

    /// Call `f` with an item's name after its item or point records changed (the mount
    /// daemon invalidates the listings the kernel keeps). Once per process.
    pub fn on_catalog_change(&self, f: impl Fn(&str) + Send + Sync + 'static) {
        self.catalog.on_change(f);
    }

    /// Create an empty item (`mkdir MNT/incoming/NEW`).
    pub fn create_item(&self, name: &str) -> Result<ItemRecord> {
        names::check_item(name)?;
        let _commit = self.commit_lock.lock().expect("commit lock");
        if self.catalog.item(self.store.codec(), name)?.is_some() {
            return Err(VaultError::ItemExists(name.into()));
        }
        let failures_before = self.store.failures();
        let rec = ItemRecord {
            name: name.into(),
            created_ns: now_ns(),
            revision: 1,
        };
        self.record(&[MetaRecord::Item(rec.clone())], failures_before)?;
        Ok(rec)
    }

    /// Forget an item that has no points, live or soft-deleted (`rmdir MNT/incoming/ITEM`).
    pub fn remove_item(&self, name: &str) -> Result<()> {
        let _commit = self.commit_lock.lock().expect("commit lock");
        self.item(name)?;
        if !self.catalog.points_of(self.store.codec(), name)?.is_empty() {
            return Err(VaultError::HasPoints(name.into()));
        }
        self.catalog.remove_item(self.store.codec(), name)?;
        self.store.db().flush()?;
        Ok(())
    }

    /// The newest saved state of `incoming/ITEM`, if it was ever written.
    pub fn incoming(&self, item: &str) -> Result<Option<IncomingRecord>> {
        self.catalog.incoming(self.store.codec(), item)
    }

    /// Save incoming records (the daemon: on fsync and every few seconds while changing). Every
    /// blob they refer to must already be `put`; this makes them durable first.
    pub fn save_incoming(&self, recs: Vec<IncomingRecord>, failures_before: u64) -> Result<()> {
        let _commit = self.commit_lock.lock().expect("commit lock");
        let metas: Vec<MetaRecord> = recs
            .into_iter()
            .map(|r| MetaRecord::Incoming(Box::new(r)))
            .collect();
        self.record(&metas, failures_before)
    }

    /// Freeze `incoming/ITEM` into a new point: through the mount daemon when this process
    /// is one, otherwise from the newest saved incoming record.
    pub fn snapshot(&self, item: &str) -> Result<PointRecord> {
        self.snapshot_tagged(item, &[])
    }

    /// [`Vault::snapshot`], the point tagged with `tags`.
    pub fn snapshot_tagged(&self, item: &str, tags: &[String]) -> Result<PointRecord> {
        self.item(item)?;
        let origin = super::origin::incoming_origin(item, tags)?;
        if let Some(live) = self.live_incoming() {
            return live.snapshot(item, origin);
        }
        let rec = self
            .incoming(item)?
            .ok_or_else(|| VaultError::IncomingEmpty(item.into()))?;
        let failures_before = self.store.failures();
        let mut cache = HashMap::new();
        let totals = self.totals(&rec.root.subtree, &mut cache)?;
        self.commit_point_with(
            item,
            now_ns(),
            rec.root.clone(),
            totals.as_tuple(),
            origin,
            None,
            failures_before,
        )
    }

    /// Totals under a directory's tree, memoised by tree id (trees are immutable).
    pub fn totals(
        &self,
        tree: &Option<BlobId>,
        cache: &mut HashMap<BlobId, Totals>,
    ) -> Result<Totals> {
        let Some(id) = tree else {
            return Ok(Totals::default());
        };
        if let Some(t) = cache.get(id) {
            return Ok(*t);
        }
        let t = self.tree(id)?;
        let mut out = Totals {
            dirs: 1,
            ..Totals::default()
        };
        for n in &t.nodes {
            if n.kind == NodeKind::Dir {
                out.add(self.totals(&n.subtree, cache)?);
            } else {
                out.files += 1;
                if n.kind == NodeKind::File {
                    out.bytes += n.size;
                }
            }
        }
        cache.insert(*id, out);
        Ok(out)
    }
}
