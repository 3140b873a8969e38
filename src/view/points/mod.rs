//! The mounted tree: what each inode is, its attributes, listings, reads and the one change the
//! read-only areas accept (moving a point between `points/ITEM/` and `.deleted/ITEM/`).
//!
//! Every method does its work and returns `FsResult`; the FUSE adapter (`fuse.rs`) only
//! replies. Trees are loaded on first use and kept in a bounded cache; file data goes through
//! a bounded chunk cache with read-ahead on sequential reads.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};

use crate::fuse::errno::{FsError, FsResult};
use crate::view::cache::WeightedCache;
use crate::view::incoming::{self, Incoming};
use crate::view::pool::Pool;
use inodes::{Area, Entry, InodeTable, PointCtx, Push};

pub mod inodes;
use crate::format::{ChunkRef, Node, NodeKind, PointRecord, Tree};
use crate::store::{BlobId, BlobKind};
use crate::vault::{Vault, VaultError, tree};

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
/// Trees get 1/TREE_CACHE_SHARE of the cache budget; the rest holds chunks.
const TREE_CACHE_SHARE: usize = 2;
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

/// One entry of a directory listing.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub ino: u64,
    pub kind: FileType,
    pub name: Vec<u8>,
}

/// See [`VaultFs::listing_context`].
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

enum Handle {
    Dir(Arc<Vec<DirEntry>>),
    /// A directory inside a point, listed on its first readdir: the kernel keeps such
    /// listings (FOPEN_CACHE_DIR), and then opens the directory without ever reading it.
    PointDir(Arc<LazyListing>),
    File(Arc<OpenFile>),
}

