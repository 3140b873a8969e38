//! The writable `incoming/ITEM/` trees: a POSIX directory tree per item, held by the daemon,
//! whose file data goes into the vault as it is closed and which `snapshot` freezes into a
//! point.
//!
//! - Inodes are allocated (`1 << 63 | n`), so they never meet the derived numbers of points.
//!   A directory's entries are loaded from its saved tree the first time it is used.
//! - A file being written lives in an anonymous staging file outside the vault; when the last
//!   handle closes (or on fsync or snapshot) it is chunked, sealed and packed by the commit
//!   workers, and keeps only its chunk list. Reads of committed files go through the chunk cache.
//! - A directory keeps the id of its saved tree until something in it changes, so saving (every
//!   few seconds while dirty, on fsync, on snapshot) writes only the changed directories.
//! - A staging file stays referenced after its commit until the chunks are known durable (the
//!   next save checks the index), so a failed pack write never loses written data silently.
//!
//! Locks: `freeze` (read by every change, write by save and snapshot, so they see a still tree),
//! then `state` (all metadata). File data is read and written outside `state`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

use fuser::{FileAttr, FileType, INodeNo};

use super::cache::WeightedCache;
use super::errno::{FsError, FsResult};
use super::inodes;
use super::staging::{Reader, Staged, Staging};
use super::view::{DirEntry, file_type, load_chunk, to_time};
use crate::format::{ChunkRef, IncomingRecord, Node, NodeKind, PointRecord, Tree};
use crate::store::{BlobId, StoreError};
use crate::vault::incoming::{LiveIncoming, Totals};
use crate::vault::ingest::{self, FileError};
use crate::vault::{Result as VResult, Vault, VaultError, now_ns, tree};

/// Top bit of every incoming inode number and file handle.
pub const BIT: u64 = 1 << 63;
/// How often a changed incoming tree is saved.
const SAVE_EVERY: Duration = Duration::from_secs(5);

/// [`SAVE_EVERY`]; a test-hooks build takes it from `VAULTFS_TEST_SAVE_EVERY_MS` when set, so a
/// test can tell what a save made durable from what a `sync` did.
fn save_every() -> Duration {
    #[cfg(feature = "test-hooks")]
    if let Some(ms) = std::env::var("VAULTFS_TEST_SAVE_EVERY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Duration::from_millis(ms);
    }
    SAVE_EVERY
}
/// Writes fail with ENOSPC when the vault's filesystem would keep less free space than this
/// after taking the data still waiting in staging files.
const RESERVE_BYTES: u64 = 16 << 20;
/// Threads chunking and sealing closed files.
const COMMIT_THREADS: usize = 2;
/// How long an idle commit worker lets closed files gather before it waits for the next.
const COMMIT_GATHER: Duration = Duration::from_millis(5);

/// True for inode numbers this module answers for.
pub fn owns(ino: u64) -> bool {
    ino == inodes::INCOMING || ino & BIT != 0
}

/// True for file handles this module gave out.
pub fn owns_handle(fh: u64) -> bool {
    fh & BIT != 0
}

/// Attribute changes of a `setattr`. Times are ns since the epoch.
#[derive(Debug, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime_ns: Option<i64>,
    pub mtime_ns: Option<i64>,
    pub ctime_ns: Option<i64>,
}

/// Who creates an entry.
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

struct FileData {
    /// Current size (of the staging file, when there is one).
    size: u64,
    /// The last committed content; equals the current one when `version == committed`.
    chunks: Arc<Vec<ChunkRef>>,
    committed_size: u64,
    staged: Option<Arc<Staged>>,
    version: u64,
    committed: u64,
    /// The settle epoch the last commit finished in (see `Incoming::settle`).
    committed_epoch: u64,
}

impl FileData {
    fn new() -> FileData {
        FileData {
            size: 0,
            chunks: Arc::new(Vec::new()),
            committed_size: 0,
            staged: None,
            version: 0,
            committed: 0,
            committed_epoch: 0,
        }
    }

    fn uncommitted(&self) -> bool {
        self.version != self.committed
    }
}

struct DirData {
    /// Entries; `None` until loaded from `saved`.
    children: Option<BTreeMap<Vec<u8>, u64>>,
    /// The saved tree, while it still describes the directory.
    saved: Option<BlobId>,
    /// Entries that are directories (for `nlink`; counting them per getattr made rsync's
    /// create-then-stat-the-parent quadratic in the directory's size). `None` while not loaded
    /// from a tree that did not record its directories' link counts.
    subdirs: Option<u32>,
}

enum Data {
    File(FileData),
    Dir(DirData),
    Other,
}

struct Inode {
    item: Arc<str>,
    kind: NodeKind,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime_ns: i64,
    ctime_ns: i64,
    /// Kept while mounted only: points do not record access times.
    atime_ns: i64,
    rdev: u64,
    target: Vec<u8>,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Directory entries naming it.
    nlink: u32,
    /// The directories holding those entries (one per link).
    parents: Vec<u64>,
    /// Identity of a hard-linked file inside saved trees.
    link_group: u64,
    lookups: u64,
    open: u32,
    data: Data,
}

impl Inode {
    fn new(item: Arc<str>, kind: NodeKind, mode: u32, who: Owner) -> Inode {
        let now = now_ns();
        Inode {
            item,
            kind,
            mode: mode & 0o7777,
            uid: who.uid,
            gid: who.gid,
            mtime_ns: now,
            ctime_ns: now,
            atime_ns: now,
            rdev: 0,
            target: Vec::new(),
            xattrs: BTreeMap::new(),
            nlink: 1,
            parents: Vec::new(),
            link_group: 0,
            lookups: 0,
            open: 0,
            data: match kind {
                NodeKind::File => Data::File(FileData::new()),
                NodeKind::Dir => Data::Dir(DirData {
                    children: Some(BTreeMap::new()),
                    saved: None,
                    subdirs: Some(0),
                }),
                _ => Data::Other,
            },
        }
    }

    fn from_node(item: Arc<str>, n: &Node) -> Inode {
        let data = match n.kind {
            NodeKind::File => {
                let size = n.chunks.iter().map(|c| c.len as u64).sum();
                Data::File(FileData {
                    size,
                    chunks: Arc::new(n.chunks.clone()),
                    committed_size: size,
                    ..FileData::new()
                })
            }
            NodeKind::Dir => Data::Dir(DirData {
                children: if n.subtree.is_some() {
                    None
                } else {
                    Some(BTreeMap::new())
                },
                saved: n.subtree,
                subdirs: if n.subtree.is_some() {
                    tree::dir_nlink_of(n).map(|l| l - 2)
                } else {
                    Some(0)
                },
            }),
            _ => Data::Other,
        };
        Inode {
            item,
            kind: n.kind,
            mode: n.mode & 0o7777,
            uid: n.uid,
            gid: n.gid,
            mtime_ns: n.mtime_ns,
            ctime_ns: n.ctime_ns.max(n.mtime_ns),
            atime_ns: n.mtime_ns,
            rdev: n.rdev,
            target: n.target.clone(),
            xattrs: n.xattrs.iter().cloned().collect(),
            nlink: 1,
            parents: Vec::new(),
            link_group: n.link_group,
            lookups: 0,
            open: 0,
            data,
        }
    }

