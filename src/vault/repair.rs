//! `repair`: rebuild the index database (index and catalog) from the packs alone.
//!
//! The old database is moved aside first and deleted only after the new one is flushed, so an
//! interrupted repair can simply be run again. Unreadable packs are reported and skipped.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use crate::format::{self, IncomingRecord, ItemRecord, MetaRecord, PointRecord, PolicyRecord};
use crate::store::index::{Db, Location};
use crate::store::{BlobKind, Damaged};

use super::config::vault_id_bytes;
use super::{INDEX_DIR, Location, Result, Vault, VaultError, now_ns};

#[derive(Debug, Default)]
pub struct RepairReport {
    pub packs: u64,
    pub blobs: u64,
    pub items: u64,
    pub points: u64,
    pub errors: Vec<String>,
}

pub fn repair(dir: &Path, passphrase: &[u8]) -> Result<(Vault, RepairReport)> {
    repair_at(&Location::Local(dir.to_path_buf()), passphrase)
}

/// [`repair`] of a vault anywhere: an S3 vault's index is rebuilt in its cache directory
/// from the bucket alone.
pub fn repair_at(location: &Location, passphrase: &[u8]) -> Result<(Vault, RepairReport)> {
    let unlocked = Vault::unlock(location, super::Secret::Passphrase(passphrase), None)?;
    rebuild(unlocked)
}

/// Rebuild the index database in the unlocked vault's local directory from its packs.
pub(crate) fn rebuild(unlocked: super::Unlocked) -> Result<(Vault, RepairReport)> {
    let vault_id = vault_id_bytes(&unlocked.config)?;
    let dir = unlocked.local_dir.clone();
    let index_dir = dir.join(INDEX_DIR);
    let aside = dir.join(format!("{INDEX_DIR}.old-{}", now_ns()));
    if index_dir.exists() {
        fs::rename(&index_dir, &aside).map_err(|e| VaultError::io("rename", &index_dir, e))?;
    }
    let db = Db::create(&index_dir, &vault_id)?;
    let vault = Vault::assemble(unlocked, db)?;
    let store = vault.store();
    let mut report = RepairReport::default();
    let mut items: HashMap<String, ItemRecord> = HashMap::new();
    let mut points: HashMap<(String, String), PointRecord> = HashMap::new();
    let mut incoming: HashMap<String, IncomingRecord> = HashMap::new();
    let mut policies: HashMap<String, PolicyRecord> = HashMap::new();
    for pack in store.list_packs()? {
        let entries = match store.read_pack_header(&pack) {
            Ok(e) => e,
            Err(e) => {
                report.errors.push(format!("{e}; its blobs are lost"));
                continue;
            }
        };
        report.packs += 1;
        report.blobs += entries.len() as u64;
        store.index().insert_pack(pack, &entries)?;
        for e in entries.iter().filter(|e| e.kind == BlobKind::Meta) {
            let loc = Location {
                pack,
                offset: e.offset,
                len: e.len,
                kind: e.kind,
            };
            let rec = store
                .get_at(&e.id, &loc)
                .map_err(VaultError::from)
                .and_then(|plain| {
                    format::decode::<MetaRecord>(&plain, "meta record")
                        .map_err(|err| VaultError::corrupt(Damaged::Content(e.id), err.to_string()))
                });
            match rec {
                Ok(MetaRecord::Item(it)) => {
                    if items
                        .get(&it.name)
                        .is_none_or(|old| old.revision < it.revision)
                    {
                        items.insert(it.name.clone(), it);
                    }
                }
                Ok(MetaRecord::Point(p)) => {
                    let key = (p.item.clone(), p.name.clone());
                    if points.get(&key).is_none_or(|old| old.revision < p.revision) {
                        points.insert(key, *p);
                    }
                }
                Ok(MetaRecord::Incoming(i)) => {
                    if incoming
                        .get(&i.item)
                        .is_none_or(|old| old.revision < i.revision)
                    {
                        incoming.insert(i.item.clone(), *i);
                    }
                }
                Ok(MetaRecord::Policy(p)) => {
                    if policies
                        .get(&p.item)
                        .is_none_or(|old| old.revision < p.revision)
                    {
                        policies.insert(p.item.clone(), p);
                    }
                }
                Err(err) => report.errors.push(format!("meta record: {err}")),
            }
        }
    }
    let catalog = &vault.catalog;
    for p in points.values() {
        items.entry(p.item.clone()).or_insert_with(|| ItemRecord {
            name: p.item.clone(),
            created_ns: p.created_ns,
            revision: 0,
        });
        catalog.put_point(store.codec(), p)?;
    }
    for i in incoming.values() {
        items.entry(i.item.clone()).or_insert_with(|| ItemRecord {
            name: i.item.clone(),
            created_ns: i.saved_ns,
            revision: 0,
        });
        catalog.put_incoming(store.codec(), i)?;
    }
    for p in policies.values().filter(|p| items.contains_key(&p.item)) {
        catalog.put_policy(store.codec(), p)?;
    }
    for it in items.values() {
        catalog.put_item(store.codec(), it)?;
    }
    report.items = items.len() as u64;
    report.points = points.len() as u64;
    store.db().flush()?;
    if aside.exists() {
        fs::remove_dir_all(&aside).map_err(|e| VaultError::io("remove", &aside, e))?;
    }
    Ok((vault, report))
}
