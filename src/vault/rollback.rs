//! Rollback detection: a sealed record is authentic, but an older revision of it copied back
//! over a newer one would be too. Every revision of every record also goes into the
//! append-only packs as a meta blob, so the newest revision the packs hold is the one the
//! catalog must hold; an older one in the catalog was copied back (or a commit was cut short
//! between the packs and the catalog; either way `repair` restores the newest). The config's
//! generation is checked the same way, and at every open against the catalog (`Vault::open`).

use std::collections::HashMap;

use crate::format::{self, MetaRecord};
use crate::store::index::Location;
use crate::store::pack::PackEntry;
use crate::store::{BlobKind, Damaged, PackId, Store};

use super::{Result, Vault, VaultError};

/// Read and decode the meta record `entry` of `pack` names.
pub(crate) fn read_meta(store: &Store, pack: PackId, entry: &PackEntry) -> Result<MetaRecord> {
    let loc = Location {
        pack,
        offset: entry.offset,
        len: entry.len,
        kind: entry.kind,
    };
    let plain = store.get_at(&entry.id, &loc)?;
    format::decode_meta(&plain)
        .map_err(|err| VaultError::corrupt(Damaged::Content(entry.id), err.to_string()))
}

/// What a record is called in reports, and its revision.
type Newest = HashMap<String, u64>;

fn keep(map: &mut Newest, name: String, revision: u64) {
    let r = map.entry(name).or_insert(revision);
    *r = (*r).max(revision);
}

/// Findings: errors (item, point, policy records and the config older than the packs'
/// newest) and warnings (incoming records, which a killed daemon can leave one save behind).
#[derive(Debug, Default)]
pub struct Findings {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// Compare every catalog record and the config with the newest revision in the packs.
/// Unreadable packs and blobs are skipped (`check` reports them itself).
pub fn check(vault: &Vault) -> Result<Findings> {
    let store = vault.store();
    let mut newest: Newest = HashMap::new();
    let mut config_generation = 0;
    for pack in store.list_packs()? {
        let Ok(entries) = store.read_pack_header(&pack) else {
            continue;
        };
        for e in entries.iter().filter(|e| e.kind == BlobKind::Meta) {
            match read_meta(store, pack, e) {
                Ok(MetaRecord::Item(r)) => keep(&mut newest, item(&r.name), r.revision),
                Ok(MetaRecord::Point(r)) => keep(&mut newest, point(&r.item, &r.name), r.revision),
                Ok(MetaRecord::Incoming(r)) => keep(&mut newest, incoming(&r.item), r.revision),
                Ok(MetaRecord::Policy(r)) => keep(&mut newest, policy(&r.item), r.revision),
                Ok(MetaRecord::Config(c)) => {
                    config_generation = config_generation.max(c.generation)
                }
                Err(_) => {}
            }
        }
    }
    let mut out = Findings::default();
    let mut compare = |name: String, revision: u64, warn: bool| {
        if let Some(&n) = newest.get(&name)
            && n > revision
        {
            let msg = format!(
                "{name} is revision {revision}, but the packs hold revision {n}: an older sealed \
                 record was copied back (rollback), or a commit was cut short; `vaultfs repair` \
                 restores the newest"
            );
            if warn {
                out.warnings.push(msg);
            } else {
                out.errors.push(msg);
            }
        }
    };
    let codec = store.codec();
    for it in vault.items()? {
        compare(item(&it.name), it.revision, false);
        for p in vault.catalog.points_of(codec, &it.name)? {
            compare(point(&p.item, &p.name), p.revision, false);
        }
        if let Some(p) = vault.catalog.policy(codec, &it.name)? {
            compare(policy(&p.item), p.revision, false);
        }
        if let Some(r) = vault.catalog.incoming(codec, &it.name)? {
            compare(incoming(&r.item), r.revision, true);
        }
    }
    let config = vault.config();
    if config_generation > config.generation {
        out.errors.push(format!(
            "the config is generation {}, but the packs hold generation {config_generation}: an \
             older config was copied back (rollback); `vaultfs repair` restores the newest",
            config.generation
        ));
    }
    Ok(out)
}

fn item(name: &str) -> String {
    format!("the item record of {name}")
}

fn point(item: &str, name: &str) -> String {
    format!("the point record of {item}/{name}")
}

fn incoming(item: &str) -> String {
    format!("the incoming record of {item}")
}

fn policy(item: &str) -> String {
    format!("the policy record of {item}")
}