    fn file(&self) -> FsResult<&FileData> {
        match &self.data {
            Data::File(f) => Ok(f),
            Data::Dir(_) => Err(FsError::IsDir),
            Data::Other => Err(FsError::Invalid),
        }
    }

    fn file_mut(&mut self) -> FsResult<&mut FileData> {
        match &mut self.data {
            Data::File(f) => Ok(f),
            Data::Dir(_) => Err(FsError::IsDir),
            Data::Other => Err(FsError::Invalid),
        }
    }

    fn touch(&mut self) {
        let now = now_ns();
        self.mtime_ns = now;
        self.ctime_ns = now;
    }
}

#[derive(Default)]
struct State {
    nodes: HashMap<u64, Inode>,
    next: u64,
    /// Item name → its root directory's inode.
    roots: BTreeMap<String, u64>,
    /// (item, link group) → inode, for hard links met while loading trees.
    links: HashMap<(Arc<str>, u64), u64>,
    /// Items changed since their last save, with a change counter (a save clears an item only
    /// if nothing changed while it ran).
    dirty: HashMap<Arc<str>, u64>,
    changes: u64,
    /// Inodes with a staging file.
    staged: HashSet<u64>,
    /// Revision of each item's newest saved record.
    revisions: HashMap<Arc<str>, u64>,
}

impl State {
    fn get(&self, ino: u64) -> FsResult<&Inode> {
        self.nodes.get(&ino).ok_or(FsError::NotFound)
    }

    fn get_mut(&mut self, ino: u64) -> FsResult<&mut Inode> {
        self.nodes.get_mut(&ino).ok_or(FsError::NotFound)
    }

    fn alloc(&mut self, inode: Inode) -> u64 {
        self.next += 1;
        let ino = BIT | self.next;
        self.nodes.insert(ino, inode);
        ino
    }

    /// Something about `ino` changed: the trees of every directory above it are stale.
    fn mark_dirty(&mut self, ino: u64) {
        let Some(inode) = self.nodes.get(&ino) else {
            return;
        };
        self.changes += 1;
        self.dirty.insert(inode.item.clone(), self.changes);
        let mut todo = inode.parents.clone();
        while let Some(p) = todo.pop() {
            let Some(dir) = self.nodes.get_mut(&p) else {
                continue;
            };
            if let Data::Dir(d) = &mut dir.data
                && d.saved.take().is_some()
            {
                todo.extend(dir.parents.iter().copied());
            }
        }
    }

    /// The entries of directory `dir` changed: its own tree is stale, and so are those above.
    fn dir_changed(&mut self, dir: u64) {
        if let Some(i) = self.nodes.get_mut(&dir) {
            i.touch();
            if let Data::Dir(d) = &mut i.data {
                d.saved = None;
            }
        }
        self.mark_dirty(dir);
    }

    /// Drop an inode nothing refers to any more (its staging file goes with it).
    fn maybe_drop(&mut self, ino: u64) {
        let gone = self
            .nodes
            .get(&ino)
            .is_some_and(|i| i.nlink == 0 && i.lookups == 0 && i.open == 0);
        if gone {
            self.nodes.remove(&ino);
            self.staged.remove(&ino);
        }
    }

    fn children(&self, dir: u64) -> FsResult<&BTreeMap<Vec<u8>, u64>> {
        match &self.get(dir)?.data {
            Data::Dir(DirData {
                children: Some(c), ..
            }) => Ok(c),
            Data::Dir(_) => Err(FsError::Damaged("directory not loaded".into())),
            _ => Err(FsError::NotDir),
        }
    }

    fn children_mut(&mut self, dir: u64) -> FsResult<&mut BTreeMap<Vec<u8>, u64>> {
        match &mut self.get_mut(dir)?.data {
            Data::Dir(DirData {
                children: Some(c), ..
            }) => Ok(c),
            Data::Dir(_) => Err(FsError::Damaged("directory not loaded".into())),
            _ => Err(FsError::NotDir),
        }
    }

    /// Remove the entry `name` of `dir` that names `child`.
    /// One directory entry more (`delta` 1) or less (-1) in `dir` is a directory.
    fn count_subdir(&mut self, dir: u64, delta: i32) {
        if let Some(i) = self.nodes.get_mut(&dir)
            && let Data::Dir(d) = &mut i.data
        {
            d.subdirs = d.subdirs.map(|n| n.saturating_add_signed(delta));
        }
    }

    fn unlink_entry(&mut self, dir: u64, name: &[u8], child: u64) -> FsResult<()> {
        self.children_mut(dir)?.remove(name);
        if self.get(child)?.kind == NodeKind::Dir {
            self.count_subdir(dir, -1);
        }
        let c = self.get_mut(child)?;
        c.nlink = c.nlink.saturating_sub(1);
        if let Some(i) = c.parents.iter().position(|p| *p == dir) {
            c.parents.remove(i);
        }
        c.ctime_ns = now_ns();
        let still_linked = c.nlink > 0;
        self.dir_changed(dir);
        if still_linked {
            self.mark_dirty(child);
        }
        self.maybe_drop(child);
        Ok(())
    }
}

struct Handle {
    ino: u64,
}

pub struct Incoming {
    vault: Arc<Vault>,
    chunks: Arc<WeightedCache<BlobId, Vec<u8>>>,
    staging: Arc<Staging>,
    freeze: RwLock<()>,
    /// One save or snapshot at a time: each writes the next record revision.
    save_lock: Mutex<()>,
    state: Mutex<State>,
    handles: Mutex<HashMap<u64, Handle>>,
    next_handle: AtomicU64,
    /// Closed files waiting to be stored, taken by the commit workers.
    queue: std::sync::mpsc::Sender<u64>,
    /// Bumped by each `settle`; a commit records the value it finished under.
    epoch: AtomicU64,
    /// Bytes written to staging files and not yet committed.
    waiting_bytes: AtomicU64,
    /// (when, free bytes) of the vault's filesystem, refreshed at most every 250 ms.
    space: Mutex<Option<(Instant, u64)>>,
    /// Set when a commit ran out of space; writes fail until space is back.
    full: AtomicBool,
    totals: Mutex<HashMap<BlobId, Totals>>,
    stop: (Mutex<bool>, Condvar),
    /// Tells the kernel about changes it cannot see (a mode set through an ACL).
    notifier: std::sync::OnceLock<fuser::Notifier>,
}

fn fs_err(e: VaultError) -> FsError {
    FsError::Vault(e)
}

fn io_err(op: &'static str, e: std::io::Error) -> FsError {
    FsError::Vault(VaultError::io(op, "staging file", e))
}

fn check_name(name: &[u8]) -> FsResult<()> {
    if name.is_empty() || name.contains(&b'/') || name == b"." || name == b".." {
        return Err(FsError::Invalid);
    }
    if name.len() > 255 {
        return Err(FsError::Vault(VaultError::errno(
            "name",
            libc::ENAMETOOLONG,
        )));
    }
    Ok(())
}

