//! `check`: verify packs against the index, every point's trees, and (with `--read-data`) every
//! blob's authentication and id. Damage is reported with the item, point and path it affects.

use std::collections::{HashMap, HashSet};

use crate::format::{Node, NodeKind};
use crate::store::index::Location;
use crate::store::{BlobId, BlobKind, PackId, StoreError};

use super::{Result, Vault, tree};

#[derive(Debug, Default)]
pub struct CheckReport {
    pub packs: u64,
    pub blobs: u64,
    pub points: u64,
    pub trees: u64,
    pub data_bytes_verified: u64,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// Why a blob is unusable.
type Bad = HashMap<BlobId, String>;

pub fn check(
    vault: &Vault,
    read_data: bool,
    mut on_pack: impl FnMut(u64, u64),
) -> Result<CheckReport> {
    let store = vault.store();
    let mut report = CheckReport::default();
    let mut bad: Bad = HashMap::new();

    // 1. The index against the packs.
    let mut by_pack: HashMap<PackId, Vec<(BlobId, Location)>> = HashMap::new();
    for entry in store.index().iter() {
        match entry {
            Ok((id, loc)) => by_pack.entry(loc.pack).or_default().push((id, loc)),
            Err(e) => report.errors.push(format!("index: {e}")),
        }
    }
    let on_disk: HashSet<PackId> = store.list_packs()?.into_iter().collect();
    report.packs = on_disk.len() as u64;
    for (pack, blobs) in &by_pack {
        if !on_disk.contains(pack) {
            report.errors.push(format!(
                "pack {pack} is missing ({} blobs lost)",
                blobs.len()
            ));
            for (id, _) in blobs {
                bad.insert(*id, format!("pack {pack} is missing"));
            }
        }
    }
    let total = on_disk.len() as u64;
    let mut packs: Vec<PackId> = on_disk.into_iter().collect();
    packs.sort();
    for (n, pack) in packs.iter().enumerate() {
        on_pack(n as u64, total);
        let indexed = by_pack.get(pack).map(|v| v.as_slice()).unwrap_or(&[]);
        let header = match store.read_pack_header(pack) {
            Ok(h) => h,
            Err(e) => {
                report.errors.push(format!("{e}"));
                for (id, _) in indexed {
                    bad.insert(*id, e.to_string());
                }
                continue;
            }
        };
        let in_header: HashMap<BlobId, (u32, u32, BlobKind)> = header
            .iter()
            .map(|e| (e.id, (e.offset, e.len, e.kind)))
            .collect();
        let mut listed = 0usize;
        for (id, loc) in indexed {
            match in_header.get(id) {
                Some(&(o, l, k)) if (o, l, k) == (loc.offset, loc.len, loc.kind) => listed += 1,
                _ => {
                    report.errors.push(format!(
                        "index entry of blob {id} disagrees with pack {pack}"
                    ));
                    bad.insert(*id, format!("index disagrees with pack {pack}"));
                }
            }
        }
        if listed < header.len() {
            report.warnings.push(format!(
                "pack {pack}: {} blobs not in the index (left by an interrupted write; `repair` indexes them, gc will drop them)",
                header.len() - listed
            ));
        }
        if read_data {
            for (id, loc) in indexed {
                if bad.contains_key(id) {
                    continue;
                }
                match store.get_at(id, loc) {
                    Ok(plain) => {
                        report.blobs += 1;
                        report.data_bytes_verified += plain.len() as u64;
                        if store.blob_id(loc.kind, &plain) != *id {
                            report
                                .errors
                                .push(format!("blob {id} in pack {pack} does not hash to its id"));
                            bad.insert(*id, "content does not match its id".into());
                        }
                    }
                    Err(e) => {
                        report.errors.push(format!("{e}"));
                        bad.insert(*id, e.to_string());
                    }
                }
            }
        } else {
            report.blobs += indexed.len() as u64;
        }
    }
    on_pack(total, total);

    // 2. Every point's trees (always read) and chunk references.
    let mut clean_trees: HashSet<BlobId> = HashSet::new();
    for point in vault
        .points(None, false)?
        .into_iter()
        .chain(vault.points(None, true)?)
    {
        report.points += 1;
        let label = format!("{}/{}", point.item, point.name);
        let mut ctx = Walk {
            vault,
            bad: &bad,
            clean: &mut clean_trees,
            errors: Vec::new(),
            trees: 0,
        };
        ctx.node(&point.root, &label, "");
        report.trees += ctx.trees;
        report.errors.extend(ctx.errors);
    }
    Ok(report)
}

struct Walk<'a> {
    vault: &'a Vault,
    bad: &'a Bad,
    clean: &'a mut HashSet<BlobId>,
    errors: Vec<String>,
    trees: u64,
}

impl Walk<'_> {
    /// Returns true if everything under `node` is intact.
    fn node(&mut self, node: &Node, label: &str, path: &str) -> bool {
        let shown = if path.is_empty() {
            "/".to_string()
        } else {
            path.to_string()
        };
        match node.kind {
            NodeKind::Dir => {
                let Some(id) = node.subtree else {
                    self.errors
                        .push(format!("{label}:{shown}: directory without a tree"));
                    return false;
                };
                if self.clean.contains(&id) {
                    return true;
                }
                if let Some(why) = self.bad.get(&id) {
                    self.errors.push(format!(
                        "{label}:{shown}: directory listing is damaged: {why}"
                    ));
                    return false;
                }
                let listing = match tree::load(self.vault.store(), &id) {
                    Ok(t) => t,
                    Err(e) => {
                        self.errors.push(format!(
                            "{label}:{shown}: directory listing is damaged: {e}"
                        ));
                        return false;
                    }
                };
                self.trees += 1;
                let mut ok = true;
                for child in &listing.nodes {
                    let name = String::from_utf8_lossy(&child.name);
                    ok &= self.node(child, label, &format!("{path}/{name}"));
                }
                if ok {
                    self.clean.insert(id);
                }
                ok
            }
            NodeKind::File => {
                let mut ok = true;
                for id in node.chunks.iter().map(|c| &c.id) {
                    let problem = match self.bad.get(id) {
                        Some(why) => Some(why.clone()),
                        None => match self.vault.store().index().get(id) {
                            Ok(Some(loc)) if loc.kind == BlobKind::Data => None,
                            Ok(Some(loc)) => {
                                Some(format!("blob {id} is a {:?}, not file data", loc.kind))
                            }
                            Ok(None) => Some(StoreError::MissingBlob(*id).to_string()),
                            Err(e) => Some(e.to_string()),
                        },
                    };
                    if let Some(why) = problem {
                        self.errors
                            .push(format!("{label}:{shown}: file data is damaged: {why}"));
                        ok = false;
                        break;
                    }
                }
                ok
            }
            _ => true,
        }
    }
}
