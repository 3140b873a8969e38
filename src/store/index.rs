//! The sled database: opening it, and the blob index (blob id → pack location).
//!
//! This module and `vault::catalog` are the only code that touches sled, so the engine stays
//! replaceable. sled is a cache of what the packs say: `repair` rebuilds it from packs alone.
//! Writes are single inserts (sled's large batches hold memory they never return, see DESIGN.md).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::backend::local::{durable, observe, sync_dir};
use super::backend::{Change, Durable, Observer};
use super::pack::PackEntry;
use super::{BlobId, BlobKind, Damaged, IndexProblem, PackId, Result, StoreError};

/// Key in the default tree that ties a database to its vault.
const MARKER_KEY: &[u8] = b"vaultfs-index-v1";
pub const VALUE_BYTES: usize = 25;
/// sled's page cache. With 1M blobs, 16 MiB keeps a backup under 300 MiB (scripts/bench.sh).
const SLED_CACHE_BYTES: u64 = 16 << 20;
/// The log target of the engine, which `main` silences: a damaged database is reported as
/// one error line by vaultfs, not by the engine's own log.
pub const ENGINE_LOG_TARGET: &str = "sled";

/// Where the index says a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub pack: PackId,
    pub offset: u32,
    pub len: u32,
    pub kind: BlobKind,
}

/// The open sled database of a vault.
#[derive(Clone)]
pub struct Db {
    db: sled::Db,
    // After `db`: dropped after it (see `DbDir`).
    dir: Arc<DbDir>,
    observer: Option<Arc<dyn Observer>>,
}

/// The directory of an open database, shared by its handles. When the last handle is gone the
/// engine may still be writing from its own threads, holding the lock on its files; dropping
/// this waits (five seconds at most: on a loaded machine they lag) until that lock is free, so
/// whoever opens the database next, such as a command started right after in another process,
/// is not refused. The file the engine locks is `db`, identified by device and inode: after a rename of the
/// directory (repair swaps databases) the path may name another database's.
struct DbDir(PathBuf, Option<(u64, u64)>);

impl DbDir {
    fn new(dir: &Path) -> DbDir {
        use std::os::unix::fs::MetadataExt;
        let id = std::fs::metadata(dir.join("db")).ok();
        DbDir(dir.to_path_buf(), id.map(|m| (m.dev(), m.ino())))
    }
}