impl Incoming {
    pub fn new(
        vault: Arc<Vault>,
        chunks: Arc<WeightedCache<BlobId, Vec<u8>>>,
        staging_base: &std::path::Path,
    ) -> VResult<Arc<Incoming>> {
        let vault_id = Vault::read_config(vault.dir())?.vault_id;
        let staging = Staging::new(staging_base, &vault_id)
            .map_err(|e| VaultError::io("create staging directory in", staging_base, e))?;
        let (queue, rx) = std::sync::mpsc::channel::<u64>();
        let rx = Arc::new(Mutex::new(rx));
        let inc = Arc::new(Incoming {
            vault,
            chunks,
            staging,
            freeze: RwLock::new(()),
            save_lock: Mutex::new(()),
            state: Mutex::new(State::default()),
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            queue,
            epoch: AtomicU64::new(0),
            waiting_bytes: AtomicU64::new(0),
            space: Mutex::new(None),
            full: AtomicBool::new(false),
            totals: Mutex::new(HashMap::new()),
            stop: (Mutex::new(false), Condvar::new()),
            notifier: std::sync::OnceLock::new(),
        });
        let weak: Weak<dyn LiveIncoming> = Arc::downgrade(&inc) as Weak<dyn LiveIncoming>;
        inc.vault.set_live_incoming(weak);
        // Plain threads on a channel: an idle rayon pool spins (sched_yield) between files,
        // which cost as much CPU as compressing them.
        for i in 0..COMMIT_THREADS {
            let (me, rx) = (Arc::downgrade(&inc), rx.clone());
            std::thread::Builder::new()
                .name(format!("commit-{i}"))
                .spawn(move || commit_worker(me, rx))
                .map_err(VaultError::thread("commit threads"))?;
        }
        let saver = Arc::downgrade(&inc);
        std::thread::Builder::new()
            .name("incoming-saver".into())
            .spawn(move || saver_loop(saver))
            .map_err(VaultError::thread("the saver thread"))?;
        Ok(inc)
    }

    pub fn set_notifier(&self, n: fuser::Notifier) {
        let _ = self.notifier.set(n);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("incoming state lock")
    }

    // -----------------------------------------------------------------------------------------
    // Loading

    /// The root inode of `item`'s incoming tree, loading its saved record on first use.
    fn root_of(&self, st: &mut State, item: &str) -> FsResult<u64> {
        if let Some(ino) = st.roots.get(item) {
            return Ok(*ino);
        }
        self.vault.item(item).map_err(|e| match e {
            VaultError::UnknownItem(_) | VaultError::BadItemName(_) => FsError::NotFound,
            e => FsError::Vault(e),
        })?;
        let name: Arc<str> = item.into();
        let rec = self.vault.incoming(item)?;
        let inode = match &rec {
            Some(r) => Inode::from_node(name.clone(), &r.root),
            None => Inode::new(name.clone(), NodeKind::Dir, 0o755, Owner { uid: 0, gid: 0 }),
        };
        st.revisions
            .insert(name, rec.as_ref().map(|r| r.revision).unwrap_or(0));
        let ino = st.alloc(inode);
        st.roots.insert(item.to_string(), ino);
        Ok(ino)
    }

    /// Make sure directory `ino`'s entries are in memory.
    fn load_dir(&self, st: &mut State, ino: u64) -> FsResult<()> {
        let inode = st.get(ino)?;
        let id = match &inode.data {
            Data::Dir(DirData {
                children: Some(_), ..
            }) => return Ok(()),
            Data::Dir(DirData {
                saved: Some(id), ..
            }) => *id,
            Data::Dir(_) => return Err(FsError::Damaged("directory without a tree".into())),
            _ => return Err(FsError::NotDir),
        };
        let item = inode.item.clone();
        let t = tree::load(self.vault.store(), &id).map_err(|e| {
            tracing::error!("EIO: incoming/{item}: directory tree {id}: {e}");
            FsError::Damaged(e.to_string())
        })?;
        let mut children = BTreeMap::new();
        for n in &t.nodes {
            let key = (item.clone(), n.link_group);
            let child = match (n.link_group != 0)
                .then(|| st.links.get(&key).copied())
                .flatten()
                .filter(|c| st.nodes.contains_key(c))
            {
                Some(c) => {
                    let ci = st.get_mut(c)?;
                    ci.nlink += 1;
                    ci.parents.push(ino);
                    c
                }
                None => {
                    let mut inode = Inode::from_node(item.clone(), n);
                    inode.parents.push(ino);
                    let c = st.alloc(inode);
                    if n.link_group != 0 {
                        st.links.insert(key, c);
                    }
                    c
                }
            };
            children.insert(n.name.clone(), child);
        }
        let subdirs = tree::dir_nlink(&t) - 2;
        if let Data::Dir(d) = &mut st.get_mut(ino)?.data {
            d.children = Some(children);
            d.subdirs = Some(subdirs);
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Attributes and lookups

    fn attr(&self, st: &State, ino: u64) -> FsResult<FileAttr> {
        let i = st.get(ino)?;
        let (size, nlink) = match &i.data {
            Data::File(f) => (f.size, i.nlink),
            // Not counted yet: 1 means "unknown" to find and friends.
            Data::Dir(d) => (4096, d.subdirs.map_or(1, |n| 2 + n)),
            Data::Other => (i.target.len() as u64, i.nlink),
        };
        let mtime = to_time(i.mtime_ns);
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: to_time(i.atime_ns),
            mtime,
            ctime: to_time(i.ctime_ns),
            crtime: mtime,
            kind: file_type(i.kind),
            perm: i.mode as u16,
            nlink: if i.kind == NodeKind::Dir {
                nlink.max(1)
            } else {
                nlink
            },
            uid: i.uid,
            gid: i.gid,
            rdev: i.rdev as u32,
            blksize: 4096,
            flags: 0,
        })
    }

    fn find(&self, st: &mut State, parent: u64, name: &[u8]) -> FsResult<u64> {
        if parent == inodes::INCOMING {
            let item = std::str::from_utf8(name).map_err(|_| FsError::NotFound)?;
            return self.root_of(st, item);
        }
        self.load_dir(st, parent)?;
        st.children(parent)?
            .get(name)
            .copied()
            .ok_or(FsError::NotFound)
    }

