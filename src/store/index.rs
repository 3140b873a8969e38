//! The sled database: opening it, and the blob index (blob id → pack location).
//!
//! This module and `vault::catalog` are the only code that touches sled, so the engine stays
//! replaceable. sled is a cache of what the packs say: `repair` rebuilds it from packs alone.
//! Writes are single inserts (sled's large batches hold memory they never return, see DESIGN.md).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::backend::local::durable;
use super::backend::{Durable, Observer};
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
    dir: Arc<PathBuf>,
    observer: Option<Arc<dyn Observer>>,
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
        if dir.exists() {
            return Err(StoreError::Index {
                dir: dir.to_path_buf(),
                problem: IndexProblem::Exists,
            });
        }
        let db = Self::open_raw(dir, None)?;
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
        // sled 0.34 panics on some kinds of damage instead of returning an error.
        match catch_unwind(AssertUnwindSafe(|| cfg.open())) {
            Ok(Ok(db)) => Ok(Db {
                db,
                dir: Arc::new(dir.to_path_buf()),
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

    /// A named tree of the database, for the catalog.
    pub fn tree(&self, name: &str) -> Result<Tree> {
        Ok(Tree {
            tree: self.db.open_tree(name).map_err(|e| self.err(e))?,
            dir: self.dir.clone(),
        })
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

/// One named tree of the database: ordered byte keys to byte values. The catalog's handle on
/// the engine; its errors come back as store errors.
#[derive(Clone)]
pub struct Tree {
    tree: sled::Tree,
    dir: Arc<PathBuf>,
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