struct LazyListing {
    ino: u64,
    entry: Entry,
    list: Mutex<Option<Arc<Vec<DirEntry>>>>,
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

pub struct VaultFs {
    vault: Arc<Vault>,
    incoming: Arc<Incoming>,
    inodes: Arc<InodeTable>,
    trees: Arc<WeightedCache<BlobId, Tree>>,
    /// The bits of [`LABEL_XATTRS`] some loaded tree carried.
    labels_seen: Arc<AtomicU8>,
    chunks: Arc<WeightedCache<BlobId, Vec<u8>>>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_handle: AtomicU64,
    /// Read-ahead threads.
    prefetcher: Pool,
    mounted_at: SystemTime,
    /// When items or points last changed (ns since the epoch; 0: not since mounting): the
    /// mtime of the listings above the points. The kernel drops a listing it keeps when it sees
    /// its directory's mtime move.
    listings_changed_ns: std::sync::atomic::AtomicI64,
    usage: Mutex<Option<(Instant, u64)>>,
    /// Set once the session exists; pushes file content to the kernel.
    notifier: std::sync::OnceLock<fuser::Notifier>,
    /// Listings being read without a handle (see [`VaultFs::listing`]), by directory.
    listings: Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>,
}

/// Handle-less listings kept at most, and entries in them: a reader that stops early leaves
/// its listing behind.
const LISTINGS_MAX: usize = 256;
const LISTED_ENTRIES_MAX: usize = 256 * 1024;

pub(crate) fn to_time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

pub(crate) fn file_type(kind: NodeKind) -> FileType {
    match kind {
        NodeKind::File => FileType::RegularFile,
        NodeKind::Dir => FileType::Directory,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::CharDevice => FileType::CharDevice,
        NodeKind::BlockDevice => FileType::BlockDevice,
        NodeKind::Socket => FileType::Socket,
    }
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

impl VaultFs {
    pub fn new(
        vault: Arc<Vault>,
        cache_bytes: usize,
        staging_base: &std::path::Path,
    ) -> Result<VaultFs, VaultError> {
        let chunks = Arc::new(WeightedCache::new(
            cache_bytes - cache_bytes / TREE_CACHE_SHARE,
        ));
        let incoming = Incoming::new(vault.clone(), chunks.clone(), staging_base)?;
        let prefetcher = Pool::new(PREFETCH_THREADS, "prefetch")
            .map_err(|e| VaultError::Failed(format!("cannot start read-ahead threads: {e}")))?;
        Ok(VaultFs {
            vault,
            incoming,
            inodes: Arc::new(InodeTable::default()),
            trees: Arc::new(WeightedCache::new(cache_bytes / TREE_CACHE_SHARE)),
            labels_seen: Arc::new(AtomicU8::new(0)),
            chunks,
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            prefetcher,
            mounted_at: SystemTime::now(),
            listings_changed_ns: std::sync::atomic::AtomicI64::new(0),
            usage: Mutex::new(None),
            notifier: std::sync::OnceLock::new(),
            listings: Mutex::new(HashMap::new()),
        })
    }

    pub fn set_notifier(&self, n: fuser::Notifier) {
        let _ = self.notifier.set(n);
    }

    /// True for inodes inside a point (immutable), false for the listings above them.
    pub fn is_point_content(&self, ino: u64) -> Option<bool> {
        self.inodes
            .get(ino)
            .map(|e| matches!(e, Entry::Node { .. }))
    }

    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    /// The writable `incoming/` trees, for inodes where [`incoming::owns`] holds.
    pub fn incoming(&self) -> &Incoming {
        &self.incoming
    }

    fn entry(&self, ino: u64) -> FsResult<Entry> {
        self.inodes.get(ino).ok_or(FsError::NotFound)
    }

    fn tree(&self, id: &BlobId) -> FsResult<Arc<Tree>> {
        let cached = self.trees.contains(id);
        let tree = self
            .trees
            .get_or_load(id, tree_weight, || {
                load_tree(&self.vault, id, &self.labels_seen)
            })
            .map_err(FsError::Damaged)?;
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
    fn node(&self, entry: &Entry) -> FsResult<Option<NodeRef>> {
        match entry {
            Entry::Node { tree, idx, .. } => {
                let t = self.tree(tree).inspect_err(|e| self.log_damage(entry, e))?;
                if *idx as usize >= t.nodes.len() {
                    return Err(FsError::Damaged(format!("tree {tree} has no entry {idx}")));
                }
                Ok(Some(NodeRef::InTree(t, *idx as usize)))
            }
            Entry::PointDir { point } => Ok(Some(NodeRef::Root(point.clone()))),
            _ => Ok(None),
        }
    }

    /// The tree listing a directory entry (a point root or a directory inside a point), and
    /// its id.
    fn dir_tree(&self, entry: &Entry) -> FsResult<(BlobId, Arc<Tree>)> {
        let node = self.node(entry)?.ok_or(FsError::NotDir)?;
        if node.kind != NodeKind::Dir {
            return Err(FsError::NotDir);
        }
        let id = node
            .subtree
            .ok_or_else(|| FsError::Damaged("directory without a tree".into()))?;
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

    fn log_damage(&self, entry: &Entry, e: &FsError) {
        if let (FsError::Damaged(why), Some(point)) = (e, point_of(entry)) {
            tracing::error!(
                "EIO: {}/{}:{}: {why}",
                point.item,
                point.name,
                self.path_of(entry)
            );
        }
    }

    fn dir_attr(&self, ino: u64, mode: u16, nlink: u32) -> FileAttr {
        let changed = self.listings_changed_ns.load(Ordering::Relaxed);
        let mtime = if changed > 0 {
            to_time(changed).max(self.mounted_at)
        } else {
            self.mounted_at
        };
        FileAttr {
            ino: INodeNo(ino),
            size: 4096,
            blocks: 8,
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: self.mounted_at,
            kind: FileType::Directory,
            perm: mode,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn node_attr(&self, ino: u64, entry: &Entry, node: &Node) -> FsResult<FileAttr> {
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
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: t,
            mtime: t,
            ctime: to_time(node.ctime_ns.max(node.mtime_ns)),
            crtime: t,
            kind: file_type(node.kind),
            perm: (node.mode & 0o7777) as u16,
            nlink,
            uid: node.uid,
            gid: node.gid,
            rdev: node.rdev as u32,
            blksize: 4096,
            flags: 0,
        })
    }

    /// Attributes of a known inode.
    pub fn getattr(&self, ino: u64) -> FsResult<FileAttr> {
        if ino != inodes::INCOMING && incoming::owns(ino) {
            return self.incoming.getattr(ino);
        }
        let entry = self.entry(ino)?;
        self.attr_of(ino, &entry)
    }

    fn attr_of(&self, ino: u64, entry: &Entry) -> FsResult<FileAttr> {
        match entry {
            Entry::Root => Ok(self.dir_attr(ino, 0o755, 4)),
            Entry::PointsDir | Entry::DeletedDir | Entry::IncomingDir => {
                Ok(self.dir_attr(ino, 0o755, 2))
            }
            Entry::ItemDir { .. } => Ok(self.dir_attr(ino, 0o755, 2)),
            Entry::Latest { item } => {
                let target = self.latest_name(item)?.ok_or(FsError::NotFound)?;
                let mut a = self.dir_attr(ino, 0o777, 1);
                a.kind = FileType::Symlink;
                a.size = target.len() as u64;
                a.blocks = 0;
                Ok(a)
            }
            Entry::PointDir { point } => self.node_attr(ino, entry, &point.root),
            Entry::Node { .. } => {
                let node = self.node(entry)?.ok_or(FsError::NotFound)?;
                self.node_attr(ino, entry, &node)
            }
        }
    }

    fn latest_name(&self, item: &str) -> FsResult<Option<String>> {
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
    fn find(&self, parent: u64, name: &[u8]) -> FsResult<(u64, Entry)> {
        let parent_entry = self.entry(parent)?;
        let name_str = std::str::from_utf8(name).map_err(|_| FsError::NotFound);
        let not_found = |e: VaultError| match e {
            VaultError::UnknownItem(_)
            | VaultError::UnknownPoint { .. }
            | VaultError::BadItemName(_)
            | VaultError::BadPointName(_)
            | VaultError::NoPoints(_) => FsError::NotFound,
            other => FsError::Vault(other),
        };
        match &parent_entry {
            Entry::Root => match name {
                b"points" => Ok((inodes::POINTS, Entry::PointsDir)),
                b"incoming" => Ok((inodes::INCOMING, Entry::IncomingDir)),
                b".deleted" => Ok((inodes::DELETED, Entry::DeletedDir)),
                _ => Err(FsError::NotFound),
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
            Entry::IncomingDir => Err(FsError::NotFound),
            Entry::ItemDir { area, item } => {
                let name = name_str?;
                if *area == Area::Points && name == "latest" {
                    let target = self.latest_name(item)?.ok_or(FsError::NotFound)?;
                    return Ok((
                        inodes::latest_ino(item, &target),
                        Entry::Latest { item: item.clone() },
                    ));
                }
                if *area == Area::Incoming {
                    return Err(FsError::NotFound);
                }
                let rec = self
                    .vault
                    .resolve(&format!("{item}/{name}"))
                    .map_err(not_found)?;
                if rec.deleted_at_ns.is_some() != (*area == Area::Deleted) {
                    return Err(FsError::NotFound);
                }
                let point = Self::point_ctx(rec);
                Ok((point.ino, Entry::PointDir { point }))
            }
            Entry::PointDir { .. } | Entry::Node { .. } => {
                let (tree_id, tree) = self.dir_tree(&parent_entry)?;
                let idx = tree
                    .nodes
                    .binary_search_by(|n| n.name.as_slice().cmp(name))
                    .map_err(|_| FsError::NotFound)?;
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
            Entry::Latest { .. } => Err(FsError::NotDir),
        }
    }

    /// Attributes of `name` in `parent`, without registering it (for readdirplus, which
    /// registers only the entries that fit in the reply).
    pub fn peek(&self, parent: u64, name: &[u8]) -> FsResult<(Option<Entry>, FileAttr)> {
        if incoming::owns(parent) {
            return Ok((None, self.incoming.peek(parent, name)?));
        }
        let (ino, entry) = self.find(parent, name)?;
        let attr = self.attr_of(ino, &entry)?;
        Ok((Some(entry), attr))
    }

    /// What `readdirplus` of a directory inside a point needs to answer its entries without a
    /// name lookup each: the point, the directory's tree and its id. `None` elsewhere.
    pub fn listing_context(&self, dir: u64) -> Option<ListingContext> {
        let entry = self.entry(dir).ok()?;
        let point = point_of(&entry)?.clone();
        let (id, tree) = self.dir_tree(&entry).ok()?;
        Some(ListingContext { point, id, tree })
    }

    /// Like [`VaultFs::peek`] for the entry at `idx` of the tree of `ctx` (listed in directory
    /// `dir` as `ino`).
    pub fn peek_listed(
        &self,
        ctx: &ListingContext,
        dir: u64,
        ino: u64,
        idx: usize,
    ) -> FsResult<(Option<Entry>, FileAttr)> {
        let node = ctx.tree.nodes.get(idx).ok_or(FsError::NotFound)?;
        let entry = Entry::Node {
            point: ctx.point.clone(),
            tree: ctx.id,
            idx: idx as u32,
            parent: dir,
        };
        let attr = self.node_attr(ino, &entry, node)?;
        Ok((Some(entry), attr))
    }

    /// Register one kernel reference to an entry returned by [`VaultFs::peek`].
    pub fn remember(&self, ino: u64, entry: Option<Entry>) {
        match entry {
            Some(e) => self.inodes.remember(ino, e),
            None => self.incoming.remember(ino),
        }
    }

    /// Look up `name` in `parent` and register one kernel reference to it.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> FsResult<FileAttr> {
        if incoming::owns(parent) {
            return self.incoming.lookup(parent, name);
        }
        let (ino, entry) = self.find(parent, name.as_bytes())?;
        let attr = self.attr_of(ino, &entry)?;
        self.inodes.remember(ino, entry);
        Ok(attr)
    }

    pub fn forget(&self, ino: u64, n: u64) {
        if ino & incoming::BIT != 0 {
            return self.incoming.forget(ino, n);
        }
        self.inodes.forget(ino, n);
    }

    pub fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        if incoming::owns(ino) {
            return self.incoming.readlink(ino);
        }
        let entry = self.entry(ino)?;
        if let Entry::Latest { item } = &entry {
            return Ok(self
                .latest_name(item)?
                .ok_or(FsError::NotFound)?
                .into_bytes());
        }
        match self.node(&entry)? {
            Some(n) if n.kind == NodeKind::Symlink => Ok(n.target.clone()),
            _ => Err(FsError::Invalid),
        }
    }

    /// Snapshot a directory's listing into a handle.
    pub fn opendir(&self, ino: u64) -> FsResult<u64> {
        if incoming::owns(ino) {
            let parent = if ino == inodes::INCOMING {
                inodes::ROOT
            } else {
                self.incoming.parent(ino)
            };
            let mut list = dots(ino, parent);
            list.extend(self.incoming.list(ino)?);
            return Ok(self.add_handle(Handle::Dir(Arc::new(list))));
        }
        let entry = self.entry(ino)?;
        let mut list = dots(ino, self.parent_of(ino, &entry));
        let dir = |ino, name: &str| DirEntry {
            ino,
            kind: FileType::Directory,
            name: name.as_bytes().to_vec(),
        };
        match &entry {
            Entry::Root => {
                list.push(dir(inodes::POINTS, "points"));
                list.push(dir(inodes::INCOMING, "incoming"));
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
                            kind: FileType::Symlink,
                            name: b"latest".to_vec(),
                        });
                    }
                    for p in pts {
                        list.push(dir(inodes::point_dir_ino(item, &p.name), &p.name));
                    }
                }
            }
            Entry::PointDir { .. } | Entry::Node { .. } => {
                // The kernel sends OPENDIR only for inodes it knows to be directories.
                return Ok(self.add_handle(Handle::PointDir(Arc::new(LazyListing {
                    ino,
                    entry,
                    list: Mutex::new(None),
                }))));
            }
            Entry::Latest { .. } => return Err(FsError::NotDir),
        }
        Ok(self.add_handle(Handle::Dir(Arc::new(list))))
    }

    /// The listing of a directory inside a point, "." and ".." first.
    fn point_listing(&self, ino: u64, entry: &Entry) -> FsResult<Vec<DirEntry>> {
        let mut list = dots(ino, self.parent_of(ino, entry));
        let (_, tree) = self.dir_tree(entry)?;
        let point = point_of(entry).expect("entries in a point know it");
        for n in &tree.nodes {
            list.push(DirEntry {
                ino: inodes::node_ino(point.ino, ino, n),
                kind: file_type(n.kind),
                name: n.name.clone(),
            });
        }
        Ok(list)
    }

    fn parent_of(&self, ino: u64, entry: &Entry) -> u64 {
        match entry {
            Entry::Root | Entry::PointsDir | Entry::DeletedDir | Entry::IncomingDir => inodes::ROOT,
            Entry::ItemDir {
                area: Area::Points, ..
            } => inodes::POINTS,
            Entry::ItemDir {
                area: Area::Deleted,
                ..
            } => inodes::DELETED,
            Entry::ItemDir {
                area: Area::Incoming,
                ..
            } => inodes::INCOMING,
            Entry::PointDir { point } => inodes::item_dir_ino(Area::Points, &point.item),
            Entry::Node { parent, .. } => *parent,
            Entry::Latest { .. } => ino,
        }
    }

    /// Entries of an open directory from `offset` on.
    pub fn readdir(&self, fh: u64, offset: u64) -> FsResult<Arc<Vec<DirEntry>>> {
        let _ = offset;
        let lazy = match self.handles.lock().expect("handles lock").get(&fh) {
            Some(Handle::Dir(list)) => return Ok(list.clone()),
            Some(Handle::PointDir(lazy)) => lazy.clone(),
            _ => return Err(FsError::BadHandle),
        };
        let mut list = lazy.list.lock().expect("listing lock");
        if list.is_none() {
            *list = Some(Arc::new(self.point_listing(lazy.ino, &lazy.entry)?));
        }
        Ok(list.as_ref().expect("just listed").clone())
    }

    /// The listing of directory `ino` for a readdir without a handle: the kernel opens
    /// directories without asking (FUSE_NO_OPENDIR_SUPPORT) and keeps their listings itself.
    /// Taken when a reader starts (offset 0) and kept until it reaches the end, so that one
    /// pass over a changing directory sees one listing, as it would through a handle.
    pub fn listing(&self, ino: u64, offset: u64) -> FsResult<Arc<Vec<DirEntry>>> {
        if offset > 0
            && let Some(list) = self.listings.lock().expect("listings lock").get(&ino)
        {
            return Ok(list.clone());
        }
        let fh = self.opendir(ino)?;
        let list = self.readdir(fh, 0);
        self.release(fh);
        let list = list?;
        let mut listings = self.listings.lock().expect("listings lock");
        if listings.len() >= LISTINGS_MAX
            || listings.values().map(|l| l.len()).sum::<usize>() >= LISTED_ENTRIES_MAX
        {
            listings.clear();
        }
        listings.insert(ino, list.clone());
        Ok(list)
    }

    /// A reader of a handle-less listing got to its end.
    pub fn listing_done(&self, ino: u64) {
        self.listings.lock().expect("listings lock").remove(&ino);
    }

    /// An item's records changed (a point made, deleted, undeleted or purged, an item made or
    /// removed): the listings of items and of that item's points are stale. The kernel keeps
    /// listings of every directory when it opens them without asking, so it is told to drop
    /// them; entries it looked up keep their short TTL.
    pub fn catalog_changed(&self, item: &str) {
        self.listings_changed_ns
            .fetch_max(crate::vault::now_ns(), Ordering::Relaxed);
        let stale = [
            inodes::POINTS,
            inodes::DELETED,
            inodes::INCOMING,
            inodes::item_dir_ino(Area::Points, item),
            inodes::item_dir_ino(Area::Deleted, item),
        ];
        {
            let mut listings = self.listings.lock().expect("listings lock");
            for ino in stale {
                listings.remove(&ino);
            }
        }
        if let Some(n) = self.notifier.get() {
            for ino in stale {
                // ENOENT: the kernel does not hold that directory; nothing to drop.
                let _ = n.inval_inode(INodeNo(ino), 0, 0);
            }
        }
    }

    fn add_handle(&self, h: Handle) -> u64 {
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.handles.lock().expect("handles lock").insert(fh, h);
        fh
    }

    pub fn release(&self, fh: u64) {
        if incoming::owns_handle(fh) {
            return self.incoming.release(fh);
        }
        self.handles.lock().expect("handles lock").remove(&fh);
    }

    /// Open a file for reading; any write access is refused.
    pub fn open(&self, ino: u64, write: bool, truncate: bool) -> FsResult<u64> {
        if incoming::owns(ino) {
            return self.incoming.open(ino, truncate);
        }
        let entry = self.entry(ino)?;
        let Entry::Node { point, parent, .. } = &entry else {
            return if write {
                Err(FsError::ReadOnly)
            } else {
                Err(FsError::IsDir)
            };
        };
        if write {
            return Err(FsError::ReadOnly);
        }
        let Some(NodeRef::InTree(tree, idx)) = self.node(&entry)? else {
            return Err(FsError::Invalid);
        };
        let node = &tree.nodes[idx];
        if node.kind != NodeKind::File {
            return Err(FsError::Invalid);
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
        if pushable(node, pos) {
            if self
                .inodes
                .advance_push(ino, &[Push::No, Push::Queued], Push::Pushing)
            {
                self.push_now(ino, node);
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
        Ok(self.add_handle(Handle::File(Arc::new(file))))
    }

    pub fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        if incoming::owns_handle(fh) {
            return self.incoming.read(fh, offset, size);
        }
        let file = match self.handles.lock().expect("handles lock").get(&fh) {
            Some(Handle::File(f)) => f.clone(),
            _ => return Err(FsError::BadHandle),
        };
        if offset >= file.size || size == 0 {
            return Ok(Vec::new());
        }
        let end = file.size.min(offset + size as u64);
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut i = file.starts.partition_point(|s| *s <= offset) - 1;
        let mut pos = offset;
        while pos < end {
            let data = load_chunk(&self.chunks, &self.vault, file.chunks[i]).map_err(|why| {
                tracing::error!(
                    "EIO: {}/{}:{}: {why}",
                    file.point.item,
                    file.point.name,
                    file.path
                );
                FsError::Damaged(why)
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

    /// Push a small file's content into the kernel's page cache (FUSE_NOTIFY_STORE), so that
    /// reading it costs no READ request, and no GETATTR after it either: the kernel marks a
    /// file's atime stale after every READ it sends, and `tar` stats each file it has read.
    /// Only authenticated data is pushed; a damaged file is left to `read`, which answers EIO.
    fn push_now(&self, ino: u64, node: &Node) {
        if let Some(n) = self.notifier.get() {
            push(n, &self.chunks, &self.vault, ino, node.size, &node.chunks);
        }
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
            let notifier = self.notifier.get();
            if pushable(n, n.size)
                && let Some(notifier) = notifier
                && self.inodes.advance_push(ino, &[Push::No], Push::Queued)
            {
                let (cache, vault) = (self.chunks.clone(), self.vault.clone());
                let (inodes, notifier, chunks) =
                    (self.inodes.clone(), notifier.clone(), n.chunks.clone());
                let size = n.size;
                self.prefetcher.spawn(move || {
                    // Unless the file was opened meanwhile: then the opener pushed it.
                    if inodes.advance_push(ino, &[Push::Queued], Push::Pushing) {
                        push(&notifier, &cache, &vault, ino, size, &chunks);
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

    fn xattrs_of(&self, ino: u64) -> FsResult<Vec<(Vec<u8>, Vec<u8>)>> {
        if ino == inodes::INCOMING {
            return Ok(Vec::new());
        }
        Ok(self
            .node(&self.entry(ino)?)?
            .map(|n| n.xattrs.clone())
            .unwrap_or_default())
    }

    pub fn getxattr(&self, ino: u64, name: &OsStr) -> FsResult<Vec<u8>> {
        if ino != inodes::INCOMING && incoming::owns(ino) {
            return self.incoming.getxattr(ino, name);
        }
        let name = name.as_bytes();
        if let Some((_, v)) = self.xattrs_of(ino)?.into_iter().find(|(k, _)| k == name) {
            return Ok(v);
        }
        match LABEL_XATTRS.iter().find(|(l, _)| *l == name) {
            Some((_, bit)) if self.labels_seen.load(Ordering::Relaxed) & bit == 0 => {
                Err(FsError::Unsupported)
            }
            _ => Err(FsError::NoXattr),
        }
    }

    /// NUL-terminated names, as listxattr(2) returns them.
    pub fn listxattr(&self, ino: u64) -> FsResult<Vec<u8>> {
        if ino != inodes::INCOMING && incoming::owns(ino) {
            return self.incoming.listxattr(ino);
        }
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
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
    ) -> FsResult<()> {
        let (from, to) = (self.entry(parent)?, self.entry(newparent)?);
        let (Entry::ItemDir { area: a, item: i }, Entry::ItemDir { area: b, item: j }) =
            (&from, &to)
        else {
            return Err(FsError::ReadOnly);
        };
        if i != j || name != newname || a == b || *a == Area::Incoming || *b == Area::Incoming {
            return Err(FsError::ReadOnly);
        }
        let point = name.to_str().ok_or(FsError::NotFound)?;
        let (_, entry) = self.find(parent, name.as_bytes())?;
        if !matches!(entry, Entry::PointDir { .. }) {
            return Err(FsError::ReadOnly);
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

    /// (total blocks, free blocks, block size): used = the vault's packs; free = the disk's.
    pub fn statfs(&self) -> FsResult<(u64, u64, u32)> {
        let dir = self.vault.dir();
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| FsError::Invalid)?;
        // SAFETY: statvfs writes into a zeroed struct we own; the path is NUL-terminated.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
            return Err(FsError::Vault(VaultError::io(
                "statfs",
                dir,
                std::io::Error::last_os_error(),
            )));
        }
        let bsize = st.f_frsize.max(512);
        let used = self.vault_bytes() / bsize;
        let free = st.f_bavail;
        Ok((used + free, free, bsize as u32))
    }

    /// Bytes in the vault's packs, recomputed at most every 10 s.
    fn vault_bytes(&self) -> u64 {
        let mut usage = self.usage.lock().expect("usage lock");
        if let Some((at, bytes)) = *usage
            && at.elapsed() < Duration::from_secs(10)
        {
            return bytes;
        }
        let bytes = dir_size(&self.vault.dir().join(crate::store::PACKS_DIR));
        *usage = Some((Instant::now(), bytes));
        bytes
    }
}

/// The "." and ".." entries every listing starts with.
fn dots(ino: u64, parent: u64) -> Vec<DirEntry> {
    [(ino, &b"."[..]), (parent, &b".."[..])]
        .into_iter()
        .map(|(ino, name)| DirEntry {
            ino,
            kind: FileType::Directory,
            name: name.to_vec(),
        })
        .collect()
}

/// A chunk through the cache, checked against the length its tree gives.
pub(crate) fn load_chunk(
    cache: &WeightedCache<BlobId, Vec<u8>>,
    vault: &Vault,
    c: ChunkRef,
) -> Result<Arc<Vec<u8>>, String> {
    cache.get_or_load(
        &c.id,
        |v| v.capacity(),
        || {
            let data = vault
                .store()
                .get(BlobKind::Data, &c.id)
                .map_err(|e| e.to_string())?;
            if data.len() != c.len as usize {
                return Err(format!(
                    "chunk {} has {} bytes, the tree says {}",
                    c.id,
                    data.len(),
                    c.len
                ));
            }
            Ok(data)
        },
    )
}

/// A file whose content is pushed: non-empty, small, and not hard-linked (links share one
/// inode, whose size the kernel took from whichever link it met first).
fn pushable(node: &Node, size: u64) -> bool {
    size > 0 && size <= PUSH_MAX_BYTES && node.link_group == 0
}

/// Load a file's chunks and store them in the kernel's page cache of inode `ino`, unless one
/// fails to load or they do not add up to the file's size (then `read` reports it: a push past
/// the size would grow the file in the kernel's eyes). The kernel may have forgotten the inode
/// meanwhile: then there is nothing to fill, and the error says so.
fn push(
    notifier: &fuser::Notifier,
    cache: &WeightedCache<BlobId, Vec<u8>>,
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
    if data.len() as u64 != size {
        return;
    }
    if let Err(e) = notifier.store(fuser::INodeNo(ino), 0, &data) {
        tracing::debug!("push of inode {ino:#x}: {e}");
    }
}

fn point_of(entry: &Entry) -> Option<&Arc<PointCtx>> {
    match entry {
        Entry::PointDir { point } | Entry::Node { point, .. } => Some(point),
        _ => None,
    }
}

fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Load and decode a tree, noting which of [`LABEL_XATTRS`] its nodes carry.
fn load_tree(vault: &Vault, id: &BlobId, seen: &AtomicU8) -> Result<Tree, String> {
    let tree = crate::vault::tree::load(vault.store(), id).map_err(|e| e.to_string())?;
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
