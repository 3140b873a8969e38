//! The newest revision of every record, gathered from wherever copies survive: the catalog and
//! the meta blobs in packs. The merge rule is repair's (DESIGN.md §11.3): the highest revision
//! wins; on a tie the copy added first (the catalog's, which a command acknowledged). `check`
//! uses the same sets to tell a record lost from the catalog or from the packs.

use std::collections::BTreeMap;

use crate::format::{
    self, ConfigRecord, IncomingRecord, ItemRecord, MetaRecord, PointRecord, PolicyRecord,
};
use crate::store::backend::Backend;
use crate::store::codec::Codec;
use crate::store::survey::{Copy, Survey};
use crate::store::{BlobId, BlobKind, Damaged, StoreError, pack};

#[derive(Debug, Default, Clone)]
pub struct Records {
    pub items: BTreeMap<String, ItemRecord>,
    pub points: BTreeMap<(String, String), PointRecord>,
    pub incoming: BTreeMap<String, IncomingRecord>,
    pub policies: BTreeMap<String, PolicyRecord>,
    /// The newest config sealed into the packs (format v3), for `repair` to restore.
    pub config: Option<ConfigRecord>,
}

/// Insert `rec` under `key` unless a record of the same or a higher revision is there.
fn newer<K: Ord, V>(map: &mut BTreeMap<K, V>, key: K, rec: V, rev: fn(&V) -> u64) -> bool {
    match map.get(&key) {
        Some(old) if rev(old) >= rev(&rec) => false,
        _ => {
            map.insert(key, rec);
            true
        }
    }
}

impl Records {
    /// Keep `rec` if nothing of its revision or newer is held for its key; true if kept.
    pub fn add(&mut self, rec: MetaRecord) -> bool {
        match rec {
            MetaRecord::Item(r) => newer(&mut self.items, r.name.clone(), r, |r| r.revision),
            MetaRecord::Point(p) => newer(
                &mut self.points,
                (p.item.clone(), p.name.clone()),
                *p,
                |r| r.revision,
            ),
            MetaRecord::Incoming(i) => {
                newer(&mut self.incoming, i.item.clone(), *i, |r| r.revision)
            }
            MetaRecord::Policy(p) => newer(&mut self.policies, p.item.clone(), p, |r| r.revision),
            MetaRecord::Config(c) => {
                let newest = self
                    .config
                    .as_ref()
                    .is_none_or(|o| o.generation < c.generation);
                if newest {
                    self.config = Some(c);
                }
                newest
            }
        }
    }

    /// The record held for the key of `rec`, if any.
    pub fn get(&self, rec: &MetaRecord) -> Option<MetaRecord> {
        match rec {
            MetaRecord::Item(r) => self.items.get(&r.name).cloned().map(MetaRecord::Item),
            MetaRecord::Point(p) => self
                .points
                .get(&(p.item.clone(), p.name.clone()))
                .map(|p| MetaRecord::Point(Box::new(p.clone()))),
            MetaRecord::Incoming(i) => self
                .incoming
                .get(&i.item)
                .map(|i| MetaRecord::Incoming(Box::new(i.clone()))),
            MetaRecord::Policy(p) => self.policies.get(&p.item).cloned().map(MetaRecord::Policy),
            MetaRecord::Config(_) => self.config.clone().map(MetaRecord::Config),
        }
    }

    /// Every catalog record: items, points, incoming, policies, each in key order (the
    /// config is not one: it is written back through the config files).
    pub fn all(&self) -> Vec<MetaRecord> {
        let mut out: Vec<MetaRecord> = self.items.values().cloned().map(MetaRecord::Item).collect();
        out.extend(
            self.points
                .values()
                .map(|p| MetaRecord::Point(Box::new(p.clone()))),
        );
        out.extend(
            self.incoming
                .values()
                .map(|i| MetaRecord::Incoming(Box::new(i.clone()))),
        );
        out.extend(self.policies.values().cloned().map(MetaRecord::Policy));
        out
    }

    pub fn len(&self) -> usize {
        self.items.len() + self.points.len() + self.incoming.len() + self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Read, authenticate and decompress one copy of blob `id`.
pub fn read_copy(
    codec: &Codec,
    backend: &dyn Backend,
    id: &BlobId,
    copy: &Copy,
) -> Result<Vec<u8>, StoreError> {
    let e = &copy.entry;
    let sealed = pack::read_sealed(backend, &copy.pack, e.offset, e.len)?;
    codec.open_owned(e.kind, id, sealed).map_err(|err| {
        err.into_store(Damaged::Blob {
            id: *id,
            pack: copy.pack,
        })
    })
}

/// A record's name in messages.
pub fn describe(rec: &MetaRecord) -> String {
    match rec {
        MetaRecord::Item(r) => format!("item {}", r.name),
        MetaRecord::Point(p) => format!("point {}/{}", p.item, p.name),
        MetaRecord::Incoming(i) => format!("the incoming tree of {}", i.item),
        MetaRecord::Policy(p) => format!("the policy of {}", p.item),
        MetaRecord::Config(c) => format!("config generation {}", c.generation),
    }
}

/// The id of the meta blob that holds `rec` in the packs.
pub fn blob_id(codec: &Codec, rec: &MetaRecord) -> BlobId {
    codec.blob_id(BlobKind::Meta, &format::encode(rec))
}

/// The records of every meta blob in the packs that reads (each copy tried, best first), and a
/// line for each local failure. Damaged blobs are the survey's to report.
pub fn from_packs(codec: &Codec, backend: &dyn Backend, survey: &Survey) -> (Records, Vec<String>) {
    let mut ids: Vec<&BlobId> = survey
        .copies
        .iter()
        .filter(|(_, copies)| copies.iter().any(|c| c.entry.kind == BlobKind::Meta))
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    let mut records = Records::default();
    let mut errors = Vec::new();
    for id in ids {
        for copy in survey.readable(id, None) {
            match read_copy(codec, backend, id, &copy) {
                Ok(plain) => {
                    match format::decode_meta(&plain) {
                        Ok(rec) => {
                            records.add(rec);
                        }
                        Err(e) => errors.push(format!("meta blob {id}: {e}")),
                    }
                    break;
                }
                Err(e) if e.is_damage() => continue,
                Err(e) => {
                    errors.push(e.to_string());
                    break;
                }
            }
        }
    }
    (records, errors)
}
