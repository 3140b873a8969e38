//! A secondary copy, from the reading side: opening it read-only to browse or restore from
//! (it works with the primary gone entirely), and how far it lags behind its primary.
//!
//! A secondary has no index of its own (`replicate` copies objects only): reading it builds
//! one, from its packs alone as `repair` does, in a directory of this machine's cache
//! (`Location::replica_dir`), and keeps it while the secondary's list of packs is unchanged
//! (a fingerprint of ids and sizes is stored beside it). The backend refuses every write.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::format::{self, MetaRecord};
use crate::keys::MasterKey;
use crate::store::backend::local::LocalBackend;
use crate::store::backend::readonly::ReadOnly;
use crate::store::backend::{Backend, Key, Kind};
use crate::store::codec::Codec;
use crate::store::index::Db;
use crate::store::{BlobKind, PackId};

use super::config::{open_data_keys, open_params, vault_id_bytes};
use super::location::Location;
use super::{INDEX_DIR, Result, Unlocked, Vault, VaultError};

const FINGERPRINT_FILE: &str = "packs.fingerprint";

/// Open the secondary at `target` read-only, with `key` (see the module doc).
pub fn open(target: &Location, cache_root: &Path, key: MasterKey) -> Result<Vault> {
    let inner = target.backend(None)?;
    let loaded = Vault::load_config(target, inner.as_ref())?;
    let config = loaded.config;
    let dir = target.replica_dir(&config.vault_id, cache_root);
    std::fs::create_dir_all(&dir).map_err(|e| VaultError::io("create", &dir, e))?;
    if let Location::S3(s3) = target {
        // So its mount's source (this directory) leads back to the secondary.
        s3.prepare_local_dir(&dir)?;
    }
    // Only the local index is locked: one process at a time may use it.
    let lock = LocalBackend::new(&dir).lock()?;
    let params = open_params(&config, &key)?;
    let epochs = open_data_keys(&config, &key)?;
    let codec = Codec::new(key.derive_with(&epochs), params.zstd_level);
    let fingerprint = fingerprint(inner.as_ref())?;
    let backend: Arc<dyn Backend> = Arc::new(ReadOnly::new(inner, target.display()));
    let vault_id = vault_id_bytes(&config)?;
    let u = Unlocked {
        location: target.clone(),
        local_dir: dir.clone(),
        index_stale: false,
        config,
        config_bytes: loaded.bytes,
        master: key,
        notes: Vec::new(),
        lock,
        codec,
        params,
        backend,
        observer: None,
    };
    let index = dir.join(INDEX_DIR);
    let stamp = dir.join(FINGERPRINT_FILE);
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(fingerprint.as_str())
        && let Ok(db) = Db::open(&index, &vault_id, None)
    {
        return Vault::assemble(u, db);
    }
    let _ = std::fs::remove_file(&stamp);
    if index.exists() {
        std::fs::remove_dir_all(&index).map_err(|e| VaultError::io("remove", &index, e))?;
    }
    let (vault, report) = super::repair::rebuild(u, false, true)?;
    for n in &report.notes {
        tracing::warn!("replica {}: {n}", target.display());
    }
    let vault = vault.ok_or(VaultError::Internal("repair built no vault"))?;
    std::fs::write(&stamp, &fingerprint).map_err(|e| VaultError::io("write", &stamp, e))?;
    Ok(vault)
}

/// Ids and sizes of every pack, hashed.
fn fingerprint(backend: &dyn Backend) -> Result<String> {
    let mut packs: Vec<(String, u64)> = backend
        .list(Kind::Pack)?
        .into_iter()
        .map(|o| (o.key.name(), o.size))
        .collect();
    packs.sort();
    let mut h = blake3::Hasher::new();
    for (name, size) in packs {
        h.update(name.as_bytes());
        h.update(&size.to_le_bytes());
    }
    Ok(h.finalize().to_hex().to_string())
}

/// How far one item's copy on the secondary is behind the primary.
#[derive(Debug, Clone, Serialize)]
pub struct ItemLag {
    pub item: String,
    /// The primary's newest live point.
    pub primary_newest: Option<String>,
    /// The newest of those points that the secondary holds.
    pub replica_newest: Option<String>,
    /// Creation time of the first minus that of the second, in seconds: 0 when up to date;
    /// `None` when the secondary holds none of the item's points.
    pub lag_seconds: Option<i64>,
    /// Live points of the primary the secondary does not hold yet.
    pub points_missing: u64,
}

/// The lag of the secondary at `target` behind `vault`, per item, from the primary's catalog
/// and a listing of the secondary: a point is on the secondary when the pack holding its
/// record is (records are copied after the data they name). The future `status` command
/// calls this too.
pub fn lag(vault: &Vault, target: &Location) -> Result<Vec<ItemLag>> {
    let dest = target.backend(None)?;
    let there: HashSet<PackId> = match super::config::read_from(dest.as_ref(), target) {
        Ok(c) if c.vault_id == vault.vault_id() => dest
            .list(Kind::Pack)?
            .into_iter()
            .filter_map(|o| match o.key {
                Key::Pack(p) => Some(p),
                Key::Config | Key::ConfigCopy | Key::Audit(_) => None,
            })
            .collect(),
        Ok(_) | Err(VaultError::NotAVault(..)) => HashSet::new(),
        Err(e) => return Err(e),
    };
    let store = vault.store();
    let mut out = Vec::new();
    for it in vault.items()? {
        let points = vault.points(Some(&it.name), false)?;
        let mut replica_newest = None;
        let mut missing = 0;
        for p in &points {
            let record = format::encode(&MetaRecord::Point(Box::new(p.clone())));
            let id = store.blob_id(BlobKind::Meta, &record);
            let held = store
                .index()
                .get(&id)?
                .is_some_and(|loc| there.contains(&loc.pack));
            if held {
                replica_newest = Some(p);
            } else {
                missing += 1;
            }
        }
        let newest = points.last();
        let lag_seconds = match (newest, replica_newest) {
            (None, _) => Some(0),
            (Some(n), Some(r)) => Some((n.created_ns - r.created_ns) / 1_000_000_000),
            (Some(_), None) => None,
        };
        out.push(ItemLag {
            item: it.name.clone(),
            primary_newest: newest.map(|p| p.name.clone()),
            replica_newest: replica_newest.map(|p| p.name.clone()),
            lag_seconds,
            points_missing: missing,
        });
    }
    Ok(out)
}
