//! The read-only side of the view: the listings above the points (root, `points/`, `.deleted/`,
//! item directories, `latest`) and the recovery points themselves, their attributes, listings,
//! reads and the one change these areas accept (moving a point between `points/ITEM/` and
//! `.deleted/ITEM/`).
//!
//! Trees are loaded on first use and kept in a bounded cache; file data goes through the
//! bounded chunk cache with read-ahead on sequential reads, and small files are pushed into the
//! door's page cache ahead of their readers.
//!
//! Modules: `inodes` (numbers and the table of inodes the door knows), `resolve` (names to
//! entries), `trees` (the tree cache), `attrs`, `listing`, `read` (reads, read-ahead and
//! pushes), `xattrs`, `delete` (soft delete by moving a point).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use super::cache::WeightedCache;
use super::chunks::ChunkCache;
use super::error::{ViewError, ViewResult};
use super::ino::{DELETED, INCOMING, POINTS, VERSIONS};
use super::kernel::Kernel;
use super::pool::Pool;
use super::types::StatFs;
use crate::vault::Vault;
use inodes::{Area, Entry, InodeTable, PointCtx};
use read::OpenFile;
use trees::TreeCache;

mod attrs;
mod delete;
pub mod inodes;
mod listing;
mod read;
mod resolve;
mod trees;
mod versions;
mod xattrs;

/// Threads fetching ahead.
const PREFETCH_THREADS: usize = 2;

/// Files read without a handle whose chunk lists are kept between reads.
const UNOPENED_FILES_MAX: std::num::NonZeroUsize = std::num::NonZeroUsize::new(256).unwrap();

pub struct Points {
    vault: Arc<Vault>,
    inodes: Arc<InodeTable>,
    trees: Arc<TreeCache>,
    /// The bits of [`LABEL_XATTRS`] some loaded tree carried.
    labels_seen: Arc<AtomicU8>,
    chunks: Arc<ChunkCache>,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    /// Files read without a handle, by inode (see `read::file_of`).
    unopened: Mutex<lru::LruCache<u64, Arc<OpenFile>>>,
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
    /// Built `versions/` listings, and the count of catalog changes that keys them.
    histories: versions::HistoryCache,
    catalog_generation: AtomicU64,
    /// The live points of the item whose history was built last, with their generation.
    history_points: versions::PointList,
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
            unopened: Mutex::new(lru::LruCache::new(UNOPENED_FILES_MAX)),
            next_handle: AtomicU64::new(1),
            prefetcher,
            mounted_at: SystemTime::now(),
            listings_changed_ns: AtomicI64::new(0),
            usage: Mutex::new(None),
            kernel,
            histories: WeightedCache::new(versions::HISTORY_CACHE_BYTES),
            catalog_generation: AtomicU64::new(0),
            history_points: Mutex::new(None),
        })
    }

    fn entry(&self, ino: u64) -> ViewResult<Entry> {
        self.inodes.get(ino).ok_or(ViewError::NotFound)
    }

    /// An item's records changed (a point made, deleted, undeleted or purged, an item made or
    /// removed): returns the directories whose listings are now stale, and moves their mtime.
    pub fn catalog_changed(&self, item: &str) -> [u64; 7] {
        self.listings_changed_ns
            .fetch_max(crate::vault::now_ns(), Ordering::Relaxed);
        self.catalog_generation.fetch_add(1, Ordering::Relaxed);
        [
            POINTS,
            DELETED,
            INCOMING,
            VERSIONS,
            inodes::item_dir_ino(Area::Points, item),
            inodes::item_dir_ino(Area::Deleted, item),
            Self::versions_ino(item, b""),
        ]
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

fn point_of(entry: &Entry) -> Option<&Arc<PointCtx>> {
    match entry {
        Entry::PointDir { point } | Entry::Node { point, .. } => Some(point),
        _ => None,
    }
}
