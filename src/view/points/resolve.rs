//! Names to entries on the read-only side: the fixed directories, items, points and `latest`
//! from the catalog, names inside a point from its trees. Lookups register the entries the
//! door holds; `peek` and `peek_listed` answer readdirplus without a lookup each.

use std::sync::Arc;

use super::Points;
use super::inodes::{self, Area, Entry, PointCtx};
use super::point_of;
use crate::format::{PointRecord, Tree};
use crate::store::BlobId;
use crate::vault::VaultError;
use crate::view::error::{ViewError, ViewResult};
use crate::view::ino::{DELETED, INCOMING, POINTS, ROOT, VERSIONS};
use crate::view::types::Attr;

/// See [`Points::listing_context`].
pub struct ListingContext {
    point: Arc<PointCtx>,
    id: BlobId,
    tree: Arc<Tree>,
}

impl Points {
    pub(super) fn point_ctx(rec: PointRecord) -> Arc<PointCtx> {
        let ino = inodes::point_dir_ino(&rec.item, &rec.name);
        Arc::new(PointCtx {
            item: rec.item,
            name: rec.name,
            ino,
            root: rec.root,
        })
    }

    /// Find `name` in directory `parent` without registering it.
    pub(super) fn find(&self, parent: u64, name: &[u8]) -> ViewResult<(u64, Entry)> {
        let parent_entry = self.entry(parent)?;
        let name_str = std::str::from_utf8(name).map_err(|_| ViewError::NotFound);
        let not_found = |e: VaultError| match e {
            VaultError::UnknownItem(_)
            | VaultError::UnknownPoint { .. }
            | VaultError::BadItemName(_)
            | VaultError::BadPointName(_)
            | VaultError::NoPoints(_) => ViewError::NotFound,
            other => other.into(),
        };
        match &parent_entry {
            Entry::Root => match name {
                b"points" => Ok((POINTS, Entry::PointsDir)),
                b"incoming" => Ok((INCOMING, Entry::IncomingDir)),
                b".deleted" => Ok((DELETED, Entry::DeletedDir)),
                b"versions" => Ok((VERSIONS, Entry::VersionsDir)),
                _ => Err(ViewError::NotFound),
            },
            Entry::PointsDir | Entry::DeletedDir => {
                let item = name_str?;
                self.vault.item(item).map_err(not_found)?;
                let area = if matches!(parent_entry, Entry::PointsDir) {
                    Area::Points
                } else {
                    Area::Deleted
                };
                Ok((
                    inodes::item_dir_ino(area, item),
                    Entry::ItemDir {
                        area,
                        item: item.into(),
                    },
                ))
            }
            Entry::IncomingDir => Err(ViewError::NotFound),
            Entry::VersionsDir => {
                let item = name_str?;
                self.vault.item(item).map_err(not_found)?;
                let ino = Self::versions_ino(item, b"");
                let (item, path) = (item.into(), Vec::new().into());
                Ok((ino, Entry::Versions { item, path }))
            }
            Entry::Versions { item, path } => self.versions_find(parent, item, path, name),
            Entry::ItemDir { area, item } => {
                let name = name_str?;
                if *area == Area::Points && name == "latest" {
                    let target = self.latest_name(item)?.ok_or(ViewError::NotFound)?;
                    return Ok((
                        inodes::latest_ino(item, &target),
                        Entry::Latest { item: item.clone() },
                    ));
                }
                if *area == Area::Incoming {
                    return Err(ViewError::NotFound);
                }
                let rec = self
                    .vault
                    .resolve(&format!("{item}/{name}"))
                    .map_err(not_found)?;
                if rec.deleted_at_ns.is_some() != (*area == Area::Deleted) {
                    return Err(ViewError::NotFound);
                }
                let point = Self::point_ctx(rec);
                Ok((point.ino, Entry::PointDir { point }))
            }
            Entry::PointDir { .. } | Entry::Node { .. } => {
                let (tree_id, tree) = self.dir_tree(&parent_entry)?;
                let idx = tree
                    .nodes
                    .binary_search_by(|n| n.name.as_slice().cmp(name))
                    .map_err(|_| ViewError::NotFound)?;
                let point = point_of(&parent_entry).ok_or(ViewError::NotDir)?.clone();
                let ino = inodes::node_ino(point.ino, parent, &tree.nodes[idx]);
                Ok((
                    ino,
                    Entry::Node {
                        point,
                        tree: tree_id,
                        idx: idx as u32,
                        parent,
                    },
                ))
            }
            Entry::Latest { .. } => Err(ViewError::NotDir),
        }
    }

    /// Attributes of `name` in `parent`, without registering it (for readdirplus, which
    /// registers only the entries that fit in the reply).
    pub fn peek(&self, parent: u64, name: &[u8]) -> ViewResult<(Entry, Attr)> {
        let (ino, entry) = self.find(parent, name)?;
        let attr = self.attr_of(ino, &entry)?;
        Ok((entry, attr))
    }

    /// What `readdirplus` of a directory inside a point needs to answer its entries without a
    /// name lookup each: the point, the directory's tree and its id. `None` elsewhere.
    pub fn listing_context(&self, dir: u64) -> Option<ListingContext> {
        let entry = self.entry(dir).ok()?;
        let point = point_of(&entry)?.clone();
        let (id, tree) = self.dir_tree(&entry).ok()?;
        Some(ListingContext { point, id, tree })
    }

    /// Like [`Points::peek`] for the entry at `idx` of the tree of `ctx` (listed in directory
    /// `dir` as `ino`).
    pub fn peek_listed(
        &self,
        ctx: &ListingContext,
        dir: u64,
        ino: u64,
        idx: usize,
    ) -> ViewResult<(Entry, Attr)> {
        let node = ctx.tree.nodes.get(idx).ok_or(ViewError::NotFound)?;
        let entry = Entry::Node {
            point: ctx.point.clone(),
            tree: ctx.id,
            idx: idx as u32,
            parent: dir,
        };
        let attr = self.node_attr(ino, &entry, node)?;
        Ok((entry, attr))
    }

    /// Register one reference to an entry returned by [`Points::peek`].
    pub fn remember(&self, ino: u64, entry: Entry) {
        self.inodes.remember(ino, entry);
    }

    /// Look up `name` in `parent` and register one reference to it.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> ViewResult<Attr> {
        #[cfg(feature = "test-clock")]
        self.inodes.fault_on(name);
        let (ino, entry) = self.find(parent, name)?;
        let attr = self.attr_of(ino, &entry)?;
        self.inodes.remember(ino, entry);
        Ok(attr)
    }

    pub fn forget(&self, ino: u64, n: u64) {
        if self.inodes.forget(ino, n) {
            self.forget_file(ino);
        }
    }

    pub(super) fn parent_of(&self, ino: u64, entry: &Entry) -> u64 {
        match entry {
            Entry::Root
            | Entry::PointsDir
            | Entry::DeletedDir
            | Entry::IncomingDir
            | Entry::VersionsDir => ROOT,
            Entry::Versions { item, path } => Self::versions_parent(item, path),
            Entry::ItemDir {
                area: Area::Points, ..
            } => POINTS,
            Entry::ItemDir {
                area: Area::Deleted,
                ..
            } => DELETED,
            Entry::ItemDir {
                area: Area::Incoming,
                ..
            } => INCOMING,
            Entry::PointDir { point } => inodes::item_dir_ino(Area::Points, &point.item),
            Entry::Node { parent, .. } => *parent,
            Entry::Latest { .. } => ino,
        }
    }
}
