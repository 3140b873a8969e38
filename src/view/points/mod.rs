//! The read-only side of the view: the listings above the points (root, `points/`, `.deleted/`,
//! item directories, `latest`) and the recovery points themselves, their attributes, listings,
//! reads and the one change these areas accept (moving a point between `points/ITEM/` and
//! `.deleted/ITEM/`).
//!
//! Trees are loaded on first use and kept in a bounded cache; file data goes through the
//! bounded chunk cache with read-ahead on sequential reads, and small files are pushed into the
//! door's page cache ahead of their readers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use super::cache::WeightedCache;
use super::chunks::{ChunkCache, load_chunk};
use super::error::{ViewError, ViewResult};
use super::ino::{DELETED, INCOMING, POINTS, ROOT};
use super::kernel::Kernel;
use super::pool::Pool;
use super::time::to_time;
use super::types::{Attr, DirEntry, Kind, Stability, StatFs};
use crate::format::{ChunkRef, Node, NodeKind, PointRecord, Tree};
use crate::store::BlobId;
use crate::vault::{Vault, VaultError, tree};
use inodes::{Area, Entry, InodeTable, PointCtx, Push};

pub mod inodes;

/// Chunks fetched ahead of a sequential reader.
const READAHEAD_CHUNKS: usize = 2;
/// Threads fetching ahead.
const PREFETCH_THREADS: usize = 2;
/// Files after an opened one that are fetched ahead (their first chunk, or all of a small one).
const READAHEAD_FILES: usize = 8;
/// Files up to this size are pushed whole into the kernel's page cache (see [`push`]).
const PUSH_MAX_BYTES: u64 = 256 * 1024;
/// How long an open waits for a push of its file by another thread.
const PUSH_WAIT: Duration = Duration::from_secs(5);
/// Subdirectory trees fetched ahead when a directory's tree is first loaded.
const READAHEAD_TREES: usize = 16;
/// Attributes `ls -l` asks for on every file (SELinux context, ACL marker), with the bit that
/// says a loaded tree carried one of that kind. A file in a point without one answers "not
/// supported" until such a tree is seen: ls, cp, rsync, tar and getfacl treat that as "no
/// label/ACL" (as for a file without it), and ls stops asking for the rest of the mount, which
/// saves two FUSE requests per listed file. The two ACL names share a bit: ls gives up on ACLs
/// at the first "not supported" for either.
const LABEL_XATTRS: [(&[u8], u8); 3] = [
    (b"security.selinux", 1),
    (b"system.posix_acl_access", 2),
    (b"system.posix_acl_default", 2),
];

type TreeCache = WeightedCache<BlobId, Tree, ViewError>;

/// See [`Points::listing_context`].
pub struct ListingContext {
    point: Arc<PointCtx>,
    id: BlobId,
    tree: Arc<Tree>,
}

/// An open file inside a point.
struct OpenFile {
    point: Arc<PointCtx>,
    path: String,
    chunks: Vec<ChunkRef>,
    /// Offset of each chunk in the file.
    starts: Vec<u64>,
    size: u64,
    /// Where the previous read ended, to recognise sequential reading.
    next_offset: AtomicU64,
}