impl std::ops::Deref for DbDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for DbDir {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::MetadataExt;
        let Ok(file) = std::fs::File::open(self.0.join("db")) else {
            return;
        };
        let id = file.metadata().ok().map(|m| (m.dev(), m.ino()));
        if id.is_none() || id != self.1 {
            return;
        }
        for _ in 0..2500 {
            // SAFETY: flock(2) on a descriptor this function owns; closing it releases the lock.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

/// The store error for a failed engine call on the database at `dir`: I/O keeps its errno,
/// damage is damage.
fn engine_err(dir: &Path, e: sled::Error) -> StoreError {
    match e {
        sled::Error::Io(io) => StoreError::io("index", dir, io),
        sled::Error::Corruption { .. } => StoreError::corrupt(
            Damaged::Index(dir.to_path_buf()),
            "is damaged; run `vaultfs repair`",
        ),
        other => StoreError::Engine(other.to_string()),
    }
}

impl Db {
    /// Create a new, empty database for vault `vault_id` at `dir` (which must not exist).
    pub fn create(dir: &Path, vault_id: &[u8]) -> Result<Db> {
        Self::create_observed(dir, vault_id, None)
    }

    /// [`Db::create`], with `observer` told of the new directory and of each flush.
    pub fn create_observed(
        dir: &Path,
        vault_id: &[u8],
        observer: Option<Arc<dyn Observer>>,
    ) -> Result<Db> {
        if dir.exists() {
            return Err(StoreError::Index {
                dir: dir.to_path_buf(),
                problem: IndexProblem::Exists,
            });
        }
        observe(&observer, Change::MakeDir(dir)).map_err(|e| StoreError::io("create", dir, e))?;
        let db = Self::open_raw(dir, observer)?;
        db.db.insert(MARKER_KEY, vault_id).map_err(|e| db.err(e))?;
        db.flush()?;
        Ok(db)
    }

    /// Open the database of vault `vault_id`; a missing or foreign database is an error that
    /// points the user at `repair`. `observer` (fault injection) sees each flush.
    pub fn open(dir: &Path, vault_id: &[u8], observer: Option<Arc<dyn Observer>>) -> Result<Db> {
        if !dir.is_dir() {
            return Err(StoreError::Index {
                dir: dir.to_path_buf(),
                problem: IndexProblem::Missing,
            });
        }
        let db = Self::open_raw(dir, observer)?;
        let marker = db.db.get(MARKER_KEY).map_err(|e| db.err(e))?;
        if marker.as_deref() != Some(vault_id) {
            return Err(StoreError::Index {
                dir: dir.to_path_buf(),
                problem: IndexProblem::NotThisVault,
            });
        }
        Ok(db)
    }

    fn open_raw(dir: &Path, observer: Option<Arc<dyn Observer>>) -> Result<Db> {
        // An observer that models durability (a simulated power cut) needs every durable write
        // to be one of our flushes.
        let timed = observer.as_ref().is_none_or(|o| o.timed_index_flushes());
        let flush_every_ms = timed.then_some(1000);
        let cfg = sled::Config::new()
            .path(dir)
            .cache_capacity(SLED_CACHE_BYTES)
            .flush_every_ms(flush_every_ms);
        remove_unfinished_snapshots(dir);
        // sled 0.34 panics on some kinds of damage instead of returning an error.
        let opened = quietly(|| cfg.open());
        if !matches!(opened, Ok(Ok(_))) {
            // An open that failed (a full disk, say) must not leave a file that fails the next.
            remove_unfinished_snapshots(dir);
        }
        match opened {
            Ok(Ok(db)) => Ok(Db {
                db,
                dir: Arc::new(DbDir::new(dir)),
                observer,
            }),
            Ok(Err(sled::Error::Io(e))) => Err(StoreError::io("open the index", dir, e)),
            // Anything else at open means its files do not read as a database.
            Ok(Err(e)) => Err(StoreError::corrupt(
                Damaged::Index(dir.to_path_buf()),
                format!("is damaged ({e}); run `vaultfs repair`"),
            )),
            Err(_) => Err(StoreError::corrupt(
                Damaged::Index(dir.to_path_buf()),
                "is damaged (the database engine could not read it); run `vaultfs repair`",
            )),
        }
    }

    fn err(&self, e: sled::Error) -> StoreError {
        engine_err(&self.dir, e)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A named tree of the database, for the catalog.
    pub fn tree(&self, name: &str) -> Result<Tree> {
        Ok(Tree {
            tree: self.db.open_tree(name).map_err(|e| self.err(e))?,
            dir: self.dir.clone(),
        })
    }

    /// A named tree if the database has it (opening one that does not exist would write).
    pub fn tree_if_exists(&self, name: &str) -> Result<Option<Tree>> {
        if self
            .db
            .tree_names()
            .iter()
            .any(|n| n.as_ref() == name.as_bytes())
        {
            self.tree(name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Make every earlier write durable (sled fsyncs).
    pub fn flush(&self) -> Result<()> {
        durable(&self.observer, Durable::Index(&self.dir), || {
            self.db.flush().map(|_| ()).map_err(|e| self.err(e))
        })
    }

    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// Run `f`, turning a panic (sled 0.34 panics on some kinds of damage) into an `Err` without
/// the process's panic hook printing it: the caller reports the damage as one error. Only this
/// thread is quiet meanwhile: a panic elsewhere is still reported (swapping the process's hook
/// for a silent one hid other threads' panics, a test's failure among them).
pub fn quietly<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    thread_local! {
        static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                hook(info)
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let out = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    out
}

/// sled writes a snapshot at open to `snap.N.generating`, then renames it to `snap.N`; its
/// reader takes the newest name, `.generating` included. A write cut short (a full disk, a
/// crash) leaves a short `.generating` file that makes every later open fail as damaged. The
/// file is only ever complete once renamed, so an unrenamed one is removed (the older snapshot
/// and the log it starts from are still there: sled removes them only after the rename).
fn remove_unfinished_snapshots(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Put the database built at `new` in the place of the one at `dir` (if any), which is kept at
/// `prev` (a database there before is removed): one atomic exchange, then a rename, then the
/// parent directory fsynced. A crash leaves `dir` either the old or the new database, never
/// none. Returns where the old one was kept. Every database must be closed.
pub fn replace(
    dir: &Path,
    new: &Path,
    prev: &Path,
    observer: &Option<Arc<dyn Observer>>,
) -> Result<Option<PathBuf>> {
    let parent = dir.parent().expect("an index directory has a parent");
    remove_dir(prev, observer)?;
    let kept = if dir.exists() {
        observe(observer, Change::Exchange { a: new, b: dir })
            .and_then(|()| exchange(new, dir))
            .map_err(|e| StoreError::io("exchange", dir, e))?;
        observe(
            observer,
            Change::Rename {
                from: new,
                to: prev,
            },
        )
        .and_then(|()| std::fs::rename(new, prev))
        .map_err(|e| StoreError::io("rename", new, e))?;
        Some(prev.to_path_buf())
    } else {
        observe(observer, Change::Rename { from: new, to: dir })
            .and_then(|()| std::fs::rename(new, dir))
            .map_err(|e| StoreError::io("rename", new, e))?;
        None
    };
    sync_dir(observer, parent)?;
    Ok(kept)
}

/// Remove a database directory (a leftover, or the one kept before) if it is there.
pub fn remove_dir(dir: &Path, observer: &Option<Arc<dyn Observer>>) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    observe(observer, Change::RemoveDir(dir))
        .and_then(|()| std::fs::remove_dir_all(dir))
        .map_err(|e| StoreError::io("remove", dir, e))
}

/// Swap two directory entries atomically (`renameat2(RENAME_EXCHANGE)`); where the filesystem
/// cannot, two renames through a temporary name.
pub(crate) fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: two valid NUL-terminated paths relative to the working directory.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if !matches!(err.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
        return Err(err);
    }
    let tmp = a.with_extension("exchange");
    std::fs::rename(b, &tmp)?;
    std::fs::rename(a, b)?;
    std::fs::rename(&tmp, a)
}

/// One named tree of the database: ordered byte keys to byte values. The catalog's handle on
/// the engine; its errors come back as store errors.
#[derive(Clone)]
pub struct Tree {
    tree: sled::Tree,
    dir: Arc<DbDir>,
}

/// Key and value bytes, as the engine hands them out.
pub type Bytes = sled::IVec;

impl Tree {
    fn err(&self, e: sled::Error) -> StoreError {
        engine_err(&self.dir, e)
    }

    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        self.tree.get(key).map_err(|e| self.err(e))
    }

    pub fn contains(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        self.tree.contains_key(key).map_err(|e| self.err(e))
    }

    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.tree
            .insert(key.as_ref(), value.as_ref())
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<()> {
        self.tree.remove(key).map(|_| ()).map_err(|e| self.err(e))
    }

    pub fn clear(&self) -> Result<()> {
        self.tree.clear().map_err(|e| self.err(e))
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The entry with the greatest key.
    pub fn last(&self) -> Result<Option<(Bytes, Bytes)>> {
        self.tree.last().map_err(|e| self.err(e))
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = Result<(Bytes, Bytes)>> + '_ {
        self.tree.iter().map(|r| r.map_err(|e| self.err(e)))
    }

    /// Entries whose key starts with `prefix`, in key order.
    pub fn scan_prefix(
        &self,
        prefix: impl AsRef<[u8]>,
    ) -> impl Iterator<Item = Result<(Bytes, Bytes)>> + '_ {
        self.tree
            .scan_prefix(prefix)
            .map(|r| r.map_err(|e| self.err(e)))
    }
}

/// Blob id → location.
pub struct Index {
    tree: Tree,
}

impl Index {
    pub fn open(db: &Db) -> Result<Index> {
        Ok(Index {
            tree: db.tree("blobs")?,
        })
    }

    pub fn get(&self, id: &BlobId) -> Result<Option<Location>> {
        let Some(v) = self.tree.get(id.0)? else {
            return Ok(None);
        };
        decode(&v).map(Some).ok_or_else(|| damaged_entry(id))
    }

    pub fn contains(&self, id: &BlobId) -> Result<bool> {
        self.tree.contains(id.0)
    }

    /// Record the blobs of a durable pack.
    pub fn insert_pack(&self, pack: PackId, entries: &[PackEntry]) -> Result<()> {
        for e in entries {
            let loc = Location {
                pack,
                offset: e.offset,
                len: e.len,
                kind: e.kind,
            };
            self.tree.insert(e.id.0, encode(&loc))?;
        }
        Ok(())
    }

    /// Forget a blob (gc, once nothing refers to it).
    pub fn remove(&self, id: &BlobId) -> Result<()> {
        self.tree.remove(id.0)
    }

    pub fn len(&self) -> usize {
        self.tree.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Every entry, in id order. Damaged entries are yielded as errors.
    pub fn iter(&self) -> impl Iterator<Item = Result<(BlobId, Location)>> + '_ {
        self.tree.iter().map(|r| {
            let (k, v) = r?;
            let id = BlobId(k.as_ref().try_into().map_err(|_| {
                StoreError::corrupt(
                    Damaged::Index(self.tree.dir.to_path_buf()),
                    format!("has a key of {} bytes in its blob index", k.len()),
                )
            })?);
            let loc = decode(&v).ok_or_else(|| damaged_entry(&id))?;
            Ok((id, loc))
        })
    }
}

fn damaged_entry(id: &BlobId) -> StoreError {
    StoreError::corrupt(Damaged::IndexEntry(*id), "is damaged; run `vaultfs repair`")
}

/// An index value: pack id (16) ‖ offset u32 LE ‖ length u32 LE ‖ kind u8.
pub fn encode(loc: &Location) -> [u8; VALUE_BYTES] {
    let mut v = [0u8; VALUE_BYTES];
    v[..16].copy_from_slice(&loc.pack.0);
    v[16..20].copy_from_slice(&loc.offset.to_le_bytes());
    v[20..24].copy_from_slice(&loc.len.to_le_bytes());
    v[24] = loc.kind as u8;
    v
}

pub fn decode(v: &[u8]) -> Option<Location> {
    if v.len() != VALUE_BYTES {
        return None;
    }
    Some(Location {
        pack: PackId(v[..16].try_into().ok()?),
        offset: u32::from_le_bytes(v[16..20].try_into().ok()?),
        len: u32::from_le_bytes(v[20..24].try_into().ok()?),
        kind: BlobKind::from_u8(v[24])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot the engine began to write at open and could not finish (a full disk) leaves
    /// `snap.N.generating`; the next open must not take it for the newest snapshot.
    #[test]
    fn an_unfinished_snapshot_file_does_not_fail_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index");
        let db = Db::create(&path, b"vault").unwrap();
        db.tree("t").unwrap().insert(b"k", b"v").unwrap();
        db.flush().unwrap();
        drop(db);
        let snaps: Vec<String> = std::fs::read_dir(&path)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("snap."))
            .collect();
        // Newer than any snapshot there: the engine's reader would pick it.
        std::fs::write(path.join("snap.FFFFFFFFFFFFFFFF.generating"), b"").unwrap();
        let db = Db::open(&path, b"vault", None).unwrap();
        assert_eq!(
            db.tree("t").unwrap().get(b"k").unwrap().as_deref(),
            Some(&b"v"[..])
        );
        assert!(
            !path.join("snap.FFFFFFFFFFFFFFFF.generating").exists(),
            "{snaps:?}"
        );
    }
}
