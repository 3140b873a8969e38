//! The sled database: opening it, and the blob index (blob id → pack location).
//!
//! This module and `vault::catalog` are the only code that touches sled, so the engine stays
//! replaceable. sled is a cache of what the packs say: `repair` rebuilds it from packs alone.
//! Writes are single inserts (sled's large batches hold memory they never return, see DESIGN.md).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use super::pack::PackEntry;
use super::{BlobId, BlobKind, PackId, Result, StoreError};

/// Key in the default tree that ties a database to its vault.
const MARKER_KEY: &[u8] = b"vaultfs-index-v1";
const VALUE_BYTES: usize = 25;
/// sled's page cache. With 1M blobs, 16 MiB keeps a backup under 300 MiB (scripts/bench.sh).
const SLED_CACHE_BYTES: u64 = 16 << 20;

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
}

fn sled_err(e: sled::Error) -> StoreError {
    StoreError::Index(e.to_string())
}

impl Db {
    /// Create a new, empty database for vault `vault_id` at `dir` (which must not exist).
    pub fn create(dir: &Path, vault_id: &[u8]) -> Result<Db> {
        if dir.exists() {
            return Err(StoreError::Index(format!(
                "{} already exists",
                dir.display()
            )));
        }
        let db = Self::open_raw(dir)?;
        db.db.insert(MARKER_KEY, vault_id).map_err(sled_err)?;
        db.flush()?;
        Ok(db)
    }

    /// Open the database of vault `vault_id`; a missing or foreign database is an error that
    /// points the user at `repair`.
    pub fn open(dir: &Path, vault_id: &[u8]) -> Result<Db> {
        if !dir.is_dir() {
            return Err(StoreError::Index(format!(
                "the index {} is missing; run `vaultfs repair` to rebuild it from the packs",
                dir.display()
            )));
        }
        let db = Self::open_raw(dir)?;
        let marker = db.db.get(MARKER_KEY).map_err(sled_err)?;
        if marker.as_deref() != Some(vault_id) {
            return Err(StoreError::Index(format!(
                "the index {} is damaged or belongs to another vault; run `vaultfs repair`",
                dir.display()
            )));
        }
        Ok(db)
    }

    fn open_raw(dir: &Path) -> Result<Db> {
        let cfg = sled::Config::new()
            .path(dir)
            .cache_capacity(SLED_CACHE_BYTES)
            .flush_every_ms(Some(1000));
        // sled 0.34 panics on some kinds of damage instead of returning an error.
        match catch_unwind(AssertUnwindSafe(|| cfg.open())) {
            Ok(Ok(db)) => Ok(Db { db }),
            Ok(Err(e)) => Err(StoreError::Index(format!(
                "cannot open the index {}: {e}; if it is damaged, run `vaultfs repair`",
                dir.display()
            ))),
            Err(_) => Err(StoreError::Index(format!(
                "the index {} is damaged (sled could not read it); run `vaultfs repair`",
                dir.display()
            ))),
        }
    }

    /// A named sled tree, for the catalog.
    pub fn tree(&self, name: &str) -> Result<sled::Tree> {
        self.db.open_tree(name).map_err(sled_err)
    }

    /// Make every earlier write durable (sled fsyncs).
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(sled_err)
    }

    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// Blob id → location.
pub struct Index {
    tree: sled::Tree,
}

impl Index {
    pub fn open(db: &Db) -> Result<Index> {
        Ok(Index {
            tree: db.tree("blobs")?,
        })
    }

    pub fn get(&self, id: &BlobId) -> Result<Option<Location>> {
        let Some(v) = self.tree.get(id.0).map_err(sled_err)? else {
            return Ok(None);
        };
        decode(&v)
            .map(Some)
            .ok_or_else(|| StoreError::Index(format!("index entry of {id} is damaged")))
    }

    pub fn contains(&self, id: &BlobId) -> Result<bool> {
        self.tree.contains_key(id.0).map_err(sled_err)
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
            self.tree
                .insert(e.id.0, &encode(&loc)[..])
                .map_err(sled_err)?;
        }
        Ok(())
    }

    /// Forget a blob (gc, once nothing refers to it).
    pub fn remove(&self, id: &BlobId) -> Result<()> {
        self.tree.remove(id.0).map_err(sled_err)?;
        Ok(())
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
            let (k, v) = r.map_err(sled_err)?;
            let id = BlobId(
                k.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::Index("index key length".into()))?,
            );
            let loc = decode(&v)
                .ok_or_else(|| StoreError::Index(format!("index entry of {id} is damaged")))?;
            Ok((id, loc))
        })
    }
}

fn encode(loc: &Location) -> [u8; VALUE_BYTES] {
    let mut v = [0u8; VALUE_BYTES];
    v[..16].copy_from_slice(&loc.pack.0);
    v[16..20].copy_from_slice(&loc.offset.to_le_bytes());
    v[20..24].copy_from_slice(&loc.len.to_le_bytes());
    v[24] = loc.kind as u8;
    v
}

fn decode(v: &[u8]) -> Option<Location> {
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