/// A node of a point, holding the tree it lives in while in use.
enum NodeRef {
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

pub struct Points {
    vault: Arc<Vault>,
    inodes: Arc<InodeTable>,
    trees: Arc<TreeCache>,
    /// The bits of [`LABEL_XATTRS`] some loaded tree carried.
    labels_seen: Arc<AtomicU8>,
    chunks: Arc<ChunkCache>,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_handle: AtomicU64,
    /// Read-ahead threads.
    prefetcher: Pool,
    mounted_at: SystemTime,
    /// When items or points last changed (ns since the epoch; 0: not since mounting): the
    /// mtime of the listings above the points. The kernel drops a listing it keeps when it sees
    /// its directory's mtime move.
    listings_changed_ns: AtomicI64,
    usage: Mutex<Option<(Instant, u64)>>,
    kernel: Kernel,
}

/// Bytes a decoded tree holds on the heap, allocator overhead included (the cache budget is
/// meant as memory, and small allocations cost more than their length).
fn tree_weight(t: &Tree) -> usize {
    fn alloc(bytes: usize) -> usize {
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
    pub fn new(
        vault: Arc<Vault>,
        trees_bytes: usize,
        chunks: Arc<ChunkCache>,
        kernel: Kernel,
    ) -> ViewResult<Points> {
        let prefetcher = Pool::new(PREFETCH_THREADS, "prefetch")
            .map_err(|e| ViewError::io("start", "read-ahead threads", e))?;
        Ok(Points {
            vault,
            inodes: Arc::new(InodeTable::default()),
            trees: Arc::new(WeightedCache::new(trees_bytes)),
            labels_seen: Arc::new(AtomicU8::new(0)),
            chunks,
            files: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            prefetcher,
            mounted_at: SystemTime::now(),
            listings_changed_ns: AtomicI64::new(0),
            usage: Mutex::new(None),
            kernel,
        })
    }

    fn entry(&self, ino: u64) -> ViewResult<Entry> {
        self.inodes.get(ino).ok_or(ViewError::NotFound)
    }

    fn tree(&self, id: &BlobId) -> ViewResult<Arc<Tree>> {
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
    fn node(&self, entry: &Entry) -> ViewResult<Option<NodeRef>> {
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
    fn dir_tree(&self, entry: &Entry) -> ViewResult<(BlobId, Arc<Tree>)> {
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

    /// Path of an entry inside its point, for log lines.
    fn path_of(&self, entry: &Entry) -> String {
        let mut parts = Vec::new();
        let mut cur = entry.clone();
        while let Entry::Node {
            tree, idx, parent, ..
        } = &cur
        {
            let name = match self.trees.get_or_load(tree, tree_weight, || {
                load_tree(&self.vault, tree, &self.labels_seen)
            }) {
                Ok(t) => t
                    .nodes
                    .get(*idx as usize)
                    .map(|n| String::from_utf8_lossy(&n.name).into_owned()),
                Err(_) => None,
            };
            parts.push(name.unwrap_or_else(|| "?".into()));
            match self.inodes.get(*parent) {
                Some(p) => cur = p,
                None => break,
            }
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    fn log_damage(&self, entry: &Entry, e: &ViewError) {
        if let Some(point) = point_of(entry) {
            log_failed_read(&point.item, &point.name, &self.path_of(entry), e);
        }
    }

    fn dir_attr(&self, ino: u64, mode: u16, nlink: u32) -> Attr {
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

    fn node_attr(&self, ino: u64, entry: &Entry, node: &Node) -> ViewResult<Attr> {
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

    fn attr_of(&self, ino: u64, entry: &Entry) -> ViewResult<Attr> {
        match entry {
            Entry::Root => Ok(self.dir_attr(ino, 0o755, 4)),
            Entry::PointsDir | Entry::DeletedDir | Entry::IncomingDir => {
                Ok(self.dir_attr(ino, 0o755, 2))
            }
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

    fn latest_name(&self, item: &str) -> ViewResult<Option<String>> {
        Ok(self.vault.points(Some(item), false)?.pop().map(|p| p.name))
    }

    fn point_ctx(rec: PointRecord) -> Arc<PointCtx> {
        let ino = inodes::point_dir_ino(&rec.item, &rec.name);
        Arc::new(PointCtx {
            item: rec.item,
            name: rec.name,
            ino,
            root: rec.root,
        })
    }

    /// Find `name` in directory `parent` without registering it.
    fn find(&self, parent: u64, name: &[u8]) -> ViewResult<(u64, Entry)> {
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
                let point = point_of(&parent_entry)
                    .expect("entries in a point know it")
                    .clone();
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
        let (ino, entry) = self.find(parent, name)?;
        let attr = self.attr_of(ino, &entry)?;
        #[cfg(feature = "test-clock")]
        self.inodes.fault_on(name);
        self.inodes.remember(ino, entry);
        Ok(attr)
    }

    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes.forget(ino, n);
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

    /// The listing of a directory, "." and ".." first, or `None` for a directory inside a
    /// point: the door keeps those listings (they never change), so they are listed on the
    /// first read, which may never come. With how long the listing stays true.
    pub fn opendir(&self, ino: u64) -> ViewResult<(Option<Vec<DirEntry>>, Stability)> {
        let entry = self.entry(ino)?;
        let mut list = DirEntry::dots(ino, self.parent_of(ino, &entry));
        let dir = |ino, name: &str| DirEntry {
            ino,
            kind: Kind::Dir,
            name: name.as_bytes().to_vec(),
        };
        match &entry {
            Entry::Root => {
                list.push(dir(POINTS, "points"));
                list.push(dir(INCOMING, "incoming"));
            }
            Entry::PointsDir | Entry::DeletedDir => {
                let area = if matches!(entry, Entry::PointsDir) {
                    Area::Points
                } else {
                    Area::Deleted
                };
                for it in self.vault.items()? {
                    list.push(dir(inodes::item_dir_ino(area, &it.name), &it.name));
                }
            }
            Entry::IncomingDir => {}
            Entry::ItemDir { area, item } => {
                if *area != Area::Incoming {
                    let pts = self.vault.points(Some(item), *area == Area::Deleted)?;
                    if let (Area::Points, Some(newest)) = (area, pts.last()) {
                        list.push(DirEntry {
                            ino: inodes::latest_ino(item, &newest.name),
                            kind: Kind::Symlink,
                            name: b"latest".to_vec(),
                        });
                    }
                    for p in pts {
                        list.push(dir(inodes::point_dir_ino(item, &p.name), &p.name));
                    }
                }
            }
            // The door opens only what it knows to be a directory.
            Entry::PointDir { .. } => return Ok((None, Stability::Catalog)),
            Entry::Node { .. } => return Ok((None, Stability::Immutable)),
            Entry::Latest { .. } => return Err(ViewError::NotDir),
        }
        Ok((Some(list), Stability::Catalog))
    }

    /// The listing of a directory inside a point, "." and ".." first.
    pub fn list(&self, ino: u64) -> ViewResult<Vec<DirEntry>> {
        let entry = self.entry(ino)?;
        let mut list = DirEntry::dots(ino, self.parent_of(ino, &entry));
        let (_, tree) = self.dir_tree(&entry)?;
        let point = point_of(&entry).ok_or(ViewError::NotDir)?;
        for n in &tree.nodes {
            list.push(DirEntry {
                ino: inodes::node_ino(point.ino, ino, n),
                kind: n.kind.into(),
                name: n.name.clone(),
            });
        }
        Ok(list)
    }

    fn parent_of(&self, ino: u64, entry: &Entry) -> u64 {
        match entry {
            Entry::Root | Entry::PointsDir | Entry::DeletedDir | Entry::IncomingDir => ROOT,
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

    /// An item's records changed (a point made, deleted, undeleted or purged, an item made or
    /// removed): returns the directories whose listings are now stale, and moves their mtime.
    pub fn catalog_changed(&self, item: &str) -> [u64; 5] {
        self.listings_changed_ns
            .fetch_max(crate::vault::now_ns(), Ordering::Relaxed);
        [
            POINTS,
            DELETED,
            INCOMING,
            inodes::item_dir_ino(Area::Points, item),
            inodes::item_dir_ino(Area::Deleted, item),
        ]
    }

    pub fn release(&self, fh: u64) {
        self.files.lock().remove(&fh);
    }

    /// Open a file for reading; any write access is refused.
    pub fn open(&self, ino: u64, write: bool) -> ViewResult<u64> {
        let entry = self.entry(ino)?;
        let Entry::Node { point, parent, .. } = &entry else {
            return if write {
                Err(ViewError::ReadOnly)
            } else {
                Err(ViewError::IsDir)
            };
        };
        if write {
            return Err(ViewError::ReadOnly);
        }
        let Some(NodeRef::InTree(tree, idx)) = self.node(&entry)? else {
            return Err(ViewError::Invalid);
        };
        let node = &tree.nodes[idx];
        if node.kind != NodeKind::File {
            return Err(ViewError::Invalid);
        }
        let mut starts = Vec::with_capacity(node.chunks.len());
        let mut pos = 0u64;
        for c in &node.chunks {
            starts.push(pos);
            pos += c.len as u64;
        }
        // Unless read-ahead pushed it already; if someone is pushing it now, wait for that, so
        // no READ of this file is ever in flight during a push (the push would wait on the
        // pages the READ holds, in a thread the READ may need).
        if pushable(node, pos) && self.kernel.get().keeps_pages() {
            if self
                .inodes
                .advance_push(ino, &[Push::No, Push::Queued], Push::Pushing)
            {
                push(
                    self.kernel.get(),
                    &self.chunks,
                    &self.vault,
                    ino,
                    node.size,
                    &node.chunks,
                );
                self.inodes.finish_push(ino);
            } else {
                self.inodes.wait_push(ino, PUSH_WAIT);
            }
        }
        self.fetch_next_files(point, *parent, &tree.nodes[idx + 1..]);
        let file = OpenFile {
            point: point.clone(),
            path: self.path_of(&entry),
            chunks: node.chunks.clone(),
            starts,
            size: pos,
            next_offset: AtomicU64::new(0),
        };
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.files.lock().insert(fh, Arc::new(file));
        Ok(fh)
    }

    pub fn read(&self, fh: u64, offset: u64, size: u32) -> ViewResult<Vec<u8>> {
        let file = self
            .files
            .lock()
            .get(&fh)
            .cloned()
            .ok_or(ViewError::BadHandle)?;
        if offset >= file.size || size == 0 {
            return Ok(Vec::new());
        }
        let end = file.size.min(offset + size as u64);
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut i = file.starts.partition_point(|s| *s <= offset) - 1;
        let mut pos = offset;
        while pos < end {
            let data = load_chunk(&self.chunks, &self.vault, file.chunks[i]).inspect_err(|e| {
                log_failed_read(&file.point.item, &file.point.name, &file.path, e)
            })?;
            let from = (pos - file.starts[i]) as usize;
            let to = ((end - file.starts[i]) as usize).min(data.len());
            out.extend_from_slice(&data[from..to]);
            pos = file.starts[i] + to as u64;
            i += 1;
        }
        if file.next_offset.swap(end, Ordering::Relaxed) == offset {
            self.read_ahead(&file, i);
        }
        Ok(out)
    }

    /// Whoever reads files one after another (tar, cp -r, rsync) reads them in listing order:
    /// fetch the next few files of the directory while this one is read. Small ones the
    /// kernel knows are pushed whole; of the others, the first chunk is loaded into the cache.
    fn fetch_next_files(&self, point: &PointCtx, parent: u64, after: &[Node]) {
        let next = after
            .iter()
            .filter(|n| n.kind == NodeKind::File && !n.chunks.is_empty())
            .take(READAHEAD_FILES);
        for n in next {
            let ino = inodes::node_ino(point.ino, parent, n);
            if pushable(n, n.size)
                && let Some(kernel) = self.kernel.shared().filter(|k| k.keeps_pages())
                && self.inodes.advance_push(ino, &[Push::No], Push::Queued)
            {
                let (cache, vault) = (self.chunks.clone(), self.vault.clone());
                let (inodes, chunks) = (self.inodes.clone(), n.chunks.clone());
                let size = n.size;
                self.prefetcher.spawn(move || {
                    // Unless the file was opened meanwhile: then the opener pushed it.
                    if inodes.advance_push(ino, &[Push::Queued], Push::Pushing) {
                        push(kernel.as_ref(), &cache, &vault, ino, size, &chunks);
                        inodes.finish_push(ino);
                    }
                });
            } else {
                self.prefetch(n.chunks.first().into_iter());
            }
        }
    }

    /// Fetch the chunks after `next` in the background.
    fn read_ahead(&self, file: &OpenFile, next: usize) {
        self.prefetch(file.chunks.iter().skip(next).take(READAHEAD_CHUNKS));
    }

    /// Load chunks into the cache in the background (the read-ahead pool), skipping cached ones.
    fn prefetch<'a>(&self, chunks: impl Iterator<Item = &'a ChunkRef>) {
        for c in chunks {
            if self.chunks.contains(&c.id) {
                continue;
            }
            let (cache, vault, c) = (self.chunks.clone(), self.vault.clone(), *c);
            self.prefetcher.spawn(move || {
                let _ = load_chunk(&cache, &vault, c);
            });
        }
    }

    fn xattrs_of(&self, ino: u64) -> ViewResult<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(self
            .node(&self.entry(ino)?)?
            .map(|n| n.xattrs.clone())
            .unwrap_or_default())
    }

    pub fn getxattr(&self, ino: u64, name: &[u8]) -> ViewResult<Vec<u8>> {
        if let Some((_, v)) = self.xattrs_of(ino)?.into_iter().find(|(k, _)| k == name) {
            return Ok(v);
        }
        match LABEL_XATTRS.iter().find(|(l, _)| *l == name) {
            Some((_, bit)) if self.labels_seen.load(Ordering::Relaxed) & bit == 0 => {
                Err(ViewError::XattrUnsupported)
            }
            _ => Err(ViewError::NoXattr),
        }
    }

    /// NUL-terminated names, as listxattr(2) returns them.
    pub fn listxattr(&self, ino: u64) -> ViewResult<Vec<u8>> {
        let mut out = Vec::new();
        for (k, _) in self.xattrs_of(ino)? {
            out.extend_from_slice(&k);
            out.push(0);
        }
        Ok(out)
    }

    /// The one change allowed outside `incoming/`: moving a point between `points/ITEM/` and
    /// `.deleted/ITEM/` under the same name soft-deletes or undeletes it.
    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        newparent: u64,
        newname: &[u8],
    ) -> ViewResult<()> {
        let (from, to) = (self.entry(parent)?, self.entry(newparent)?);
        let (Entry::ItemDir { area: a, item: i }, Entry::ItemDir { area: b, item: j }) =
            (&from, &to)
        else {
            return Err(ViewError::ReadOnly);
        };
        if i != j || name != newname || a == b || *a == Area::Incoming || *b == Area::Incoming {
            return Err(ViewError::ReadOnly);
        }
        let point = std::str::from_utf8(name).map_err(|_| ViewError::NotFound)?;
        let (_, entry) = self.find(parent, name)?;
        if !matches!(entry, Entry::PointDir { .. }) {
            return Err(ViewError::ReadOnly);
        }
        self.vault.set_deleted(i, point, *b == Area::Deleted)?;
        tracing::info!(
            "{} a point created {point} through the mount",
            if *b == Area::Deleted {
                "soft-deleted"
            } else {
                "undeleted"
            }
        );
        Ok(())
    }

    /// Used = the vault's packs; free = the disk's.
    pub fn statfs(&self) -> ViewResult<StatFs> {
        let dir = self.vault.dir();
        let st = super::space::statvfs(dir).map_err(|e| ViewError::io("statfs", dir, e))?;
        let bsize = st.f_frsize.max(512);
        let used = self.vault_bytes() / bsize;
        let free = st.f_bavail;
        Ok(StatFs {
            blocks: used + free,
            free,
            block_size: bsize as u32,
        })
    }

    /// Bytes in the vault's packs, recomputed at most every 10 s.
    fn vault_bytes(&self) -> u64 {
        let mut usage = self.usage.lock();
        if let Some((at, bytes)) = *usage
            && at.elapsed() < Duration::from_secs(10)
        {
            return bytes;
        }
        let bytes = super::space::dir_size(&self.vault.dir().join(crate::store::PACKS_DIR));
        *usage = Some((Instant::now(), bytes));
        bytes
    }
}

/// The log line of a read that failed: damaged data is an EIO the operator must act on.
fn log_failed_read(item: &str, point: &str, path: &str, e: &ViewError) {
    match e {
        ViewError::Corrupt(why) => tracing::error!("EIO: {item}/{point}:{path}: {why}"),
        e => tracing::warn!("{item}/{point}:{path}: {e}"),
    }
}

/// A file whose content is pushed: non-empty, small, and not hard-linked (links share one
/// inode, whose size the kernel took from whichever link it met first).
fn pushable(node: &Node, size: u64) -> bool {
    size > 0 && size <= PUSH_MAX_BYTES && node.link_group == 0
}

/// Push a small file's content into the kernel's page cache (FUSE_NOTIFY_STORE), so that
/// reading it costs no READ request, and no GETATTR after it either: the kernel marks a file's
/// atime stale after every READ it sends, and `tar` stats each file it has read. Only
/// authenticated data whose length is the file's size is pushed (a push past the size would
/// grow the file in the kernel's eyes); a damaged file is left to `read`, which answers EIO.
fn push(
    kernel: &dyn super::kernel::KernelCache,
    cache: &ChunkCache,
    vault: &Vault,
    ino: u64,
    size: u64,
    chunks: &[ChunkRef],
) {
    let mut data = Vec::with_capacity(chunks.iter().map(|c| c.len as usize).sum());
    for c in chunks {
        match load_chunk(cache, vault, *c) {
            Ok(d) => data.extend_from_slice(&d),
            Err(_) => return,
        }
    }
    if data.len() as u64 == size {
        kernel.store(ino, &data);
    }
}

fn point_of(entry: &Entry) -> Option<&Arc<PointCtx>> {
    match entry {
        Entry::PointDir { point } | Entry::Node { point, .. } => Some(point),
        _ => None,
    }
}

/// Load and decode a tree, noting which of [`LABEL_XATTRS`] its nodes carry.
fn load_tree(vault: &Vault, id: &BlobId, seen: &AtomicU8) -> ViewResult<Tree> {
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