    /// Look up `name` in `parent` and count one kernel reference.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> FsResult<FileAttr> {
        let mut st = self.lock();
        let ino = self.find(&mut st, parent, name.as_bytes())?;
        let attr = self.attr(&st, ino)?;
        st.get_mut(ino)?.lookups += 1;
        Ok(attr)
    }

    /// Attributes of `name` in `parent` without counting a reference (readdirplus).
    pub fn peek(&self, parent: u64, name: &[u8]) -> FsResult<FileAttr> {
        let mut st = self.lock();
        let ino = self.find(&mut st, parent, name)?;
        self.attr(&st, ino)
    }

    pub fn remember(&self, ino: u64) {
        if let Ok(i) = self.lock().get_mut(ino) {
            i.lookups += 1;
        }
    }

    pub fn forget(&self, ino: u64, n: u64) {
        let mut st = self.lock();
        if let Ok(i) = st.get_mut(ino) {
            i.lookups = i.lookups.saturating_sub(n);
        }
        st.maybe_drop(ino);
    }

    pub fn getattr(&self, ino: u64) -> FsResult<FileAttr> {
        self.attr(&self.lock(), ino)
    }

    pub fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        let st = self.lock();
        let i = st.get(ino)?;
        if i.kind != NodeKind::Symlink {
            return Err(FsError::Invalid);
        }
        Ok(i.target.clone())
    }

    /// The listing of an incoming directory (`incoming/` itself lists every item).
    pub fn list(&self, ino: u64) -> FsResult<Vec<DirEntry>> {
        let mut st = self.lock();
        let mut out = Vec::new();
        if ino == inodes::INCOMING {
            for it in self.vault.items()? {
                let root = self.root_of(&mut st, &it.name)?;
                out.push(DirEntry {
                    ino: root,
                    kind: FileType::Directory,
                    name: it.name.into_bytes(),
                });
            }
            return Ok(out);
        }
        self.load_dir(&mut st, ino)?;
        for (name, c) in st.children(ino)? {
            let kind = st.nodes.get(c).map(|n| n.kind).unwrap_or(NodeKind::File);
            out.push(DirEntry {
                ino: *c,
                kind: file_type(kind),
                name: name.clone(),
            });
        }
        Ok(out)
    }

    /// The parent of a directory (for "..").
    pub fn parent(&self, ino: u64) -> u64 {
        let st = self.lock();
        st.nodes
            .get(&ino)
            .and_then(|i| i.parents.first().copied())
            .unwrap_or(inodes::INCOMING)
    }

    // -----------------------------------------------------------------------------------------
    // Changing the tree

    /// Add a new entry under `parent`; returns its attributes with one kernel reference.
    fn add(
        &self,
        parent: u64,
        name: &[u8],
        make: impl FnOnce(Arc<str>) -> Inode,
    ) -> FsResult<(u64, FileAttr)> {
        check_name(name)?;
        let _f = self.freeze.read().expect("freeze lock");
        let mut st = self.lock();
        self.load_dir(&mut st, parent)?;
        if st.children(parent)?.contains_key(name) {
            return Err(FsError::Exists);
        }
        let p = st.get(parent)?;
        let item = p.item.clone();
        // Set-group-ID directories pass their group on.
        let sgid_gid = (p.mode & libc::S_ISGID != 0).then_some(p.gid);
        let mut inode = make(item);
        if let Some(g) = sgid_gid {
            inode.gid = g;
            if inode.kind == NodeKind::Dir {
                inode.mode |= libc::S_ISGID;
            }
        }
        inode.parents.push(parent);
        inode.lookups = 1;
        if inode.kind == NodeKind::Dir {
            st.count_subdir(parent, 1);
        }
        let ino = st.alloc(inode);
        st.children_mut(parent)?.insert(name.to_vec(), ino);
        st.dir_changed(parent);
        let attr = self.attr(&st, ino)?;
        Ok((ino, attr))
    }

    pub fn mkdir(&self, parent: u64, name: &OsStr, mode: u32, who: Owner) -> FsResult<FileAttr> {
        if parent == inodes::INCOMING {
            return self.make_item(name, mode, who);
        }
        self.add(parent, name.as_bytes(), |item| {
            Inode::new(item, NodeKind::Dir, mode, who)
        })
        .map(|(_, a)| a)
    }

    /// `mkdir incoming/NEW`: a new item.
    fn make_item(&self, name: &OsStr, mode: u32, who: Owner) -> FsResult<FileAttr> {
        let item = name.to_str().ok_or(FsError::Invalid)?;
        {
            let mut st = self.lock();
            if self.root_of(&mut st, item).is_ok() {
                return Err(FsError::Exists);
            }
        }
        self.vault.create_item(item).map_err(|e| match e {
            VaultError::BadItemName(_) => FsError::Invalid,
            e => FsError::Vault(e),
        })?;
        tracing::info!("created item {item} through incoming/");
        let mut st = self.lock();
        let ino = self.root_of(&mut st, item)?;
        let i = st.get_mut(ino)?;
        i.mode = mode & 0o7777;
        i.uid = who.uid;
        i.gid = who.gid;
        i.lookups += 1;
        st.mark_dirty(ino);
        self.attr(&st, ino)
    }

    pub fn mknod(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        rdev: u32,
        who: Owner,
    ) -> FsResult<FileAttr> {
        if parent == inodes::INCOMING {
            return Err(FsError::Invalid);
        }
        let kind = match mode & libc::S_IFMT {
            libc::S_IFREG | 0 => NodeKind::File,
            libc::S_IFIFO => NodeKind::Fifo,
            libc::S_IFCHR => NodeKind::CharDevice,
            libc::S_IFBLK => NodeKind::BlockDevice,
            libc::S_IFSOCK => NodeKind::Socket,
            _ => return Err(FsError::Invalid),
        };
        self.add(parent, name.as_bytes(), |item| {
            let mut i = Inode::new(item, kind, mode, who);
            i.rdev = rdev as u64;
            i
        })
        .map(|(_, a)| a)
    }

    pub fn symlink(
        &self,
        parent: u64,
        name: &OsStr,
        target: &[u8],
        who: Owner,
    ) -> FsResult<FileAttr> {
        if parent == inodes::INCOMING {
            return Err(FsError::Invalid);
        }
        self.add(parent, name.as_bytes(), |item| {
            let mut i = Inode::new(item, NodeKind::Symlink, 0o777, who);
            i.target = target.to_vec();
            i
        })
        .map(|(_, a)| a)
    }

    /// Create and open a regular file.
    pub fn create(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        who: Owner,
    ) -> FsResult<(FileAttr, u64)> {
        if parent == inodes::INCOMING {
            return Err(FsError::Invalid);
        }
        let (ino, attr) = self.add(parent, name.as_bytes(), |item| {
            Inode::new(item, NodeKind::File, mode, who)
        })?;
        let mut st = self.lock();
        st.get_mut(ino)?.open += 1;
        drop(st);
        Ok((attr, self.add_handle(ino)))
    }

    pub fn link(&self, ino: u64, newparent: u64, newname: &OsStr) -> FsResult<FileAttr> {
        check_name(newname.as_bytes())?;
        if newparent == inodes::INCOMING {
            return Err(FsError::Invalid);
        }
        let _f = self.freeze.read().expect("freeze lock");
        let mut st = self.lock();
        self.load_dir(&mut st, newparent)?;
        let src = st.get(ino)?;
        if src.kind == NodeKind::Dir {
            return Err(FsError::NotPermitted);
        }
        if src.item != st.get(newparent)?.item {
            return Err(FsError::CrossDevice);
        }
        if st.children(newparent)?.contains_key(newname.as_bytes()) {
            return Err(FsError::Exists);
        }
        let group = if src.link_group == 0 {
            random_group()?
        } else {
            src.link_group
        };
        let src = st.get_mut(ino)?;
        src.link_group = group;
        src.nlink += 1;
        src.parents.push(newparent);
        src.ctime_ns = now_ns();
        src.lookups += 1;
        st.children_mut(newparent)?
            .insert(newname.as_bytes().to_vec(), ino);
        st.dir_changed(newparent);
        st.mark_dirty(ino);
        self.attr(&st, ino)
    }

    pub fn unlink(&self, parent: u64, name: &OsStr) -> FsResult<()> {
        if parent == inodes::INCOMING {
            return Err(FsError::IsDir);
        }
        let _f = self.freeze.read().expect("freeze lock");
        let mut st = self.lock();
        let child = self.find(&mut st, parent, name.as_bytes())?;
        if st.get(child)?.kind == NodeKind::Dir {
            return Err(FsError::IsDir);
        }
        st.unlink_entry(parent, name.as_bytes(), child)
    }

    pub fn rmdir(&self, parent: u64, name: &OsStr) -> FsResult<()> {
        let _f = self.freeze.read().expect("freeze lock");
        let mut st = self.lock();
        let child = self.find(&mut st, parent, name.as_bytes())?;
        if st.get(child)?.kind != NodeKind::Dir {
            return Err(FsError::NotDir);
        }
        self.load_dir(&mut st, child)?;
        if !st.children(child)?.is_empty() {
            return Err(FsError::NotEmpty);
        }
        if parent == inodes::INCOMING {
            let item = name.to_str().ok_or(FsError::NotFound)?;
            self.vault.remove_item(item)?;
            tracing::info!("removed item {item} (it had no points) through incoming/");
            st.roots.remove(item);
            st.dirty.remove(item);
            if let Ok(i) = st.get_mut(child) {
                i.nlink = 0;
            }
            st.maybe_drop(child);
            return Ok(());
        }
        st.unlink_entry(parent, name.as_bytes(), child)
    }

    pub fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        noreplace: bool,
    ) -> FsResult<()> {
        if parent == inodes::INCOMING || newparent == inodes::INCOMING {
            return Err(FsError::NotPermitted);
        }
        check_name(newname.as_bytes())?;
        let (name, newname) = (name.as_bytes(), newname.as_bytes());
        let _f = self.freeze.read().expect("freeze lock");
        let mut st = self.lock();
        let src = self.find(&mut st, parent, name)?;
        self.load_dir(&mut st, newparent)?;
        if st.get(parent)?.item != st.get(newparent)?.item {
            return Err(FsError::CrossDevice);
        }
        let src_is_dir = st.get(src)?.kind == NodeKind::Dir;
        if src_is_dir {
            // Not into itself or below.
            let mut cur = newparent;
            loop {
                if cur == src {
                    return Err(FsError::Invalid);
                }
                match st.get(cur)?.parents.first() {
                    Some(p) => cur = *p,
                    None => break,
                }
            }
        }
        if let Some(dst) = st.children(newparent)?.get(newname).copied() {
            if dst == src {
                return Ok(());
            }
            if noreplace {
                return Err(FsError::Exists);
            }
            let dst_is_dir = st.get(dst)?.kind == NodeKind::Dir;
            match (src_is_dir, dst_is_dir) {
                (true, false) => return Err(FsError::NotDir),
                (false, true) => return Err(FsError::IsDir),
                (true, true) => {
                    self.load_dir(&mut st, dst)?;
                    if !st.children(dst)?.is_empty() {
                        return Err(FsError::NotEmpty);
                    }
                }
                (false, false) => {}
            }
            st.unlink_entry(newparent, newname, dst)?;
        }
        st.children_mut(parent)?.remove(name);
        st.children_mut(newparent)?.insert(newname.to_vec(), src);
        if src_is_dir {
            st.count_subdir(parent, -1);
            st.count_subdir(newparent, 1);
        }
        let s = st.get_mut(src)?;
        if let Some(i) = s.parents.iter().position(|p| *p == parent) {
            s.parents[i] = newparent;
        }
        s.ctime_ns = now_ns();
        st.dir_changed(parent);
        st.dir_changed(newparent);
        Ok(())
    }

    pub fn setattr(&self, ino: u64, a: SetAttr) -> FsResult<FileAttr> {
        let _f = self.freeze.read().expect("freeze lock");
        if let Some(size) = a.size {
            self.truncate(ino, size)?;
        }
        let mut st = self.lock();
        let i = st.get_mut(ino)?;
        let now = now_ns();
        if let Some(m) = a.mode {
            i.mode = m & 0o7777;
        }
        if let Some(u) = a.uid {
            i.uid = u;
        }
        if let Some(g) = a.gid {
            i.gid = g;
        }
        if let Some(t) = a.atime_ns {
            i.atime_ns = t;
        }
        if let Some(t) = a.mtime_ns {
            i.mtime_ns = t;
        } else if a.size.is_some() {
            i.mtime_ns = now;
        }
        i.ctime_ns = a.ctime_ns.unwrap_or(now);
        st.mark_dirty(ino);
        self.attr(&st, ino)
    }

    // -----------------------------------------------------------------------------------------
    // Extended attributes

    pub fn getxattr(&self, ino: u64, name: &OsStr) -> FsResult<Vec<u8>> {
        let st = self.lock();
        st.get(ino)?
            .xattrs
            .get(name.as_bytes())
            .cloned()
            .ok_or(FsError::NoXattr)
    }

    pub fn listxattr(&self, ino: u64) -> FsResult<Vec<u8>> {
        let st = self.lock();
        let mut out = Vec::new();
        for k in st.get(ino)?.xattrs.keys() {
            out.extend_from_slice(k);
            out.push(0);
        }
        Ok(out)
    }

    pub fn setxattr(&self, ino: u64, name: &OsStr, value: &[u8], flags: i32) -> FsResult<()> {
        let _f = self.freeze.read().expect("freeze lock");
        let mut st = self.lock();
        let i = st.get_mut(ino)?;
        let exists = i.xattrs.contains_key(name.as_bytes());
        if flags & libc::XATTR_CREATE != 0 && exists {
            return Err(FsError::Exists);
        }
        if flags & libc::XATTR_REPLACE != 0 && !exists {
            return Err(FsError::NoXattr);
        }
        let mut keep = true;
        if name.as_bytes() == ACL_ACCESS {
            // Like a local filesystem: an access ACL sets the mode bits (cp -a and rsync -A
            // set permissions this way), and only an extended one is kept.
            let (mode, extended) = acl_mode(value).ok_or(FsError::Invalid)?;
            i.mode = (i.mode & !0o777) | mode;
            keep = extended;
        }
        if keep {
            i.xattrs.insert(name.as_bytes().to_vec(), value.to_vec());
        } else {
            i.xattrs.remove(name.as_bytes());
        }
        i.ctime_ns = now_ns();
        st.mark_dirty(ino);
        drop(st);
        if name.as_bytes() == ACL_ACCESS
            && let Some(n) = self.notifier.get()
        {
            // Attributes only (negative offset): the cached mode is stale.
            let _ = n.inval_inode(INodeNo(ino), -1, 0);
        }
        Ok(())
    }

    pub fn removexattr(&self, ino: u64, name: &OsStr) -> FsResult<()> {
        let _f = self.freeze.read().expect("freeze lock");
        let mut st = self.lock();
        let i = st.get_mut(ino)?;
        i.xattrs.remove(name.as_bytes()).ok_or(FsError::NoXattr)?;
        i.ctime_ns = now_ns();
        st.mark_dirty(ino);
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // File data

    fn add_handle(&self, ino: u64) -> u64 {
        let fh = BIT | self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.handles
            .lock()
            .expect("handles lock")
            .insert(fh, Handle { ino });
        fh
    }

    fn handle_ino(&self, fh: u64) -> FsResult<u64> {
        self.handles
            .lock()
            .expect("handles lock")
            .get(&fh)
            .map(|h| h.ino)
            .ok_or(FsError::BadHandle)
    }

    pub fn open(&self, ino: u64, truncate: bool) -> FsResult<u64> {
        {
            let mut st = self.lock();
            let i = st.get_mut(ino)?;
            i.file()?;
            i.open += 1;
        }
        if truncate {
            let _f = self.freeze.read().expect("freeze lock");
            if let Err(e) = self.truncate(ino, 0) {
                self.close(ino);
                return Err(e);
            }
            let mut st = self.lock();
            st.get_mut(ino)?.touch();
            st.mark_dirty(ino);
        }
        Ok(self.add_handle(ino))
    }

    pub fn release(&self, fh: u64) {
        let Some(h) = self.handles.lock().expect("handles lock").remove(&fh) else {
            return;
        };
        self.close(h.ino);
    }

    fn close(&self, ino: u64) {
        let mut st = self.lock();
        let Ok(i) = st.get_mut(ino) else {
            return;
        };
        i.open = i.open.saturating_sub(1);
        let last = i.open == 0;
        if last
            && let Data::File(f) = &i.data
            && f.staged.is_some()
            && f.uncommitted()
        {
            self.commit_later(ino);
        }
        st.maybe_drop(ino);
    }

    /// Store a file's staged content on a commit worker.
    fn commit_later(&self, ino: u64) {
        let _ = self.queue.send(ino);
    }

    pub fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let ino = self.handle_ino(fh)?;
        let (staged, chunks, fsize) = {
            let st = self.lock();
            let f = st.get(ino)?.file()?;
            (f.staged.clone(), f.chunks.clone(), f.size)
        };
        if offset >= fsize || size == 0 {
            return Ok(Vec::new());
        }
        let end = fsize.min(offset + size as u64);
        if let Some(s) = staged {
            let mut buf = vec![0u8; (end - offset) as usize];
            let n = s.read_at(&mut buf, offset).map_err(|e| io_err("read", e))?;
            buf.truncate(n);
            return Ok(buf);
        }
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut start = 0u64;
        for c in chunks.iter() {
            let c_end = start + c.len as u64;
            if c_end > offset && start < end {
                let data = load_chunk(&self.chunks, &self.vault, *c).map_err(|why| {
                    tracing::error!("EIO: an incoming file: {why}");
                    FsError::Damaged(why)
                })?;
                let from = offset.max(start) - start;
                let to = end.min(c_end) - start;
                out.extend_from_slice(&data[from as usize..to as usize]);
            }
            if c_end >= end {
                break;
            }
            start = c_end;
        }
        Ok(out)
    }

    /// Refuse a write of `len` bytes when the vault could not take what waits in staging.
    fn check_space(&self, len: u64) -> FsResult<()> {
        let free = {
            let mut space = self.space.lock().expect("space lock");
            match *space {
                Some((at, free)) if at.elapsed() < Duration::from_millis(250) => free,
                _ => {
                    let free = free_bytes(self.vault.dir()).unwrap_or(u64::MAX);
                    *space = Some((Instant::now(), free));
                    free
                }
            }
        };
        if self.full.load(Ordering::Relaxed) {
            if free < 4 * RESERVE_BYTES {
                return Err(no_space());
            }
            self.full.store(false, Ordering::Relaxed);
        }
        let waiting = self.waiting_bytes.load(Ordering::Relaxed) + len;
        if free < waiting.saturating_add(RESERVE_BYTES) {
            return Err(no_space());
        }
        Ok(())
    }

    pub fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        let ino = self.handle_ino(fh)?;
        let _f = self.freeze.read().expect("freeze lock");
        self.check_space(data.len() as u64)?;
        let staged = self.stage(ino)?;
        staged
            .write_at(data, offset)
            .map_err(|e| io_err("write", e))?;
        self.waiting_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        let mut st = self.lock();
        let i = st.get_mut(ino)?;
        i.touch();
        let f = i.file_mut()?;
        f.size = f.size.max(offset + data.len() as u64);
        f.version += 1;
        st.mark_dirty(ino);
        Ok(data.len() as u32)
    }

    fn truncate(&self, ino: u64, size: u64) -> FsResult<()> {
        {
            let mut st = self.lock();
            let f = st.get_mut(ino)?.file_mut()?;
            if f.size == size {
                return Ok(());
            }
            if size == 0 && f.staged.is_none() {
                // Nothing to copy: an empty file needs no staging file.
                f.size = 0;
                f.version += 1;
                return self.commit_empty(&mut st, ino);
            }
        }
        let staged = self.stage(ino)?;
        staged.set_len(size).map_err(|e| io_err("truncate", e))?;
        let mut st = self.lock();
        let f = st.get_mut(ino)?.file_mut()?;
        f.size = size;
        f.version += 1;
        st.mark_dirty(ino);
        Ok(())
    }

    fn commit_empty(&self, st: &mut State, ino: u64) -> FsResult<()> {
        let f = st.get_mut(ino)?.file_mut()?;
        f.chunks = Arc::new(Vec::new());
        f.committed_size = 0;
        f.committed = f.version;
        st.mark_dirty(ino);
        Ok(())
    }

    /// The staging file of `ino`, made (with the committed content copied in) if needed.
    fn stage(&self, ino: u64) -> FsResult<Arc<Staged>> {
        loop {
            let (chunks, version) = {
                let st = self.lock();
                let f = st.get(ino)?.file()?;
                if let Some(s) = &f.staged {
                    return Ok(s.clone());
                }
                (f.chunks.clone(), f.version)
            };
            let staged = self.staging.create();
            let mut pos = 0u64;
            for c in chunks.iter() {
                let data = load_chunk(&self.chunks, &self.vault, *c).map_err(|why| {
                    tracing::error!("EIO: an incoming file: {why}");
                    FsError::Damaged(why)
                })?;
                staged
                    .write_at(&data, pos)
                    .map_err(|e| io_err("write", e))?;
                pos += c.len as u64;
            }
            let mut st = self.lock();
            let f = st.get_mut(ino)?.file_mut()?;
            if f.staged.is_none() && f.version == version {
                let s = Arc::new(staged);
                f.staged = Some(s.clone());
                st.staged.insert(ino);
                return Ok(s);
            }
        }
    }

    /// Chunk and store the staged content of `ino` (no-op when already committed).
    fn commit(&self, ino: u64) -> FsResult<()> {
        let (staged, version) = {
            let st = self.lock();
            let Ok(i) = st.get(ino) else {
                return Ok(());
            };
            let f = i.file()?;
            match &f.staged {
                Some(s) if f.uncommitted() => (s.clone(), f.version),
                _ => return Ok(()),
            }
        };
        let counter = AtomicU64::new(0);
        let result = ingest::store_stream(
            &self.vault,
            Reader {
                staged: &staged,
                pos: 0,
            },
            &counter,
        );
        let (chunks, len) = match result {
            Ok(x) => x,
            Err(FileError::Source(e)) => return Err(io_err("read", e)),
            Err(FileError::Vault(e)) => {
                if matches!(e, VaultError::Store(StoreError::NoSpace(_))) {
                    self.full.store(true, Ordering::Relaxed);
                }
                return Err(FsError::Vault(e));
            }
        };
        let mut st = self.lock();
        let Ok(i) = st.get_mut(ino) else {
            return Ok(());
        };
        let f = i.file_mut()?;
        let same = f.staged.as_ref().is_some_and(|s| Arc::ptr_eq(s, &staged));
        if !same || f.version != version || !f.uncommitted() {
            return Ok(());
        }
        // The staging file stays until `settle` finds the chunks indexed: until then they may
        // sit in the open pack, where reads cannot reach them.
        f.chunks = Arc::new(chunks);
        f.committed_size = len;
        f.committed = version;
        f.committed_epoch = self.epoch.load(Ordering::SeqCst);
        let _ = self
            .waiting_bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                Some(w.saturating_sub(len))
            });
        st.mark_dirty(ino);
        Ok(())
    }

    /// Commit every staged file (of `item`, or all), in parallel on rayon's pool.
    fn commit_all(&self, item: Option<&str>) -> FsResult<()> {
        let inos: Vec<u64> = {
            let st = self.lock();
            st.staged
                .iter()
                .copied()
                .filter(|i| item.is_none_or(|it| st.nodes.get(i).is_some_and(|n| &*n.item == it)))
                .collect()
        };
        use rayon::prelude::*;
        inos.par_iter().try_for_each(|ino| self.commit(*ino))
    }

    pub fn fsync(&self, fh: Option<u64>) -> FsResult<()> {
        if let Some(fh) = fh {
            let ino = self.handle_ino(fh)?;
            self.commit(ino)?;
        }
        self.save().map_err(fs_err)
    }

    // -----------------------------------------------------------------------------------------
    // Saving and snapshots

    /// Make everything put so far durable, then drop the staging files of closed, committed
    /// files whose chunks are indexed. A committed file with a chunk missing from the index
    /// (lost in a failed pack write, or a commit racing this flush) is committed again.
    fn settle(&self) -> VResult<()> {
        // Commits that finish from here on may have put after the flush: not checked now.
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst);
        self.vault.store().flush()?;
        let index = self.vault.store().index();
        let mut st = self.lock();
        let candidates: Vec<u64> = st.staged.iter().copied().collect();
        let mut again = Vec::new();
        for ino in candidates {
            let Some(i) = st.nodes.get_mut(&ino) else {
                st.staged.remove(&ino);
                continue;
            };
            if i.open > 0 {
                continue;
            }
            let Data::File(f) = &mut i.data else { continue };
            if f.uncommitted() || f.committed_epoch > epoch {
                continue;
            }
            let mut durable = true;
            for c in f.chunks.iter() {
                if !index.contains(&c.id)? {
                    durable = false;
                    break;
                }
            }
            if durable {
                f.staged = None;
                st.staged.remove(&ino);
            } else {
                tracing::warn!("a stored incoming file is not in the index yet; storing it again");
                f.committed = f.version.wrapping_add(1);
                again.push(ino);
            }
        }
        drop(st);
        for ino in again {
            self.commit_later(ino);
        }
        Ok(())
    }

    /// Save every changed item's incoming tree and record.
    pub fn save(&self) -> VResult<()> {
        let _one = self.save_lock.lock().expect("save lock");
        self.settle()?;
        let failures_before = self.vault.store().failures();
        let mut saved_dirs = Vec::new();
        let mut recs = Vec::new();
        let mut gens = Vec::new();
        let built = (|| -> VResult<()> {
            let mut st = self.lock();
            let items: Vec<(Arc<str>, u64)> =
                st.dirty.iter().map(|(k, v)| (k.clone(), *v)).collect();
            for (item, generation) in items {
                gens.push((item.clone(), generation));
                let Some(root) = st.roots.get(&*item).copied() else {
                    continue;
                };
                let (node, _) = self.save_node(&mut st, root, Vec::new(), &mut saved_dirs)?;
                let revision = st.revisions.get(&item).copied().unwrap_or(0) + 1;
                recs.push(IncomingRecord {
                    item: item.to_string(),
                    root: node,
                    saved_ns: now_ns(),
                    revision,
                });
            }
            Ok(())
        })();
        let result = built.and_then(|_| {
            if recs.is_empty() {
                return Ok(());
            }
            self.vault.save_incoming(recs.clone(), failures_before)
        });
        let mut st = self.lock();
        match result {
            Ok(()) => {
                for r in recs {
                    st.revisions.insert(r.item.as_str().into(), r.revision);
                }
                for (item, generation) in gens {
                    if st.dirty.get(&item) == Some(&generation) {
                        st.dirty.remove(&item);
                    }
                }
                Ok(())
            }
            Err(e) => {
                unsave(&mut st, &saved_dirs);
                Err(e)
            }
        }
    }

    /// The tree node of `ino` named `name`, saving its directory trees where they changed.
    fn save_node(
        &self,
        st: &mut State,
        ino: u64,
        name: Vec<u8>,
        saved_dirs: &mut Vec<u64>,
    ) -> VResult<(Node, Totals)> {
        let i = st
            .get(ino)
            .map_err(|_| VaultError::Internal("incoming inode vanished"))?;
        let mut node = Node {
            name,
            kind: i.kind,
            mode: i.mode,
            uid: i.uid,
            gid: i.gid,
            mtime_ns: i.mtime_ns,
            size: 0,
            chunks: Vec::new(),
            subtree: None,
            target: i.target.clone(),
            xattrs: i
                .xattrs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            link_group: if i.nlink > 1 { i.link_group } else { 0 },
            nlink: match &i.data {
                Data::Dir(d) => d.subdirs.map_or(1, |n| 2 + n),
                _ => i.nlink,
            },
            rdev: i.rdev,
            src_ino: 0,
            ctime_ns: i.ctime_ns,
        };
        let mut totals = Totals::default();
        match &i.data {
            Data::File(f) => {
                node.chunks = f.chunks.to_vec();
                node.size = f.committed_size;
                if f.uncommitted() {
                    // Still being written: the saved state has the last committed content, and
                    // a zero mtime so rsync's quick check sends the file again after a crash.
                    node.mtime_ns = 0;
                }
                totals.files = 1;
                totals.bytes = node.size;
            }
            Data::Other => totals.files = 1,
            Data::Dir(d) => {
                if let Some(id) = d.saved {
                    node.subtree = Some(id);
                    let mut cache = self.totals.lock().expect("totals lock");
                    totals = self.vault.totals(&Some(id), &mut cache)?;
                } else {
                    let children: Vec<(Vec<u8>, u64)> = d
                        .children
                        .as_ref()
                        .map(|c| c.iter().map(|(k, v)| (k.clone(), *v)).collect())
                        .unwrap_or_default();
                    let mut nodes = Vec::with_capacity(children.len());
                    totals.dirs = 1;
                    for (n, c) in children {
                        let (child, t) = self.save_node(st, c, n, saved_dirs)?;
                        nodes.push(child);
                        totals.add(t);
                    }
                    let id = tree::save(self.vault.store(), &Tree { nodes })?;
                    self.totals.lock().expect("totals lock").insert(id, totals);
                    if let Ok(i) = st.get_mut(ino)
                        && let Data::Dir(d) = &mut i.data
                    {
                        d.saved = Some(id);
                    }
                    saved_dirs.push(ino);
                    node.subtree = Some(id);
                }
            }
        }
        Ok((node, totals))
    }

    /// Stop the saver thread, store every staged file and save (unmount).
    pub fn shutdown(&self) -> VResult<()> {
        {
            let (lock, cv) = &self.stop;
            *lock.lock().expect("stop lock") = true;
            cv.notify_all();
        }
        self.commit_all(None).map_err(fs_to_vault)?;
        self.save()?;
        // Everything is stored: the staging directory is not needed until the next mount.
        let _ = std::fs::remove_dir(self.staging.dir());
        Ok(())
    }

    fn snapshot_item(&self, item: &str) -> VResult<PointRecord> {
        let _one = self.save_lock.lock().expect("save lock");
        // No change may land between storing the staged files and building the trees.
        let freeze = self.freeze.write().expect("freeze lock");
        let failures_before = self.vault.store().failures();
        self.commit_all(Some(item)).map_err(fs_to_vault)?;
        self.settle()?;
        // A file whose chunks were lost in a failed pack write is stored again.
        self.commit_all(Some(item)).map_err(fs_to_vault)?;
        let created_ns = now_ns();
        let mut saved_dirs = Vec::new();
        let (root, totals, revision, generation) = {
            let mut st = self.lock();
            let root = self
                .root_of(&mut st, item)
                .map_err(|_| VaultError::UnknownItem(item.into()))?;
            match self.save_node(&mut st, root, Vec::new(), &mut saved_dirs) {
                Ok((node, totals)) => {
                    let item: Arc<str> = item.into();
                    let rev = st.revisions.get(&item).copied().unwrap_or(0) + 1;
                    (node, totals, rev, st.dirty.get(&item).copied())
                }
                Err(e) => {
                    unsave(&mut st, &saved_dirs);
                    return Err(e);
                }
            }
        };
        drop(freeze);
        let rec = IncomingRecord {
            item: item.into(),
            root: root.clone(),
            saved_ns: created_ns,
            revision,
        };
        let result = self.vault.commit_point_with(
            item,
            created_ns,
            root,
            totals.as_tuple(),
            Some(rec),
            failures_before,
        );
        let mut st = self.lock();
        match &result {
            Ok(_) => {
                let item: Arc<str> = item.into();
                st.revisions.insert(item.clone(), revision);
                if st.dirty.get(&item).copied() == generation {
                    st.dirty.remove(&item);
                }
            }
            Err(_) => unsave(&mut st, &saved_dirs),
        }
        result
    }
}

impl LiveIncoming for Incoming {
    fn snapshot(&self, item: &str) -> VResult<PointRecord> {
        let p = self.snapshot_item(item)?;
        tracing::info!("snapshot of incoming/{item}: point {}", p.name);
        Ok(p)
    }

    fn save(&self) -> VResult<()> {
        Incoming::save(self)
    }
}

/// Trees saved by a save or snapshot that failed are not durable: forget their ids.
fn unsave(st: &mut State, dirs: &[u64]) {
    for ino in dirs {
        if let Ok(i) = st.get_mut(*ino)
            && let Data::Dir(d) = &mut i.data
        {
            d.saved = None;
        }
    }
}

fn fs_to_vault(e: FsError) -> VaultError {
    match e {
        FsError::Vault(v) => v,
        other => VaultError::errno("store staged files", super::errno::errno(&other).code()),
    }
}

const ACL_ACCESS: &[u8] = b"system.posix_acl_access";

/// The permission bits a POSIX access ACL (`system.posix_acl_access`, version 2) gives, and
/// whether it has entries beyond them (named users or groups, a mask).
fn acl_mode(v: &[u8]) -> Option<(u32, bool)> {
    const USER_OBJ: u16 = 0x01;
    const GROUP_OBJ: u16 = 0x04;
    const MASK: u16 = 0x10;
    const OTHER: u16 = 0x20;
    if v.len() < 4 || (v.len() - 4) % 8 != 0 || u32::from_le_bytes(v[..4].try_into().ok()?) != 2 {
        return None;
    }
    let (mut user, mut group, mut mask, mut other, mut extended) = (0, 0, None, 0, false);
    for e in v[4..].chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]) as u32 & 7;
        match tag {
            USER_OBJ => user = perm,
            GROUP_OBJ => group = perm,
            MASK => mask = Some(perm),
            OTHER => other = perm,
            _ => extended = true,
        }
    }
    let group = mask.unwrap_or(group);
    Some((user << 6 | group << 3 | other, extended || mask.is_some()))
}

fn no_space() -> FsError {
    FsError::Vault(VaultError::Store(StoreError::NoSpace(
        "the vault's filesystem".into(),
    )))
}

fn random_group() -> FsResult<u64> {
    let mut b = [0u8; 8];
    crate::keys::random_bytes(&mut b).map_err(|e| FsError::Vault(e.into()))?;
    Ok(u64::from_le_bytes(b) | 1)
}

/// Free bytes on the filesystem holding `dir`.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into a zeroed struct we own; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail * st.f_frsize)
}

/// Take closed files off the queue and store them, until the incoming trees are gone.
fn commit_worker(inc: Weak<Incoming>, rx: Arc<Mutex<std::sync::mpsc::Receiver<u64>>>) {
    use std::sync::mpsc::TryRecvError;
    loop {
        let queued = rx.lock().expect("commit queue lock").try_recv();
        let next = match queued {
            Ok(ino) => Ok(ino),
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => {
                // Let a few closed files gather: one wake-up per batch instead of per file
                // (context switches were most of the daemon's CPU during an rsync).
                std::thread::sleep(COMMIT_GATHER);
                rx.lock().expect("commit queue lock").recv()
            }
        };
        let Ok(ino) = next else { return };
        let Some(me) = inc.upgrade() else { return };
        if let Err(e) = me.commit(ino) {
            tracing::warn!("storing a closed incoming file failed: {e:?}");
        }
    }
}

/// Save changed incoming trees every few seconds until shut down.
fn saver_loop(inc: Weak<Incoming>) {
    loop {
        let Some(me) = inc.upgrade() else { return };
        {
            let (lock, cv) = &me.stop;
            let stopped = lock.lock().expect("stop lock");
            let (stopped, _) = cv
                .wait_timeout_while(stopped, save_every(), |s| !*s)
                .expect("stop lock");
            if *stopped {
                return;
            }
        }
        let dirty = !me.lock().dirty.is_empty();
        if dirty && let Err(e) = me.save() {
            tracing::warn!("saving incoming failed (will retry): {e}");
        }
        drop(me);
    }
}
